//! krun end to end against real OpenSSH servers: the CLI, the runtime, the effects boundary and
//! the ssh transport together.

mod host_keys;
mod interrupts;
mod journal;
mod lab;
mod local_files;
mod registry;
mod resume;
mod runs;
mod secrets;
mod signals;
mod sop;

use std::path::{Path, PathBuf};

use crate::support::Fleet;

/// A playbook file and an inventory file for a fleet, in a temporary directory.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub playbook: PathBuf,
    pub inventory: PathBuf,
}

impl Setup {
    pub fn new(fleet: &Fleet, playbook: &str) -> Self {
        Self::with_inventory(&fleet.inventory_toml(), playbook)
    }

    pub fn with_inventory(inventory: &str, playbook: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("play.rhai");
        std::fs::write(&path, playbook).expect("write playbook");
        let inventory_path = dir.path().join("inventory.toml");
        std::fs::write(&inventory_path, inventory).expect("write inventory");
        Self {
            dir,
            playbook: path,
            inventory: inventory_path,
        }
    }

    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// `krun PLAYBOOK --inventory INVENTORY` plus `args`.
    /// The arguments [`Setup::krun`] passes, for a krun started by hand (to be killed).
    pub fn krun_args(&self, args: &[&str]) -> Vec<std::ffi::OsString> {
        let mut all = vec![
            self.playbook.clone().into_os_string(),
            "--inventory".into(),
            self.inventory.clone().into_os_string(),
        ];
        all.extend(args.iter().map(Into::into));
        all
    }

    pub fn krun(&self, args: &[&str]) -> crate::cli::Krun {
        crate::cli::Krun::new()
            .args([
                self.playbook.as_os_str(),
                "--inventory".as_ref(),
                self.inventory.as_os_str(),
            ])
            .args(args)
    }
}

/// Replaces what changes between runs (ports, temporary paths, run ids, durations) in text
/// meant for snapshots; JSON is re-printed with those fields masked.
pub fn stable(text: &str, fleet: &Fleet, dir: &Path) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut json) => {
            mask(&mut json);
            serde_json::to_string_pretty(&json).unwrap()
        }
        Err(_) => text.to_owned(),
    };
    let mut text = text.replace(dir.to_str().unwrap(), "[dir]");
    for node in fleet.nodes() {
        text = text.replace(
            node.dir().to_str().unwrap(),
            &format!("[{}-dir]", node.name),
        );
        text = text.replace(&format!(":{}", node.port()), ":[port]");
    }
    text
}

fn mask(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if key == "run_id" || key == "duration_ms" {
                    *field = "[masked]".into();
                } else {
                    mask(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}
