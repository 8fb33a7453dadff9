//! A kubeadm cluster to run playbooks against: real sshd nodes that look like kubeadm nodes, and
//! the in-process simulator serving the same cluster, wired together.
//!
//! Each fleet node is a node of the simulated cluster (same name, InternalIP 127.0.0.1). Its
//! files are a kubeadm node's (`/etc/kubernetes/{admin.conf,kubelet.conf,manifests/*.yaml}` on
//! control-plane nodes, `/var/lib/kubelet/{config.yaml,kubeadm-flags.env}` everywhere), its
//! packages are kubeadm/kubelet/kubectl at the cluster's version with newer ones in the repository,
//! and its shims report to the simulator: restarting kubelet after a package upgrade moves the
//! node's version in the API, `kubeadm upgrade apply` moves `/version` (see `shims.rs`). So a
//! playbook's `wait_ready(node, "5m", "1.21.14")` is a real check against what the node did.
//!
//! ```ignore
//! let Some(lab) = Lab::start(LabSpec::new()) else { return };  // m1..m3, w1..w3 at 1.20.15
//! lab.krun("playbooks/worker.rhai").args(["--node", "w1", "--set", "version=1.21.14"]).run().code(0);
//! assert_eq!(lab.cluster_node("w1").kubelet_version, "v1.21.14");
//! assert!(lab.pdb_violations().is_empty());
//! ```
//!
//! The simulator does not track PodDisruptionBudget violations itself, so the lab watches every
//! budget from the start and records each moment one has fewer healthy pods than it desires.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use krun::sim::{Cluster, GenOptions, Server, SimHandle, SimOptions};
use krun::ssh::{ExecOutput, ExecRequest, SshConfig, SshPool};
use serde_json::{Value, json};

use super::fleet::{Fleet, HOST, KeyKind, Node, NodeSpec, Os, client_key};
use super::require;

/// The container runtime the cluster's kubelets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// containerd 1.6 through its CRI socket, systemd cgroup driver.
    Containerd,
    /// Docker 20.10 through kubelet's dockershim, cgroupfs driver, containerd.io beside it with
    /// its CRI plugin disabled (as the package ships it), the runtime disk an LVM volume.
    Docker,
    /// CRI-O 1.20 (package `cri-o`, unit `crio`), systemd cgroup driver; containerd stopped.
    CriO,
}

/// What lab to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    masters: usize,
    workers: usize,
    version: String,
    runtime: Runtime,
    available: Vec<String>,
    pods: usize,
    seed: u64,
    blocking_budgets: bool,
    time_scale: f64,
    os: Os,
    sudo: bool,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl LabSpec {
    /// m1..m3 and w1..w3 on Debian 12, Kubernetes 1.20.15 on containerd, 1.21 and 1.22 in the
    /// package repository, about 60 pods, budgets that allow at least one disruption.
    pub fn new() -> Self {
        LabSpec {
            masters: 3,
            workers: 3,
            version: "1.20.15".into(),
            runtime: Runtime::Containerd,
            available: [
                "1.20.15", "1.21.0", "1.21.14", "1.22.0", "1.22.17", "1.23.17",
            ]
            .map(String::from)
            .to_vec(),
            pods: 60,
            seed: 6,
            blocking_budgets: false,
            time_scale: 100.0,
            os: Os::Debian12,
            sudo: false,
        }
    }

    pub fn masters(mut self, count: usize) -> Self {
        self.masters = count.max(1);
        self
    }

    pub fn workers(mut self, count: usize) -> Self {
        self.workers = count;
        self
    }

    /// The version every node and the control plane run (`1.20.15`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.trim_start_matches('v').to_string();
        self
    }

    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    /// Versions of kubeadm/kubelet/kubectl the nodes' repository offers (upstream, `1.21.14`).
    pub fn available(mut self, versions: &[&str]) -> Self {
        self.available = versions.iter().map(|v| v.to_string()).collect();
        self
    }

    /// Roughly how many pods the cluster runs.
    pub fn pods(mut self, pods: usize) -> Self {
        self.pods = pods;
        self
    }

    /// Keep the generated budgets that allow no disruption at all (drains then block).
    pub fn blocking_budgets(mut self) -> Self {
        self.blocking_budgets = true;
        self
    }

    /// Cluster seconds per real second (default 100: a 30 s grace period takes 0.3 s).
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }

    pub fn os(mut self, os: Os) -> Self {
        self.os = os;
        self
    }

    /// krun logs in as the unprivileged `krun-tester` and uses sudo (default: root).
    pub fn sudo_user(mut self) -> Self {
        self.sudo = true;
        self
    }

    fn master_names(&self) -> Vec<String> {
        (1..=self.masters).map(|i| format!("m{i}")).collect()
    }

    fn worker_names(&self) -> Vec<String> {
        (1..=self.workers).map(|i| format!("w{i}")).collect()
    }
}

