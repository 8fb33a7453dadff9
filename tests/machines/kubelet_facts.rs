//! The kubelet stand-in's start-up checks, one test per row of kubeadm-facts.md §5 it
//! implements, run on the test machine (the service itself runs on booted machines in
//! `services.rs`).

use std::os::unix::net::UnixListener;

use super::{NodeRoot, text};
use crate::support::require;

const CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n";
const CONTAINERD: &str = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";

/// A worker's files with containerd listening on its socket (inside the node root).
fn node(containerd_config: &str) -> (NodeRoot, UnixListener) {
    let root = NodeRoot::new("http://127.0.0.1:1", false, "1.21.14");
    root.write("var/lib/kubelet/config.yaml", CONFIG);
    root.write("etc/containerd/config.toml", containerd_config);
    std::fs::create_dir_all(root.path("run/containerd")).unwrap();
    let listener = UnixListener::bind(root.path("run/containerd/containerd.sock")).expect("bind");
    (root, listener)
}

fn start(version: &str, root: &NodeRoot, flags: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
    ];
    args.extend(flags);
    std::process::Command::new("/usr/bin/python3")
        .arg(super::standins().join("kubelet.py"))
        .args(&args)
        .env("STANDIN_VERSION", version)
        .env("STANDIN_DATA_DIR", super::standins().join("versions"))
        .env("STANDIN_ROOT", root.dir.path())
        .env("STANDIN_CHECK_ONLY", "1")
        .output()
        .expect("python3 runs")
}

const ENDPOINT: &str = "--container-runtime-endpoint=unix:///run/containerd/containerd.sock";

#[test]
fn container_runtime_remote_is_an_unknown_flag_from_1_27() {
    if !require(&["/usr/bin/python3"], false) {
        return;
    }
    let (root, _listener) = node(CONTAINERD);
    let out = start("1.26.15", &root, &["--container-runtime=remote", ENDPOINT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = start("1.27.16", &root, &["--container-runtime=remote", ENDPOINT]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .contains("Error: failed to parse kubelet flag: unknown flag: --container-runtime"),
        "{}",
        text(&out)
    );
}

#[test]
fn network_plugin_is_an_unknown_flag_from_1_24() {
    if !require(&["/usr/bin/python3"], false) {
        return;
    }
    let (root, _listener) = node(CONTAINERD);
    let flags = [
        "--container-runtime=remote",
        ENDPOINT,
        "--network-plugin=cni",
    ];
    assert_eq!(start("1.23.17", &root, &flags).status.code(), Some(0));
    let out = start("1.24.17", &root, &flags);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("unknown flag: --network-plugin"),
        "{}",
        text(&out)
    );
}

#[test]
fn from_1_24_an_endpoint_is_required() {
    if !require(&["/usr/bin/python3"], false) {
        return;
    }
    let (root, _listener) = node(CONTAINERD);
    let out = start("1.24.17", &root, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("the container runtime endpoint address was not specified or empty"),
        "{}",
        text(&out)
    );
    let out = start("1.24.17", &root, &[ENDPOINT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_runtime_socket_nobody_listens_on_is_refused() {
    if !require(&["/usr/bin/python3"], false) {
        return;
    }
    let (root, listener) = node(CONTAINERD);
    drop(listener);
    let out = start("1.21.14", &root, &["--container-runtime=remote", ENDPOINT]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("validate service connection"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_cgroup_driver_other_than_the_runtimes_is_refused() {
    if !require(&["/usr/bin/python3"], false) {
        return;
    }
    let (root, _listener) = node("version = 2\n");
    let out = start("1.21.14", &root, &["--container-runtime=remote", ENDPOINT]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("kubelet cgroup driver: \\\"systemd\\\" is different from containerd cgroup driver: \\\"cgroupfs\\\""),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_config_file_is_refused() {
    if !require(&["/usr/bin/python3"], false) {
        return;
    }
    let (root, _listener) = node(CONTAINERD);
    std::fs::remove_file(root.path("var/lib/kubelet/config.yaml")).unwrap();
    let out = start("1.21.14", &root, &["--container-runtime=remote", ENDPOINT]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("failed to load Kubelet config file /var/lib/kubelet/config.yaml"),
        "{}",
        text(&out)
    );
}

/// dockershim (until 1.23): kubelet talks to dockerd and refuses a cgroup driver other than
/// Docker's, as kubelet 1.20 says it.
#[test]
fn dockershim_needs_docker_and_its_cgroup_driver() {
    if !require(&["/usr/bin/python3"], false) {
        return;
    }
    let root = NodeRoot::new("http://127.0.0.1:1", false, "1.20.15");
    root.write("var/lib/kubelet/config.yaml", CONFIG);
    let out = start("1.20.15", &root, &["--network-plugin=cni"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"),
        "{}",
        text(&out)
    );
    std::fs::create_dir_all(root.path("var/run")).unwrap();
    let _docker = UnixListener::bind(root.path("var/run/docker.sock")).expect("bind");
    let out = start("1.20.15", &root, &["--network-plugin=cni"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("kubelet cgroup driver: \\\"systemd\\\" is different from docker cgroup driver: \\\"cgroupfs\\\""),
        "{}",
        text(&out)
    );
    root.write(
        "etc/docker/daemon.json",
        "{\"exec-opts\": [\"native.cgroupdriver=systemd\"]}\n",
    );
    let out = start("1.20.15", &root, &["--network-plugin=cni"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
