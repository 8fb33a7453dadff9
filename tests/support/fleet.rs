//! A fleet of real OpenSSH servers on 127.0.0.1, one per test node.
//!
//! Each node is a `sshd -D -e` with its own port, host keys, state directory, shim `bin/` first
//! on the session PATH (via `SetEnv` in its sshd_config, which also covers `exec` requests), and
//! its own empty home (`HOME` via `SetEnv` too, so the login shell reads the node's rc files, not
//! the test machine's: a `.bashrc` that prints to stderr or takes a lock would leak into every
//! command), and its own `/etc/os-release`: sshd runs under `unshare -m` with the node's file bind-mounted over
//! the real one, so `cat /etc/os-release` on "n2" says Rocky Linux. Everything else (the
//! filesystem, `uname`) is the test machine's, except the directories in [`PRIVATE_DIRS`]
//! (`/etc/kubernetes`, `/var/lib/kubelet`, …) and `/etc/fstab`, which are the node's own.
//!
//! Needs root (bind mounts, logging in as other users), `sshd`, `ssh-keygen` and `unshare`.
//! Without them a fleet is not started: the test is skipped with a message, except under
//! `CI=true`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use krun::ssh::Endpoint;

use super::process::{kill_tree, spawn_tied};
use super::shims::{self, PackageFamily};
use super::{require, work_dir};

pub const HOST: &str = "127.0.0.1";

/// Directories each node has of its own: inside the node's mount namespace they are bind mounts
/// of `<node dir>/root/<path>`, so playbooks use the real absolute paths, nodes do not see each
/// other's files, the test machine's own directories stay untouched, and a test reads a node's
/// files from outside at [`Node::root_path`].
pub const PRIVATE_DIRS: &[&str] = &[
    "/etc/kubernetes",
    "/etc/containerd",
    "/etc/crio",
    "/etc/cni/net.d",
    "/etc/systemd/system",
    "/var/lib/kubelet",
    "/var/lib/etcd",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/etc/docker",
    "/opt/krun-runtime",
    "/etc/haproxy",
    "/etc/keepalived",
];

/// The operating system a node pretends to run (its `/etc/os-release` and package manager).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Debian12,
    Ubuntu2204,
    Rocky9,
    CentOs7,
    ArchArm,
}

impl Os {
    /// The `ID=` of its os-release.
    pub fn id(self) -> &'static str {
        match self {
            Self::Debian12 => "debian",
            Self::Ubuntu2204 => "ubuntu",
            Self::Rocky9 => "rocky",
            Self::CentOs7 => "centos",
            Self::ArchArm => "archarm",
        }
    }

    pub fn family(self) -> PackageFamily {
        match self {
            Self::Debian12 | Self::Ubuntu2204 => PackageFamily::Apt,
            Self::Rocky9 => PackageFamily::Dnf,
            Self::CentOs7 => PackageFamily::Yum,
            Self::ArchArm => PackageFamily::Pacman,
        }
    }

    /// A package version as this OS's repositories spell it: `1.21.14` becomes `1.21.14-00`
    /// (Kubernetes apt repo), `1.21.14-0` (rpm) or `1.21.14-1` (pacman).
    pub fn package_version(self, upstream: &str) -> String {
        match self.family() {
            PackageFamily::Apt => format!("{upstream}-00"),
            PackageFamily::Dnf | PackageFamily::Yum => format!("{upstream}-0"),
            PackageFamily::Pacman => format!("{upstream}-1"),
        }
    }

    pub(crate) fn os_release(self) -> &'static str {
        match self {
            Self::Debian12 => concat!(
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                "NAME=\"Debian GNU/Linux\"\n",
                "VERSION_ID=\"12\"\n",
                "VERSION=\"12 (bookworm)\"\n",
                "VERSION_CODENAME=bookworm\n",
                "ID=debian\n",
                "HOME_URL=\"https://www.debian.org/\"\n",
            ),
            Self::Ubuntu2204 => concat!(
                "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n",
                "NAME=\"Ubuntu\"\n",
                "VERSION_ID=\"22.04\"\n",
                "VERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n",
                "VERSION_CODENAME=jammy\n",
                "ID=ubuntu\n",
                "ID_LIKE=debian\n",
            ),
            Self::Rocky9 => concat!(
                "NAME=\"Rocky Linux\"\n",
                "VERSION=\"9.3 (Blue Onyx)\"\n",
                "ID=\"rocky\"\n",
                "ID_LIKE=\"rhel centos fedora\"\n",
                "VERSION_ID=\"9.3\"\n",
                "PLATFORM_ID=\"platform:el9\"\n",
                "PRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n",
            ),
            Self::CentOs7 => concat!(
                "NAME=\"CentOS Linux\"\n",
                "VERSION=\"7 (Core)\"\n",
                "ID=\"centos\"\n",
                "ID_LIKE=\"rhel fedora\"\n",
                "VERSION_ID=\"7\"\n",
                "PRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
            ),
            Self::ArchArm => concat!(
                "NAME=\"Arch Linux ARM\"\n",
                "PRETTY_NAME=\"Arch Linux ARM\"\n",
                "ID=archarm\n",
                "ID_LIKE=arch\n",
                "BUILD_ID=rolling\n",
                "HOME_URL=\"https://archlinuxarm.org/\"\n",
            ),
        }
    }
}