/// A node as the simulated API sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub ready: bool,
    pub unschedulable: bool,
    pub kubelet_version: String,
    pub runtime_version: String,
}

/// A running lab. Dropping it stops the nodes and the simulator.
pub struct Lab {
    pub fleet: Fleet,
    server: Option<Server>,
    runtime: Option<tokio::runtime::Runtime>,
    spec: LabSpec,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    inventory: PathBuf,
    violations: Arc<Mutex<Vec<String>>>,
    /// Budgets already short of healthy pods when the lab started.
    baseline: BTreeSet<String>,
    pool: SshPool,
}

impl Lab {
    /// Starts the simulator and the nodes; `None` (after saying why) when sshd or kubectl are
    /// missing outside CI.
    pub fn start(spec: LabSpec) -> Option<Lab> {
        if !require(&["curl", "kubectl"], true) {
            return None;
        }
        let masters = spec.master_names();
        let workers = spec.worker_names();
        let mut builder = Fleet::builder();
        for name in masters.iter().chain(&workers) {
            builder = builder.node(node_spec(&spec, name));
        }
        let fleet = builder.start()?;

        let cluster_yaml = cluster_yaml(&spec);
        let cluster = Cluster::load(&cluster_yaml).expect("the lab's cluster loads");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the simulator");
        let options = SimOptions {
            time_scale: spec.time_scale,
            startup_delay: Duration::from_secs(10),
            bookmark_interval: Duration::from_millis(500),
            ..SimOptions::default()
        };
        let server =
            block_on(&runtime, Server::start(cluster, options)).expect("the simulator starts");

        let dir = tempfile::tempdir().expect("a directory for the lab");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("write the kubeconfig");
        let inventory = dir.path().join("inventory.toml");
        let sudo_user = if spec.sudo {
            Some(super::sudo_user()?)
        } else {
            None
        };
        std::fs::write(&inventory, inventory_toml(&fleet, &masters, sudo_user))
            .expect("write the inventory");

        let cluster_dir = fleet.dir().join("cluster");
        std::fs::create_dir_all(&cluster_dir).expect("create the fleet's cluster directory");
        std::fs::write(
            cluster_dir.join("kubelet-config.yaml"),
            kubelet_config(spec.runtime),
        )
        .expect("write the cluster's kubelet configuration");
        std::fs::write(cluster_dir.join("version"), format!("v{}\n", spec.version))
            .expect("write the cluster version");
        for node in fleet.nodes() {
            let master = masters.contains(&node.name);
            kubeadm_node_files(node, &spec, master, &server.url());
            std::fs::write(node.dir().join("sim-url"), server.url()).expect("write sim-url");
        }

        let baseline = violated_budgets(&server.handle().snapshot())
            .into_iter()
            .map(|(key, _, _)| key)
            .collect();
        let violations = Arc::new(Mutex::new(Vec::new()));
        let watching = watch_budgets(&runtime, &server, violations.clone());
        block_on(&runtime, watching);

        Some(Lab {
            fleet,
            server: Some(server),
            runtime: Some(runtime),
            spec,
            dir,
            kubeconfig,
            inventory,
            violations,
            baseline,
            pool: SshPool::with_agent(
                SshConfig {
                    connect_timeout: Duration::from_secs(10),
                    accept_new_host_keys: false,
                },
                None,
            ),
        })
    }

