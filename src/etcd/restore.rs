//! Restoring an etcd cluster from one snapshot: the command each member's node runs.
//!
//! Every member gets a fresh data directory made from the same snapshot with
//! `etcdutl snapshot restore` (etcd 3.5; `etcdctl snapshot restore` on 3.4, which checks the
//! snapshot's hash the same way), its own name and peer URLs, the whole cluster's
//! `--initial-cluster` and a NEW cluster token, so that the restored members cannot mistake an
//! old member still running somewhere for one of theirs. The old data directory is moved aside,
//! never deleted.

use crate::quote::{join, quote};

/// What one member's restore needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRestore {
    /// The snapshot file on the member's node.
    pub snapshot: String,
    pub name: String,
    /// `m0=http://10.0.0.1:2380,m1=…`, every member of the restored cluster.
    pub initial_cluster: String,
    pub token: String,
    pub peer_urls: Vec<String>,
    pub data_dir: String,
    /// `etcdutl` or `etcdctl` to use; empty: whichever the node has (etcdutl first).
    pub tool: String,
    /// Names the moved-aside directory (`<data_dir>.before-restore-<tag>`).
    pub tag: String,
}

impl MemberRestore {
    /// The shell command: restore into `<data_dir>.krun-restore`, move the old directory aside,
    /// move the new one into place with the old one's owner, mode 0700.
    pub fn command(&self) -> String {
        let tool = if self.tool.is_empty() {
            "tool=$(command -v etcdutl || command -v etcdctl) || { echo 'neither etcdutl nor etcdctl is on this node (pass tool)' >&2; exit 1; }".to_owned()
        } else {
            format!("tool={}", quote(&self.tool))
        };
        let restore = join([
            "snapshot",
            "restore",
            &self.snapshot,
            "--name",
            &self.name,
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-token",
            &self.token,
            "--initial-advertise-peer-urls",
            &self.peer_urls.join(","),
        ]);
        format!(
            "set -u; data={data}; new=\"$data.krun-restore\"; old=\"$data.before-restore-{tag}\"; n=0; \
             while [ -e \"$old\" ]; do n=$((n+1)); old=\"$data.before-restore-{tag}.$n\"; done; \
             {tool}; rm -rf \"$new\" || exit 1; \
             ETCDCTL_API=3 \"$tool\" {restore} --data-dir \"$new\" || exit 1; \
             if [ -e \"$data\" ]; then chown -R --reference=\"$data\" \"$new\" 2>/dev/null; mv \"$data\" \"$old\" || exit 1; \
             echo \"the old data directory is kept as $old\"; fi; \
             chmod 700 \"$new\" && mv \"$new\" \"$data\" || exit 1; \
             echo \"restored $data for member {name}, cluster token {token}\"",
            data = quote(&self.data_dir),
            tag = self.tag,
            name = self.name,
            token = self.token,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_uses_a_new_token_and_keeps_the_old_data() {
        let restore = MemberRestore {
            snapshot: "/var/lib/krun/etcd-restore/abc.db".into(),
            name: "m1".into(),
            initial_cluster: "m0=http://a:2380,m1=http://b:2380".into(),
            token: "krun-restore-abc".into(),
            peer_urls: vec!["http://b:2380".into()],
            data_dir: "/var/lib/etcd".into(),
            tool: String::new(),
            tag: "abc".into(),
        };
        let command = restore.command();
        assert!(
            command.contains(
                "snapshot restore /var/lib/krun/etcd-restore/abc.db --name m1 --initial-cluster m0=http://a:2380,m1=http://b:2380 --initial-cluster-token krun-restore-abc --initial-advertise-peer-urls http://b:2380 --data-dir \"$new\""
            ),
            "{command}"
        );
        assert!(command.contains("mv \"$data\" \"$old\""), "{command}");
        assert!(!command.contains("rm -rf \"$data\""), "{command}");
    }
}
