//! Reading journals back: `krun runs`, `krun runs show ID`, and what `krun resume` replays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::backup::{BackupRecord, NodeState, Scope, SnapshotRecord};
use crate::Error;

/// What separates a step's command from the guard warnings the plan shows after it.
pub const WARNING_MARK: &str = "  # WARNING: ";

/// A step's command without the warnings a guard attached: those depend on the cluster at the
/// time (a skew warning is gone once the control plane has moved), not on what the step does.
pub fn without_warnings(command: &str) -> &str {
    command.split(WARNING_MARK).next().unwrap_or(command)
}

/// The plan's form of a command with the guard's warnings attached.
pub fn with_warnings(command: &str, warnings: &[String]) -> String {
    if warnings.is_empty() {
        command.to_owned()
    } else {
        format!("{command}{WARNING_MARK}{}", warnings.join("; "))
    }
}

/// One step as the journal has it.
#[derive(Debug, Clone)]
pub struct JournalStep {
    pub seq: usize,
    /// What the step acted on: a node, or a cluster service (`kubernetes`, `etcd`).
    pub node: String,
    pub action: String,
    pub command: String,
    pub access: String,
    pub line: Option<u64>,
    pub done: Option<Value>,
}

/// One node's (or the cluster's) run as the journal has it.
#[derive(Debug, Clone, Default)]
pub struct JournalRun {
    pub status: String,
    pub steps: Vec<JournalStep>,
    pub failure: Option<Value>,
}

/// A whole journal, parsed.
#[derive(Debug, Clone)]
pub struct JournalView {
    pub id: String,
    pub header: Value,
    pub runs: BTreeMap<String, JournalRun>,
    /// The line number of a torn last record (krun was killed, or the disk filled, while
    /// writing it); the records before it are intact.
    pub torn: Option<usize>,
}

/// What became of a recorded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A step failed.
    Failed,
    /// A safety guard (krun's or the playbook's) refused: nothing past it was done.
    Refused,
    /// Ctrl-C, SIGTERM or `--timeout`.
    Interrupted,
    /// No end was recorded: krun was killed, or is still running.
    Unfinished,
    /// Every node finished.
    Done,
}

impl RunState {
    pub fn word(self) -> &'static str {
        match self {
            RunState::Failed => "failed",
            RunState::Refused => "refused",
            RunState::Interrupted => "interrupted",
            RunState::Unfinished => "unfinished",
            RunState::Done => "done",
        }
    }
}

/// Where a run stopped: the node, its last step and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stopped {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The failure's message, or what is known of the last step's outcome.
    pub reason: String,
}

/// One node's run as `krun runs show` tells it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub state: String,
    pub steps: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

/// A recorded run at a glance: `krun runs` and `krun runs show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub id: String,
    pub started_at: String,
    pub playbook: String,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumes: Option<String>,
    pub nodes: Vec<NodeSummary>,
    pub state: RunState,
    /// The first node that did not finish, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// The command line, shell-quoted (secret values masked).
    pub command: String,
    pub user: String,
    pub host: String,
    /// The line of a torn last record (krun was killed, or the disk filled, while writing it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn: Option<usize>,
    /// The playbook libraries the run used, as its journal recorded them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<Library>,
    /// What the run can be brought back to (its backups and etcd snapshots), as text lines.
    #[serde(skip)]
    pub restorable: String,
}

/// A playbook library a run used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Library {
    pub name: String,
    pub version: String,
    pub hash: String,
}

