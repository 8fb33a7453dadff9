//! The bundled SOP playbooks end to end: real sshd nodes that behave like kubeadm nodes, the
//! simulator as their cluster, real kubectl and real containerd as witnesses.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::lab::{Lab, LabSpec, Runtime};

fn playbook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
}

fn run(lab: &Lab, name: &str, args: &[&str]) -> crate::cli::Output {
    let mut krun = lab.krun(playbook(name)).args(args);
    // prepare.rhai only reads and installs kubeadm: it takes neither.
    if name == "prepare.rhai" {
        return krun.run();
    }
    krun = krun.args(["--set", "ready_timeout=60s"]);
    if lab.workers().len() < 2 {
        // One worker: no other node can take its pods, so its drain evicts them all at once,
        // and the workloads' going down is accepted, as that cluster's operator must.
        krun = krun.args(["--set", "keep_replica=false"]).args([
            "--accept",
            "forecast",
            "--accept",
            "critical-without-pdb",
            "--accept",
            "single-replica",
        ]);
    }
    krun.run()
}

/// Every node at `version`, Ready and schedulable, as real kubectl shows them.
fn assert_all_at(lab: &Lab, version: &str) {
    let wide = lab.kubectl(&["get", "nodes", "--no-headers"]);
    for name in lab.masters().iter().chain(lab.workers().iter()) {
        let node = lab.cluster_node(name);
        assert_eq!(
            node.kubelet_version,
            format!("v{version}"),
            "{name}\n{wide}"
        );
        assert!(node.ready, "{name} is not Ready\n{wide}");
        assert!(!node.unschedulable, "{name} is left cordoned\n{wide}");
        let line = wide
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("kubectl does not list {name}:\n{wide}"));
        assert!(
            line.contains(" Ready ") && line.contains(&format!("v{version}")),
            "{line}"
        );
    }
}

#[test]
fn a_lab_goes_from_1_20_to_1_22_one_minor_at_a_time() {
    let Some(lab) = Lab::start(LabSpec::new()) else {
        return;
    };
    let masters = lab.masters();
    let workers = lab.workers();
    let on = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .flat_map(|n| ["--node".to_owned(), n.clone()])
            .collect()
    };
    let args = |nodes: &[String], version: &str| -> Vec<String> {
        let mut args = on(nodes);
        args.extend(["--set".to_owned(), format!("version={version}")]);
        args
    };
    let strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");

    let out = run(&lab, "prepare.rhai", &strs_vec(&args(&masters, "1.22")));
    out.code(0)
        .stderr_has("kubeadm 1.20.15-00 -> 1.21.14-00 -> 1.22.17-00");

    for (hop, full) in [("1.21", "1.21.14"), ("1.22", "1.22.17")] {
        run(&lab, "cluster.rhai", &["--set", &format!("version={hop}")]).code(0);
        assert_eq!(lab.server_version(), format!("v{full}"));
        let others: Vec<String> = masters[1..].to_vec();
        let out = run(&lab, "master.rhai", &strs_vec(&args(&others, hop)));
        out.code(0);
        for master in &masters {
            assert_eq!(
                lab.static_pod_image(master, "kube-apiserver").as_deref(),
                Some(format!("k8s.gcr.io/kube-apiserver:v{full}").as_str()),
                "{master} after the {hop} hop ({})",
                strs(&others)
            );
        }
        // kubeadm refuses the next apply while kubelets are more than one minor behind it, so
        // the workers move with every hop.
        run(&lab, "worker.rhai", &strs_vec(&args(&workers, hop))).code(0);
    }

    assert_all_at(&lab, "1.22.17");
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    for worker in &workers {
        let calls = lab.node(worker).kubeadm_calls();
        assert!(
            calls.iter().any(|c| c.starts_with("kubeadm upgrade node")),
            "{worker}: {calls:?}"
        );
    }
}

fn strs_vec(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn the_cluster_playbook_refuses_to_skip_minors() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(1)) else {
        return;
    };
    let out = run(&lab, "cluster.rhai", &["--set", "version=1.23.17"]);
    out.code(3).stderr_has("one minor at a time");
    assert_eq!(lab.server_version(), "v1.20.15");
    assert!(
        !lab.node("m1")
            .kubeadm_calls()
            .iter()
            .any(|c| c.contains("upgrade apply")),
        "kubeadm upgrade apply ran anyway"
    );
    assert!(!lab.cluster_node("m1").unschedulable);
}