    pub fn node(&self, name: &str) -> &Node {
        self.fleet.node(name)
    }

    pub fn masters(&self) -> Vec<String> {
        self.spec.master_names()
    }

    pub fn workers(&self) -> Vec<String> {
        self.spec.worker_names()
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the simulator runs")
    }

    /// Drives the simulator from the inside (faults, clock, objects).
    pub fn handle(&self) -> SimHandle {
        self.server().handle()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server().url()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// krun's inventory: every node with its ssh endpoint and roles (`control-plane`, `etcd`
    /// on masters; `worker`).
    pub fn inventory(&self) -> &Path {
        &self.inventory
    }

    /// A scratch directory that lives as long as the lab.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `krun PLAYBOOK --inventory … --kubeconfig …`; add `--node`, `--set`, … and `.run()`.
    pub fn krun(&self, playbook: impl AsRef<std::ffi::OsStr>) -> crate::cli::Krun {
        crate::cli::Krun::new().args([playbook.as_ref()]).args([
            "--inventory".as_ref(),
            self.inventory.as_os_str(),
            "--kubeconfig".as_ref(),
            self.kubeconfig.as_os_str(),
        ])
    }

    /// A node as the API shows it; panics when the cluster has no such node.
    pub fn cluster_node(&self, name: &str) -> ClusterNode {
        let node = self
            .handle()
            .object("v1", "Node", "", name)
            .unwrap_or_else(|| panic!("the cluster has no node {name}"));
        let ready = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let text = |pointer: &str| {
            node.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ClusterNode {
            ready,
            unschedulable: node
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            kubelet_version: text("/status/nodeInfo/kubeletVersion"),
            runtime_version: text("/status/nodeInfo/containerRuntimeVersion"),
        }
    }

    /// The image of a control-plane static pod, e.g. `("m1", "kube-apiserver")`.
    pub fn static_pod_image(&self, node: &str, component: &str) -> Option<String> {
        let pod =
            self.handle()
                .object("v1", "Pod", "kube-system", &format!("{component}-{node}"))?;
        pod.pointer("/spec/containers/0/image")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// `gitVersion` of the API server's `/version`.
    pub fn server_version(&self) -> String {
        let body = http_get(&self.server().address(), "/version");
        let version: Value = serde_json::from_str(&body).expect("/version is JSON");
        version["gitVersion"]
            .as_str()
            .expect("/version has gitVersion")
            .to_string()
    }

    /// Real kubectl (the one on PATH) against the simulator; panics unless it exits 0.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .output()
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a shell command on a node over ssh, as root.
    pub fn exec(&self, node: &str, command: &str) -> ExecOutput {
        let endpoint = self.node(node).endpoint();
        let runtime = self.runtime.as_ref().expect("the lab's runtime");
        let pool = &self.pool;
        block_on(runtime, async {
            pool.exec(&endpoint, ExecRequest::new(command)).await
        })
        .unwrap_or_else(|e| panic!("`{command}` on {node}: {e}"))
    }

    /// Runs a command on a node and returns its stdout; panics unless it exits 0.
    #[track_caller]
    pub fn sh(&self, node: &str, command: &str) -> String {
        let output = self.exec(node, command);
        assert!(
            output.success(),
            "`{command}` on {node} exited {:?}:\n{}{}",
            output.exit_code,
            output.stdout_lossy(),
            output.stderr_lossy()
        );
        output.stdout_lossy()
    }

    /// Every moment a PodDisruptionBudget had fewer healthy pods than it desires, since the
    /// lab started (`namespace/name: 1 healthy < 2 desired`), and any such budget right now
    /// (the watch may not have delivered the latest change yet).
    pub fn pdb_violations(&self) -> Vec<String> {
        let mut found = self
            .violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (key, healthy, desired) in violated_budgets(&self.handle().snapshot()) {
            if !self.baseline.contains(&key) {
                found.push(format!(
                    "{key}: {healthy} healthy < {desired} desired (now)"
                ));
            }
        }
        found
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `future` to completion on `runtime`, from any thread (also from inside another runtime).
pub(crate) fn block_on<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .expect("the lab's runtime thread")
    })
}

/// Starts watching every budget and returns once the initial list is in.
pub(crate) fn watch_budgets(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    violations: Arc<Mutex<Vec<String>>>,
) -> impl std::future::Future<Output = ()> + Send + use<> {
    use futures::StreamExt;
    use kube::runtime::watcher;

    let config = server.kube_config();
    let (listed, wait) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(async move {
        // Through the policy version the lab's cluster serves (policy/v1beta1 on 1.20).
        let kube = krun::kube::Kube::from_config(config, "the lab".into())
            .expect("a client for the simulator");
        let api = kube.pdb_api(None).await;
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        let mut listed = Some(listed);
        let mut already = BTreeSet::new();
        while let Some(event) = stream.next().await {
            let (pdb, initial) = match event {
                Ok(watcher::Event::InitApply(pdb)) => (pdb, listed.is_some()),
                Ok(watcher::Event::Apply(pdb)) => (pdb, false),
                Ok(watcher::Event::InitDone) => {
                    if let Some(done) = listed.take() {
                        let _ = done.send(());
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(status) = pdb.status.as_ref() else {
                continue;
            };
            let key = format!(
                "{}/{}",
                pdb.metadata.namespace.as_deref().unwrap_or_default(),
                pdb.metadata.name.as_deref().unwrap_or_default()
            );
            if status.current_healthy < status.desired_healthy {
                if initial {
                    already.insert(key);
                } else if !already.contains(&key) {
                    violations
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!(
                            "{key}: {} healthy < {} desired",
                            status.current_healthy, status.desired_healthy
                        ));
                }
            } else {
                already.remove(&key);
            }
        }
    });
    async move {
        let _ = wait.await;
    }
}

/// Budgets with fewer healthy pods than desired in a snapshot: `(namespace/name, healthy, desired)`.
pub(crate) fn violated_budgets(list: &Value) -> Vec<(String, i64, i64)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["kind"] == "PodDisruptionBudget")
        .filter_map(|pdb| {
            let healthy = pdb.pointer("/status/currentHealthy")?.as_i64()?;
            let desired = pdb.pointer("/status/desiredHealthy")?.as_i64()?;
            let key = format!(
                "{}/{}",
                pdb["metadata"]["namespace"].as_str()?,
                pdb["metadata"]["name"].as_str()?
            );
            (healthy < desired).then_some((key, healthy, desired))
        })
        .collect()
}

fn http_get(address: &std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the simulator");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    body.to_string()
}

fn node_spec(spec: &LabSpec, name: &str) -> NodeSpec {
    let os = spec.os;
    let versions: Vec<String> = spec
        .available
        .iter()
        .map(|v| os.package_version(v))
        .collect();
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
    let installed = os.package_version(&spec.version);
    let mut node = NodeSpec::new(name, os);
    for package in ["kubelet", "kubeadm", "kubectl"] {
        node = node
            .available(package, &versions)
            .package(package, &installed);
    }
    let master = name.starts_with('m');
    let mut containers = vec!["kube-proxy", "calico-node", "node-exporter"];
    if master {
        containers.extend([
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ]);
    }
    let node = node.disk("/dev/vdb");
    match spec.runtime {
        Runtime::Containerd => node.containers("containerd", &containers),
        Runtime::CriO => {
            let versions = [os.package_version("1.20.9"), os.package_version("1.21.7")];
            node.available("cri-o", &[&versions[0], &versions[1]])
                .package("cri-o", &versions[0])
                .unit("crio", true, true)
                .unit("containerd", false, false)
                .containers("crio", &containers)
        }
        Runtime::Docker => {
            let docker = os.package_version("20.10.24");
            node.available("docker-ce", &[&docker])
                .package("docker-ce", &docker)
                .unit("docker", true, true)
                .containers("docker", &containers)
        }
    }
}

fn inventory_toml(fleet: &Fleet, masters: &[String], sudo_user: Option<&str>) -> String {
    let login = match sudo_user {
        Some(user) => format!("user = \"{user}\"\nsudo = true\n"),
        None => "user = \"root\"\n".to_string(),
    };
    let mut text = format!(
        "[ssh]\n{login}identity = {:?}\nknown_hosts = {:?}\n",
        client_key(KeyKind::Ed25519).display().to_string(),
        fleet.known_hosts().display().to_string()
    );
    for node in fleet.nodes() {
        let roles = if masters.contains(&node.name) {
            r#"["control-plane", "etcd"]"#
        } else {
            r#"["worker"]"#
        };
        text.push_str(&format!(
            "\n[nodes.{}]\nhost = \"{HOST}\"\nport = {}\nroles = {roles}\n",
            node.name,
            node.port()
        ));
    }
    text
}

/// What kubeadm 1.20 writes to /var/lib/kubelet/config.yaml (and keeps in the cluster's
/// kubelet-config ConfigMap, which `kubeadm upgrade node` writes back to every node).
pub fn kubelet_config(runtime: Runtime) -> String {
    let driver = match runtime {
        Runtime::Containerd | Runtime::CriO => "systemd",
        Runtime::Docker => "cgroupfs",
    };
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: {driver}
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging: {{}}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
"
    )
}

/// kubelet's flags as kubeadm 1.20 writes them for the runtime.
pub fn kubeadm_flags(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Docker => {
            "KUBELET_KUBEADM_ARGS=\"--network-plugin=cni --pod-infra-container-image=k8s.gcr.io/pause:3.2\"\n"
        }
        Runtime::Containerd => {
            "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=k8s.gcr.io/pause:3.2\"\n"
        }
        Runtime::CriO => {
            "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///var/run/crio/crio.sock --pod-infra-container-image=k8s.gcr.io/pause:3.2\"\n"
        }
    }
}

