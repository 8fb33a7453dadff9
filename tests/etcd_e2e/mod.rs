//! The `krun` binary against three real etcd 3.4 members on loopback: the etcd primitives, the
//! quorum guards as an operator meets them (exit 3, the arithmetic, nothing changed), and the
//! bundled rolling-upgrade playbook, dry and for real (3.4 -> 3.5 through real sshd nodes).

mod guards;
mod playbook;
mod primitives;
mod restore;

use std::path::{Path, PathBuf};

use crate::support::etcd::EtcdCluster;

/// A healthy three-member cluster; `None` when etcd is missing outside CI (a loud skip).
pub async fn three_members() -> Option<EtcdCluster> {
    let (cluster, _client) = crate::etcd::healthy_cluster(3).await?;
    Some(cluster)
}

/// The `[etcd]` section for a cluster.
pub fn etcd_section(cluster: &EtcdCluster) -> String {
    let endpoints: Vec<String> = cluster
        .client_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    format!("\n[etcd]\nendpoints = [{}]\n", endpoints.join(", "))
}

/// A playbook and an inventory in a temporary directory.
pub struct Files {
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
}

impl Files {
    pub fn new(inventory: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inventory.toml");
        std::fs::write(&path, inventory).expect("write inventory");
        Self {
            dir,
            inventory: path,
        }
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// `krun PLAYBOOK --inventory INVENTORY ARGS...`
    pub fn krun(&self, playbook: &Path, args: &[&str]) -> crate::cli::Output {
        crate::cli::Krun::new()
            .args([
                playbook.as_os_str(),
                "--inventory".as_ref(),
                self.inventory.as_os_str(),
            ])
            .args(args)
            .run()
    }
}

/// The steps of a cluster-level run's JSON report.
pub fn steps(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["nodes"]
        .as_array()
        .expect("nodes in the report")
        .iter()
        .flat_map(|n| n["steps"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The data of the first step with `action`.
pub fn data_of(report: &serde_json::Value, action: &str) -> serde_json::Value {
    steps(report)
        .into_iter()
        .find(|s| s["action"] == action)
        .unwrap_or_else(|| panic!("no {action} step in {report:#}"))["data"]
        .clone()
}
