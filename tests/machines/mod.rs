//! Real test machines and the stand-ins they run: the kubeadm and kubelet stand-ins row by row
//! against `kubeadm-facts.md` (on the test machine, against the simulator), and booted machines
//! with real systemd and real package managers installing them from local repositories.

mod faults;
mod join_facts;
mod kubeadm_facts;
mod kubelet_facts;
mod order;
mod packages;
mod registry;
mod services;
mod sop;
mod undo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use krun::sim::{Cluster, GenOptions, Server, SimOptions};
use serde_json::Value;

use crate::support::lab::{Runtime, kubeadm_cluster, kubelet_config};
use crate::support::machines::cluster::{add_kubeadm_config_maps, set_kubelet_versions};

fn standins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins")
}

/// A simulated kubeadm cluster: control planes m1.., workers w1.., the control plane at
/// `version`, kubelets at theirs (default `version`), kubeadm's ConfigMaps in kube-system.
pub struct TestCluster {
    pub server: Server,
    /// Runs the simulator; dropped after it.
    _runtime: tokio::runtime::Runtime,
}

impl TestCluster {
    pub fn start(masters: usize, workers: usize, version: &str, kubelets: &[(&str, &str)]) -> Self {
        Self::start_with(masters, workers, version, kubelets, true)
    }

    /// As [`TestCluster::start`]; without kubeadm's ConfigMaps unless `kubeadm_config`.
    pub fn start_with(
        masters: usize,
        workers: usize,
        version: &str,
        kubelets: &[(&str, &str)],
        kubeadm_config: bool,
    ) -> Self {
        let options = GenOptions {
            nodes: masters + workers,
            pods: 10,
            seed: 4,
            control_planes: masters,
            zones: 1,
            version: format!("v{version}"),
        };
        let mut list: Value =
            kubeadm_cluster(&options, Runtime::Containerd, false, &|master, index| {
                let name = if master {
                    format!("m{index}")
                } else {
                    format!("w{index}")
                };
                (name, "127.0.0.1".to_string())
            });
        let repository = if minor(version) <= 24 {
            "k8s.gcr.io"
        } else {
            "registry.k8s.io"
        };
        if kubeadm_config {
            add_kubeadm_config_maps(
                &mut list,
                version,
                repository,
                &kubelet_config(Runtime::Containerd),
            );
        }
        set_kubelet_versions(&mut list, kubelets);
        let yaml = serde_yaml_ng::to_string(&list).expect("the cluster serializes");
        let cluster = Cluster::load(&yaml).expect("the cluster loads");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let server = runtime
            .block_on(Server::start(cluster, SimOptions::default()))
            .expect("the simulator starts");
        if kubeadm_config {
            crate::support::machines::cluster::publish_cluster_info(
                &server.url(),
                crate::support::lab::cluster_ca(),
            );
        }
        TestCluster {
            server,
            _runtime: runtime,
        }
    }

    pub fn version(&self) -> String {
        let body = self.get("/version");
        body["gitVersion"].as_str().unwrap_or_default().to_string()
    }

    pub fn get(&self, path: &str) -> Value {
        let output = Command::new("curl")
            .args(["-sS", "-f"])
            .arg(format!("{}{path}", self.server.url()))
            .output()
            .expect("curl runs");
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }
}

pub fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("a version")
}

/// A node's filesystem for a stand-in run on the test machine: kubeadm's kubeconfigs pointing
/// at `server`, and on a control plane, static pod manifests at `version`.
pub struct NodeRoot {
    pub dir: tempfile::TempDir,
}

impl NodeRoot {
    pub fn new(server: &str, control_plane: bool, version: &str) -> Self {
        let dir = tempfile::tempdir().expect("a node root");
        let root = NodeRoot { dir };
        let kubeconfig = krun::sim::kubeconfig(server);
        root.write("etc/kubernetes/kubelet.conf", &kubeconfig);
        if control_plane {
            root.write(
                "etc/kubernetes/admin.conf",
                &crate::support::machines::cluster::kubeconfig_with_ca(
                    server,
                    "kubernetes-admin",
                    crate::support::lab::cluster_ca(),
                ),
            );
            let repository = if minor(version) <= 24 {
                "k8s.gcr.io"
            } else {
                "registry.k8s.io"
            };
            for component in [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
            ] {
                root.write(
                    &format!("etc/kubernetes/manifests/{component}.yaml"),
                    &format!(
                        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {component}\n  namespace: kube-system\nspec:\n  containers:\n  - name: {component}\n    image: {repository}/{component}:v{version}\n"
                    ),
                );
            }
        }
        root
    }

    pub fn path(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    pub fn write(&self, inside: &str, content: &str) {
        let path = self.path(inside);
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    pub fn read(&self, inside: &str) -> Option<String> {
        std::fs::read_to_string(self.path(inside)).ok()
    }

    /// Entries of a directory in the node (empty when absent).
    pub fn list(&self, inside: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(inside))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Runs a stand-in tool (`kubeadm`, `kubelet`) of `version` on the test machine, on `root`, as
/// node `node`, with the units in `active` running.
pub fn standin(
    tool: &str,
    version: &str,
    root: &NodeRoot,
    node: &str,
    active: &str,
    args: &[&str],
) -> Output {
    Command::new("/usr/bin/python3")
        .arg(standins().join(format!("{tool}.py")))
        .args(args)
        .env("STANDIN_VERSION", version)
        .env("STANDIN_DATA_DIR", standins().join("versions"))
        .env("STANDIN_ROOT", root.dir.path())
        .env("STANDIN_NODE_NAME", node)
        .env("STANDIN_ACTIVE_UNITS", active)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3 runs the stand-in")
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
