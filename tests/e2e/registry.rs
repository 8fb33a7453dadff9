//! The registry check before a runtime switch (seed 000: the new containerd could not pull
//! from the company's old registry, found only after the nodes were drained): the node's images
//! are pulled with the new runtime on a canary node that already runs it, before the drain.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::lab::{Lab, LabSpec, Runtime};

const REFUSED: &str = "registry.example.com";
const PULL: &str = "crictl --runtime-endpoint unix:///run/containerd/containerd.sock pull ";

fn switch(lab: &Lab, node: &str, args: &[&str]) -> crate::cli::Output {
    lab.krun(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("playbooks")
            .join("runtime-switch.rhai"),
    )
    .args(["--node", node, "--set", "ready_timeout=60s"])
    .args(args)
    .run()
}

/// The images of the pods on `node`, init containers included, as real kubectl lists them.
fn images_on(lab: &Lab, node: &str) -> BTreeSet<String> {
    lab.kubectl(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        &format!("spec.nodeName={node}"),
        "-o",
        "jsonpath={range .items[*]}{range .spec.initContainers[*]}{.image}{\"\\n\"}{end}{range .spec.containers[*]}{.image}{\"\\n\"}{end}{end}",
    ])
    .lines()
    .filter(|l| !l.is_empty())
    .map(str::to_owned)
    .collect()
}

/// Asserts `needle` is in `text` as the reader sees it: the error renderer wraps long lines
/// (at spaces, slashes and hyphens) behind a `│` margin, so both are compared without either.
#[track_caller]
fn assert_says(text: &str, needle: &str) {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '│')
            .collect()
    };
    assert!(
        squash(text).contains(&squash(needle)),
        "the output does not say {needle:?}:\n{text}"
    );
}