#[test]
fn docker_to_containerd_on_a_worker() {
    let Some(lab) = Lab::start(
        LabSpec::new()
            .masters(1)
            .workers(2)
            .runtime(Runtime::Docker),
    ) else {
        return;
    };
    let out = run(
        &lab,
        "runtime-switch.rhai",
        &["--node", "w1", "--set", "runtime_disk=/dev/vdb"],
    );
    out.code(0);
    let node = lab.node("w1");
    let flags = node
        .read_file("/var/lib/kubelet/kubeadm-flags.env")
        .unwrap();
    assert!(
        flags.contains("--container-runtime-endpoint=unix:///run/containerd/containerd.sock"),
        "{flags}"
    );
    assert!(!flags.contains("--network-plugin"), "{flags}");
    let config = node.read_file("/var/lib/kubelet/config.yaml").unwrap();
    assert!(config.contains("cgroupDriver: systemd"), "{config}");
    assert_eq!(node.disk_filesystem("/dev/vdb").as_deref(), Some("ext4"));
    assert!(
        node.mounts()
            .iter()
            .any(|(dev, dir, _)| dev == "/dev/vdb" && dir == "/var/lib/containerd"),
        "{:?}",
        node.mounts()
    );
    // The installed config is one the real containerd accepts.
    let installed = node.root_path("/etc/containerd/config.toml");
    let dump = Command::new("containerd")
        .arg("-c")
        .arg(&installed)
        .args(["config", "dump"])
        .output()
        .expect("containerd runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(String::from_utf8_lossy(&dump.stdout).contains("SystemdCgroup = true"));
    let cluster = lab.cluster_node("w1");
    assert!(
        cluster.runtime_version.starts_with("containerd://"),
        "{cluster:?}"
    );
    assert!(cluster.ready && !cluster.unschedulable, "{cluster:?}");
    assert!(node.containers("docker").is_empty());
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
}

#[test]
fn a_kubelet_that_does_not_come_back_leaves_its_node_cordoned_until_fixed() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(2)) else {
        return;
    };
    control_plane_at_1_21(&lab);
    lab.node("w1").break_kubelet();
    let out = lab
        .krun(playbook("worker.rhai"))
        .args([
            "--node",
            "w1",
            "--set",
            "version=1.21",
            "--set",
            "ready_timeout=3s",
            "--output",
            "json",
        ])
        .run();
    out.code(1)
        .stderr_has("w1 is left CORDONED")
        .stderr_has("wait_ready");
    let json = out.json();
    assert_eq!(json["nodes"][0]["failure"]["left_cordoned"][0], "w1");
    assert!(lab.cluster_node("w1").unschedulable);
    let run_id = json["run_id"].as_str().unwrap().to_owned();

    // The operator fixes kubelet (and starts it); resuming completes the upgrade and returns
    // the node to service.
    lab.node("w1").repair_kubelet();
    lab.sh("w1", "systemctl restart kubelet");
    crate::cli::Krun::new()
        .args(["resume", &run_id])
        .run()
        .code(0);
    let node = lab.cluster_node("w1");
    assert_eq!(node.kubelet_version, "v1.21.14");
    assert!(node.ready && !node.unschedulable, "{node:?}");
}

