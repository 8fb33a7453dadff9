//! The journal is a precondition of every change: with a state directory that cannot be
//! written, or that fills up mid-run, no step runs without its intent on disk.

use std::path::Path;
use std::process::Command;

use super::Setup;
use crate::support::{Fleet, require};

/// A small tmpfs at `dir` (`options` such as `ro` or `size=64k`), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {}",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_state_directory_that_cannot_be_written_runs_nothing() {
    if !require(&["mount", "umount"], true) {
        return;
    }
    let Some(fleet) = Fleet::start(1) else { return };
    let setup = Setup::new(&fleet, "sh(node, \"touch $KRUN_NODE_DIR/changed\");\n");
    let state = setup.dir.path().join("state");
    let _readonly = Tmpfs::mount(&state, "ro,size=64k");
    setup
        .krun(&["--node", "n1", "--state-dir", state.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_has("cannot create the run journal")
        .stderr_has("Nothing was run");
    assert!(
        !fleet.node("n1").dir().join("changed").exists(),
        "a change ran without a journal"
    );
}

#[test]
fn a_disk_that_fills_mid_run_stops_the_run_before_the_next_step() {
    if !require(&["mount", "umount"], true) {
        return;
    }
    let Some(fleet) = Fleet::start(1) else { return };
    // Each step records 4 KiB of output in the journal; 64 KiB fill up within a few steps.
    let setup = Setup::new(
        &fleet,
        "for i in 0..100 {\n\
         \x20   sh(node, `touch $KRUN_NODE_DIR/step-${i}; head -c 4096 /dev/zero | tr '\\\\0' x`);\n\
         }\n",
    );
    let state = setup.dir.path().join("state");
    let _small = Tmpfs::mount(&state, "size=64k");
    let out = setup
        .krun(&["--node", "n1", "--state-dir", state.to_str().unwrap()])
        .run();
    out.code(1)
        .stderr_has("cannot write the run journal")
        .stderr_has("no further step runs");
    let runs = std::fs::read_dir(state.join("runs")).unwrap();
    let dir = runs.map(|e| e.unwrap().path()).next().expect("a journal");
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap_or_default();
    let intents: Vec<String> = journal
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|r| r["type"] == "intent")
        .map(|r| r["command"].as_str().unwrap_or_default().to_owned())
        .collect();
    let node_dir = fleet.node("n1").dir().to_path_buf();
    let ran: Vec<usize> = (0..100)
        .filter(|i| node_dir.join(format!("step-{i}")).exists())
        .collect();
    assert!(!ran.is_empty() && ran.len() < 100, "ran {ran:?}");
    // Every step that ran on the node has its intent in the journal, and they ran in order.
    assert_eq!(ran, (0..ran.len()).collect::<Vec<_>>());
    for i in &ran {
        assert!(
            intents.iter().any(|c| c.contains(&format!("step-{i};"))),
            "step {i} ran without its intent in the journal"
        );
    }
    // `krun runs show` reads what is there, the torn end included.
    crate::cli::Krun::new()
        .args(["runs", "--state-dir", state.to_str().unwrap()])
        .run()
        .code(0);
}