#[test]
fn a_registry_the_new_runtime_cannot_pull_from_stops_the_switch_before_the_drain() {
    let Some(lab) = Lab::start(
        LabSpec::new()
            .masters(1)
            .workers(2)
            .runtime(Runtime::Docker),
    ) else {
        return;
    };
    // A canary still on Docker would prove nothing about containerd.
    let out = switch(&lab, "w1", &["--set", "canary=w2"]);
    out.code(3);
    assert_says(
        &out.stderr,
        "the canary w2 runs docker 20.10.24, not containerd",
    );
    assert!(!lab.cluster_node("w1").unschedulable);
    assert!(lab.node("w2").pulled_images("containerd").is_empty());

    // The first node switched has no canary: the run says the check was skipped.
    switch(&lab, "w2", &[])
        .code(0)
        .stderr_has("registry check skipped")
        .stderr_has("--set canary=NODE");
    let canary = lab.node("w2");
    assert!(
        lab.cluster_node("w2")
            .runtime_version
            .starts_with("containerd://")
    );

    let images = images_on(&lab, "w1");
    let (refused, others): (BTreeSet<String>, BTreeSet<String>) = images
        .iter()
        .cloned()
        .partition(|image| image.starts_with(&format!("{REFUSED}/")));
    assert!(
        !refused.is_empty() && !others.is_empty(),
        "w1 should run images from {REFUSED} and from other registries: {images:?}"
    );

    // The old registry cannot serve containerd: refused before anything happens to w1.
    canary.refuse_registry(REFUSED);
    let before = lab.node("w1").state_snapshot();
    let out = switch(&lab, "w1", &["--set", "canary=w2"]);
    out.code(3);
    assert_says(
        &out.stderr,
        &format!(
            "the canary w2 could not pull {} of {} images of w1 with containerd (crictl) from {REFUSED}; nothing was drained",
            refused.len(),
            images.len()
        ),
    );
    for image in &refused {
        assert_says(&out.stderr, &format!("{image} (registry {REFUSED})"));
    }
    assert_says(&out.stderr, "httpReadSeeker: failed open");
    let w1 = lab.cluster_node("w1");
    assert!(!w1.unschedulable, "w1 was cordoned: {w1:?}");
    assert!(w1.runtime_version.starts_with("docker://"), "{w1:?}");
    assert_eq!(lab.node("w1").state_snapshot(), before, "w1 was touched");
    let pulled = canary.pulled_images("containerd");
    assert!(others.is_subset(&pulled), "{others:?} not in {pulled:?}");

    // worker.rhai's runtime switch (an upgrade and the switch in one drain) takes the same
    // canary and is refused the same way, before its drain.
    let version = lab.server_version();
    let out = lab
        .krun(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("playbooks")
                .join("worker.rhai"),
        )
        .args(["--node", "w1", "--set", "ready_timeout=60s"])
        .args(["--set", "runtime=containerd", "--set", "canary=w2"])
        .args([
            "--set",
            &format!("version={}", version.trim_start_matches('v')),
        ])
        .run();
    out.code(3);
    assert_says(
        &out.stderr,
        &format!(
            "the canary w2 could not pull {} of {} images of w1",
            refused.len(),
            images.len()
        ),
    );
    assert!(
        !lab.cluster_node("w1").unschedulable,
        "worker.rhai cordoned w1"
    );
    assert_eq!(
        lab.node("w1").state_snapshot(),
        before,
        "worker.rhai touched w1"
    );
    assert!(refused.is_disjoint(&pulled), "{pulled:?}");

    // A dry-run shows every pull on the canary and pulls nothing.
    let pulled_before = canary.pulled_images("containerd");
    let pulls = || {
        canary
            .changes()
            .iter()
            .filter(|c| c.starts_with("crictl pull"))
            .count()
    };
    // Each refused run pulled what it could: the runtime switch, then worker.rhai.
    let pulls_before = pulls();
    assert_eq!(pulls_before, 2 * others.len());
    let out = switch(&lab, "w1", &["--set", "canary=w2", "--dry-run"]);
    out.code(0);
    for image in &images {
        out.stdout_has(&format!("{PULL}{image}"));
    }
    assert_eq!(canary.pulled_images("containerd"), pulled_before);
    assert_eq!(pulls(), pulls_before, "the dry-run pulled");

    // With the registry fixed, the switch proceeds: every pull is a recorded step on the
    // canary, all of them before the cordon.
    canary.accept_registries();
    let out = switch(&lab, "w1", &["--set", "canary=w2", "--output", "json"]);
    out.code(0).stderr_has(&format!(
        "registry check: w2 pulled all {} images of w1 with containerd",
        images.len()
    ));
    let report = out.json();
    let steps: Vec<&serde_json::Value> = report["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|node| node["steps"].as_array().into_iter().flatten())
        .collect();
    let seq = |step: &serde_json::Value| step["seq"].as_u64().unwrap_or(u64::MAX);
    let cordon = steps
        .iter()
        .find(|s| s["action"] == "cordon")
        .map(|s| seq(s))
        .expect("the switch cordons w1");
    for image in &images {
        let pull = steps
            .iter()
            .find(|s| s["action"] == "pull_images" && s["command"] == format!("{PULL}{image}"))
            .unwrap_or_else(|| panic!("no pull step for {image}: {report:#}"));
        assert_eq!(pull["node"], "w2", "{pull}");
        assert_eq!(pull["exit_code"], 0, "{pull}");
        assert!(
            seq(pull) < cordon,
            "{image} pulled after the cordon: {pull}"
        );
    }
    let pulled = canary.pulled_images("containerd");
    assert!(images.is_subset(&pulled), "{images:?} not in {pulled:?}");
    let w1 = lab.cluster_node("w1");
    assert!(w1.runtime_version.starts_with("containerd://"), "{w1:?}");
    assert!(w1.ready && !w1.unschedulable, "{w1:?}");
}

/// A cluster-level playbook in the lab's scratch directory.
fn play(lab: &Lab, name: &str, text: &str) -> crate::cli::Output {
    let path = lab.dir().join(name);
    std::fs::write(&path, text).expect("write the playbook");
    lab.krun(&path).run()
}

#[test]
fn preflight_and_pull_images_report_each_image_the_canary_cannot_pull() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(2)) else {
        return;
    };
    let images = images_on(&lab, "w1");
    let refused: BTreeSet<&String> = images
        .iter()
        .filter(|image| image.starts_with(&format!("{REFUSED}/")))
        .collect();
    assert!(!refused.is_empty(), "{images:?}");
    let canary = lab.node("w2");
    canary.refuse_registry(REFUSED);

    let out = play(
        &lab,
        "preflight.rhai",
        r#"
for finding in preflight(#{ nodes: ["w1"], canary: "w2", runtime: "containerd" }) {
    if finding.id.starts_with("registry-pull/") {
        log(`${finding.id} ${finding.severity}: ${finding.message}`);
    }
}
"#,
    );
    out.code(0);
    for image in &refused {
        out.stderr_has(&format!(
            "registry-pull/{image} block: w2 cannot pull {image} from registry {REFUSED} with containerd (crictl): FATA[0000] pulling image"
        ));
    }
    let findings = out.stderr.matches("registry-pull/").count();
    assert_eq!(findings, refused.len(), "{}", out.stderr);

    // Without crictl, a containerd canary pulls with ctr, which fails as ctr does.
    std::fs::remove_file(canary.dir().join("bin/crictl")).expect("remove crictl");
    let out = play(
        &lab,
        "pull.rhai",
        r#"
let images = [];
for pod in pods_on("w1") { images += pod.images; }
let report = pull_images(find_node("w2"), images + images);
log(`client ${report.client}, ${report.images.len()} images, ${report.pulled.len()} pulled`);
for failed in report.failed {
    log(`failed ${failed.image} from ${failed.registry}: ${failed.stderr}`);
}
"#,
    );
    out.code(0)
        .stderr_has(&format!(
            "client ctr, {} images, {} pulled",
            images.len(),
            images.len() - refused.len()
        ))
        .stderr_has("ctr: failed to copy: httpReadSeeker: failed open");
    for image in &refused {
        out.stderr_has(&format!("failed {image} from {REFUSED}: "));
    }
    let changes = canary.changes();
    for image in &images {
        let pulls = changes
            .iter()
            .filter(|c| *c == &format!("ctr images pull {image}"))
            .count();
        let expected = usize::from(!refused.contains(image));
        assert_eq!(pulls, expected, "{image}: {changes:?}");
    }
}

