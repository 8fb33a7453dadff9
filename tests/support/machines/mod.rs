//! Test machines: real Linux systems, one per test node, each booted with `systemd-nspawn` on an
//! overlay of one cached Debian root (`base.rs`), reached over ssh like any node.
//!
//! Real inside: systemd as PID 1 (units, drop-ins, `daemon-reload`), sshd, dpkg/apt, dnf/rpm,
//! pacman, containerd. A machine's `/etc/os-release` says which distribution it plays, and its
//! package sources point at the local repositories (`repos.rs`) in that distribution's layout,
//! bind-mounted read-only at `/srv/krun-repos`. kubeadm, kubelet, kubectl and CRI-O are
//! stand-ins (`tests/standins/`) installed from those repositories as real packages.
//!
//! ```ignore
//! let Some(machines) = Machines::builder()
//!     .machine(MachineSpec::new("m1", Os::Debian12).repository(Layout::AptLegacy))
//!     .start() else { return };
//! let m1 = machines.machine("m1");
//! m1.sh("apt-get install -y kubelet=1.21.14-00");                   // the real apt
//! std::fs::write(&inventory, machines.inventory_toml())?;            // for krun
//! ```
//!
//! Needs root, `debootstrap` (first run, then cached), `systemd-nspawn`, `nsenter`, and for the
//! repositories `dpkg-dev`, `rpm`, `createrepo-c`, `makepkg`, `libarchive-tools`. Side effects on
//! the test machine: a tmpfs on /run/systemd/nspawn where /run is not one (`boot.rs`).

pub mod base;
pub mod boot;
pub mod cluster;
pub mod history;
pub mod lab;
pub mod registry;
pub mod repos;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use krun::ssh::Endpoint;

pub use repos::Layout;

use self::boot::{Booted, Layers};
use crate::support::fleet::{HOST, KeyKind, Os, client_key};
use crate::support::{require, work_dir};

/// What one machine looks like before it boots.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    pub name: String,
    pub os: Os,
    host_keys: Vec<KeyKind>,
    sshd_options: Vec<String>,
    repositories: Vec<(Layout, Option<String>)>,
    files: Vec<(String, String, u32)>,
    shared: Vec<(PathBuf, String)>,
}

impl MachineSpec {
    pub fn new(name: &str, os: Os) -> Self {
        MachineSpec {
            name: name.to_string(),
            os,
            host_keys: vec![KeyKind::Ed25519],
            sshd_options: Vec::new(),
            repositories: Vec::new(),
            files: Vec::new(),
            shared: Vec::new(),
        }
    }

    /// A directory of the test machine the machine sees, writable, at `inside` (a channel
    /// between a test and what runs on the machine).
    pub fn shared_dir(mut self, host: &Path, inside: &str) -> Self {
        self.shared.push((host.to_path_buf(), inside.to_string()));
        self
    }

    /// A package source of the machine's package manager: `AptLegacy`, `RpmLegacy`, `Arch`.
    pub fn repository(mut self, layout: Layout) -> Self {
        self.repositories.push((layout, None));
        self
    }

    /// The pkgs.k8s.io repository of one minor (`"1.28"`).
    pub fn pkgs_repository(mut self, layout: Layout, minor: &str) -> Self {
        self.repositories.push((layout, Some(minor.to_string())));
        self
    }

    /// A file written into the machine before it boots.
    pub fn file(mut self, path: &str, content: &str, mode: u32) -> Self {
        self.files
            .push((path.to_string(), content.to_string(), mode));
        self
    }

    pub fn sshd_option(mut self, line: &str) -> Self {
        self.sshd_options.push(line.to_string());
        self
    }

    pub fn host_keys(mut self, kinds: &[KeyKind]) -> Self {
        self.host_keys = kinds.to_vec();
        self
    }
}

