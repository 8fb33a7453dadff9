//! Booting one test machine: an overlay of the base root (`base.rs`), the node's own files
//! written into its upper layer (hostname, os-release, sshd port and keys, package sources),
//! then `systemd-nspawn --boot` with real systemd as PID 1 and the host's network, so each
//! machine's sshd listens on 127.0.0.1 at a port of its own.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::base::{run, unmount_under};
use crate::support::fleet::{HOST, KeyKind, client_public_key, free_port, keygen};
use crate::support::process::{kill_tree, spawn_tied};

/// Where a machine's directory keeps its layers and the processes that run it.
pub(crate) struct Layers {
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Layers {
    /// Mounts `lower` read-only under a fresh upper layer in `dir/root`.
    pub fn mount(dir: &Path, lower: &Path) -> Layers {
        for sub in ["upper", "work", "root", "containerd", "docker"] {
            fs::create_dir_all(dir.join(sub)).expect("create the machine's directories");
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(dir.join("root")));
        Layers {
            dir: dir.to_path_buf(),
            root: dir.join("root"),
        }
    }

    /// A path inside the machine, seen from the test machine.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    pub fn write(&self, inside: &str, content: &str, mode: u32) {
        let path = self.path(inside);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create a directory in the machine");
        }
        // Replace symlinks (Debian's /etc/os-release points into /usr/lib) instead of following.
        if path.is_symlink() {
            fs::remove_file(&path).expect("replace a symlink in the machine");
        }
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {inside}: {e}"));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// sshd's host keys for a machine: generated on the test machine, written into its /etc/ssh.
pub(crate) fn host_keys(layers: &Layers, kinds: &[KeyKind], name: &str) -> Vec<(KeyKind, String)> {
    let keys = layers.dir.join("keys");
    fs::create_dir_all(&keys).expect("create the key directory");
    let children: Vec<(KeyKind, PathBuf, Child)> = kinds
        .iter()
        .map(|kind| {
            let path = keys.join(format!("ssh_host_{}_key", kind_stem(*kind)));
            let child = keygen(&path, *kind, &format!("{name} host key"));
            (*kind, path, child)
        })
        .collect();
    let mut lines = Vec::new();
    for (kind, path, child) in children {
        let output = child.wait_with_output().expect("wait for ssh-keygen");
        assert!(output.status.success(), "ssh-keygen for {name}: {output:?}");
        let private = fs::read_to_string(&path).expect("read the host key");
        let public = fs::read_to_string(path.with_extension("pub")).expect("read the host key");
        let file = format!("/etc/ssh/ssh_host_{}_key", kind_stem(kind));
        layers.write(&file, &private, 0o600);
        layers.write(&format!("{file}.pub"), &public, 0o644);
        let mut fields = public.split_whitespace();
        lines.push((
            kind,
            format!(
                "{} {}",
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default()
            ),
        ));
    }
    lines
}

/// Writes the host keys `host_keys` generated for this machine into its /etc/ssh again (after
/// a reinstall: the team's hook restores them, so clients keep trusting the node).
pub(crate) fn restore_host_keys(layers: &Layers) {
    let keys = layers.dir.join("keys");
    for entry in fs::read_dir(&keys).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let content = fs::read_to_string(entry.path()).expect("read a host key");
        let mode = if name.ends_with(".pub") { 0o644 } else { 0o600 };
        layers.write(&format!("/etc/ssh/{name}"), &content, mode);
    }
}

fn kind_stem(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Ed25519 => "ed25519",
        KeyKind::Ecdsa => "ecdsa",
        KeyKind::Rsa => "rsa",
    }
}

/// sshd on its own port, root by key only, every client key of the fleet authorized.
pub(crate) fn write_sshd(layers: &Layers, port: u16, options: &[String]) {
    let mut config: String = options.iter().map(|o| format!("{o}\n")).collect();
    config.push_str(&format!(
        "Port {port}\nListenAddress {HOST}\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxStartups 100:30:200\n\
         MaxSessions 50\nLogLevel VERBOSE\n"
    ));
    // Debian's sshd_config includes sshd_config.d first, and sshd takes a keyword's first value.
    layers.write("/etc/ssh/sshd_config.d/00-krun-test.conf", &config, 0o644);
    let authorized: String = KeyKind::ALL
        .iter()
        .map(|kind| client_public_key(*kind) + "\n")
        .collect();
    layers.write("/root/.ssh/authorized_keys", &authorized, 0o600);
    set_mode(&layers.path("/root/.ssh"), 0o700);
}

/// A booted machine's processes: systemd-nspawn and, inside it, systemd as PID 1.
pub(crate) struct Booted {
    nspawn: Child,
    pub init_pid: u32,
}

