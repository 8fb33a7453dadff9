//! A way back: a control-plane hop on a booted machine backed up before it changed anything
//! (files on the node, etcd snapshot on the operator's side, versions in the journal), the
//! cluster broken on purpose afterwards, and `restore.rhai` bringing the node back — dry first,
//! listing exactly what it would put back, then for real.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::etcd::EtcdCluster;
use crate::support::fleet::Os;
use crate::support::machines::Layout;
use crate::support::machines::lab::{MachineLab, MachineLabSpec};

fn playbook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
}

/// Text as krun printed it, with the report's line wrapping undone.
fn unwrapped(text: &str) -> String {
    text.lines()
        .map(|l| l.trim_start().trim_start_matches(['│', '×']).trim())
        .collect::<Vec<_>>()
        .join(" ")
}

const MANIFESTS: [&str; 4] = [
    "/etc/kubernetes/manifests/etcd.yaml",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
];

/// The kube-apiserver mirror pod of m1: `(ready, waiting reason)`.
fn apiserver_pod(lab: &MachineLab) -> (bool, String) {
    let pod = lab
        .handle()
        .object("v1", "Pod", "kube-system", "kube-apiserver-m1")
        .expect("the mirror pod");
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let reason = pod
        .pointer("/status/containerStatuses/0/state/waiting/reason")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (ready, reason)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_control_plane_hop_broken_afterwards_is_restored_from_its_backup() {
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let Some(lab) = MachineLab::start(MachineLabSpec::new(
        Os::Debian12,
        Layout::AptLegacy,
        "1.20.15",
    )) else {
        return;
    };
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    std::fs::write(
        lab.inventory(),
        format!(
            "{inventory}\n[etcd]\nendpoints = [{}]\n",
            etcd.client_urls()
                .iter()
                .map(|u| format!("{u:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();
    let state = lab.dir().join("state");
    let state_arg = state.display().to_string();
    let m1 = lab.machine("m1");
    let before: Vec<Option<String>> = MANIFESTS.iter().map(|p| m1.read_file(p)).collect();
    let kubelet_config = m1.read_file("/var/lib/kubelet/config.yaml");

    // One hop on the control plane, backed up first.
    let out = lab
        .krun(playbook("cluster.rhai"))
        .args(["--set", "version=1.21", "--set", "ready_timeout=60s"])
        .args(["--state-dir", &state_arg, "--output", "json"])
        .run();
    out.code(0);
    let run = out.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(lab.server_version(), "v1.21.14");
    assert_eq!(
        m1.installed_version("kubeadm").as_deref(),
        Some("1.21.14-00")
    );
    let upgraded = m1
        .read_file("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .unwrap();
    assert!(upgraded.contains("kube-apiserver:v1.21.14"), "{upgraded}");

    // The journal says what can be restored and where; the snapshot is there and whole.
    let shown = crate::cli::Krun::new()
        .args(["runs", "show", &run, "--state-dir", &state_arg])
        .run();
    shown.code(0);
    let snapshot = state.join("runs").join(&run).join("etcd-m1.db");
    for expected in [
        "backup of m1 (control plane, with /etc/kubernetes):".to_string(),
        format!(
            "in /var/backups/krun/{run}/control-plane on m1; kubeadm 1.20.15-00, kubelet 1.20.15-00, kubectl 1.20.15-00"
        ),
        format!("etcd snapshot: {}", snapshot.display()),
        format!("krun playbooks/restore.rhai --node NODE --set run={run}"),
    ] {
        assert!(
            shown.stdout.contains(&expected),
            "{expected}\n{}",
            shown.stdout
        );
    }
    let db = std::fs::read(&snapshot).expect("the etcd snapshot beside the journal");
    assert!(db.len() > 32, "an empty snapshot");
    // The copies on the node hold the files as they were before the hop.
    let copy = m1
        .read_file(&format!(
            "/var/backups/krun/{run}/control-plane/files/etc/kubernetes/manifests/kube-apiserver.yaml"
        ))
        .expect("the copy of the manifest on the node");
    assert_eq!(Some(copy), before[1]);

    // Broken on purpose: an apiserver manifest kubelet cannot run.
    m1.write_file(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "apiVersion: v1\nkind: Pod\nspec: [this is not a pod spec\n",
    );
    m1.sh("systemctl restart kubelet");
    wait_for("the apiserver crash-looping", || {
        apiserver_pod(&lab).1 == "CrashLoopBackOff"
    });

    // A dry-run says exactly what it would put back, and changes nothing.
    let dry = lab
        .krun(playbook("restore.rhai"))
        .args(["--node", "m1", "--set", &format!("run={run}"), "--dry-run"])
        .args(["--state-dir", &state_arg])
        .run();
    dry.code(0);
    let said = unwrapped(&dry.stderr);
    for expected in [
        format!("restoring m1 to before run {run} puts back:"),
        "package kubeadm: 1.21.14-00 -> 1.20.15-00".to_string(),
        "package kubectl: 1.21.14-00 -> 1.20.15-00".to_string(),
        "package kubelet: 1.21.14-00 -> 1.20.15-00".to_string(),
        format!(
            "file /etc/kubernetes/manifests/kube-apiserver.yaml (changed since the backup) <- /var/backups/krun/{run}/control-plane/files/etc/kubernetes/manifests/kube-apiserver.yaml"
        ),
        "file /etc/kubernetes/manifests/kube-controller-manager.yaml (changed since the backup)"
            .to_string(),
        "file /etc/kubernetes/manifests/kube-scheduler.yaml (changed since the backup)".to_string(),
    ] {
        assert!(said.contains(&expected), "{expected}\n{said}");
    }
    // etcd's manifest did not change in the hop (kubeadm 1.21 keeps etcd 3.4.13).
    assert!(
        !said.contains("file /etc/kubernetes/manifests/etcd.yaml"),
        "{said}"
    );
    assert!(
        said.contains("m1: nothing was put back (dry-run)"),
        "{said}"
    );
    assert_eq!(
        m1.installed_version("kubeadm").as_deref(),
        Some("1.21.14-00"),
        "the dry-run changed a package"
    );
    assert!(
        !m1.read_file("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .unwrap()
            .contains("kube-apiserver:"),
        "the dry-run put a file back"
    );

    // For real, inside a drain.
    let out = lab
        .krun(playbook("restore.rhai"))
        .args(["--node", "m1", "--set", &format!("run={run}")])
        .args(["--set", "ready_timeout=60s", "--state-dir", &state_arg])
        .args(["--output", "json"])
        .run();
    out.code(0).stderr_has(&format!(
        "m1: restored to before run {run}, kubelet 1.20.15"
    ));
    let report = out.json();
    let actions: Vec<String> = report["nodes"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap().to_string())
        .collect();
    let at = |action: &str| {
        actions
            .iter()
            .position(|a| a == action)
            .unwrap_or_else(|| panic!("no {action} in {actions:?}"))
    };
    let last = |action: &str| actions.iter().rposition(|a| a == action).unwrap();
    assert!(at("backup") < at("cordon"), "{actions:?}");
    assert!(at("drain") < at("pkg_install"), "{actions:?}");
    assert!(last("pkg_install") < at("restore_files"), "{actions:?}");
    assert!(at("restore_files") < at("wait_ready"), "{actions:?}");
    assert!(at("wait_ready") < at("uncordon"), "{actions:?}");

    for package in ["kubeadm", "kubelet", "kubectl"] {
        assert_eq!(
            m1.installed_version(package).as_deref(),
            Some("1.20.15-00"),
            "{package}"
        );
    }
    assert_eq!(m1.held(), ["kubeadm", "kubectl", "kubelet"], "holds lost");
    let after: Vec<Option<String>> = MANIFESTS.iter().map(|p| m1.read_file(p)).collect();
    assert_eq!(after, before, "the manifests are not as before the hop");
    assert_eq!(m1.read_file("/var/lib/kubelet/config.yaml"), kubelet_config);
    let (ready, unschedulable, version) = lab.cluster_node("m1");
    assert!(
        ready && !unschedulable,
        "m1 Ready {ready}, cordoned {unschedulable}"
    );
    assert_eq!(version, "v1.20.15");
    wait_for("the apiserver running again", || apiserver_pod(&lab).0);
    assert_eq!(lab.server_version(), "v1.20.15");
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
}