impl JournalView {
    pub fn load(state_dir: &Path, id: &str) -> crate::Result<Self> {
        let path = state_dir.join("runs").join(id).join("journal.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::input(format!(
                "no run {id} under {} ({e}); `krun runs` lists them",
                state_dir.display()
            ))
        })?;
        Self::parse(id, &text).map_err(|m| Error::input(format!("{}: {m}", path.display())))
    }

    pub fn parse(id: &str, text: &str) -> Result<Self, String> {
        let mut header = Value::Null;
        let mut torn = None;
        let mut runs: BTreeMap<String, JournalRun> = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            // A crash can leave a torn last line; everything before it is intact.
            let Ok(record) = serde_json::from_str::<Value>(line) else {
                if index + 1 == text.lines().count() {
                    torn = Some(index + 1);
                    break;
                }
                return Err(format!("line {} is not JSON", index + 1));
            };
            let run = record["run"].as_str().unwrap_or_default().to_owned();
            match record["type"].as_str() {
                Some("header") => header = record,
                Some("status") => {
                    runs.entry(run).or_default().status =
                        record["status"].as_str().unwrap_or_default().to_owned()
                }
                Some("failure") => runs.entry(run).or_default().failure = Some(record),
                Some("intent") => runs.entry(run).or_default().steps.push(JournalStep {
                    seq: record["seq"].as_u64().unwrap_or(0) as usize,
                    node: record["node"].as_str().unwrap_or_default().to_owned(),
                    action: record["action"].as_str().unwrap_or_default().to_owned(),
                    command: record["command"].as_str().unwrap_or_default().to_owned(),
                    access: record["access"].as_str().unwrap_or_default().to_owned(),
                    line: record["line"].as_u64(),
                    done: None,
                }),
                Some("done") => {
                    let seq = record["seq"].as_u64().unwrap_or(0) as usize;
                    if let Some(step) = runs
                        .entry(run)
                        .or_default()
                        .steps
                        .iter_mut()
                        .find(|s| s.seq == seq)
                    {
                        step.done = Some(record);
                    }
                }
                _ => {}
            }
        }
        if header.is_null() {
            return Err("no header record".into());
        }
        Ok(Self {
            id: id.to_owned(),
            header,
            runs,
            torn,
        })
    }

    /// Every run under the state directory, newest first.
    pub fn list(state_dir: &Path) -> Vec<Self> {
        let ids: Vec<String> = std::fs::read_dir(state_dir.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let mut all: Vec<Self> = ids
            .iter()
            .filter_map(|id| Self::load(state_dir, id).ok())
            .collect();
        // Ids sort by the second they were made in; the start time orders runs of one second.
        all.sort_by(|a, b| {
            let started = |v: &Self| v.header["started_at"].as_str().unwrap_or("").to_owned();
            (started(b), &b.id).cmp(&(started(a), &a.id))
        });
        all
    }

    /// Whether the playbook ran at all (a run refused by krun's own setup, or by a compile
    /// error, did nothing).
    pub fn did_anything(&self) -> bool {
        self.runs
            .iter()
            .any(|(name, run)| !name.starts_with('(') && !run.steps.is_empty())
    }

    /// Whether it finished: every run of the playbook ended ok (krun's own setup aside).
    pub fn finished(&self) -> bool {
        let mut playbook_runs = self.runs.iter().filter(|(name, _)| !name.starts_with('('));
        let mut any = false;
        let all_ok = playbook_runs.all(|(_, run)| {
            any = true;
            run.status == "ok"
        });
        any && all_ok
    }

    /// The run this one resumed, if any.
    pub fn resumes(&self) -> Option<&str> {
        self.header["resumes"].as_str()
    }

    /// The newest run in the chain of resumes that starts at run `id` (`id` itself when nothing
    /// resumed it): resuming `id` again means continuing from there, since that journal holds
    /// everything the chain did.
    pub fn latest_resume(state_dir: &Path, id: &str) -> crate::Result<Self> {
        let all = Self::list(state_dir);
        let mut current = Self::load(state_dir, id)?;
        // Newest first in `all`: the first that resumes the current one and got as far as the
        // playbook is its latest resume (one refused before the playbook holds nothing new).
        while let Some(next) = all
            .iter()
            .find(|v| v.resumes() == Some(current.id.as_str()) && v.did_anything())
        {
            current = next.clone();
        }
        Ok(current)
    }

    /// The first run of the chain of resumes that run `id` belongs to: a resumed run repeats
    /// its steps exactly, so what it keeps on nodes is named after that first run.
    pub fn first_of_chain(state_dir: &Path, id: &str) -> String {
        let mut current = id.to_owned();
        // A chain is short; the bound only guards against a journal that names itself.
        for _ in 0..1000 {
            match Self::load(state_dir, &current)
                .ok()
                .and_then(|v| v.resumes().map(str::to_owned))
            {
                Some(previous) if previous != current => current = previous,
                _ => break,
            }
        }
        current
    }

    /// The backups the run made before changing nodes, in journal order: each node's listing
    /// (see [`BackupRecord`]), from the steps that were carried out (or replayed from the run
    /// this one resumed).
    pub fn backups(&self) -> Vec<BackupRecord> {
        self.done_steps("backup")
            .filter_map(|(step, done)| {
                BackupRecord::parse(&step.node, done["stdout"].as_str().unwrap_or_default())
            })
            .collect()
    }

    /// The etcd snapshots the run saved, in journal order.
    pub fn snapshots(&self) -> Vec<SnapshotRecord> {
        self.done_steps("etcd_snapshot")
            .filter_map(|(_, done)| SnapshotRecord::from_data(&done["data"]))
            .collect()
    }

    /// What the run recorded of `node` before changing it; `None` when it backed nothing up
    /// there.
    pub fn node_state(&self, node: &str) -> Option<NodeState> {
        let records: Vec<BackupRecord> = self
            .backups()
            .into_iter()
            .filter(|r| r.node == node)
            .collect();
        (!records.is_empty()).then(|| NodeState::merge(node, &records))
    }

    /// Steps with `action` that finished without an error, with their result record.
    fn done_steps<'a>(
        &'a self,
        action: &'a str,
    ) -> impl Iterator<Item = (&'a JournalStep, &'a Value)> + 'a {
        self.runs
            .values()
            .flat_map(|run| &run.steps)
            .filter(move |s| s.action == action)
            .filter_map(|step| {
                let done = step.done.as_ref()?;
                let carried_out = done["executed"] == true || done["replayed"] == true;
                (carried_out && done["error"].is_null()).then_some((step, done))
            })
    }

    /// What `krun runs` says a run can be brought back to: each backup's node, directory and
    /// versions, and the etcd snapshots.
    pub fn restorable(&self) -> String {
        let mut out = String::new();
        for record in self.backups() {
            let versions: Vec<String> = ["kubeadm", "kubelet", "kubectl"]
                .iter()
                .filter_map(|p| record.packages.get(*p).map(|v| format!("{p} {v}")))
                .collect();
            out.push_str(&format!(
                "  backup of {} ({}): {} files in {} on {}{}\n",
                record.node,
                if record.control_plane && record.scope == Scope::ControlPlane {
                    "control plane, with /etc/kubernetes"
                } else {
                    "kubelet and runtime"
                },
                record.files.len(),
                record.dir,
                record.node,
                if versions.is_empty() {
                    String::new()
                } else {
                    format!("; {}", versions.join(", "))
                }
            ));
        }
        for snapshot in self.snapshots() {
            out.push_str(&format!(
                "  etcd snapshot: {} ({} bytes, sha256 {})\n",
                snapshot.path,
                snapshot.size,
                if snapshot.sha256.is_empty() {
                    "not recorded"
                } else {
                    &snapshot.sha256
                }
            ));
        }
        if !out.is_empty() && self.header["dry_run"] != true {
            out.push_str(&format!(
                "  restore a node with: krun playbooks/restore.rhai --node NODE --set run={}\n",
                self.id
            ));
        }
        out
    }

    /// The run at a glance: its state, where it stopped and why, its command line.
    pub fn summary(&self) -> RunSummary {
        let text = |key: &str| self.header[key].as_str().unwrap_or_default().to_owned();
        let mut nodes: Vec<NodeSummary> = Vec::new();
        // The header's order (the run's), then any other run the journal names.
        let mut names: Vec<String> = self.header["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .filter(|n| self.runs.contains_key(n))
            .collect();
        for name in self.runs.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut state = RunState::Done;
        // krun's own run (`(setup)`: discovery, the batch plan, the lock) is no node; when it
        // stopped, the playbook never ran and it says why.
        let mut setup = None;
        for name in &names {
            let run = &self.runs[name];
            let (node_state, word) = node_state(run);
            state = state.min(node_state);
            let stopped = (node_state != RunState::Done).then(|| stopped(name, run));
            if name.starts_with('(') {
                setup = setup.or(stopped);
                continue;
            }
            nodes.push(NodeSummary {
                node: name.clone(),
                state: word,
                steps: run.steps.len(),
                stopped,
            });
        }
        let stopped = setup.or_else(|| nodes.iter().find_map(|n| n.stopped.clone()));
        if nodes.is_empty() && stopped.is_none() {
            state = RunState::Unfinished;
        }
        let mut argv: Vec<String> = self.header["argv"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        // The binary as the operator types it, not the path it was started from.
        if let Some(first) = argv.first_mut()
            && let Some(name) = Path::new(first.as_str()).file_name()
        {
            *first = name.to_string_lossy().into_owned();
        }
        RunSummary {
            id: self.id.clone(),
            started_at: text("started_at"),
            playbook: text("playbook"),
            dry_run: self.header["dry_run"] == true,
            resumes: self.header["resumes"].as_str().map(str::to_owned),
            nodes,
            state,
            stopped,
            command: crate::quote::join(&argv),
            user: text("user"),
            host: text("host"),
            torn: self.torn,
            libraries: self.header["libraries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    let field = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
                    Library {
                        name: field("name"),
                        version: field("version"),
                        hash: field("hash"),
                    }
                })
                .collect(),
            restorable: self.restorable(),
        }
    }
}

