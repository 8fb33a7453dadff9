//! The version rules as findings, each with its fix: dockershim's removal at 1.24, kubeadm's
//! kubelet rule for `upgrade apply`, and kubelet flags a target removed that a node's flag
//! files still pass.

use crate::support::fleet::{Fleet, NodeSpec, Os};

use super::{finding_ids, findings, preflight_cli};

fn lab_preflight(target: &str) -> crate::cli::Output {
    crate::cli::Krun::new()
        .args(["preflight", "--rehearse"])
        .arg_path(&crate::cli::root().join("examples/lab/cluster.yaml"))
        .args(["--target", target, "-o", "json"])
        .run()
}

#[test]
fn the_lab_on_docker_is_refused_the_1_24_hop_and_kubeadms_kubelet_rule_is_named() {
    // 1.20 -> 1.21: one minor, every kubelet one behind at most; no runtime change needed.
    let ids = finding_ids(&lab_preflight("1.21.14"));
    assert!(
        !ids.iter()
            .any(|i| i.starts_with("dockershim-removed") || i.starts_with("kubeadm-kubelet-rule")),
        "{ids:?}"
    );

    // 1.24: every node still runs Docker through dockershim, and every kubelet (1.20) is more
    // than one minor behind what kubeadm 1.24 applies.
    let out = lab_preflight("1.24.17");
    out.code(3);
    let found = findings(&out);
    let dockershim: Vec<&serde_json::Value> = found
        .iter()
        .filter(|f| f["id"].as_str().unwrap().starts_with("dockershim-removed/"))
        .collect();
    assert_eq!(
        dockershim.len(),
        9,
        "every lab node is on Docker: {dockershim:#?}"
    );
    let worker = dockershim
        .iter()
        .find(|f| f["id"] == "dockershim-removed/worker-1")
        .expect("worker-1");
    assert_eq!(worker["severity"], "block");
    assert!(
        worker["message"]
            .as_str()
            .unwrap()
            .contains("which Kubernetes 1.24 removed: kubelet 1.24.17 cannot start there"),
        "{worker}"
    );
    assert!(
        worker["fix"]
            .as_str()
            .unwrap()
            .contains("krun playbooks/runtime-switch.rhai --node worker-1"),
        "{worker}"
    );
    let rule = found
        .iter()
        .find(|f| f["id"] == "kubeadm-kubelet-rule/1.24")
        .expect("kubeadm's kubelet rule");
    assert_eq!(rule["severity"], "block");
    let message = rule["message"].as_str().unwrap();
    assert!(
        message.contains("more than 1 minor release(s) behind it")
            && message.contains("There are kubelets in this cluster that are too old")
            && message.contains("and 4 more"),
        "{message}"
    );
    assert!(
        rule["fix"]
            .as_str()
            .unwrap()
            .starts_with("upgrade those nodes' kubelets to at least 1.23 first"),
        "{rule}"
    );
}

#[test]
fn flags_the_target_removed_are_named_in_the_file_that_still_passes_them() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("w1", Os::Debian12))
        .node(NodeSpec::new("w2", Os::Debian12))
        .start()
    else {
        return;
    };
    fleet.node("w1").write_file(
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--network-plugin=cni --container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=k8s.gcr.io/pause:3.2\"\n",
    );
    fleet.node("w2").write_file(
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(&inventory, fleet.inventory_toml()).unwrap();
    let inventory = inventory.display().to_string();
    let run = |target: &str| {
        preflight_cli(
            "three-control-planes",
            &[
                "--skip-etcd",
                "--skip-certs",
                "--inventory",
                &inventory,
                "--target",
                target,
                "-o",
                "json",
            ],
        )
    };
    let flags = |out: &crate::cli::Output| -> Vec<serde_json::Value> {
        findings(out)
            .into_iter()
            .filter(|f| {
                f["id"]
                    .as_str()
                    .unwrap()
                    .starts_with("kubelet-removed-flag/")
            })
            .collect()
    };
    // 1.29 removed both; w2 passes neither.
    let found = flags(&run("1.29.4"));
    let ids: Vec<&str> = found.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "kubelet-removed-flag/w1/container-runtime",
            "kubelet-removed-flag/w1/network-plugin"
        ],
        "{found:#?}"
    );
    assert_eq!(found[0]["severity"], "warn");
    assert!(
        found[0]["message"].as_str().unwrap().starts_with(
            "/var/lib/kubelet/kubeadm-flags.env on w1 passes --container-runtime, which kubelet 1.29.4 no longer has"
        ),
        "{found:#?}"
    );
    assert!(
        found[0]["fix"]
            .as_str()
            .unwrap()
            .contains("set_kubelet_flags(node, #{ \"container-runtime\": () }, #{ file: \"/var/lib/kubelet/kubeadm-flags.env\" })"),
        "{found:#?}"
    );
    // Without a target, nothing is read for it and nothing is said.
    let untargeted = preflight_cli(
        "three-control-planes",
        &[
            "--skip-etcd",
            "--skip-certs",
            "--inventory",
            &inventory,
            "-o",
            "json",
        ],
    );
    assert!(flags(&untargeted).is_empty());
}
