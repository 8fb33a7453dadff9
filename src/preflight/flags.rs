//! kubelet flags the target release removed, still in a node's flag files.
//!
//! kubelet exits on a flag it does not know ("unknown flag: --network-plugin"), and the upgrade
//! then looks like a kubelet that never comes back. kubeadm cleans only its own
//! `kubeadm-flags.env` (from 1.26, and only `--container-runtime`); `/etc/default/kubelet`,
//! `/etc/sysconfig/kubelet` and Arch's `/etc/kubernetes/kubelet.env` are the operator's. So on
//! each node to be upgraded (every inventory node when none is named), when a target is given,
//! preflight reads those files over ssh, one read-only step per node, and names every removed
//! flag still there. The bundled SOPs drop them when they restart kubelet at the new version
//! (`node::restart_kubelet`), so this is a warning: a team's own SOP must do the same.

use std::sync::Arc;

use super::{Finding, Severity, Steps, Version};
use crate::effects::Effect;
use crate::host::kubelet_config::{Arg, EnvFile, FLAG_FILES, variables_for};
use crate::inventory::Inventory;

const FILE: &str = "--krun-flags-file--";

/// The command printing each flags file after a marker line naming it.
fn read_command() -> String {
    let files: Vec<String> = FLAG_FILES
        .iter()
        .map(|(path, _)| crate::quote::quote(path))
        .collect();
    format!(
        "for f in {}; do [ -r \"$f\" ] || continue; echo \"{FILE} $f\"; cat \"$f\"; echo; done; exit 0",
        files.join(" ")
    )
}

/// The removed flags in one node's files, as `(file, flag)`.
fn removed_in(stdout: &str, removed: &[&str]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        if let Some(path) = line.strip_prefix(FILE).map(str::trim) {
            files.push((path.to_owned(), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (path, text) in files {
        let Ok(file) = EnvFile::parse(&text, variables_for(&path)) else {
            continue;
        };
        for arg in file.args() {
            let Arg::Flag { name, .. } = arg else {
                continue;
            };
            if removed.contains(&name.as_str())
                && !found.iter().any(|(p, f)| *p == path && *f == name)
            {
                found.push((path.clone(), name));
            }
        }
    }
    found
}

/// Reads the flag files of the nodes to be upgraded and names the flags `target` removed.
pub fn check(
    steps: &Steps,
    inventory: &Inventory,
    nodes: &[String],
    target: Option<Version>,
) -> Vec<Finding> {
    let Some(target) = target else {
        return Vec::new();
    };
    let removed = crate::versions::kubelet_flags_removed_by(target);
    if removed.is_empty() {
        return Vec::new();
    }
    let reads: Vec<(String, String, Effect)> = inventory
        .nodes
        .values()
        .filter(|spec| nodes.is_empty() || nodes.contains(&spec.name))
        .map(|spec| {
            (
                spec.name.clone(),
                "read kubelet's flag files".to_owned(),
                Effect::Exec {
                    node: Arc::new(spec.clone()),
                    command: read_command(),
                    timeout: Some(std::time::Duration::from_secs(60)),
                },
            )
        })
        .collect();
    let names: Vec<String> = reads.iter().map(|(name, _, _)| name.clone()).collect();
    let mut found = Vec::new();
    for (node, result) in names
        .iter()
        .zip(steps.read_concurrently("preflight", reads, true))
    {
        let Ok(outcome) = result else { continue };
        if !outcome.observed || outcome.exit_code != 0 {
            continue;
        }
        for (file, flag) in removed_in(&outcome.stdout, &removed) {
            found.push(Finding::new(
                "kubelet-removed-flag",
                &format!("{node}/{flag}"),
                Severity::Warn,
                format!("node/{node}"),
                format!(
                    "{file} on {node} passes --{flag}, which kubelet {target} no longer has: \
                     kubelet exits at start (\"unknown flag: --{flag}\")"
                ),
                format!(
                    "remove it before kubelet moves to {target}: set_kubelet_flags(node, \
                     #{{ \"{flag}\": () }}, #{{ file: \"{file}\" }}); the bundled SOPs do so \
                     when they restart kubelet (node::restart_kubelet)"
                ),
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_flags_are_found_in_every_file_they_are_in() {
        let out = format!(
            "{FILE} /var/lib/kubelet/kubeadm-flags.env\n\
             KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n\n\
             {FILE} /etc/kubernetes/kubelet.env\n\
             KUBELET_ARGS=--cni-bin-dir=/usr/lib/cni\n\n"
        );
        let removed = crate::versions::kubelet_flags_removed_by(Version::parse("1.27.4").unwrap());
        assert_eq!(
            removed_in(&out, &removed),
            [
                (
                    "/var/lib/kubelet/kubeadm-flags.env".to_owned(),
                    "container-runtime".to_owned()
                ),
                (
                    "/etc/kubernetes/kubelet.env".to_owned(),
                    "cni-bin-dir".to_owned()
                ),
            ]
        );
        // 1.23 removed none of them.
        let none = crate::versions::kubelet_flags_removed_by(Version::parse("1.23.17").unwrap());
        assert!(removed_in(&out, &none).is_empty());
    }
}