/// A node's state from its journal: the kind, and the word `krun runs show` uses.
fn node_state(run: &JournalRun) -> (RunState, String) {
    let code = run.failure.as_ref().and_then(|f| f["exit_code"].as_u64());
    let state = match (run.status.as_str(), code) {
        ("ok", _) => RunState::Done,
        ("interrupted", _) | (_, Some(130)) => RunState::Interrupted,
        (_, Some(3)) => RunState::Refused,
        ("failed", _) => RunState::Failed,
        _ => RunState::Unfinished,
    };
    let word = match (state, run.status.as_str()) {
        (RunState::Done, _) => "ok".to_owned(),
        (RunState::Unfinished, "" | "running") if run.steps.is_empty() => "not started".to_owned(),
        (RunState::Unfinished, "" | "running") => "stopped".to_owned(),
        (RunState::Unfinished, other) => other.replace('_', " "),
        (state, _) => state.word().to_owned(),
    };
    (state, word)
}

/// A failure's message without the `step 3 (sh) on n1: ` it starts with, which the summary
/// says already.
fn without_step(message: &str) -> &str {
    message
        .strip_prefix("step ")
        .and_then(|rest| {
            let (head, tail) = rest.split_once(": ")?;
            (head.ends_with(')') || head.contains(") on ")).then_some(tail)
        })
        .unwrap_or(message)
}

