//! Fixtures shared by krun's integration tests: a fleet of real OpenSSH servers with shimmed
//! node commands, a real ssh-agent, a non-root user with passwordless sudo, and the lab: a
//! kubeadm cluster whose nodes are such servers and whose API is the in-process simulator
//! (`lab.rs`).
//!
//! Tests use real components. One that needs a missing component is skipped with a message on
//! a developer machine, and FAILS under `CI=true`, so CI can never go green by skipping.
//!
//! Side effects on the machine (root only, documented for `.ci/run`):
//! - `/run/sshd` is created if missing (sshd refuses to start without it);
//! - [`sudo_user`] creates the user `krun-tester` and `/etc/sudoers.d/krun-tester`.
//!
//! Typical use:
//! ```ignore
//! let Some(fleet) = Fleet::shared() else { return };      // n1 debian, n2 rocky, n3 archarm, bastion
//! let endpoint = fleet.node("n1").endpoint();             // root, ed25519 key, fleet known_hosts
//! std::fs::write(&inventory, fleet.inventory_toml())?;    // for the krun command line
//! // Destructive tests (installs, killed servers, connection counts) get their own fleet:
//! let Some(fleet) = Fleet::builder().node(NodeSpec::new("w1", Os::Rocky9)).start() else { return };
//! assert_eq!(fleet.node("w1").installed_version("kubelet").as_deref(), Some("1.20.15-0"));
//! ```
//!
//! Files live under `/tmp/krun-tests-<pid>/`, removed when the test process exits; servers are
//! killed with the process even when it aborts (see `process.rs`).

#![allow(dead_code)]

pub mod agent;
pub mod etcd;
pub mod etcd_kv;
pub mod fleet;
pub mod git;
pub mod lab;
pub mod machines;
pub mod process;
pub mod shims;
pub mod sim;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use agent::SshAgent;
#[allow(unused_imports)] // for other test areas
pub use fleet::{
    Fleet, FleetBuilder, HOST, KeyKind, Node, NodeSpec, Os, client_key, client_public_key,
};

/// True under `CI=true`, where a missing component is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Checks that `tools` exist (names on PATH or absolute paths) and, if `needs_root`, that we
/// are root. Returns false after printing why (outside CI); panics under CI.
pub fn require(tools: &[&str], needs_root: bool) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|tool| !tool_exists(tool))
        .map(|tool| tool.to_string())
        .collect();
    // SAFETY: geteuid has no preconditions.
    if needs_root && unsafe { libc::geteuid() } != 0 {
        missing.push("root privileges".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "missing test prerequisites: {} (Debian: apt-get install openssh-server openssh-client sudo util-linux)",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
    false
}

fn tool_exists(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// A per-process scratch directory, removed at exit.
pub fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_work_dirs();
        let dir = std::env::temp_dir().join(format!("krun-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the test work directory");
        // Other users (the sudo test user) must be able to traverse into fleets.
        set_mode(&dir, 0o755);
        if Path::new("/run").exists() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        extern "C" fn remove_work_dir() {
            if let Some(dir) = DIR.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registering a plain extern "C" fn; it only touches the OnceLock and the fs.
        unsafe {
            libc::atexit(remove_work_dir);
        }
        dir
    })
}

/// Work directories of test processes that were killed before their exit handler ran.
fn remove_stale_work_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("krun-tests-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            machines::boot::reap_stale(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// The non-root login with passwordless sudo that keeps PATH (so `sudo -n systemctl` reaches
/// the node's shim). Created on first use; `None` when not root or sudo is missing outside CI.
pub fn sudo_user() -> Option<&'static str> {
    const USER: &str = "krun-tester";
    static READY: OnceLock<bool> = OnceLock::new();
    let ready = *READY.get_or_init(|| {
        if !require(&["sudo", "useradd", "usermod"], true) {
            return false;
        }
        let exists = Command::new("id")
            .arg("-u")
            .arg(USER)
            .output()
            .is_ok_and(|o| o.status.success());
        if !exists {
            run(Command::new("useradd").args(["--create-home", "--shell", "/bin/bash", USER]));
        }
        // "*" (no password, not locked): sshd without PAM refuses locked ("!") accounts.
        run(Command::new("usermod").args(["-p", "*", USER]));
        let sudoers = format!(
            "Defaults:{USER} !secure_path, !requiretty\n\
             Defaults:{USER} env_keep += \"PATH\"\n\
             {USER} ALL=(ALL) NOPASSWD: ALL\n"
        );
        let path = Path::new("/etc/sudoers.d").join(USER);
        std::fs::create_dir_all("/etc/sudoers.d").expect("create /etc/sudoers.d");
        std::fs::write(&path, sudoers).expect("write the sudoers entry");
        set_mode(&path, 0o440);
        true
    });
    ready.then_some(USER)
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
