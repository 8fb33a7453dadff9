//! A kubeadm cluster on booted machines: the simulator serves its API, and every node is a
//! machine (`mod.rs`) with kubeadm's files, containerd running, and kubeadm/kubelet/kubectl
//! installed from the distribution's repository with its real package manager and held, kubelet
//! a running systemd service that reported its node Ready. The successor of `lab.rs` for the
//! end-to-end matrix: what a playbook meets here is what a real node does.
//!
//! ```ignore
//! let Some(lab) = MachineLab::start(MachineLabSpec::new(Os::Debian12, Layout::AptLegacy, "1.20.15")) else { return };
//! lab.krun("playbooks/worker.rhai").args(["--node", "w1", "--set", "version=1.21"]).run().code(0);
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use krun::sim::{Cluster, GenOptions, Server, SimHandle, SimOptions};
use serde_json::Value;

use super::cluster::add_kubeadm_config_maps;
use super::history::History;
use super::{Layout, Machine, MachineSpec, Machines};
use crate::support::fleet::{HOST, Os};
use crate::support::lab::{
    Runtime, block_on, cluster_ca, kubeadm_cluster, kubeadm_flags, kubeconfig, kubelet_config,
    static_pod_manifest, violated_budgets, watch_budgets,
};

/// What cluster to build.
#[derive(Debug, Clone)]
pub struct MachineLabSpec {
    pub os: Os,
    pub layout: Layout,
    pub version: String,
    pub masters: usize,
    pub workers: usize,
    pub pods: usize,
    pub time_scale: f64,
    pub runtime: Runtime,
    images: Vec<(String, String)>,
    pxe: bool,
}

impl MachineLabSpec {
    /// m1 and w1 at `version` on containerd, about 20 pods.
    pub fn new(os: Os, layout: Layout, version: &str) -> Self {
        MachineLabSpec {
            os,
            layout,
            version: version.to_string(),
            masters: 1,
            workers: 1,
            pods: 20,
            time_scale: 100.0,
            runtime: Runtime::Containerd,
            images: Vec::new(),
            pxe: false,
        }
    }

    /// m1 is also the team's PXE host: `/usr/local/sbin/reinstall NODE` on it asks for NODE to
    /// be reinstalled and returns once it is back (served by [`MachineLab::serve_reinstalls`]).
    pub fn pxe(mut self) -> Self {
        self.pxe = true;
        self
    }

    /// Every container of every pod on `node` runs `image` (e.g. one in a test registry).
    pub fn pod_images(mut self, node: &str, image: &str) -> Self {
        self.images.push((node.to_string(), image.to_string()));
        self
    }

    /// The nodes' runtime: containerd (default), Docker 20.10 through kubelet's dockershim
    /// (Debian's docker.io), or CRI-O (Arch's `cri-o` package).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    pub fn masters(mut self, count: usize) -> Self {
        self.masters = count.max(1);
        self
    }

    pub fn workers(mut self, count: usize) -> Self {
        self.workers = count;
        self
    }

    fn minor(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    fn names(&self) -> (Vec<String>, Vec<String>) {
        (
            (1..=self.masters).map(|i| format!("m{i}")).collect(),
            (1..=self.workers).map(|i| format!("w{i}")).collect(),
        )
    }
}

/// A running cluster of machines. Dropping it powers the machines off and stops the simulator.
pub struct MachineLab {
    pub machines: Machines,
    server: Option<Server>,
    runtime: Option<tokio::runtime::Runtime>,
    spec: MachineLabSpec,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    inventory: PathBuf,
    violations: Arc<Mutex<Vec<String>>>,
    baseline: BTreeSet<String>,
    history: History,
}

