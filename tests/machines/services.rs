//! The kubelet stand-in as a real systemd service on a booted machine: systemd builds its
//! command line from the unit, the kubeadm drop-in and the flag files; it refuses what its
//! version refuses and otherwise reports NotReady, then Ready, at its version.

use std::time::{Duration, Instant};

use super::TestCluster;
use crate::support::fleet::Os;
use crate::support::lab::{Runtime, kubelet_config};
use crate::support::machines::{Layout, MachineSpec, Machines};

fn ready_at(cluster: &TestCluster, node: &str) -> Option<(bool, String)> {
    let object = cluster.get(&format!("/api/v1/nodes/{node}"));
    let ready = object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let version = object
        .pointer("/status/nodeInfo/kubeletVersion")?
        .as_str()?
        .to_string();
    Some((ready, version))
}

#[test]
fn kubelet_1_27_exits_on_container_runtime_remote_and_reports_ready_without_it() {
    let cluster = TestCluster::start(1, 1, "1.26.15", &[]);
    let kubeconfig = krun::sim::kubeconfig(&cluster.server.url());
    let flags_126 = "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9\"\n";
    let containerd = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";
    let Some(machines) = Machines::builder()
        .machine(
            MachineSpec::new("w1", Os::Debian12)
                .pkgs_repository(Layout::AptPkgs, "1.27")
                .file("/etc/kubernetes/kubelet.conf", &kubeconfig, 0o600)
                .file(
                    "/var/lib/kubelet/config.yaml",
                    &kubelet_config(Runtime::Containerd),
                    0o644,
                )
                .file("/var/lib/kubelet/kubeadm-flags.env", flags_126, 0o644)
                .file("/etc/containerd/config.toml", containerd, 0o644),
        )
        .start()
    else {
        return;
    };
    let w1 = machines.machine("w1");
    w1.sh("systemctl enable --now containerd && apt-get update -q && apt-get install -y -q kubelet=1.27.16-1.1 kubeadm=1.27.16-1.1 && systemctl daemon-reload && systemctl enable kubelet && systemctl start kubelet");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w1
        .journal("kubelet")
        .contains("unknown flag: --container-runtime")
    {
        assert!(
            Instant::now() < deadline,
            "kubelet did not refuse the flag:\n{}",
            w1.journal("kubelet")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(w1.unit_state("kubelet"), "active");
    assert_eq!(
        ready_at(&cluster, "w1").map(|r| r.1).as_deref(),
        Some("v1.26.15")
    );

    // What kubeadm 1.26+ writes: no --container-runtime.
    w1.write_file(
        "/var/lib/kubelet/kubeadm-flags.env",
        &flags_126.replace("--container-runtime=remote ", ""),
    );
    w1.sh("systemctl restart kubelet");
    let mut seen_not_ready_at_new_version = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ready_at(&cluster, "w1") {
            Some((false, version)) if version == "v1.27.16" => seen_not_ready_at_new_version = true,
            Some((true, version)) if version == "v1.27.16" => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "w1 never Ready at v1.27.16:\n{}",
            w1.journal("kubelet")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen_not_ready_at_new_version,
        "no NotReady gap after the restart"
    );
    assert_eq!(w1.unit_state("kubelet"), "active");
}