pub(crate) fn kubeconfig(server: &str, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: {server}
contexts:
- name: {user}@kubernetes
  context:
    cluster: kubernetes
    user: {user}
current-context: {user}@kubernetes
users:
- name: {user}
  user: {{}}
"
    )
}

pub(crate) fn static_pod_manifest(component: &str, image: &str, command: &[&str]) -> String {
    let command: String = std::iter::once(component)
        .chain(command.iter().copied())
        .map(|arg| format!("    - {arg}\n"))
        .collect();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    component: {component}
    tier: control-plane
  name: {component}
  namespace: kube-system
spec:
  containers:
  - command:
{command}    image: {image}
    imagePullPolicy: IfNotPresent
    name: {component}
    resources:
      requests:
        cpu: 250m
  hostNetwork: true
  priorityClassName: system-node-critical
status: {{}}
"
    )
}

/// Writes the files kubeadm leaves on a node.
/// A CA certificate as kubeadm makes one (ten years), so certificate checks find a real one.
pub(crate) fn cluster_ca() -> &'static str {
    static CA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let output = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3650",
                "-subj",
                "/CN=kubernetes",
            ])
            .output()
            .expect("openssl (Debian package openssl) runs");
        assert!(
            output.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read_to_string(dir.path().join("ca.crt")).expect("the CA certificate")
    })
}