impl MachineLab {
    /// Starts the simulator, boots and provisions the machines; `None` (after saying why) when
    /// a component is missing outside CI.
    pub fn start(spec: MachineLabSpec) -> Option<MachineLab> {
        let (masters, workers) = spec.names();
        let options = GenOptions {
            nodes: spec.masters + spec.workers,
            pods: spec.pods,
            seed: 6,
            control_planes: spec.masters,
            zones: 3,
            version: format!("v{}", spec.version),
        };
        let mut list = kubeadm_cluster(&options, spec.runtime, false, &|master, index| {
            let name = if master {
                format!("m{index}")
            } else {
                format!("w{index}")
            };
            (name, HOST.to_string())
        });
        let repository = if minor_number(&spec.version) <= 24 {
            "k8s.gcr.io"
        } else {
            "registry.k8s.io"
        };
        add_kubeadm_config_maps(
            &mut list,
            &spec.version,
            repository,
            &kubelet_config(spec.runtime),
        );
        set_pod_images(&mut list, &spec.images);
        let yaml = serde_yaml_ng::to_string(&list).expect("the cluster serializes");
        let cluster = Cluster::load(&yaml).expect("the lab's cluster loads");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the simulator");
        let sim_options = SimOptions {
            time_scale: spec.time_scale,
            startup_delay: Duration::from_secs(10),
            bookmark_interval: Duration::from_millis(500),
            ..SimOptions::default()
        };
        let server =
            block_on(&runtime, Server::start(cluster, sim_options)).expect("the simulator starts");
        let url = server.url();
        super::cluster::publish_cluster_info(&url, cluster_ca());
        // No kubelet runs yet: every node is NotReady until its kubelet reports.
        for name in masters.iter().chain(&workers) {
            server
                .handle()
                .set_node_ready(name, false)
                .expect("the node exists");
        }

        let dir = tempfile::tempdir().expect("a directory for the lab");
        let pxe = dir.path().join("pxe");
        let mut builder = Machines::builder();
        for name in masters.iter().chain(&workers) {
            let master = masters.contains(name);
            let mut machine = MachineSpec::new(name, spec.os);
            if spec.pxe && name == "m1" {
                std::fs::create_dir_all(&pxe).expect("the PXE directory");
                machine = machine.shared_dir(&pxe, "/srv/pxe").file(
                    "/usr/local/sbin/reinstall",
                    include_str!("../../data/pxe-reinstall.sh"),
                    0o755,
                );
            }
            machine = match spec.layout {
                Layout::AptPkgs | Layout::RpmPkgs => {
                    machine.pkgs_repository(spec.layout, &spec.minor())
                }
                layout => machine.repository(layout),
            };
            for (path, content, mode) in node_files(&spec, master, &url, name, repository) {
                machine = machine.file(&path, &content, mode);
            }
            builder = builder.machine(machine);
        }
        let machines = builder.start()?;
        std::thread::scope(|scope| {
            for machine in machines.machines() {
                let spec = &spec;
                scope.spawn(move || provision(machine, spec));
            }
        });

        let kubeconfig_path = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig_path)
            .expect("write the kubeconfig");
        let inventory = dir.path().join("inventory.toml");
        let roles = |name: &str| {
            if name.starts_with('m') {
                r#"["control-plane", "etcd"]"#
            } else {
                r#"["worker"]"#
            }
        };
        std::fs::write(&inventory, machines.inventory_toml(&roles)).expect("write the inventory");
        let mut lab = MachineLab {
            machines,
            server: Some(server),
            runtime: Some(runtime),
            spec,
            dir,
            kubeconfig: kubeconfig_path,
            inventory,
            violations: Arc::new(Mutex::new(Vec::new())),
            baseline: BTreeSet::new(),
            history: History::default(),
        };
        lab.wait_all_ready(&format!("v{}", lab.spec.version));
        let baseline = violated_budgets(&lab.handle().snapshot())
            .into_iter()
            .map(|(key, _, _)| key)
            .collect();
        let watching = watch_budgets(
            lab.runtime.as_ref().unwrap(),
            lab.server(),
            lab.violations.clone(),
        );
        block_on(lab.runtime.as_ref().unwrap(), watching);
        lab.baseline = baseline;
        let (history, listed) =
            History::start(lab.runtime.as_ref().unwrap(), lab.server().kube_config());
        // Bounded: a watch the simulator does not serve would otherwise wait forever.
        block_on(lab.runtime.as_ref().unwrap(), async move {
            tokio::time::timeout(Duration::from_secs(60), listed)
                .await
                .expect("the history's watches list nodes, pods, ReplicaSets and budgets within a minute")
        });
        lab.history = history;
        Some(lab)
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the simulator runs")
    }

    /// How many workers the lab has.
    pub fn worker_count(&self) -> usize {
        self.spec.workers
    }

    pub fn handle(&self) -> SimHandle {
        self.server().handle()
    }

    pub fn machine(&self, name: &str) -> &Machine {
        self.machines.machine(name)
    }

    /// Reinstalls `node` as the team's PXE would: powered off, a fresh system from the image
    /// (the container runtime and its configuration, the package sources, the ssh host keys;
    /// nothing of Kubernetes), booted again. The cluster sees its Node go NotReady, as the node
    /// controller marks a node whose kubelet stopped posting status.
    pub fn reinstall(&self, node: &str) {
        let machine = self.machine(node);
        machine.reinstall(&runtime_files(&self.spec));
        self.handle()
            .set_node_ready(node, false)
            .expect("the node exists");
        let runtime = match self.spec.runtime {
            Runtime::CriO => "crio",
            Runtime::Docker => "containerd docker",
            Runtime::Containerd => "containerd",
        };
        // An installer fetches the package lists of the sources it configures.
        let lists = match self.spec.layout {
            Layout::AptLegacy | Layout::AptPkgs => "apt-get update -q",
            Layout::RpmLegacy | Layout::RpmPkgs => "dnf makecache -q",
            Layout::Arch => "pacman -Sy --noconfirm",
        };
        machine.sh(&format!("{lists} && systemctl enable --now {runtime}"));
    }

    /// Serves the PXE host's reinstall requests (see [`MachineLabSpec::pxe`]) until `running`
    /// turns false; returns the nodes reinstalled, in order.
    pub fn serve_reinstalls(&self, running: &std::sync::atomic::AtomicBool) -> Vec<String> {
        let pxe = self.dir().join("pxe");
        let mut done = Vec::new();
        while running.load(std::sync::atomic::Ordering::SeqCst) {
            for entry in std::fs::read_dir(pxe.join("requests"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let node = entry.file_name().to_string_lossy().into_owned();
                let _ = std::fs::remove_file(entry.path());
                self.reinstall(&node);
                std::fs::create_dir_all(pxe.join("done")).expect("the PXE done directory");
                std::fs::write(pxe.join("done").join(&node), "").expect("say the node is back");
                done.push(node);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    }

    /// The simulator's base URL (plain HTTP, no credentials).
    pub fn url(&self) -> String {
        self.server().url()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn inventory(&self) -> &Path {
        &self.inventory
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `krun PLAYBOOK --inventory … --kubeconfig …`.
    pub fn krun(&self, playbook: impl AsRef<std::ffi::OsStr>) -> crate::cli::Krun {
        crate::cli::Krun::new().args([playbook.as_ref()]).args([
            "--inventory".as_ref(),
            self.inventory.as_os_str(),
            "--kubeconfig".as_ref(),
            self.kubeconfig.as_os_str(),
        ])
    }

    /// `(ready, unschedulable, kubeletVersion)` of a node as the API shows it.
    pub fn cluster_node(&self, name: &str) -> (bool, bool, String) {
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
        let unschedulable = node
            .pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let version = node
            .pointer("/status/nodeInfo/kubeletVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        (ready, unschedulable, version)
    }

    /// The control plane's version (`/version`).
    pub fn server_version(&self) -> String {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-f"])
            .arg(format!("{}/version", self.server().url()))
            .output()
            .expect("curl runs");
        let body: Value = serde_json::from_slice(&out.stdout).expect("/version is JSON");
        body["gitVersion"].as_str().unwrap_or_default().to_string()
    }

    /// Waits until every node reported Ready at `version` (the kubelets' first start).
    fn wait_all_ready(&self, version: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for machine in self.machines.machines() {
            loop {
                let (ready, _, reported) = self.cluster_node(&machine.name);
                if ready && reported == version {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not Ready at {version} after provisioning:\n{}",
                    machine.name,
                    machine.journal("kubelet")
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Waits until `node` reports Ready with a runtime version starting with `runtime`.
    pub fn wait_ready(&self, node: &str, runtime: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let object = self
                .handle()
                .object("v1", "Node", "", node)
                .expect("the node");
            let reported = object
                .pointer("/status/nodeInfo/containerRuntimeVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if self.cluster_node(node).0 && reported.starts_with(runtime) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{node} not Ready on {runtime} ({reported}):\n{}",
                self.machine(node).journal("kubelet")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the cluster went through since the lab was up (see `history.rs`).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The order of operations as the simulator saw it since the lab was up: every kubelet
    /// restarted on a node that was not drained, every budgeted pod evicted without its
    /// budget's consent.
    pub fn order_violations(&self) -> Vec<String> {
        self.order_violations_since(0)
    }

    /// [`MachineLab::order_violations`] after `mark` (a test that restarts a kubelet by hand
    /// marks the point after which krun alone acts).
    pub fn order_violations_since(&self, mark: u64) -> Vec<String> {
        self.history_caught_up();
        let mut found = self.history.undrained_kubelet_restarts(mark);
        found.extend(self.history.evictions_without_consent(mark));
        found
    }

    /// What happened to `node` after `mark`, in order (see [`History::node_events`]).
    pub fn node_events(&self, node: &str, mark: u64) -> Vec<String> {
        self.history_caught_up();
        self.history.node_events(node, mark)
    }

    /// The point in the history up to now (see [`MachineLab::order_violations_since`]).
    pub fn mark(&self) -> u64 {
        self.history_caught_up();
        self.history.latest()
    }

    /// Waits until the history's watches have delivered every object's latest change.
    fn history_caught_up(&self) {
        let newest = self.handle().snapshot()["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| {
                matches!(
                    i["kind"].as_str(),
                    Some("Node" | "Pod" | "ReplicaSet" | "PodDisruptionBudget" | "Secret")
                )
            })
            .filter_map(|i| {
                i["metadata"]["resourceVersion"]
                    .as_str()?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.history.latest() < newest && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every moment a PodDisruptionBudget had fewer healthy pods than it desires.
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

impl Drop for MachineLab {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn set_pod_images(list: &mut Value, images: &[(String, String)]) {
    for item in list["items"].as_array_mut().expect("a List") {
        if item["kind"] != "Pod" {
            continue;
        }
        let node = item["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some((_, image)) = images.iter().find(|(n, _)| *n == node) else {
            continue;
        };
        for pointer in [
            "/spec/containers",
            "/spec/initContainers",
            "/status/containerStatuses",
        ] {
            if let Some(containers) = item.pointer_mut(pointer).and_then(Value::as_array_mut) {
                for container in containers {
                    container["image"] = Value::String(image.clone());
                }
            }
        }
    }
}

fn minor_number(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("a version")
}

/// kubeadm's files on a node that `kubeadm init`/`join` at `spec.version` left.
fn node_files(
    spec: &MachineLabSpec,
    master: bool,
    url: &str,
    name: &str,
    repository: &str,
) -> Vec<(String, String, u32)> {
    let version = &spec.version;
    let mut flags = kubeadm_flags(spec.runtime).to_string();
    if minor_number(version) >= 26 {
        // kubeadm 1.26 no longer writes --container-runtime=remote (kubeadm-facts §5).
        flags = flags.replace("--container-runtime=remote ", "");
    }
    let mut files = vec![
        (
            "/var/lib/kubelet/config.yaml".to_string(),
            kubelet_config(spec.runtime),
            0o644,
        ),
        (
            "/var/lib/kubelet/kubeadm-flags.env".to_string(),
            flags,
            0o644,
        ),
        (
            "/etc/kubernetes/kubelet.conf".to_string(),
            kubeconfig(url, &format!("system:node:{name}")),
            0o600,
        ),
        (
            "/etc/kubernetes/pki/ca.crt".to_string(),
            cluster_ca().to_string(),
            0o644,
        ),
    ];
    files.extend(runtime_files(spec));
    if !master {
        return files;
    }
    files.push((
        "/etc/kubernetes/admin.conf".to_string(),
        super::cluster::kubeconfig_with_ca(url, "kubernetes-admin", cluster_ca()),
        0o600,
    ));
    let etcd = if minor_number(version) <= 21 {
        "3.4.13-0"
    } else {
        "3.5.9-0"
    };
    for (component, image) in [
        ("etcd", format!("{repository}/etcd:{etcd}")),
        (
            "kube-apiserver",
            format!("{repository}/kube-apiserver:v{version}"),
        ),
        (
            "kube-controller-manager",
            format!("{repository}/kube-controller-manager:v{version}"),
        ),
        (
            "kube-scheduler",
            format!("{repository}/kube-scheduler:v{version}"),
        ),
    ] {
        files.push((
            format!("/etc/kubernetes/manifests/{component}.yaml"),
            static_pod_manifest(component, &image, &[]),
            0o600,
        ));
    }
    files
}

/// containerd running, kubeadm/kubelet/kubectl installed with the distribution's package
/// manager as its install docs say (held or excluded), kubelet enabled and started.
fn provision(machine: &Machine, spec: &MachineLabSpec) {
    let version = spec.layout.package_version(&spec.version);
    let upstream = &spec.version;
    let install = match spec.layout {
        Layout::AptLegacy | Layout::AptPkgs => format!(
            "apt-get update -q && apt-get install -y -q kubelet={version} kubeadm={version} kubectl={version} \
             && apt-mark hold kubelet kubeadm kubectl"
        ),
        Layout::RpmLegacy | Layout::RpmPkgs => format!(
            "dnf install -y -q --disableexcludes=kubernetes kubelet-{upstream} kubeadm-{upstream} kubectl-{upstream}"
        ),
        Layout::Arch => format!(
            "pacman -Sy --noconfirm && pacman -U --noconfirm {}/arch/kubernetes-{version}-aarch64.pkg.tar.zst",
            super::repos::MOUNT
        ),
    };
    let runtime = match spec.runtime {
        Runtime::CriO => format!(
            "pacman -U --noconfirm {}/arch/cri-o-{}-1-aarch64.pkg.tar.zst && systemctl daemon-reload && systemctl enable --now crio",
            super::repos::MOUNT,
            super::repos::ARCH_CRIO[0]
        ),
        Runtime::Docker => "systemctl enable --now containerd docker".to_string(),
        Runtime::Containerd => "systemctl enable --now containerd".to_string(),
    };
    machine.sh(&format!(
        "{install} && {runtime} && systemctl daemon-reload && systemctl enable --now kubelet"
    ));
}

/// The container runtime's files, as the node's image has them (kubeadm writes none of them).
fn runtime_files(spec: &MachineLabSpec) -> Vec<(String, String, u32)> {
    let mut files = Vec::new();
    if spec.runtime == Runtime::Docker {
        // Machines share the test machine's network: dockerd must not touch its iptables,
        // forwarding or bridges.
        files.push((
            "/etc/docker/daemon.json".to_string(),
            "{\n  \"iptables\": false,\n  \"ip-forward\": false,\n  \"ip-masq\": false,\n  \"bridge\": \"none\"\n}\n".to_string(),
            0o644,
        ));
        // What the containerd package beside Docker ships.
        files.push((
            "/etc/containerd/config.toml".to_string(),
            "disabled_plugins = [\"cri\"]\n".to_string(),
            0o644,
        ));
    }
    if spec.runtime == Runtime::Containerd {
        files.push((
            "/etc/containerd/config.toml".to_string(),
            "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"k8s.gcr.io/pause:3.2\"\n\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n"
                .to_string(),
            0o644,
        ));
    }
    files
}