/// Key algorithms for host and client keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519, KeyKind::Ecdsa, KeyKind::Rsa];

    fn stem(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Ecdsa => "ecdsa",
            Self::Rsa => "rsa",
        }
    }

    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            Self::Ed25519 => &["-t", "ed25519"],
            Self::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            Self::Rsa => &["-t", "rsa", "-b", "3072"],
        }
    }
}

/// What one node looks like before it starts.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub os: Os,
    host_keys: Vec<KeyKind>,
    packages: BTreeMap<String, String>,
    repo: BTreeMap<String, Vec<String>>,
    units: BTreeMap<String, (bool, bool)>,
    sshd_options: Vec<String>,
    disks: Vec<String>,
    containers: BTreeMap<String, Vec<String>>,
}

impl NodeSpec {
    /// A Kubernetes node at 1.20.15: kubelet, kubeadm, kubectl and containerd installed, 1.21 and
    /// 1.22 available, kubelet and containerd running and enabled.
    pub fn new(name: &str, os: Os) -> Self {
        let mut spec = Self::bare(name, os);
        let kube_versions = ["1.20.15", "1.21.14", "1.22.17"].map(|v| os.package_version(v));
        let containerd = if matches!(os.family(), PackageFamily::Apt) {
            "containerd"
        } else {
            "containerd.io"
        };
        for package in ["kubelet", "kubeadm", "kubectl"] {
            spec = spec
                .available(package, &kube_versions.each_ref().map(String::as_str))
                .package(package, &kube_versions[0]);
        }
        let containerd_versions = [os.package_version("1.6.20"), os.package_version("1.7.13")];
        spec.available(
            containerd,
            &containerd_versions.each_ref().map(String::as_str),
        )
        .package(containerd, &containerd_versions[0])
        .unit("kubelet", true, true)
        .unit("containerd", true, true)
    }

    /// A node with nothing installed, no units and an empty package repository.
    pub fn bare(name: &str, os: Os) -> Self {
        Self {
            name: name.to_string(),
            os,
            host_keys: vec![KeyKind::Ed25519, KeyKind::Ecdsa],
            packages: BTreeMap::new(),
            repo: BTreeMap::new(),
            units: BTreeMap::new(),
            sshd_options: Vec::new(),
            disks: Vec::new(),
            containers: BTreeMap::new(),
        }
    }

    /// Installed at start.
    pub fn package(mut self, name: &str, version: &str) -> Self {
        self.packages.insert(name.to_string(), version.to_string());
        self
    }

    /// Offered by the node's package repository.
    pub fn available(mut self, name: &str, versions: &[&str]) -> Self {
        self.repo.insert(
            name.to_string(),
            versions.iter().map(|v| v.to_string()).collect(),
        );
        self
    }

    /// A systemd unit (`kubelet` means `kubelet.service`).
    pub fn unit(mut self, name: &str, active: bool, enabled: bool) -> Self {
        self.units.insert(unit_name(name), (active, enabled));
        self
    }

