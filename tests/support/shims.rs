//! Stand-ins for the node commands that cannot run in a test machine: systemctl, the package
//! managers, kubelet/kubeadm, the container runtimes' clients (crictl, ctr, docker, crio) and the
//! disk tools (mkfs, wipefs, blkid, mount, umount, findmnt).
//!
//! They are small POSIX sh scripts (`tests/support/shims/*.sh`, each run after `common.sh` and
//! `disks.sh`) in each node's `bin/`, first on the session PATH, keeping
//! their state in `<node>/state` so that a query after a change tells the truth
//! (`dpkg-query -W -f='${Version}' kubelet` after `apt-get install kubelet=1.21.14-00`).
//! Output formats and exit codes follow the real tools for the subset krun uses, including
//! their refusals: no root, no `-y`, unknown package or version, held package, unknown unit,
//! a kubeadm older than the version it is asked to apply, a runtime client whose daemon is down.
//!
//! Every node gets every package manager script. The ones that do not belong to the node's OS
//! answer "command not found" (exit 127), as the real node would, and that also guarantees a
//! playbook that picks the wrong manager can never reach the real apt-get of the test machine.
//! The disk tools only record: no real device is ever touched.
//!
//! A node whose directory holds `sim-url` (written by the lab fixture) is a node of the simulated
//! cluster: systemctl starting or stopping kubelet, or the runtime kubelet points at, reports
//! the node's kubelet version, runtime version and readiness to the simulator's `/sim/` API,
//! and kubeadm moves the control plane there. `sim.log` in the node directory lists the reports.
//!
//! State layout (all plain text):
//! - `state/pkgs/<name>`: installed version (`1.21.14-00`, `1.21.14-0`, `1.21.14-1`)
//! - `state/held/<name>`: apt-mark hold
//! - `state/units/<unit>`: `<active|inactive|failed> <enabled|disabled>`
//! - `state/changes.log`: one line per mutating command, in order
//! - `state/containers/<runtime>`: `<id> <running|exited> <name>` per container
//! - `state/images/<runtime>`: pulled image references
//! - `state/disks/<name>`: `<fstype> <uuid>` of a block device (empty: unformatted)
//! - `state/mounts`: `<device> <dir> <fstype>` per mount
//! - `state/joined`: present while kubeadm join holds (the CRI socket it joined with)
//! - `faults/kubelet` (not state): kubelet crashes on start, see `Node::break_kubelet`
//! - `journal/<unit>` (not state): what `journalctl -u <unit>` prints (kubelet's start failures)
//! - `repo/<name>`: versions the node's package repository offers, one per line (not state)
//! - `refused-registries` (not state): registry hosts the node's runtime cannot pull from, one
//!   per line; crictl and ctr fail on their images as containerd does against a registry it
//!   cannot speak to (seed 000), see `Node::refuse_registry`
//! - `../../cluster/`: shared by the fleet, like the cluster's own state: `tokens`, `ca-hash`,
//!   `version` (without a simulator) and `kubelet-config.yaml` (what kubeadm writes to nodes)

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Which package manager a node's OS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageFamily {
    Apt,
    /// dnf, with yum as an alias (RHEL 8+ and derivatives).
    Dnf,
    /// yum only (CentOS 7).
    Yum,
    Pacman,
}

impl PackageFamily {
    fn name(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Dnf => "dnf",
            Self::Yum => "yum",
            Self::Pacman => "pacman",
        }
    }
}

/// Writes every shim into `bin`, wired to the state under `node_dir`.
pub fn install(bin: &Path, node_dir: &Path, family: PackageFamily) -> io::Result<()> {
    fs::create_dir_all(bin)?;
    let header = [COMMON, DISKS]
        .concat()
        .replace("__NODE_DIR__", &sh_quote(&node_dir.to_string_lossy()))
        .replace("__FAMILY__", family.name());
    for (name, body) in SHIMS {
        let path = bin.join(name);
        fs::write(&path, format!("{header}\n{body}"))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Helpers shared by every shim.
const COMMON: &str = include_str!("shims/common.sh");

const SHIMS: &[(&str, &str)] = &[
    ("systemctl", SYSTEMCTL),
    ("apt-get", APT_GET),
    ("apt-mark", APT_MARK),
    ("apt-cache", APT_CACHE),
    ("dpkg-query", DPKG_QUERY),
    ("dpkg", DPKG),
    ("dnf", DNF),
    ("yum", DNF),
    ("rpm", RPM),
    ("pacman", PACMAN),
    ("journalctl", JOURNALCTL),
    ("kubelet", KUBELET),
    ("kubeadm", KUBEADM),
    ("crictl", CRICTL),
    ("ctr", CTR),
    ("docker", DOCKER),
    ("crio", CRIO),
    ("mkfs.ext4", MKFS),
    ("mkfs.xfs", MKFS),
    ("wipefs", WIPEFS),
    ("blkid", BLKID),
    ("mount", MOUNT),
    ("umount", UMOUNT),
    ("findmnt", FINDMNT),
];

const SYSTEMCTL: &str = include_str!("shims/systemctl.sh");

const APT_GET: &str = include_str!("shims/apt-get.sh");

const APT_MARK: &str = include_str!("shims/apt-mark.sh");

const APT_CACHE: &str = include_str!("shims/apt-cache.sh");

const DPKG_QUERY: &str = include_str!("shims/dpkg-query.sh");

const DPKG: &str = include_str!("shims/dpkg.sh");

/// dnf and yum share one script; yum on a dnf node is the alias it is on RHEL 8+.
const DNF: &str = include_str!("shims/dnf.sh");

const RPM: &str = include_str!("shims/rpm.sh");

const PACMAN: &str = include_str!("shims/pacman.sh");

/// journalctl -u UNIT [-n N]: what the shims logged for the unit (kubelet's start failures).
const JOURNALCTL: &str = include_str!("shims/journalctl.sh");

const KUBELET: &str = include_str!("shims/kubelet.sh");

/// kubeadm at the installed package's version. `upgrade apply` and `upgrade node` move the
/// simulator's control plane (static pod images, `/version`); `join` and `reset` (un)register the
/// node; tokens and the kubelet configuration kubeadm hands out are fleet-wide, in `cluster/`.
const KUBEADM: &str = include_str!("shims/kubeadm.sh");

/// crictl against the runtime kubelet points at (or `--runtime-endpoint`): it answers only while
/// that runtime's unit is active. Containers live in `state/containers/<runtime>`.
const CRICTL: &str = include_str!("shims/crictl.sh");

/// ctr, containerd's own client: answers while containerd.service is active.
const CTR: &str = include_str!("shims/ctr.sh");

/// docker: `ps`, `stop`, `rm`, `info`, `version`; answers while docker.service is active.
/// Containers are `state/containers/docker` lines: `<id> <running|exited> <name>`.
const DOCKER: &str = include_str!("shims/docker.sh");

const CRIO: &str = include_str!("shims/crio.sh");

/// Disks: `state/disks/<name>` holds `<fstype> <uuid>` (empty when unformatted); mounts are
/// `state/mounts` lines `<device> <dir> <fstype>`. Nothing touches a real device.
const DISKS: &str = include_str!("shims/disks.sh");

const MKFS: &str = include_str!("shims/mkfs.sh");

const WIPEFS: &str = include_str!("shims/wipefs.sh");

const BLKID: &str = include_str!("shims/blkid.sh");

const MOUNT: &str = include_str!("shims/mount.sh");

const UMOUNT: &str = include_str!("shims/umount.sh");

const FINDMNT: &str = include_str!("shims/findmnt.sh");