fn kubeadm_node_files(node: &Node, spec: &LabSpec, master: bool, url: &str) {
    let version = &spec.version;
    node.write_file(
        "/var/lib/kubelet/config.yaml",
        &kubelet_config(spec.runtime),
    );
    node.write_file(
        "/var/lib/kubelet/kubeadm-flags.env",
        kubeadm_flags(spec.runtime),
    );
    node.write_file(
        "/etc/kubernetes/kubelet.conf",
        &kubeconfig(url, &format!("system:node:{}", node.name)),
    );
    node.write_file("/etc/kubernetes/pki/ca.crt", cluster_ca());
    let containerd_config = match spec.runtime {
        // What the containerd.io package ships beside Docker.
        Runtime::Docker | Runtime::CriO => "disabled_plugins = [\"cri\"]\n".to_string(),
        Runtime::Containerd => "version = 2\n\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"k8s.gcr.io/pause:3.2\"\n\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n"
            .to_string(),
    };
    node.write_file("/etc/containerd/config.toml", &containerd_config);
    if spec.runtime == Runtime::CriO {
        node.write_file(
            "/etc/crio/crio.conf",
            "[crio.runtime]\ncgroup_manager = \"systemd\"\n\n[crio.image]\npause_image = \"k8s.gcr.io/pause:3.2\"\n",
        );
    }
    if spec.runtime == Runtime::Docker {
        // The runtime disk holds Docker's devicemapper volume group.
        std::fs::write(
            node.state_dir().join("disks/vdb"),
            "LVM2_member 3f1c9a0e-5b7d-4c1e-9a59-2d0c6e1b7a44\n",
        )
        .expect("seed the runtime disk");
        node.write_file(
            "/etc/docker/daemon.json",
            "{\n  \"storage-driver\": \"devicemapper\"\n}\n",
        );
    }
    if !master {
        return;
    }
    node.write_file(
        "/etc/kubernetes/admin.conf",
        &kubeconfig(url, "kubernetes-admin"),
    );
    for component in ["controller-manager", "scheduler"] {
        node.write_file(
            &format!("/etc/kubernetes/{component}.conf"),
            &kubeconfig(url, &format!("system:kube-{component}")),
        );
    }
    let manifests = [
        (
            "etcd",
            "k8s.gcr.io/etcd:3.4.13-0".to_string(),
            vec![
                "--data-dir=/var/lib/etcd",
                "--listen-client-urls=https://127.0.0.1:2379",
            ],
        ),
        (
            "kube-apiserver",
            format!("k8s.gcr.io/kube-apiserver:v{version}"),
            vec![
                "--advertise-address=127.0.0.1",
                "--authorization-mode=Node,RBAC",
                "--etcd-servers=https://127.0.0.1:2379",
            ],
        ),
        (
            "kube-controller-manager",
            format!("k8s.gcr.io/kube-controller-manager:v{version}"),
            vec!["--kubeconfig=/etc/kubernetes/controller-manager.conf"],
        ),
        (
            "kube-scheduler",
            format!("k8s.gcr.io/kube-scheduler:v{version}"),
            vec!["--kubeconfig=/etc/kubernetes/scheduler.conf"],
        ),
    ];
    for (component, image, command) in manifests {
        node.write_file(
            &format!("/etc/kubernetes/manifests/{component}.yaml"),
            &static_pod_manifest(component, &image, &command),
        );
    }
}