/// The sources file of a repository, as the distribution's docs write it.
pub fn sources(layout: Layout, minor: Option<&str>) -> (String, String) {
    let mount = repos::MOUNT;
    match (layout, minor) {
        (Layout::AptLegacy, _) => (
            "/etc/apt/sources.list.d/kubernetes.list".into(),
            format!("deb [trusted=yes] file:{mount}/apt-legacy kubernetes-xenial main\n"),
        ),
        (Layout::AptPkgs, Some(minor)) => (
            "/etc/apt/sources.list.d/kubernetes.list".into(),
            format!("deb [trusted=yes] file:{mount}/pkgs/v{minor}/deb/ /\n"),
        ),
        (Layout::RpmLegacy, _) => (
            "/etc/yum.repos.d/kubernetes.repo".into(),
            format!(
                "[kubernetes]\nname=Kubernetes\nbaseurl=file://{mount}/rpm-legacy\nenabled=1\n\
                 gpgcheck=0\nrepo_gpgcheck=0\nexclude=kubelet kubeadm kubectl\n"
            ),
        ),
        (Layout::RpmPkgs, Some(minor)) => (
            "/etc/yum.repos.d/kubernetes.repo".into(),
            format!(
                "[kubernetes]\nname=Kubernetes\nbaseurl=file://{mount}/pkgs/v{minor}/rpm/\n\
                 enabled=1\ngpgcheck=0\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
            ),
        ),
        (Layout::Arch, _) => (
            "/etc/pacman.conf".into(),
            format!(
                "[options]\nHoldPkg = pacman glibc\nArchitecture = aarch64\nSigLevel = Never\n\
                 LocalFileSigLevel = Never\n\n[kubernetes]\nServer = file://{mount}/arch\n"
            ),
        ),
        (layout, None) => panic!("{layout:?} needs a minor"),
    }
}

/// Booted machines. Dropping them powers them off and removes their layers.
pub struct Machines {
    dir: PathBuf,
    known_hosts: PathBuf,
    machines: Vec<Machine>,
}

#[derive(Default)]
pub struct MachinesBuilder {
    specs: Vec<MachineSpec>,
}

