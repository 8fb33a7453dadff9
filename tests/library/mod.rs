//! Playbook libraries with versions, a lock and vendoring, against real git: repositories made
//! with the `git` command, served over `file://` and by a real `git daemon` on loopback.

mod bench;
mod commands;
mod e2e;
mod resolve;

use std::path::{Path, PathBuf};

use crate::cli::{Krun, Output};
use crate::support::git::git;

/// A workspace: where the library repositories, the cluster team's repository and krun's cache
/// live, all in one temp dir.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub cache: PathBuf,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        Workspace { dir, cache }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `krun ARGS` in `project`, with this workspace's cache.
    pub fn krun(&self, project: &Path, args: &[&str]) -> Output {
        Krun::new()
            .current_dir(project)
            .env("KRUN_CACHE_DIR", &self.cache)
            .args(args)
            .run()
    }

    /// A cluster team's repository: `krun init`, a playbook importing `imports`, committed.
    pub fn cluster_repo(&self, name: &str, playbook: &str) -> PathBuf {
        let dir = self.path().join(name);
        self.krun(self.path(), &["init", name]).code(0);
        std::fs::write(dir.join("playbooks/play.rhai"), playbook).unwrap();
        std::fs::write(
            dir.join("inventory.toml"),
            "[nodes.n1]\nhost = \"127.0.0.1\"\n",
        )
        .unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        dir
    }
}

/// The commands an offline dry-run of `playbooks/play.rhai` would run on n1, and its JSON.
pub fn planned_commands(json: &serde_json::Value) -> Vec<String> {
    json["nodes"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["command"].as_str().map(str::to_owned))
        .collect()
}

/// Arguments of an offline dry-run of the cluster repository's playbook, as JSON.
pub const DRY_RUN: &[&str] = &[
    "playbooks/play.rhai",
    "--inventory",
    "inventory.toml",
    "--dry-run",
    "--offline",
    "--output",
    "json",
];

/// A playbook that runs `echo` with what the library's `drain::policy()` returns.
pub const PLAYBOOK: &str =
    "import \"teamlib/drain\" as drain;\nsh(find_node(\"n1\"), [\"echo\", drain::policy()]);\n";

/// teamlib's drain module at a given release.
pub fn drain_module(policy: &str) -> String {
    format!(
        "//! The platform team's drain policy.\n\n/// The policy name.\nfn policy() {{ \"{policy}\" }}\n"
    )
}

/// The locked entry of `name` from `dir/krun.lock`, as TOML.
pub fn locked(dir: &Path, name: &str) -> toml::Value {
    let text = std::fs::read_to_string(dir.join("krun.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    lock["library"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in krun.lock:\n{text}"))
        .clone()
}