    /// An unformatted block device (`/dev/vdb`) the disk shims know; nothing real backs it.
    pub fn disk(mut self, device: &str) -> Self {
        self.disks.push(device.to_string());
        self
    }

    /// Running containers of a runtime (`docker`, `containerd`, `crio`), by name.
    pub fn containers(mut self, runtime: &str, names: &[&str]) -> Self {
        self.containers
            .entry(runtime.to_string())
            .or_default()
            .extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// An extra sshd_config line, e.g. `AllowTcpForwarding no`.
    pub fn sshd_option(mut self, line: &str) -> Self {
        self.sshd_options.push(line.to_string());
        self
    }

    /// Host key types sshd offers (default ed25519 and ecdsa; RSA keys are slow to generate).
    pub fn host_keys(mut self, kinds: &[KeyKind]) -> Self {
        self.host_keys = kinds.to_vec();
        self
    }
}

/// Builds a private fleet.
#[derive(Debug, Default)]
pub struct FleetBuilder {
    nodes: Vec<NodeSpec>,
}

impl FleetBuilder {
    pub fn node(mut self, spec: NodeSpec) -> Self {
        self.nodes.push(spec);
        self
    }

    /// Starts every node; `None` (after saying why) when the tools are missing outside CI.
    pub fn start(self) -> Option<Fleet> {
        if !fleet_prerequisites() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("fleet-")
            .tempdir_in(work_dir())
            .expect("create the fleet directory");
        Some(Fleet::launch(
            dir.path().to_path_buf(),
            Some(dir),
            self.nodes,
        ))
    }
}

/// Running sshd nodes. Dropping the fleet kills them (and their sessions) and removes its files.
pub struct Fleet {
    root: PathBuf,
    known_hosts: PathBuf,
    nodes: Vec<Node>,
    _dir: Option<tempfile::TempDir>,
}

impl Fleet {
    pub fn builder() -> FleetBuilder {
        FleetBuilder::default()
    }

    /// `count` Debian nodes named n1, n2, ...
    pub fn start(count: usize) -> Option<Fleet> {
        (1..=count)
            .fold(Self::builder(), |b, i| {
                b.node(NodeSpec::new(&format!("n{i}"), Os::Debian12))
            })
            .start()
    }

    /// The fleet shared by the whole test binary, started on first use: `n1` (Debian 12),
    /// `n2` (Rocky 9), `n3` (Arch Linux ARM) and `bastion` (Debian 12). Tests that kill servers
    /// or count connections must start their own fleet.
    pub fn shared() -> Option<&'static Fleet> {
        static SHARED: OnceLock<Option<Fleet>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                if !fleet_prerequisites() {
                    return None;
                }
                let root = work_dir().join("shared-fleet");
                let specs = vec![
                    NodeSpec::new("n1", Os::Debian12).host_keys(&KeyKind::ALL),
                    NodeSpec::new("n2", Os::Rocky9),
                    NodeSpec::new("n3", Os::ArchArm),
                    NodeSpec::new("bastion", Os::Debian12),
                ];
                Some(Fleet::launch(root, None, specs))
            })
            .as_ref()
    }

    fn launch(root: PathBuf, dir: Option<tempfile::TempDir>, specs: Vec<NodeSpec>) -> Fleet {
        fs::create_dir_all(&root).expect("create the fleet directory");
        // Non-root test users must reach their authorized_keys and the shims.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod fleet dir");
        let mut nodes: Vec<Node> = specs
            .iter()
            .map(|spec| Node::prepare(&root, spec))
            .collect();
        generate_host_keys(&nodes, &specs);
        let known_hosts = root.join("known_hosts");
        for node in &mut nodes {
            node.known_hosts = known_hosts.clone();
            node.load_host_keys();
            node.start_sshd();
        }
        let lines: String = nodes
            .iter()
            .flat_map(|node| {
                node.host_keys
                    .keys()
                    .map(|kind| node.known_hosts_line(*kind) + "\n")
            })
            .collect();
        fs::write(&known_hosts, lines).expect("write known_hosts");
        Fleet {
            root,
            known_hosts,
            nodes,
            _dir: dir,
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node called `name`; panics when there is none.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("the fleet has no node {name}"))
    }

    /// A known_hosts file listing every host key of every node.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// An inventory (krun's TOML format) with every node, logging in as root with the ed25519
    /// client key and this fleet's known_hosts.
    pub fn inventory_toml(&self) -> String {
        let mut text = format!(
            "[ssh]\nuser = \"root\"\nidentity = {:?}\nknown_hosts = {:?}\n",
            client_key(KeyKind::Ed25519).display().to_string(),
            self.known_hosts.display().to_string()
        );
        for node in &self.nodes {
            text.push_str(&format!(
                "\n[nodes.{}]\nhost = \"{HOST}\"\nport = {}\n",
                node.name,
                node.port()
            ));
        }
        text
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill_sshd();
        }
    }
}