/// The cluster the simulator serves: `krun sim gen` output reshaped into the lab's kubeadm 1.20
/// cluster, its nodes named and addressed like the fleet's.
fn cluster_yaml(spec: &LabSpec) -> String {
    let options = GenOptions {
        nodes: spec.masters + spec.workers,
        pods: spec.pods,
        seed: spec.seed,
        control_planes: spec.masters,
        zones: 3,
        version: format!("v{}", spec.version),
    };
    let list = kubeadm_cluster(
        &options,
        spec.runtime,
        spec.blocking_budgets,
        &|master, index| {
            let name = if master {
                format!("m{index}")
            } else {
                format!("w{index}")
            };
            (name, HOST.to_string())
        },
    );
    serde_yaml_ng::to_string(&list).expect("the lab's cluster serializes")
}

/// A generated cluster (`krun sim gen` with `options`) reshaped into a kubeadm 1.20 cluster:
/// nodes renamed and readdressed by `node(control_plane, index from 1) -> (name, ip)`, the
/// runtime's version and CRI socket, kubeadm 1.20's images (k8s.gcr.io, etcd 3.4.13, CoreDNS
/// 1.7.0), the `master` role label and taint. Budgets that allow no disruption are dropped unless
/// `blocking_budgets`. Returns the `List`.
pub fn kubeadm_cluster(
    options: &GenOptions,
    runtime: Runtime,
    blocking_budgets: bool,
    node: &dyn Fn(bool, usize) -> (String, String),
) -> Value {
    let generated = krun::sim::generate(options);
    let mut list: Value = serde_yaml_ng::from_str(&generated).expect("generated YAML parses");
    let items = list["items"].as_array_mut().expect("a List");

    let mut replacements: Vec<(String, String)> = Vec::new();
    let mut addresses: Vec<(String, String)> = Vec::new();
    let (mut masters, mut workers) = (0, 0);
    for item in items.iter().filter(|i| i["kind"] == "Node") {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let control_plane = item["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_some();
        let index = if control_plane {
            masters += 1;
            masters
        } else {
            workers += 1;
            workers
        };
        let (new_name, new_ip) = node(control_plane, index);
        replacements.push((name.to_string(), new_name));
        if let Some(ip) = item
            .pointer("/status/addresses/0/address")
            .and_then(Value::as_str)
        {
            addresses.push((ip.to_string(), new_ip));
        }
    }
    replacements.extend([
        (
            "registry.k8s.io/etcd:3.5.12-0".into(),
            "k8s.gcr.io/etcd:3.4.13-0".into(),
        ),
        (
            "registry.k8s.io/coredns/coredns:v1.10.1".into(),
            "k8s.gcr.io/coredns:1.7.0".into(),
        ),
        ("registry.k8s.io/".into(), "k8s.gcr.io/".into()),
    ]);
    let (runtime_version, socket) = match runtime {
        Runtime::Containerd => (
            "containerd://1.6.20",
            "unix:///run/containerd/containerd.sock",
        ),
        Runtime::Docker => ("docker://20.10.24", "/var/run/dockershim.sock"),
        Runtime::CriO => ("cri-o://1.20.9", "unix:///var/run/crio/crio.sock"),
    };
    if runtime == Runtime::Docker {
        replacements.push(("containerd://".into(), "docker://".into()));
    }

    items.retain(|item| {
        blocking_budgets
            || item["kind"] != "PodDisruptionBudget"
            || item
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                != Some(0)
    });
    for item in items.iter_mut() {
        rewrite_strings(item, &|text: &str| {
            if let Some((_, ip)) = addresses.iter().find(|(old, _)| old == text) {
                return ip.clone();
            }
            let mut text = text.to_string();
            for (from, to) in &replacements {
                if text.contains(from.as_str()) {
                    text = text.replace(from.as_str(), to);
                }
            }
            text
        });
        if item["kind"] != "Node" {
            continue;
        }
        let info = &mut item["status"]["nodeInfo"];
        info["containerRuntimeVersion"] = json!(runtime_version);
        info["osImage"] = json!("Debian GNU/Linux 12 (bookworm)");
        info["kernelVersion"] = json!("6.1.0-18-amd64");
        item["metadata"]["annotations"]["kubeadm.alpha.kubernetes.io/cri-socket"] = json!(socket);
        let labels = &mut item["metadata"]["labels"];
        if labels
            .get("node-role.kubernetes.io/control-plane")
            .is_some()
        {
            labels["node-role.kubernetes.io/master"] = json!("");
            if let Some(taints) = item
                .pointer_mut("/spec/taints")
                .and_then(Value::as_array_mut)
            {
                for taint in taints {
                    taint["key"] = json!("node-role.kubernetes.io/master");
                }
            }
        }
    }
    list
}

fn rewrite_strings(value: &mut Value, rewrite: &dyn Fn(&str) -> String) {
    match value {
        Value::String(text) => *text = rewrite(text),
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_strings(v, rewrite)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_strings(v, rewrite)),
        _ => {}
    }
}

