//! What a backup step records in the journal, and how it is read back: the listing a node's
//! backup command prints (the dated directory on the node, every file copied with its SHA-256,
//! mode and size, the paths that did not exist, the package versions and holds), so that
//! `krun runs` can say what a run can be brought back to and `restore.rhai` can put it back.
//!
//! The copies stay on the node (they hold private keys); the journal keeps only this listing.

use std::collections::BTreeMap;

use serde::Serialize;

/// The first line of a backup listing, and its format version.
pub const HEADER: &str = "krun-backup 1";

/// How much of a node a backup copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// kubelet's and the container runtime's configuration, the package repositories, the
    /// package versions: before a kubelet or runtime change.
    Node,
    /// All of that and the node's `/etc/kubernetes` (manifests, PKI, kubeconfigs), with an etcd
    /// snapshot: before `kubeadm upgrade apply` or `upgrade node` on a control-plane node.
    ControlPlane,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Node => "node",
            Scope::ControlPlane => "control-plane",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "node" => Some(Scope::Node),
            "control-plane" => Some(Scope::ControlPlane),
            _ => None,
        }
    }
}

/// One file of a backup: where it lives on the node, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackedUpFile {
    /// Its path on the node (`/etc/kubernetes/manifests/kube-apiserver.yaml`).
    pub path: String,
    pub sha256: String,
    /// Permission bits in octal, as `stat -c %a` prints them (`600`).
    pub mode: String,
    pub size: u64,
    /// The backup directory holding its copy, under `files/` + `path`.
    pub dir: String,
}

impl BackedUpFile {
    /// Where the copy is on the node.
    pub fn copy(&self) -> String {
        format!("{}/files{}", self.dir, self.path)
    }
}

/// What one backup step recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRecord {
    pub node: String,
    pub scope: Scope,
    /// The dated directory on the node.
    pub dir: String,
    /// Whether the node is a control-plane node (kubeadm's test: its kube-apiserver manifest).
    pub control_plane: bool,
    pub files: Vec<BackedUpFile>,
    /// Paths looked for that did not exist: a restore removes nothing for them, but says so.
    pub absent: Vec<String>,
    /// Installed package versions (`kubeadm` → `1.20.15-00`).
    pub packages: BTreeMap<String, String>,
    /// Packages on hold (apt).
    pub held: Vec<String>,
}

impl BackupRecord {
    /// Parses a backup command's listing; `None` when `text` is not one.
    pub fn parse(node: &str, text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim_end);
        lines.find(|l| *l == HEADER)?;
        let mut record = BackupRecord {
            node: node.to_owned(),
            scope: Scope::Node,
            dir: String::new(),
            control_plane: false,
            files: Vec::new(),
            absent: Vec::new(),
            packages: BTreeMap::new(),
            held: Vec::new(),
        };
        for line in lines {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "scope" => record.scope = Scope::parse(rest)?,
                "dir" => record.dir = rest.to_owned(),
                "control-plane" => record.control_plane = rest == "yes",
                "file" => {
                    let mut fields = rest.splitn(4, ' ');
                    let sha256 = fields.next()?.to_owned();
                    let mode = fields.next()?.to_owned();
                    let size = fields.next()?.parse().ok()?;
                    let path = fields.next()?.to_owned();
                    record.files.push(BackedUpFile {
                        path,
                        sha256,
                        mode,
                        size,
                        dir: String::new(),
                    });
                }
                "absent" => record.absent.push(rest.to_owned()),
                "package" => {
                    let (name, version) = rest.split_once(' ')?;
                    record.packages.insert(name.to_owned(), version.to_owned());
                }
                "held" => record.held.push(rest.to_owned()),
                _ => {}
            }
        }
        if record.dir.is_empty() {
            return None;
        }
        for file in &mut record.files {
            file.dir.clone_from(&record.dir);
        }
        Some(record)
    }
}

/// Everything a run recorded about one node before changing it, earliest first: a file or a
/// package version backed up twice in the run (a node backup, then the control-plane one
/// before kubeadm) counts as it was the first time, since that is the state before the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeState {
    pub node: String,
    /// The backup directories on the node, in the order they were made.
    pub dirs: Vec<String>,
    pub control_plane: bool,
    /// By path.
    pub files: BTreeMap<String, BackedUpFile>,
    pub absent: Vec<String>,
    pub packages: BTreeMap<String, String>,
    pub held: Vec<String>,
}