impl MachinesBuilder {
    pub fn machine(mut self, spec: MachineSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Boots every machine, in parallel; `None` (after saying why) when a tool is missing
    /// outside CI.
    pub fn start(self) -> Option<Machines> {
        if !require(&["systemd-nspawn", "nsenter", "ssh-keygen"], true) {
            return None;
        }
        let base = base::base_root()?;
        let repos = repos::repositories()?;
        let kubectl = host_kubectl_dir();
        let dir = work_dir().join("machines");
        fs::create_dir_all(&dir).expect("create the machines directory");
        let machines: Vec<Machine> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .specs
                .iter()
                .map(|spec| {
                    let dir = dir.clone();
                    let kubectl = kubectl.clone();
                    scope.spawn(move || Machine::boot(&dir, base, repos, kubectl.as_deref(), spec))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let known_hosts = dir.join(format!("known_hosts-{}", machines_id()));
        let lines: String = machines
            .iter()
            .flat_map(|m| {
                m.host_keys
                    .iter()
                    .map(move |(_, key)| format!("[{HOST}]:{} {key}\n", m.port))
            })
            .collect();
        fs::write(&known_hosts, lines).expect("write known_hosts");
        let mut machines = machines;
        for machine in &mut machines {
            machine.known_hosts = known_hosts.clone();
        }
        Some(Machines {
            dir,
            known_hosts,
            machines,
        })
    }
}

fn machines_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The directory of the real kubectl on PATH (the kubectl stand-in hands commands to it).
fn host_kubectl_dir() -> Option<PathBuf> {
    let output = std::process::Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    path.parent().map(Path::to_path_buf)
}

impl Machines {
    pub fn builder() -> MachinesBuilder {
        MachinesBuilder::default()
    }

    pub fn machines(&self) -> &[Machine] {
        &self.machines
    }

    /// The machine called `name`; panics when there is none.
    pub fn machine(&self, name: &str) -> &Machine {
        self.machines
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no machine {name}"))
    }

    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An inventory (krun's TOML) with every machine: root, the ed25519 client key, these
    /// machines' known_hosts, and `roles` per machine name.
    pub fn inventory_toml(&self, roles: &dyn Fn(&str) -> &'static str) -> String {
        let mut text = format!(
            "[ssh]\nuser = \"root\"\nidentity = {:?}\nknown_hosts = {:?}\n",
            client_key(KeyKind::Ed25519).display().to_string(),
            self.known_hosts.display().to_string()
        );
        for machine in &self.machines {
            text.push_str(&format!(
                "\n[nodes.{}]\nhost = \"{HOST}\"\nport = {}\nroles = {}\n",
                machine.name,
                machine.port,
                roles(&machine.name)
            ));
        }
        text
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        for machine in &self.machines {
            machine.power_off();
        }
    }
}

/// One booted machine.
pub struct Machine {
    pub name: String,
    pub os: Os,
    port: u16,
    layers: Layers,
    host_keys: Vec<(KeyKind, String)>,
    known_hosts: PathBuf,
    booted: Mutex<Option<Booted>>,
    init_pid: std::sync::atomic::AtomicU32,
    /// What it was booted from, to boot it again as a fresh system (`reinstall`).
    spec: MachineSpec,
    base: PathBuf,
    binds: Vec<(PathBuf, &'static str)>,
}

impl Machine {
    fn boot(
        dir: &Path,
        base: &Path,
        repos: &Path,
        kubectl: Option<&Path>,
        spec: &MachineSpec,
    ) -> Machine {
        let machine_dir = tempfile::Builder::new()
            .prefix(&format!("{}-", spec.name))
            .tempdir_in(dir)
            .expect("create the machine's directory")
            .keep();
        let layers = Layers::mount(&machine_dir, base);
        let port = boot::port();
        let host_keys = boot::host_keys(&layers, &spec.host_keys, &spec.name);
        let mut binds: Vec<(PathBuf, &'static str)> = vec![(repos.to_path_buf(), repos::MOUNT)];
        if let Some(kubectl) = kubectl {
            binds.push((kubectl.to_path_buf(), "/opt/host-kubectl"));
        }
        let machine = Machine {
            name: spec.name.clone(),
            os: spec.os,
            port,
            layers,
            host_keys,
            known_hosts: PathBuf::new(),
            booted: Mutex::new(None),
            init_pid: std::sync::atomic::AtomicU32::new(0),
            spec: spec.clone(),
            base: base.to_path_buf(),
            binds,
        };
        machine.start(true);
        machine
    }

    /// Writes the machine's own files into its (fresh) upper layer (and the spec's files, unless
    /// reinstalled) and boots it.
    fn start(&self, spec_files: bool) {
        let spec = &self.spec;
        let layers = &self.layers;
        layers.write("/etc/hostname", &format!("{}\n", spec.name), 0o644);
        layers.write("/etc/os-release", spec.os.os_release(), 0o644);
        boot::restore_host_keys(layers);
        boot::write_sshd(layers, self.port, &spec.sshd_options);
        // dnf reads the release from the distribution's release package, which a Debian root
        // has not; the variable file says it instead.
        match spec.os {
            Os::Rocky9 => layers.write("/etc/dnf/vars/releasever", "9\n", 0o644),
            Os::CentOs7 => layers.write("/etc/dnf/vars/releasever", "7\n", 0o644),
            _ => {}
        }
        for (layout, minor) in &spec.repositories {
            let (path, content) = sources(*layout, minor.as_deref());
            layers.write(&path, &content, 0o644);
        }
        if spec_files {
            for (path, content, mode) in &spec.files {
                layers.write(path, content, *mode);
            }
        }
        let mut binds: Vec<(PathBuf, &str, bool)> = self
            .binds
            .iter()
            .map(|(host, inside)| (host.clone(), *inside, false))
            .collect();
        for (host, inside) in &spec.shared {
            binds.push((host.clone(), inside.as_str(), true));
        }
        let booted = boot::boot(layers, &spec.name, self.port, &binds);
        self.init_pid
            .store(booted.init_pid, std::sync::atomic::Ordering::SeqCst);
        *self.booted.lock().unwrap_or_else(|p| p.into_inner()) = Some(booted);
    }

    /// A fresh system in place of this one, as a team's PXE reinstall makes it: powered off,
    /// its disk wiped back to the base image with the machine's identity (hostname, os-release,
    /// host keys restored, sshd, package sources) and `files`, not the spec's files (what an
    /// earlier install left), booted again on the same port. Returns once sshd answers.
    pub fn reinstall(&self, files: &[(String, String, u32)]) {
        if let Some(booted) = self.booted.lock().unwrap_or_else(|p| p.into_inner()).take() {
            booted.kill();
        }
        boot::unmount(&self.layers);
        for sub in ["upper", "work", "containerd", "docker"] {
            let _ = fs::remove_dir_all(self.layers.dir.join(sub));
        }
        let _ = Layers::mount(&self.layers.dir, &self.base);
        for (path, content, mode) in files {
            self.layers.write(path, content, *mode);
        }
        self.start(false);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Logs in as root with the ed25519 client key, checking these machines' known_hosts.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            name: self.name.clone(),
            host: HOST.to_string(),
            port: self.port,
            user: "root".to_string(),
            identity: Some(client_key(KeyKind::Ed25519).to_path_buf()),
            known_hosts: self.known_hosts.clone(),
            jump: None,
        }
    }

    /// Runs `script` as root inside the machine (not over ssh: the harness's own door).
    pub fn exec(&self, script: &str) -> std::process::Output {
        boot::enter(
            self.init_pid.load(std::sync::atomic::Ordering::SeqCst),
            script,
        )
    }

    /// Runs `script` inside the machine and returns its stdout; panics unless it exits 0.
    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        let output = self.exec(script);
        assert!(
            output.status.success(),
            "`{script}` on {} exited {}:\n{}{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A file's content inside the machine, `None` when absent.
    pub fn read_file(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.layers.path(path)).ok()
    }

    pub fn write_file(&self, path: &str, content: &str) {
        self.layers.write(path, content, 0o644);
    }

    /// `systemctl is-active UNIT`: `active`, `activating`, `inactive`, `failed`.
    pub fn unit_state(&self, unit: &str) -> String {
        self.exec(&format!("systemctl is-active {unit}"))
            .stdout
            .iter()
            .map(|b| *b as char)
            .collect::<String>()
            .trim()
            .to_string()
    }

    /// The unit's journal since boot.
    pub fn journal(&self, unit: &str) -> String {
        String::from_utf8_lossy(&self.exec(&format!("journalctl -q -o cat -u {unit}")).stdout)
            .into_owned()
    }

    /// The installed version of a package, from the machine's real package database.
    pub fn installed_version(&self, package: &str) -> Option<String> {
        let query = match self.os.family() {
            crate::support::shims::PackageFamily::Apt => {
                format!("dpkg-query -W -f='${{Version}}' {package}")
            }
            crate::support::shims::PackageFamily::Dnf
            | crate::support::shims::PackageFamily::Yum => {
                format!("rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {package}")
            }
            crate::support::shims::PackageFamily::Pacman => format!("pacman -Q {package}"),
        };
        let output = self.exec(&query);
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().last().unwrap_or_default();
        (output.status.success() && !version.is_empty()).then(|| version.to_string())
    }

    /// Packages apt holds (`apt-mark showhold`).
    pub fn held(&self) -> Vec<String> {
        self.sh("apt-mark showhold")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Powers the machine off hard and unmounts its layers; idempotent.
    pub fn power_off(&self) {
        if let Some(booted) = self.booted.lock().unwrap_or_else(|p| p.into_inner()).take() {
            booted.kill();
            boot::unmount(&self.layers);
            let _ = fs::remove_dir_all(&self.layers.dir);
        }
    }

    /// Files under a directory of the machine, recursively, with their content (for proving a
    /// run left them untouched).
    pub fn snapshot(&self, dir: &str) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        let root = self.layers.path(dir);
        let mut pending = vec![root.clone()];
        while let Some(current) = pending.pop() {
            for entry in fs::read_dir(&current).into_iter().flatten().flatten() {
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