/// One sshd node.
pub struct Node {
    pub name: String,
    pub os: Os,
    dir: PathBuf,
    port: Mutex<u16>,
    host_keys: BTreeMap<KeyKind, String>,
    sshd_options: Vec<String>,
    known_hosts: PathBuf,
    server: Mutex<Option<Child>>,
}

impl Node {
    fn prepare(root: &Path, spec: &NodeSpec) -> Node {
        let dir = root.join("nodes").join(&spec.name);
        for sub in ["state/pkgs", "state/units", "repo", "keys", "home"] {
            fs::create_dir_all(dir.join(sub)).expect("create node directories");
        }
        for private in PRIVATE_DIRS {
            fs::create_dir_all(dir.join("root").join(private.trim_start_matches('/')))
                .expect("create the node's private directories");
        }
        for sub in ["", "state", "state/pkgs", "state/units", "repo", "home"] {
            fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755))
                .expect("chmod node directories");
        }
        fs::write(dir.join("os-release"), spec.os.os_release()).expect("write os-release");
        fs::write(
            dir.join("fstab"),
            "# /etc/fstab: static file system information.\n",
        )
        .expect("write fstab");
        for device in &spec.disks {
            let name = Path::new(device)
                .file_name()
                .expect("a device path")
                .to_owned();
            fs::create_dir_all(dir.join("state/disks")).expect("create the disk state");
            fs::write(dir.join("state/disks").join(name), "").expect("seed disks");
        }
        for (runtime, names) in &spec.containers {
            let lines: String = names
                .iter()
                .map(|name| {
                    let id: String = (0..4)
                        .map(|part| {
                            format!("{:016x}", fnv1a(&format!("{}/{name}/{part}", spec.name)))
                        })
                        .collect();
                    format!("{id} running {name}\n")
                })
                .collect();
            fs::create_dir_all(dir.join("state/containers")).expect("create the container state");
            fs::write(dir.join("state/containers").join(runtime), lines).expect("seed containers");
        }
        for (name, version) in &spec.packages {
            fs::write(dir.join("state/pkgs").join(name), format!("{version}\n"))
                .expect("seed packages");
        }
        for (name, versions) in &spec.repo {
            fs::write(dir.join("repo").join(name), versions.join("\n") + "\n")
                .expect("seed the package repository");
        }
        for (unit, (active, enabled)) in &spec.units {
            let state = format!(
                "{} {}\n",
                if *active { "active" } else { "inactive" },
                if *enabled { "enabled" } else { "disabled" }
            );
            fs::write(dir.join("state/units").join(unit), state).expect("seed units");
        }
        shims::install(&dir.join("bin"), &dir, spec.os.family()).expect("write shims");
        let authorized: String = KeyKind::ALL
            .iter()
            .map(|kind| client_public_key(*kind) + "\n")
            .collect();
        let authorized_keys = dir.join("authorized_keys");
        fs::write(&authorized_keys, authorized).expect("write authorized_keys");
        fs::set_permissions(&authorized_keys, fs::Permissions::from_mode(0o644))
            .expect("chmod authorized_keys");
        Node {
            name: spec.name.clone(),
            os: spec.os,
            dir,
            port: Mutex::new(0),
            host_keys: spec.host_keys.iter().map(|k| (*k, String::new())).collect(),
            sshd_options: spec.sshd_options.clone(),
            known_hosts: PathBuf::new(),
            server: Mutex::new(None),
        }
    }

    fn load_host_keys(&mut self) {
        for (kind, line) in self.host_keys.iter_mut() {
            let text = fs::read_to_string(
                self.dir
                    .join(format!("keys/ssh_host_{}_key.pub", kind.stem())),
            )
            .expect("read host key");
            let mut fields = text.split_whitespace();
            *line = format!(
                "{} {}",
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default()
            );
        }
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        *self.port.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's directory: `bin/` (shims), `state/`, `repo/`, `sshd.log`, keys and config.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the shims change: packages, units, the change log.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Logs in as root with the ed25519 client key, checking the fleet's known_hosts.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            name: self.name.clone(),
            host: HOST.to_string(),
            port: self.port(),
            user: "root".to_string(),
            identity: Some(client_key(KeyKind::Ed25519).to_path_buf()),
            known_hosts: self.known_hosts.clone(),
            jump: None,
        }
    }

    /// The host public key of that type, as `type base64`.
    pub fn host_key(&self, kind: KeyKind) -> &str {
        self.host_keys
            .get(&kind)
            .unwrap_or_else(|| panic!("{} has no {kind:?} host key", self.name))
    }

    /// `[127.0.0.1]:port type base64`, the line OpenSSH would write.
    pub fn known_hosts_line(&self, kind: KeyKind) -> String {
        format!("[{HOST}]:{} {}", self.port(), self.host_key(kind))
    }

    /// Kills sshd and everything it started (connections, sessions, their commands), like a
    /// node losing power. `start_sshd` brings it back on the same port.
    pub fn kill_sshd(&self) {
        let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = server.take() {
            kill_tree(child.id());
            let _ = child.wait();
        }
    }

    /// Starts sshd (again), waiting until it listens.
    pub fn start_sshd(&self) {
        let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        assert!(server.is_none(), "{}: sshd is already running", self.name);
        let keep_port = self.port();
        for attempt in 0..5 {
            let port = if keep_port != 0 {
                keep_port
            } else {
                free_port()
            };
            self.write_config(port);
            let log = self.dir.join("sshd.log");
            let offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let log_file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("open sshd.log");
            // The mount points are created on the machine (empty directories), the mounts
            // themselves exist only in this node's namespace.
            let mut script = String::from(
                "set -e; mount --bind \"$1\" /etc/os-release; mount --bind \"$4\" /etc/fstab; ",
            );
            for private in PRIVATE_DIRS {
                script.push_str(&format!(
                    "mkdir -p {private}; mount --bind \"$3\"{private} {private}; "
                ));
            }
            script.push_str("exec /usr/sbin/sshd -D -e -f \"$2\"");
            let mut command = Command::new("unshare");
            command
                .args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(script)
                .arg("sh")
                .arg(self.dir.join("os-release"))
                .arg(self.dir.join("sshd_config"))
                .arg(self.dir.join("root"))
                .arg(self.dir.join("fstab"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file);
            let mut child = spawn_tied(command).expect("start sshd");
            let ready = format!("Server listening on {HOST} port {port}.");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let text = read_from(&log, offset);
                if text.contains(&ready) {
                    *self.port.lock().unwrap_or_else(|p| p.into_inner()) = port;
                    *server = Some(child);
                    return;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    if text.contains("Address already in use") && attempt < 4 && keep_port == 0 {
                        break;
                    }
                    panic!(
                        "{}: sshd exited ({status}) before listening:\n{text}",
                        self.name
                    );
                }
                if Instant::now() > deadline {
                    kill_tree(child.id());
                    panic!("{}: sshd did not listen within 20s:\n{text}", self.name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("{}: no free port for sshd", self.name);
    }

    fn write_config(&self, port: u16) {
        let dir = self.dir.display();
        let mut config = format!(
            "Port {port}\n\
             ListenAddress {HOST}\n\
             PidFile none\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             AllowTcpForwarding yes\n\
             MaxStartups 100:30:200\n\
             LogLevel VERBOSE\n\
             SetEnv HOME={dir}/home PATH={dir}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin KRUN_NODE={name} KRUN_NODE_DIR={dir}\n",
            name = self.name
        );
        for kind in self.host_keys.keys() {
            config.push_str(&format!(
                "HostKey {dir}/keys/ssh_host_{}_key\n",
                kind.stem()
            ));
        }
        // sshd takes the first value of a keyword, so per-test options go before the defaults.
        let options: String = self.sshd_options.iter().map(|o| format!("{o}\n")).collect();
        config.insert_str(0, &options);
        fs::write(self.dir.join("sshd_config"), config).expect("write sshd_config");
    }

    /// Where a path inside one of [`PRIVATE_DIRS`] lives on the test machine.
    pub fn root_path(&self, path: &str) -> PathBuf {
        assert!(
            PRIVATE_DIRS.iter().any(|p| path.starts_with(p)),
            "{path} is not private to the node; see PRIVATE_DIRS"
        );
        self.dir.join("root").join(path.trim_start_matches('/'))
    }

    /// Everything sshd logged so far (it runs with `-e` and `LogLevel VERBOSE`).
    pub fn sshd_log(&self) -> String {
        read_from(&self.dir.join("sshd.log"), 0)
    }

    /// Successful logins, i.e. ssh connections that got past authentication.
    pub fn logins(&self) -> usize {
        self.sshd_log().matches("Accepted publickey for ").count()
    }

    /// Session channels opened (one per command).
    pub fn sessions(&self) -> usize {
        self.sshd_log().matches("Starting session: ").count()
    }

    /// The installed version of a package, as the shims record it.
    pub fn installed_version(&self, package: &str) -> Option<String> {
        fs::read_to_string(self.state_dir().join("pkgs").join(package))
            .ok()
            .map(|v| v.trim().to_string())
    }

    /// `(active, enabled)` of a unit (`kubelet` means `kubelet.service`), e.g. `("active", "enabled")`.
    pub fn unit_state(&self, unit: &str) -> Option<(String, String)> {
        let text = fs::read_to_string(self.state_dir().join("units").join(unit_name(unit))).ok()?;
        let mut fields = text.split_whitespace();
        Some((fields.next()?.to_string(), fields.next()?.to_string()))
    }

    /// Mutating commands the shims ran, in order.
    pub fn changes(&self) -> Vec<String> {
        fs::read_to_string(self.state_dir().join("changes.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The kubeadm commands that changed something (`kubeadm upgrade apply v1.21.14`, …).
    pub fn kubeadm_calls(&self) -> Vec<String> {
        self.changes()
            .into_iter()
            .filter(|c| c.starts_with("kubeadm "))
            .collect()
    }

    /// Whether the node is joined: `kubeadm join` ran and no `kubeadm reset` since.
    pub fn joined(&self) -> bool {
        self.state_dir().join("joined").exists()
    }

    /// Mounts the shims made, as `(device, directory, fstype)`.
    pub fn mounts(&self) -> Vec<(String, String, String)> {
        fs::read_to_string(self.state_dir().join("mounts"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace().map(str::to_string);
                Some((fields.next()?, fields.next()?, fields.next()?))
            })
            .collect()
    }

    /// The filesystem made on a disk (`ext4`), `None` while unformatted or unknown.
    pub fn disk_filesystem(&self, device: &str) -> Option<String> {
        let name = Path::new(device).file_name()?;
        let text = fs::read_to_string(self.state_dir().join("disks").join(name)).ok()?;
        text.split_whitespace().next().map(str::to_string)
    }

    /// Containers of a runtime, as `(id, state, name)`.
    pub fn containers(&self, runtime: &str) -> Vec<(String, String, String)> {
        fs::read_to_string(self.state_dir().join("containers").join(runtime))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace().map(str::to_string);
                Some((fields.next()?, fields.next()?, fields.next()?))
            })
            .collect()
    }

    /// From now on the node's runtime clients (crictl, ctr) cannot pull images from `registry`
    /// (a host such as `registry.example.com`): they fail as containerd does against a registry
    /// it cannot speak to.
    pub fn refuse_registry(&self, registry: &str) {
        let path = self.dir.join("refused-registries");
        let mut list = fs::read_to_string(&path).unwrap_or_default();
        list.push_str(registry);
        list.push('\n');
        fs::write(&path, list).expect("write refused-registries");
    }

    /// The registries of [`Node::refuse_registry`] work again.
    pub fn accept_registries(&self) {
        let _ = fs::remove_file(self.dir.join("refused-registries"));
    }

    /// The images a runtime's clients pulled on this node, each once, sorted.
    pub fn pulled_images(&self, runtime: &str) -> BTreeSet<String> {
        fs::read_to_string(self.state_dir().join("images").join(runtime))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A node-private file's content (see [`PRIVATE_DIRS`]), `None` when absent.
    pub fn read_file(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.root_path(path)).ok()
    }

    /// Writes a node-private file, creating its directory.
    pub fn write_file(&self, path: &str, content: &str) {
        let target = self.root_path(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).expect("create the file's directory");
        }
        fs::write(&target, content)
            .unwrap_or_else(|e| panic!("write {path} on {}: {e}", self.name));
    }

    /// From now on kubelet fails to start (`systemctl start kubelet` leaves it `activating`, in
    /// a restart loop, and the node NotReady) until [`Node::repair_kubelet`].
    pub fn break_kubelet(&self) {
        fs::create_dir_all(self.dir.join("faults")).expect("create the fault directory");
        fs::write(self.dir.join("faults/kubelet"), "").expect("set the kubelet fault");
    }

    pub fn repair_kubelet(&self) {
        let _ = fs::remove_file(self.dir.join("faults/kubelet"));
    }

    /// What the node reported to the simulator (`PUT /sim/nodes/w1 {…}`), in order.
    pub fn sim_reports(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("sim.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every file under `state/` with its content, to prove a run left the node untouched.
    pub fn state_snapshot(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        let root = self.state_dir();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let key = path
                        .strip_prefix(&root)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    files.insert(key, fs::read_to_string(&path).unwrap_or_default());
                }
            }
        }
        files
    }
}

/// A stable 64-bit hash, for container ids that look random but never change between runs.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn unit_name(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

fn generate_host_keys(nodes: &[Node], specs: &[NodeSpec]) {
    // In parallel: an RSA key takes a second of CPU.
    let children: Vec<(String, Child)> = nodes
        .iter()
        .zip(specs)
        .flat_map(|(node, spec)| {
            spec.host_keys.iter().map(move |kind| {
                let path = node.dir.join(format!("keys/ssh_host_{}_key", kind.stem()));
                (
                    format!("{} {kind:?}", node.name),
                    keygen(&path, *kind, &format!("{} host key", node.name)),
                )
            })
        })
        .collect();
    for (what, child) in children {
        let output = child.wait_with_output().expect("wait for ssh-keygen");
        assert!(
            output.status.success(),
            "ssh-keygen for {what} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Starts `ssh-keygen` writing an unencrypted key to `path` (and `path.pub`).
pub(crate) fn keygen(path: &Path, kind: KeyKind, comment: &str) -> Child {
    let _ = fs::remove_file(path);
    Command::new("ssh-keygen")
        .arg("-q")
        .args(kind.keygen_args())
        .args(["-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ssh-keygen")
}

/// The client private keys every node authorizes (for root and the sudo test user).
pub fn client_key(kind: KeyKind) -> &'static Path {
    static KEYS: OnceLock<[PathBuf; 3]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let dir = work_dir().join("client-keys");
        fs::create_dir_all(&dir).expect("create the client key directory");
        let paths = KeyKind::ALL.map(|k| dir.join(format!("id_{}", k.stem())));
        let children: Vec<Child> = KeyKind::ALL
            .iter()
            .zip(&paths)
            .map(|(kind, path)| keygen(path, *kind, "krun test client"))
            .collect();
        for child in children {
            let output = child.wait_with_output().expect("wait for ssh-keygen");
            assert!(output.status.success(), "ssh-keygen failed: {output:?}");
        }
        paths
    });
    match kind {
        KeyKind::Ed25519 => &keys[0],
        KeyKind::Ecdsa => &keys[1],
        KeyKind::Rsa => &keys[2],
    }
}

/// The public half of [`client_key`], as an authorized_keys line.
pub fn client_public_key(kind: KeyKind) -> String {
    let path = client_key(kind).with_extension("pub");
    fs::read_to_string(path)
        .expect("read client public key")
        .trim()
        .to_string()
}

fn fleet_prerequisites() -> bool {
    require(&["/usr/sbin/sshd", "ssh-keygen", "unshare", "mount"], true)
}

pub(crate) fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind((HOST, 0))
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