impl NodeState {
    /// The state `records` (one node's, in journal order) say the node was in.
    pub fn merge<'a>(node: &str, records: impl IntoIterator<Item = &'a BackupRecord>) -> Self {
        let mut state = NodeState {
            node: node.to_owned(),
            ..NodeState::default()
        };
        for record in records {
            state.dirs.push(record.dir.clone());
            state.control_plane |= record.control_plane;
            for file in &record.files {
                state
                    .files
                    .entry(file.path.clone())
                    .or_insert_with(|| file.clone());
            }
            for path in &record.absent {
                if !state.files.contains_key(path) && !state.absent.contains(path) {
                    state.absent.push(path.clone());
                }
            }
            for (name, version) in &record.packages {
                state
                    .packages
                    .entry(name.clone())
                    .or_insert_with(|| version.clone());
            }
            if state.held.is_empty() {
                state.held.clone_from(&record.held);
            }
        }
        state
    }
}

/// An etcd snapshot a run saved on the operator's machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRecord {
    pub path: String,
    pub size: u64,
    /// SHA-256 of the database, as etcd sent it and krun verified it.
    pub sha256: String,
    pub endpoint: String,
}

impl SnapshotRecord {
    /// From an `etcd_snapshot` step's data.
    pub fn from_data(data: &serde_json::Value) -> Option<Self> {
        Some(SnapshotRecord {
            path: data["path"].as_str()?.to_owned(),
            size: data["size"].as_u64().unwrap_or(0),
            sha256: data["sha256"].as_str().unwrap_or_default().to_owned(),
            endpoint: data["endpoint"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "krun-backup 1
scope control-plane
dir /var/backups/krun/20260101T000000Z-abcdef/control-plane
control-plane yes
file 1111 600 1200 /etc/kubernetes/manifests/kube-apiserver.yaml
file 2222 644 30 /var/lib/kubelet/kubeadm-flags.env
absent /etc/default/kubelet
package kubeadm 1.20.15-00
package kubelet 1.20.15-00
held kubeadm
held kubelet
";

    #[test]
    fn a_listing_is_read_back() {
        let record = BackupRecord::parse("m1", LISTING).unwrap();
        assert_eq!(record.scope, Scope::ControlPlane);
        assert!(record.control_plane);
        assert_eq!(record.files.len(), 2);
        let manifest = &record.files[0];
        assert_eq!(manifest.mode, "600");
        assert_eq!(
            manifest.copy(),
            "/var/backups/krun/20260101T000000Z-abcdef/control-plane/files/etc/kubernetes/manifests/kube-apiserver.yaml"
        );
        assert_eq!(record.absent, ["/etc/default/kubelet"]);
        assert_eq!(record.packages["kubeadm"], "1.20.15-00");
        assert_eq!(record.held, ["kubeadm", "kubelet"]);
        assert!(BackupRecord::parse("m1", "something else").is_none());
    }

    #[test]
    fn the_first_record_of_a_file_or_package_wins() {
        let first = BackupRecord::parse(
            "m1",
            "krun-backup 1\nscope node\ndir /b/node\ncontrol-plane no\nfile aaaa 644 1 /etc/apt/sources.list.d/kubernetes.list\npackage kubeadm 1.20.15-00\n",
        )
        .unwrap();
        let second = BackupRecord::parse(
            "m1",
            "krun-backup 1\nscope control-plane\ndir /b/cp\ncontrol-plane yes\nfile bbbb 644 1 /etc/apt/sources.list.d/kubernetes.list\nfile cccc 600 1 /etc/kubernetes/admin.conf\npackage kubeadm 1.21.14-00\n",
        )
        .unwrap();
        let state = NodeState::merge("m1", [&first, &second]);
        assert_eq!(state.dirs, ["/b/node", "/b/cp"]);
        assert!(state.control_plane);
        assert_eq!(
            state.files["/etc/apt/sources.list.d/kubernetes.list"].sha256,
            "aaaa"
        );
        assert_eq!(state.files["/etc/kubernetes/admin.conf"].dir, "/b/cp");
        assert_eq!(state.packages["kubeadm"], "1.20.15-00");
    }
}