/// The bundled lab's cluster snapshot, as `examples/lab/cluster.yaml` holds it: the output of
/// `krun sim gen --nodes 9 --control-planes 3 --pods 120 --seed 3 --version v1.20.15`, reshaped
/// into a kubeadm 1.20 cluster on Docker ([`kubeadm_cluster`]), then edited to set the traps of
/// the field reports (each edit below; see `examples/lab/README.md`).
pub fn bundled_lab_cluster() -> String {
    let options = GenOptions {
        nodes: 9,
        pods: 120,
        seed: 3,
        control_planes: 3,
        zones: 3,
        version: "v1.20.15".into(),
    };
    let mut list = kubeadm_cluster(&options, Runtime::Docker, true, &|master, index| {
        if master {
            (format!("master-{index}"), format!("192.0.2.{}", 10 + index))
        } else {
            (format!("worker-{index}"), format!("192.0.2.{}", 20 + index))
        }
    });
    let items = list["items"].as_array_mut().expect("a List");

    // Two Ingress nodes, not three: worker-3 loses the role, its controller pod moves to worker-2.
    for node in items
        .iter_mut()
        .filter(|i| i["kind"] == "Node" && i["metadata"]["name"] == "worker-3")
    {
        if let Some(labels) = node["metadata"]["labels"].as_object_mut() {
            labels.remove("node-role.kubernetes.io/ingress");
        }
    }
    move_pods(
        items,
        "ingress-nginx",
        "ingress-nginx-controller",
        "worker-3",
        "worker-2",
    );
    // Every replica of team-payments/payments-api-0 (no budget) on worker-4 and worker-5.
    move_pods(
        items,
        "team-payments",
        "payments-api-0",
        "worker-3",
        "worker-4",
    );
    // Prometheus without a budget, like the Ingress controller.
    items.retain(|i| {
        !(i["kind"] == "PodDisruptionBudget" && i["metadata"]["name"] == "prometheus-k8s")
    });
    // One budget that allows no disruption at all (worker-3 and worker-4 cannot be drained
    // while it holds); the generated ones that covered every worker now allow one.
    set_budget(
        items,
        "team-checkout",
        "checkout-cache-0",
        ("maxUnavailable", json!(0)),
        2,
        0,
    );
    set_budget(
        items,
        "team-payments",
        "payments-consumer-0",
        ("minAvailable", json!("90%")),
        9,
        1,
    );
    set_budget(
        items,
        "team-checkout",
        "checkout-consumer-0",
        ("maxUnavailable", json!(1)),
        9,
        1,
    );
    serde_yaml_ng::to_string(&list).expect("the bundled cluster serializes")
}

