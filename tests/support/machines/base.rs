//! The root filesystem every test machine boots from: Debian 12 (`debootstrap --variant=minbase`)
//! with systemd, sshd, and the package managers and runtimes nodes need, built once per machine
//! and cached under `target/test-machines/`. Machines never write to it: each boots an overlay.
//!
//! Building takes about two minutes (debootstrap, then `apt-get install` in a chroot) and needs
//! `debootstrap` and Debian's package mirror; the result is keyed by the package list, so
//! changing [`EXTRA_PACKAGES`] builds a new root beside the old one.

use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::support::require;

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// What debootstrap installs itself: systemd as init, dbus for systemctl, sshd to reach the node.
const BOOT_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
];

/// What nodes need on top: the real package managers of the distributions nodes play (dpkg/apt
/// come with the base), containerd and Docker (Debian's docker.io is 20.10.24, the Docker of the
/// field report's nodes), Python for the kubeadm/kubelet/CRI-O stand-ins, curl, sudo for the
/// non-root login.
const EXTRA_PACKAGES: &[&str] = &[
    "python3",
    "python3-yaml",
    "curl",
    "ca-certificates",
    "containerd",
    "docker.io",
    "dnf",
    "rpm",
    "pacman-package-manager",
    "sudo",
    "procps",
    "kmod",
    "psmisc",
];

/// Timers that would run apt or dpkg behind a test's back.
const MASKED_UNITS: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
];

/// Bumped when the way the root is prepared changes (not only its package list).
const RECIPE: u32 = 1;

/// The cache directory (`<target>/test-machines`).
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-machines")
}

/// The base root, built on first use; `None` (after saying why) when debootstrap or root
/// privileges are missing outside CI.
pub fn base_root() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        if !require(&["debootstrap", "chroot", "systemd-nspawn"], true) {
            return None;
        }
        Some(build_once())
    })
    .as_deref()
}

fn recipe_key() -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{RECIPE}\n{SUITE}\n"));
    for list in [BOOT_PACKAGES, EXTRA_PACKAGES, MASKED_UNITS] {
        hash.update(list.join(",") + "\n");
    }
    hex::encode(&hash.finalize()[..6])
}

fn build_once() -> PathBuf {
    let cache = cache_dir();
    fs::create_dir_all(&cache).expect("create the machine cache directory");
    let root = cache.join(format!("{SUITE}-{}", recipe_key()));
    // Test binaries and parallel `cargo test` runs share the cache: one builds, the others wait.
    let _lock = lock(&cache.join(".lock"));
    if root.join(".complete").exists() {
        return root;
    }
    let building = cache.join(format!("{SUITE}-{}.building", recipe_key()));
    if building.exists() {
        unmount_under(&building);
        fs::remove_dir_all(&building).expect("remove a half-built root");
    }
    eprintln!(
        "building the test machines' root filesystem in {} (once; about two minutes)",
        root.display()
    );
    run(Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", BOOT_PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&building)
        .arg(MIRROR));
    install_extras(&building);
    fs::write(building.join(".complete"), recipe_key()).expect("mark the root complete");
    fs::rename(&building, &root).expect("move the root into place");
    remove_other_keys(&cache, &format!("{SUITE}-"), &root);
    root
}

/// Removes the cached builds named `prefix<key>` other than `keep` (made from other inputs; a
/// root is about 650 MB).
pub(crate) fn remove_other_keys(cache: &Path, prefix: &str, keep: &Path) {
    for entry in fs::read_dir(cache).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && entry.path() != keep && !name.ends_with(".building") {
            unmount_under(&entry.path());
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn install_extras(root: &Path) {
    // No service starts inside the chroot (Debian's policy-rc.d convention).
    let policy = root.join("usr/sbin/policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n").expect("write policy-rc.d");
    set_mode(&policy, 0o755);
    let proc_dir = root.join("proc");
    run(Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir));
    let installed = Command::new("chroot")
        .arg(root)
        .args(["apt-get", "install", "-y", "-q", "--no-install-recommends"])
        .args(EXTRA_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("run apt-get in the chroot");
    run(Command::new("umount").arg(&proc_dir));
    assert!(
        installed.status.success(),
        "apt-get install in the test root failed:\n{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    run(Command::new("chroot").arg(root).args(["apt-get", "clean"]));
    fs::remove_file(&policy).expect("remove policy-rc.d");
    // Nodes see only the repositories a test gives them, never Debian's mirror.
    let _ = fs::remove_file(root.join("etc/apt/sources.list"));
    for entry in fs::read_dir(root.join("var/lib/apt/lists"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.path().is_file() {
            let _ = fs::remove_file(entry.path());
        }
    }
    for unit in MASKED_UNITS {
        let _ = std::os::unix::fs::symlink("/dev/null", root.join("etc/systemd/system").join(unit));
    }
    // Each machine gets host keys of its own (see boot.rs); none are shared through the base.
    for entry in fs::read_dir(root.join("etc/ssh"))
        .expect("read /etc/ssh")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("ssh_host_") {
            fs::remove_file(entry.path()).expect("remove a base host key");
        }
    }
    // Runtimes run only on nodes that are meant to have them (the lab enables them).
    for wants in [
        "multi-user.target.wants/containerd.service",
        "multi-user.target.wants/docker.service",
        "sockets.target.wants/docker.socket",
    ] {
        let _ = fs::remove_file(root.join("etc/systemd/system").join(wants));
    }
}

/// Holds an exclusive `flock` on `path` until dropped.
pub(crate) struct Lock(File);

pub(crate) fn lock(path: &Path) -> Lock {
    let file = File::create(path).expect("create the lock file");
    // SAFETY: flock on a descriptor we own; blocks until the other holder closes it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    Lock(file)
}

/// Unmounts everything mounted at or below `dir` (deepest first), e.g. a chroot's /proc left
/// behind by a test process that was killed.
pub(crate) fn unmount_under(dir: &Path) {
    let Ok(canonical) = dir.canonicalize() else {
        return;
    };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .filter(|point| Path::new(point).starts_with(&canonical))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

pub(crate) fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
