//! The question before a run that destroys or takes nodes out of service: asked on a terminal
//! (a pseudo-terminal from util-linux's `script`), answered with `yes` or not; skipped with
//! `--yes`; never asked without a terminal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A node nothing listens on: the run's first change fails to connect, which shows that the
/// run went on past the question (and the journal holds its intent).
const INVENTORY: &str = "[nodes.n1]\nhost = \"127.0.0.1\"\nport = 1\n";
const FORMATS: &str = "let n = find_node(\"n1\");\nsh(n, [\"mkfs.ext4\", \"-F\", \"/dev/vdb\"]);\n";
const HARMLESS: &str = "let n = find_node(\"n1\");\nsh(n, \"true\");\n";

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(playbook: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("play.rhai"), playbook).unwrap();
        std::fs::write(dir.path().join("inventory.toml"), INVENTORY).unwrap();
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `krun play.rhai --inventory inventory.toml EXTRA…`, with no cluster configured.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("KRUN_STATE_DIR", self.path().join("state"))
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .env_remove("KRUN_INVENTORY")
            .env_remove("CLICOLOR_FORCE");
        command
    }

    fn krun_line(extra: &[&str]) -> String {
        let mut words = vec![
            env!("CARGO_BIN_EXE_krun"),
            "play.rhai",
            "--inventory",
            "inventory.toml",
        ];
        words.extend(extra);
        krun::quote::join(words)
    }

    /// On a pseudo-terminal, typing `answer`: the exit code and everything the terminal showed.
    fn on_terminal(&self, extra: &[&str], answer: &str) -> (i32, String) {
        let mut script = self.command("script");
        script
            .args(["--quiet", "--return", "--command"])
            .arg(Self::krun_line(extra))
            .arg("/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = script.spawn().expect("script runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        )
    }

    /// Without a terminal (stdin, stdout and stderr pipes).
    fn piped(&self, extra: &[&str]) -> super::Output {
        let out = self
            .command(env!("CARGO_BIN_EXE_krun"))
            .args(["play.rhai", "--inventory", "inventory.toml"])
            .args(extra)
            .stdin(Stdio::piped())
            .output()
            .unwrap();
        super::Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The journals written: one per run that started.
    fn runs(&self) -> Vec<String> {
        std::fs::read_dir(self.path().join("state/runs"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the run's journal records the intent to format the disk.
    fn formatted(&self) -> bool {
        self.runs().iter().any(|id| {
            std::fs::read_to_string(
                self.path()
                    .join("state/runs")
                    .join(id)
                    .join("journal.jsonl"),
            )
            .is_ok_and(|j| j.contains("\"intent\"") && j.contains("mkfs.ext4 -F /dev/vdb"))
        })
    }
}

fn have_script() -> bool {
    crate::support::require(&["script"], false)
}

const QUESTION: &str = "Go on? Only yes goes on: ";

#[test]
fn no_on_a_terminal_changes_nothing() {
    if !have_script() {
        return;
    }
    let scratch = Scratch::new(FORMATS);
    let (code, screen) = scratch.on_terminal(&[], "no\n");
    assert_eq!(code, 3, "{screen}");
    for shown in [
        "This run changes the cluster: play.rhai",
        "cluster          1 change: formats a disk",
        "Destroys what a second run cannot give back:",
        "n1               step 1 (line 2): mkfs.ext4 -F /dev/vdb — formats a disk",
        "Plan: 1 node, 1 change, 1 destructive.",
        QUESTION,
        "not confirmed: nothing was changed",
    ] {
        assert!(
            screen.contains(shown),
            "{shown:?} not on the terminal:\n{screen}"
        );
    }
    assert!(
        scratch.runs().is_empty(),
        "a run started: {:?}",
        scratch.runs()
    );
}

#[test]
fn yes_on_a_terminal_goes_on_after_the_question() {
    if !have_script() {
        return;
    }
    let scratch = Scratch::new(FORMATS);
    let (code, screen) = scratch.on_terminal(&[], "yes\n");
    // The run went on: the disk's format was attempted on the unreachable node.
    assert_eq!(code, 1, "{screen}");
    assert!(
        scratch.formatted(),
        "no journaled intent to format:\n{screen}"
    );
    let asked = screen.find(QUESTION).expect("the question");
    let failed = screen
        .find("cannot connect to 127.0.0.1:1")
        .expect("the run's failure");
    assert!(
        asked < failed,
        "the run started before the answer:\n{screen}"
    );
    // The summary ends with the command that resumes the run.
    let resume = format!("Resume with: krun resume {}", scratch.runs()[0]);
    assert!(
        screen.contains(&resume),
        "{resume:?} not on the terminal:\n{screen}"
    );
    assert_eq!(
        scratch.runs().len(),
        1,
        "the plan before the question is not journaled"
    );
}

#[test]
fn yes_on_the_command_line_does_not_ask() {
    if !have_script() {
        return;
    }
    let scratch = Scratch::new(FORMATS);
    let (code, screen) = scratch.on_terminal(&["--yes"], "");
    assert_eq!(code, 1, "{screen}");
    assert!(!screen.contains(QUESTION), "asked despite --yes:\n{screen}");
    assert!(scratch.formatted());
}

#[test]
fn without_a_terminal_krun_never_asks() {
    let scratch = Scratch::new(FORMATS);
    let out = scratch.piped(&[]);
    out.code(1);
    assert!(!out.stderr.contains(QUESTION) && !out.stdout.contains(QUESTION));
    assert!(scratch.formatted(), "{}", out.stderr);
}

#[test]
fn a_run_that_neither_destroys_nor_drains_is_not_asked_about() {
    if !have_script() {
        return;
    }
    let scratch = Scratch::new(HARMLESS);
    let (code, screen) = scratch.on_terminal(&[], "");
    assert_eq!(code, 1, "{screen}");
    assert!(!screen.contains(QUESTION), "{screen}");
}