/// Moves the pods of `app` in `namespace` from one node to another (node name, host IP, a pod
/// IP in the new node's range).
fn move_pods(items: &mut [Value], namespace: &str, app: &str, from: &str, to: &str) {
    let node = items
        .iter()
        .find(|i| i["kind"] == "Node" && i["metadata"]["name"] == to)
        .expect("the target node exists");
    let host_ip = node["status"]["addresses"][0]["address"].clone();
    let cidr = node["spec"]["podCIDR"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let prefix = cidr
        .rsplit_once('.')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    let mut moved = 0;
    for pod in items.iter_mut().filter(|i| {
        i["kind"] == "Pod"
            && i["metadata"]["namespace"] == namespace
            && i["metadata"]["labels"]["app.kubernetes.io/name"] == app
            && i["spec"]["nodeName"] == from
    }) {
        pod["spec"]["nodeName"] = json!(to);
        pod["status"]["hostIP"] = host_ip.clone();
        pod["status"]["hostIPs"] = json!([{"ip": host_ip}]);
        let ip = format!("{prefix}.{}", 200 + moved);
        pod["status"]["podIP"] = json!(ip);
        pod["status"]["podIPs"] = json!([{"ip": ip}]);
        moved += 1;
    }
    assert!(moved > 0, "no pod of {namespace}/{app} on {from}");
}

/// Rewrites a budget's rule and the status the disruption controller would compute for it
/// (every selected pod healthy).
fn set_budget(
    items: &mut [Value],
    namespace: &str,
    name: &str,
    rule: (&str, Value),
    desired: i64,
    allowed: i64,
) {
    let pdb = items
        .iter_mut()
        .find(|i| {
            i["kind"] == "PodDisruptionBudget"
                && i["metadata"]["namespace"] == namespace
                && i["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no budget {namespace}/{name}"));
    let spec = pdb["spec"].as_object_mut().expect("a spec");
    spec.remove("minAvailable");
    spec.remove("maxUnavailable");
    spec.insert(rule.0.to_string(), rule.1);
    let status = &mut pdb["status"];
    status["desiredHealthy"] = json!(desired);
    status["disruptionsAllowed"] = json!(allowed);
    let (state, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    status["conditions"][0]["status"] = json!(state);
    status["conditions"][0]["reason"] = json!(reason);
}
