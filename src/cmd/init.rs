//! `krun init`: a team's playbook repository to start from — a manifest, a playbook built on the
//! stdlib's `node` module, an inventory example and the CI line that checks them.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::Error;
use crate::library::{self, MANIFEST};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  krun init ops-playbooks
  krun init --name cluster-ops .

Nothing is overwritten: an existing file is an error naming it.")]
pub struct InitArgs {
    /// The directory to create the repository in (created when missing).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The repository's name in krun.toml (default: the directory's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

const PLAYBOOK: &str = r#"//! Restart kubelet on a node inside a drain: cordon, drain (PodDisruptionBudgets respected),
//! restart kubelet, wait until the node is Ready, uncordon. On failure the node stays cordoned.
//! A starting point: edit it into your team's SOP.
//!
//!   krun playbooks/restart-kubelet.rhai --inventory inventory.toml --node worker-1 --dry-run
//!
//! Parameters: ready_timeout (default 5m), read by the stdlib's node module.

import "node" as node_ops;

let report = node_ops::maintain(node, (), |n| node_ops::restart_kubelet(n, ()));
log(`drained and restarted: ${report}`);
"#;

const INVENTORY: &str = r#"# Copy to inventory.toml and describe your nodes; see the krun README (Inventory).

[ssh]
user = "root"
identity = "~/.ssh/id_ed25519"
known_hosts = "~/.ssh/known_hosts"

[nodes.master-1]                 # the Kubernetes node name
host = "10.0.0.1"
roles = ["control-plane", "etcd"]

[nodes.worker-1]
host = "10.0.0.11"
roles = ["worker"]
"#;

const CI: &str = r#"#!/bin/sh
# CI: compile every playbook and the library modules it imports, against krun.lock; runs nothing.
set -eu
cd "$(dirname "$0")/.."
krun check --locked playbooks/*.rhai
"#;

const GITIGNORE: &str = "# run journals\n.krun/\ninventory.toml\n";

pub fn run(args: &InitArgs) -> crate::Result<u8> {
    let dir = &args.dir;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => std::path::absolute(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
            .unwrap_or_default(),
    };
    library::manifest::check_name(&name)
        .map_err(|e| Error::input(format!("{e}; name the repository with --name")))?;
    let krun = library::krun_version();
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
requires_krun = "^{}.{}"

# Shared libraries, each at a version range over its release tags (`krun lib add` writes them):
# teamlib = {{ git = "git://git.example/teamlib.git", version = "^1.0" }}
[dependencies]
"#,
        krun.major, krun.minor
    );
    let files: [(&str, &str, bool); 5] = [
        (MANIFEST, &manifest, false),
        ("playbooks/restart-kubelet.rhai", PLAYBOOK, false),
        ("inventory.example.toml", INVENTORY, false),
        ("ci/check.sh", CI, true),
        (".gitignore", GITIGNORE, false),
    ];
    for (file, _, _) in &files {
        let path = dir.join(file);
        if path.exists() {
            return Err(Error::input(format!(
                "{} exists; krun init writes only new files",
                path.display()
            )));
        }
    }
    for (file, text, executable) in &files {
        write(&dir.join(file), text, *executable)?;
    }
    // An empty lock: the repository has no libraries yet, and `--locked` holds from the start.
    library::Lock::default().save(dir)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "created {name} in {}: {MANIFEST}, krun.lock, playbooks/restart-kubelet.rhai, \
         inventory.example.toml, ci/check.sh\nnext: krun check --locked playbooks/*.rhai",
        dir.display()
    );
    Ok(0)
}

fn write(path: &Path, text: &str, executable: bool) -> crate::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::runtime(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Error::runtime(format!("cannot write {}: {e}", path.display())))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::runtime(format!("cannot chmod {}: {e}", path.display())))?;
    }
    Ok(())
}