#[test]
fn a_crio_upgrade_pulls_on_its_canary_through_crio_before_the_drain() {
    let Some(lab) = Lab::start(
        LabSpec::new()
            .masters(1)
            .workers(2)
            .os(crate::support::fleet::Os::ArchArm)
            .runtime(Runtime::CriO),
    ) else {
        return;
    };
    let packages = lab.node("w1").dir().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    for file in [
        "cri-o-1.21.7-1-aarch64.pkg.tar.xz",
        "kubelet-1.20.15-1-aarch64.pkg.tar.xz",
    ] {
        std::fs::write(packages.join(file), "a team-built package").unwrap();
    }
    let images = images_on(&lab, "w1");
    lab.node("w2").refuse_registry(REFUSED);
    let before = lab.node("w1").state_snapshot();
    let out = lab
        .krun(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("playbooks")
                .join("crio-arch.rhai"),
        )
        .args([
            "--node",
            "w1",
            "--set",
            "version=1.20.15",
            "--set",
            "canary=w2",
        ])
        .args(["--set", &format!("packages={}", packages.display())])
        .run();
    out.code(3);
    assert_says(
        &out.stderr,
        &format!("images of w1 with crio (crictl) from {REFUSED}; nothing was drained"),
    );
    assert!(!lab.cluster_node("w1").unschedulable);
    assert_eq!(lab.node("w1").state_snapshot(), before, "w1 was touched");
    let pulled = lab.node("w2").pulled_images("crio");
    let others: BTreeSet<String> = images
        .iter()
        .filter(|image| !image.starts_with(&format!("{REFUSED}/")))
        .cloned()
        .collect();
    assert_eq!(pulled, others);
}