/// kill -9 of krun after the drain, while kubelet's package is being installed: resume finds the
/// package in place (read back), installs nothing twice, evicts nothing twice, and the node ends
/// Ready at the new version and uncordoned. The journal says how the unknown step was settled.
#[test]
fn a_worker_upgrade_killed_mid_install_resumes_exactly() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(2)) else {
        return;
    };
    control_plane_at_1_21(&lab);
    let node = lab.node("w1");
    // apt-get pauses when it installs kubelet, until the test says go.
    let bin = node.dir().join("bin");
    std::fs::rename(bin.join("apt-get"), bin.join("apt-get.real")).unwrap();
    std::fs::write(
        bin.join("apt-get"),
        format!(
            // (Once krun is gone its output has nowhere to go: it goes to a file, so the
            // orphaned install is not killed by SIGPIPE and really finishes.)
            "#!/bin/sh\ncase \"$*\" in *kubelet=*) touch {dir}/installing; \
             while [ ! -e {dir}/go ]; do sleep 0.05; done; \
             exec {bin}/apt-get.real \"$@\" >>{dir}/apt.out 2>&1;; esac\n\
             exec {bin}/apt-get.real \"$@\"\n",
            dir = node.dir().display(),
            bin = bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("apt-get"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_krun"))
        .arg(playbook("worker.rhai"))
        .args(["--inventory".as_ref(), lab.inventory().as_os_str()])
        .args(["--kubeconfig".as_ref(), lab.kubeconfig().as_os_str()])
        .args(["--node", "w1", "--set", "version=1.21", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !node.dir().join("installing").exists() {
        assert!(
            Instant::now() < deadline,
            "the kubelet install never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "krun ended before the install"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let evictions_before = evictions(&lab);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lab.cluster_node("w1").unschedulable,
        "the drain had happened"
    );

    // The orphaned install goes on and finishes on the node (as it would after a laptop died).
    std::fs::write(node.dir().join("go"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.installed_version("kubelet").as_deref() != Some("1.21.14-00") {
        assert!(
            Instant::now() < deadline,
            "the orphaned install never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let killed = std::fs::read_dir(state.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .max()
        .unwrap();
    let shown = crate::cli::Krun::new()
        .args(["runs", "show", &killed, "--state-dir", state_arg])
        .run();
    shown.code(0).stdout_has("outcome unknown");

    let out = crate::cli::Krun::new()
        .args([
            "resume",
            &killed,
            "--output",
            "json",
            "--state-dir",
            state_arg,
        ])
        .run();
    out.code(0).stderr_has(
        "taking over the cluster lock kube-system/krun-upgrade from the run this one resumes",
    );
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    let settled: Vec<&serde_json::Value> =
        steps.iter().filter(|s| !s["resolved"].is_null()).collect();
    assert_eq!(settled.len(), 1, "{steps:#?}");
    assert_eq!(settled[0]["action"], "pkg_install");
    assert!(
        settled[0]["resolved"]
            .as_str()
            .unwrap()
            .contains("it had happened, so it is not run again"),
        "{settled:#?}"
    );
    let installs = node
        .changes()
        .into_iter()
        .filter(|c| c.contains("kubelet") && c.contains("install"))
        .count();
    assert_eq!(installs, 1, "{:?}", node.changes());
    assert_eq!(evictions(&lab), evictions_before, "pods were evicted again");
    let after = lab.cluster_node("w1");
    assert_eq!(after.kubelet_version, "v1.21.14");
    assert!(after.ready && !after.unschedulable, "{after:?}");
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    let journal = std::fs::read_to_string(
        state
            .path()
            .join("runs")
            .join(json["run_id"].as_str().unwrap())
            .join("journal.jsonl"),
    )
    .unwrap();
    assert!(
        journal.contains("\"resolved\":\"read back with"),
        "{journal}"
    );
}

/// The control plane already upgraded (by cluster.rhai, as the first test shows), so a worker
/// may follow.
/// The cluster as `kubeadm upgrade apply v1.21.14` leaves it: the control plane at 1.21.14,
/// CoreDNS and kube-proxy at what kubeadm 1.21 deploys.
fn control_plane_at_1_21(lab: &Lab) {
    lab.handle()
        .set_control_plane_version("v1.21.14", None)
        .unwrap();
    lab.kubectl(&[
        "-n",
        "kube-system",
        "set",
        "image",
        "deployment/coredns",
        "coredns=k8s.gcr.io/coredns/coredns:v1.8.0",
    ]);
    lab.kubectl(&[
        "-n",
        "kube-system",
        "set",
        "image",
        "daemonset/kube-proxy",
        "kube-proxy=k8s.gcr.io/kube-proxy:v1.21.14",
    ]);
}

#[test]
fn a_worker_is_not_drained_for_a_kubelet_the_control_plane_is_too_old_for() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(1)) else {
        return;
    };
    run(
        &lab,
        "worker.rhai",
        &["--node", "w1", "--set", "version=1.21"],
    )
    .code(3)
    .stderr_has("the control plane is at v1.20.15; kubelet 1.21 would be newer");
    assert!(!lab.cluster_node("w1").unschedulable, "drained for nothing");
}

fn evictions(lab: &Lab) -> u64 {
    lab.handle()
        .request_counts()
        .iter()
        .filter(|(k, _)| k.contains("pods/eviction") && k.starts_with("create"))
        .map(|(_, v)| *v)
        .sum()
}

#[test]
fn crio_and_kubelet_on_arch_linux_arm_from_team_built_packages() {
    let Some(lab) = Lab::start(
        LabSpec::new()
            .masters(1)
            .workers(2)
            .os(crate::support::fleet::Os::ArchArm)
            .runtime(Runtime::CriO),
    ) else {
        return;
    };
    control_plane_at_1_21(&lab);
    let packages = lab.node("w1").dir().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    for file in [
        "cri-o-1.21.7-1-aarch64.pkg.tar.xz",
        // Split packages: kubeadm of the version writes the kubelet configuration.
        "kubeadm-1.21.14-1-aarch64.pkg.tar.xz",
        "kubelet-1.21.14-1-aarch64.pkg.tar.xz",
    ] {
        std::fs::write(packages.join(file), "a team-built package").unwrap();
    }
    run(
        &lab,
        "crio-arch.rhai",
        &[
            "--node",
            "w1",
            "--set",
            "version=1.21.14",
            "--set",
            &format!("packages={}", packages.display()),
        ],
    )
    .code(0);
    let node = lab.cluster_node("w1");
    assert_eq!(node.kubelet_version, "v1.21.14");
    assert_eq!(node.runtime_version, "cri-o://1.21.7");
    assert!(node.ready && !node.unschedulable, "{node:?}");
    // `upgrade node config` is gone from kubeadm 1.18: 1.21 writes the kubelet configuration
    // with `kubeadm upgrade node phase kubelet-config` (the stand-in records `upgrade node`).
    assert_eq!(lab.node("w1").kubeadm_calls(), ["kubeadm upgrade node"]);
}

#[test]
fn a_node_gets_a_new_os_and_rejoins_without_its_join_token_leaking() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(2)) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let out = run(
        &lab,
        "os-replace.rhai",
        &[
            "--node",
            "w1",
            "--set",
            "version=1.20.15",
            "--set",
            // The reinstall hook runs on the node itself here (an installer it boots into);
            // afterwards the node has no Kubernetes packages and no cluster membership.
            "reinstall=kubeadm reset -f && apt-get remove -y kubelet kubeadm kubectl",
            "--set",
            "hook_node=w1",
            "--set",
            "control_plane=m1",
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
    );
    out.code(0);
    let node = lab.node("w1");
    assert!(node.joined());
    assert_eq!(
        node.installed_version("kubelet").as_deref(),
        Some("1.20.15-00")
    );
    let calls = node.kubeadm_calls();
    assert!(
        calls.iter().any(|c| c.starts_with("kubeadm reset"))
            && calls.iter().any(|c| c.starts_with("kubeadm join")),
        "{calls:?}"
    );
    let cluster = lab.cluster_node("w1");
    assert!(cluster.ready && !cluster.unschedulable, "{cluster:?}");
    // The join command carries a bootstrap token: nothing krun wrote shows it.
    let mut written = format!("{}{}", out.stdout, out.stderr);
    for entry in walk(state.path()) {
        written.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
    }
    assert!(
        written.contains("***"),
        "the join command was not shown masked"
    );
    for secret in ["discovery-token-ca-cert-hash", "--token "] {
        assert!(!written.contains(secret), "{secret} leaked:\n{written}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every bundled SOP rehearses on the bundled lab with no setup: Kubernetes against an
/// in-process copy of examples/lab/cluster.yaml, node commands shown, nothing contacted.
#[test]
fn every_sop_rehearses_on_the_bundled_lab() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lab = root.join("examples/lab");
    let cases: &[&[&str]] = &[
        &[
            "prepare.rhai",
            "--node",
            "master-1",
            "--set",
            "version=1.22",
        ],
        &["cluster.rhai", "--set", "version=1.21.14"],
        &[
            "master.rhai",
            "--node",
            "master-2",
            "--set",
            "version=1.20.15",
        ],
        &[
            "worker.rhai",
            "--node",
            "worker-6",
            "--set",
            "version=1.20.15",
        ],
        &[
            "runtime-switch.rhai",
            "--node",
            "worker-6",
            "--set",
            "runtime_disk=/dev/vdb",
        ],
        &[
            "crio-arch.rhai",
            "--node",
            "worker-6",
            "--set",
            "version=1.20.15",
        ],
        &[
            "os-replace.rhai",
            "--node",
            "worker-6",
            "--set",
            "version=1.20.15",
            "--set",
            "reinstall=/opt/pxe/reinstall {node}",
            "--set",
            "hook_node=master-1",
        ],
        &[
            "kubelet.rhai",
            "--node",
            "worker-6",
            "--set",
            "version=1.20.15",
        ],
    ];
    for case in cases {
        let out = crate::cli::Krun::new()
            .args([playbook(case[0])])
            .args(&case[1..])
            .args([
                "--inventory".as_ref(),
                lab.join("inventory.toml").as_os_str(),
            ])
            .args(["--rehearse".as_ref(), lab.join("cluster.yaml").as_os_str()])
            .args(["--dry-run", "--offline"])
            .run();
        out.code(0).stdout_has("Plan (dry-run, offline");
    }
    // The lab's trap: worker-3 holds a budget that allows no disruption, so its drain can never
    // finish; the rehearsal finds out (in cluster time) instead of the upgrade.
    crate::cli::Krun::new()
        .args([playbook("worker.rhai")])
        .args(["--node", "worker-3", "--set", "version=1.20.15"])
        .args([
            "--inventory".as_ref(),
            lab.join("inventory.toml").as_os_str(),
        ])
        .args(["--rehearse".as_ref(), lab.join("cluster.yaml").as_os_str()])
        .args(["--dry-run", "--offline"])
        .run()
        .code(3)
        .stderr_has("team-checkout/checkout-cache-0");
}