/// Where a node that did not finish stopped: the failed step (or, for a failure of the
/// playbook itself such as `refuse`, its line), else the last step and what the journal knows
/// of its outcome.
fn stopped(name: &str, run: &JournalRun) -> Stopped {
    let failure = run.failure.as_ref();
    let message = failure
        .and_then(|f| f["message"].as_str())
        .map(|m| without_step(m.lines().next().unwrap_or_default()).to_owned());
    let step = match failure {
        Some(f) => f["step"]
            .as_u64()
            .and_then(|seq| run.steps.iter().find(|s| s.seq as u64 == seq)),
        None => run.steps.last(),
    };
    let outcome = step.map(|step| match &step.done {
        None => "outcome unknown (no result recorded)".to_owned(),
        Some(done) => match (done["error"].as_str(), done["exit_code"].as_i64()) {
            (Some(error), _) => error.lines().next().unwrap_or_default().to_owned(),
            (None, Some(code)) => format!("exit {code}"),
            (None, None) => "done".to_owned(),
        },
    });
    // The failure says why; the step's own outcome only when it adds something.
    let reason = match (message, outcome) {
        (Some(message), Some(outcome))
            if outcome.starts_with("outcome unknown") && !message.contains(&outcome) =>
        {
            format!("{outcome}; {message}")
        }
        (Some(message), _) => message,
        (None, Some(outcome)) => outcome,
        (None, None) => "no step was recorded".to_owned(),
    };
    Stopped {
        node: name.to_owned(),
        step: step.map(|s| s.seq),
        action: step.map(|s| s.action.clone()),
        command: step.map(|s| s.command.lines().next().unwrap_or_default().to_owned()),
        line: failure
            .and_then(|f| f["line"].as_u64())
            .or_else(|| step.and_then(|s| s.line)),
        reason,
    }
}

/// The state directory's journals, for `krun runs`.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_record_is_reported_and_one_in_the_middle_is_an_error() {
        let header = r#"{"type":"header","playbook":"p.rhai"}"#;
        let intent = r#"{"type":"intent","run":"n1","seq":1,"action":"sh","command":"x"}"#;
        let torn = format!("{header}\n{intent}\n{{\"type\":\"do");
        let view = JournalView::parse("r", &torn).unwrap();
        assert_eq!(view.torn, Some(3));
        assert_eq!(view.summary().torn, Some(3));
        assert!(view.runs["n1"].steps[0].done.is_none());
        let middle = format!("{header}\n{{\"type\":\"do\n{intent}\n");
        assert_eq!(
            JournalView::parse("r", &middle).unwrap_err(),
            "line 2 is not JSON"
        );
    }

    #[test]
    fn warnings_are_attached_and_taken_off_again() {
        assert_eq!(with_warnings("x", &[]), "x");
        let shown = with_warnings("x", &["a".into(), "b".into()]);
        assert_eq!(shown, "x  # WARNING: a; b");
        assert_eq!(without_warnings(&shown), "x");
    }
}