/// Boots `layers.root` as machine `name` with `binds` (`host:inside`, writable when the flag
/// says so) and waits until its sshd accepts connections on `port`.
pub(crate) fn boot(
    layers: &Layers,
    name: &str,
    port: u16,
    binds: &[(PathBuf, &str, bool)],
) -> Booted {
    ensure_nspawn_runtime_dir();
    let console = fs::File::create(layers.dir.join("console.log")).expect("create console.log");
    let mut command = Command::new("systemd-nspawn");
    command
        .arg("--boot")
        .arg("--quiet")
        .arg(format!("--directory={}", layers.root.display()))
        // Machine names are host-wide (nspawn keeps state under /run by name).
        .arg(format!("--machine=krun-{}-{name}", std::process::id()))
        .arg(format!("--hostname={name}"))
        .arg("--register=no")
        .arg("--keep-unit")
        .arg("--console=passive")
        // containerd's and Docker's layers must live on a filesystem overlayfs can stack on.
        .arg(format!(
            "--bind={}:/var/lib/containerd",
            layers.dir.join("containerd").display()
        ))
        .arg(format!(
            "--bind={}:/var/lib/docker",
            layers.dir.join("docker").display()
        ));
    for (host, inside, writable) in binds {
        let option = if *writable { "--bind" } else { "--bind-ro" };
        command.arg(format!("{option}={}:{inside}", host.display()));
    }
    command
        .stdin(Stdio::null())
        .stdout(console.try_clone().expect("clone console.log"))
        .stderr(console);
    let mut nspawn = spawn_tied(command).expect("start systemd-nspawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut init_pid = None;
    loop {
        if let Ok(Some(status)) = nspawn.try_wait() {
            panic!(
                "{name}: systemd-nspawn exited ({status}) while booting:\n{}",
                fs::read_to_string(layers.dir.join("console.log")).unwrap_or_default()
            );
        }
        if init_pid.is_none() {
            init_pid = container_init(nspawn.id());
            if let Some(pid) = init_pid {
                fs::write(layers.dir.join("init.pid"), pid.to_string()).expect("write init.pid");
            }
        }
        if init_pid.is_some() && sshd_answers(port) {
            break;
        }
        if Instant::now() > deadline {
            kill_tree(nspawn.id());
            panic!(
                "{name}: sshd on port {port} did not answer within 60s of boot:\n{}",
                fs::read_to_string(layers.dir.join("console.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Booted {
        nspawn,
        init_pid: init_pid.expect("the container's init"),
    }
}

impl Booted {
    /// Powers the machine off hard: every process in it dies at once.
    pub fn kill(mut self) {
        kill_tree(self.nspawn.id());
        let _ = self.nspawn.wait();
    }
}

/// Unmounts a machine's overlay (after its processes are gone).
pub(crate) fn unmount(layers: &Layers) {
    unmount_under(&layers.dir);
}

/// Runs `script` with `sh -c` inside the machine (its mount, PID, UTS and IPC namespaces), as
/// root, outside any ssh session: the harness's own door, for provisioning and assertions.
pub(crate) fn enter(init_pid: u32, script: &str) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--target={init_pid}"))
        .args(["--mount", "--uts", "--ipc", "--pid", "--"])
        .args([
            "env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8",
        ])
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("run nsenter")
}

fn sshd_answers(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut stream) = TcpStream::connect_timeout(
        &format!("{HOST}:{port}").parse().expect("an address"),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut banner = [0u8; 4];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-"
}

/// PID 1 of the container: nspawn's child running systemd.
fn container_init(nspawn: u32) -> Option<u32> {
    let entries = fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may contain ") "; the fields after it start at the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let (comm, rest) = (&stat[..close], &stat[close + 1..]);
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(nspawn) && comm.ends_with("(systemd") {
            return Some(pid);
        }
    }
    None
}

/// systemd-nspawn keeps per-machine state under /run/systemd/nspawn and only deletes it from a
/// tmpfs; where /run is not one (some sandboxes), a tmpfs is mounted there, once.
fn ensure_nspawn_runtime_dir() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new("/run/systemd/nspawn");
        fs::create_dir_all(dir).expect("create /run/systemd/nspawn");
        if !is_tmpfs(dir) {
            run(Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(dir));
        }
    });
}

fn is_tmpfs(path: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: statfs fills the zeroed struct; the path is a valid C string.
    unsafe {
        let mut stat: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut stat) == 0 && stat.f_type == libc::TMPFS_MAGIC
    }
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A port for sshd nobody else in this process was given.
pub(crate) fn port() -> u16 {
    free_port()
}

/// Kills the machines of test processes that died before their exit handler ran (their PID 1
/// is recorded in `init.pid`) and unmounts their layers; called before a stale work directory
/// is removed.
pub fn reap_stale(work_dir: &Path) {
    let machines = work_dir.join("machines");
    for entry in fs::read_dir(&machines).into_iter().flatten().flatten() {
        if let Some(pid) = fs::read_to_string(entry.path().join("init.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "systemd" {
                kill_tree(pid);
            }
        }
    }
    unmount_under(work_dir);
}
