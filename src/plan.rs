//! The record of a run: every step of every node, in order, with where the playbook asked for it
//! and what came of it. A dry-run's plan and a real run's report are the same structure; the
//! real run has results filled in. Secret values are redacted before anything is stored.

use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::journal::Journal;
use crate::secrets::Secrets;

/// Whether a step only observes, or changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Observes state; runs in dry-run too.
    Read,
    /// Changes state; only recorded in dry-run.
    Change,
    /// Waits for a state that earlier changes bring about; only recorded in dry-run, where those
    /// changes did not happen.
    Wait,
}

/// Index of one run (one node, or the single cluster-level run) in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId(pub usize);

/// Where in the playbook a step was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// One step as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub seq: usize,
    pub action: String,
    /// The node the step acts on (usually the run's node; another one for e.g. a join token).
    pub node: String,
    pub access: Access,
    pub command: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    /// False when the step depends on state that could not be observed (offline, unreachable).
    pub observed: bool,
    /// True when the step was actually carried out (always false for a dry-run change).
    pub executed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when the result was taken from an earlier run's journal instead of executing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Structured result of an API step (etcd membership after a change, …).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// On resume: how a step left with an unknown outcome was settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

impl StepRecord {
    pub fn new(action: &str, node: &str, access: Access, command: String, origin: Origin) -> Self {
        Self {
            seq: 0,
            action: action.to_owned(),
            node: node.to_owned(),
            access,
            command,
            file: origin.file,
            line: origin.line,
            observed: true,
            executed: false,
            exit_code: None,
            duration_ms: None,
            diff: None,
            error: None,
            replayed: false,
            data: serde_json::Value::Null,
            resolved: None,
        }
    }
}

/// What came of a step.
#[derive(Debug, Clone, Default)]
pub struct StepResult {
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    pub observed: bool,
    pub executed: bool,
    pub diff: Option<String>,
    pub error: Option<String>,
    /// Output, kept in the journal so a resumed run can hand it back to the script.
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// The result came from the journal of an earlier run (`krun resume`).
    pub replayed: bool,
    pub data: serde_json::Value,
    /// On resume: how a step left with an unknown outcome was settled.
    pub resolved: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    NotStarted,
    Running,
    Ok,
    Failed,
    Interrupted,
}

/// Why a run failed, for the summary and the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct RunFailure {
    /// The step that failed, when the failure came from a step.
    pub step: Option<usize>,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub exit_code: u8,
    /// Nodes this run cordoned (or drained) and did not uncordon: they stay out of service
    /// until the run is resumed or someone uncordons them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_cordoned: Vec<String>,
}

/// A part of the playbook a dry-run could not plan because it depends on state that was not
/// observed (a loop over package files listed on an unread node, over etcd's members).
#[derive(Debug, Clone, Serialize)]
pub struct Unplanned {
    /// The step it comes after in the plan (0: before the first).
    pub after_step: usize,
    pub node: String,
    pub what: String,
    pub file: Option<String>,
    pub line: Option<usize>,
}

/// Everything recorded for one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
    pub steps: Vec<StepRecord>,
    /// What a dry-run could not plan, in plan order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unplanned: Vec<Unplanned>,
    #[serde(skip)]
    unobserved: bool,
}

impl RunRecord {
    /// Nodes a cordon or drain of this run took out of service and no later uncordon returned,
    /// judged from the steps that were carried out.
    pub fn left_cordoned(&self) -> Vec<String> {
        let mut cordoned: Vec<String> = Vec::new();
        for step in &self.steps {
            // Kubernetes steps act on the cluster; their result names the node.
            let Some(node) = step.data["node"].as_str().map(str::to_owned) else {
                continue;
            };
            let carried_out = step.executed || step.replayed;
            // A drain that failed says whether it left the node cordoned (whoever cordoned it).
            let failed_cordoned = step.data["left_cordoned"] == true;
            match step.action.as_str() {
                "cordon" | "drain"
                    if (carried_out || failed_cordoned) && !cordoned.contains(&node) =>
                {
                    cordoned.push(node);
                }
                "uncordon" if carried_out && step.error.is_none() => {
                    cordoned.retain(|n| n != &node);
                }
                _ => {}
            }
        }
        cordoned
    }
}

/// Progress notifications for the terminal display.
#[derive(Debug, Clone)]
pub enum Event {
    RunStatus {
        run: RunId,
        name: String,
        status: RunStatus,
    },
    StepStarted {
        run: RunId,
        name: String,
        seq: usize,
        action: String,
        command: String,
    },
}

type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// The shared record of all runs of one command.
pub struct Recorder {
    runs: Mutex<Vec<RunRecord>>,
    secrets: Arc<Secrets>,
    observer: RwLock<Option<Observer>>,
    journal: RwLock<Option<std::sync::Arc<Journal>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self::with_secrets(Arc::new(Secrets::new()))
    }

    /// A recorder redacting with `secrets`, which the command's log sink shares.
    pub fn with_secrets(secrets: Arc<Secrets>) -> Self {
        Self {
            runs: Mutex::new(Vec::new()),
            secrets,
            observer: RwLock::new(None),
            journal: RwLock::new(None),
        }
    }

    pub fn set_observer(&self, observer: impl Fn(&Event) + Send + Sync + 'static) {
        *self.observer.write().expect("observer lock") = Some(Box::new(observer));
    }

    /// From now on every step is also written to `journal`.
    pub fn set_journal(&self, journal: std::sync::Arc<Journal>) {
        *self.journal.write().expect("journal lock") = Some(journal);
    }

    pub fn journal(&self) -> Option<std::sync::Arc<Journal>> {
        self.journal.read().expect("journal lock").clone()
    }

    fn journal_entry(&self, kind: &str, run: RunId, fields: serde_json::Value, sync: bool) {
        if let Some(journal) = self.journal() {
            let name = self.runs.lock().expect("runs lock")[run.0].name.clone();
            // A failure marks the journal broken; the next step's intent is refused.
            let _ = journal.record(crate::journal::entry(kind, &name, fields), sync);
        }
    }

    fn notify(&self, event: Event) {
        if let Some(observer) = self.observer.read().expect("observer lock").as_ref() {
            observer(&event);
        }
    }

    /// Registers a value that must never appear in logs, plans or reports.
    pub fn add_secret(&self, secret: &str) {
        self.secrets.add(secret);
    }

    /// The command's secrets, for output that does not pass through the record (the log).
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// Replaces every registered secret in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    /// `redact` for structured data.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        self.secrets.redact_json(value)
    }

    /// Adds a run (not started yet) and returns its id.
    pub fn add_run(&self, name: &str, host: Option<&str>) -> RunId {
        let mut runs = self.runs.lock().expect("runs lock");
        runs.push(RunRecord {
            name: name.to_owned(),
            host: host.map(str::to_owned),
            status: RunStatus::NotStarted,
            failure: None,
            steps: Vec::new(),
            unplanned: Vec::new(),
            unobserved: false,
        });
        RunId(runs.len() - 1)
    }

    pub fn set_status(&self, run: RunId, status: RunStatus) {
        self.journal_entry(
            "status",
            run,
            serde_json::json!({ "status": status }),
            false,
        );
        let name = {
            let mut runs = self.runs.lock().expect("runs lock");
            runs[run.0].status = status;
            runs[run.0].name.clone()
        };
        self.notify(Event::RunStatus { run, name, status });
    }

    pub fn fail(&self, run: RunId, status: RunStatus, failure: RunFailure) {
        {
            let mut runs = self.runs.lock().expect("runs lock");
            let mut failure = failure;
            failure.message = self.redact(&failure.message);
            failure.left_cordoned = runs[run.0].left_cordoned();
            runs[run.0].failure = Some(failure.clone());
            drop(runs);
            self.journal_entry(
                "failure",
                run,
                serde_json::to_value(&failure).unwrap_or_default(),
                false,
            );
        }
        self.set_status(run, status);
    }

    /// Records the start of a step; returns its sequence number within the run (from 1). The
    /// journal's intent record is written and synced first: when it cannot be, the step is
    /// recorded as refused and `Err` says why, so the boundary does not perform it.
    pub fn begin(&self, run: RunId, mut step: StepRecord) -> Result<usize, (usize, String)> {
        let (name, seq) = {
            let mut runs = self.runs.lock().expect("runs lock");
            let record = &mut runs[run.0];
            step.seq = record.steps.len() + 1;
            let seq = step.seq;
            let event = (record.name.clone(), seq);
            record.steps.push(step);
            event
        };
        if let Some(journal) = self.journal() {
            let step = self.runs.lock().expect("runs lock")[run.0].steps[seq - 1].clone();
            let fields = serde_json::to_value(&step).unwrap_or_default();
            // Written and synced before the effect starts: a crash leaves this as the unknown step.
            journal
                .record(crate::journal::entry("intent", &name, fields), true)
                .map_err(|why| (seq, why))?;
        }
        let (action, command) = {
            let runs = self.runs.lock().expect("runs lock");
            let step = &runs[run.0].steps[seq - 1];
            (step.action.clone(), step.command.clone())
        };
        self.notify(Event::StepStarted {
            run,
            name,
            seq,
            action,
            command,
        });
        Ok(seq)
    }

    /// Records what came of step `seq`. Once a run has seen unobserved state, every later step
    /// depends on it.
    pub fn finish(&self, run: RunId, seq: usize, result: StepResult) {
        self.journal_entry(
            "done",
            run,
            serde_json::json!({
                "seq": seq,
                "exit_code": result.exit_code,
                "duration_ms": result.duration_ms,
                "observed": result.observed,
                "executed": result.executed,
                "error": result.error,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "replayed": result.replayed,
                "data": result.data,
                "resolved": result.resolved,
            }),
            false,
        );
        let mut runs = self.runs.lock().expect("runs lock");
        let record = &mut runs[run.0];
        let observed = result.observed && !record.unobserved;
        if !result.observed {
            record.unobserved = true;
        }
        let step = &mut record.steps[seq - 1];
        step.observed = observed;
        step.executed = result.executed;
        step.exit_code = result.exit_code;
        step.duration_ms = result.duration_ms;
        step.diff = result.diff;
        step.error = result.error;
        step.replayed = result.replayed;
        step.data = result.data;
        step.resolved = result.resolved;
    }

    /// Notes, after the run's last step so far, a part of the playbook that could not be planned.
    pub fn unplanned(&self, run: RunId, node: &str, what: &str, origin: Origin) {
        let what = self.redact(what);
        let mut runs = self.runs.lock().expect("runs lock");
        let record = &mut runs[run.0];
        record.unplanned.push(Unplanned {
            after_step: record.steps.len(),
            node: node.to_owned(),
            what,
            file: origin.file,
            line: origin.line,
        });
    }

    pub fn run_name(&self, run: RunId) -> String {
        self.runs.lock().expect("runs lock")[run.0].name.clone()
    }

    /// The number of the step currently last recorded for a run.
    pub fn last_step(&self, run: RunId) -> Option<usize> {
        self.runs.lock().expect("runs lock")[run.0]
            .steps
            .last()
            .map(|s| s.seq)
    }

    pub fn runs(&self) -> Vec<RunRecord> {
        self.runs.lock().expect("runs lock").clone()
    }
}

/// A unified diff between a node's current file and what would be written.
pub fn file_diff(current: Option<&str>, new: &str) -> String {
    let old = current.unwrap_or("");
    let diff = similar::TextDiff::from_lines(old, new);
    let header_old = if current.is_some() {
        "current"
    } else {
        "(absent)"
    };
    diff.unified_diff()
        .context_radius(3)
        .header(header_old, "new")
        .to_string()
}

/// What a plan shows instead of the diff of a file made from a local file the playbook did not
/// mark showable: whether it changes, and the sizes and digests, never the text.
pub fn hidden_diff(current: Option<&str>, new: &[u8]) -> String {
    use sha2::Digest;
    let describe = |bytes: &[u8]| {
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        format!("{} bytes, sha256 {}", bytes.len(), &digest[..16])
    };
    let new_text = describe(new);
    match current {
        Some(current) if current.as_bytes() == new => {
            format!("(content not shown: a local file) unchanged: {new_text}\n")
        }
        Some(current) => format!(
            "(content not shown: a local file; `show: true` shows it) changes: {} -> {new_text}\n",
            describe(current.as_bytes())
        ),
        None => format!(
            "(content not shown: a local file; `show: true` shows it) new file: {new_text}\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unobserved_state_taints_later_steps() {
        let recorder = Recorder::new();
        let run = recorder.add_run("n1", None);
        let origin = Origin::default();
        for (observed, _) in [(true, 1), (false, 2), (true, 3)] {
            let seq = recorder
                .begin(
                    run,
                    StepRecord::new("sh", "n1", Access::Read, "x".into(), origin.clone()),
                )
                .unwrap();
            recorder.finish(
                run,
                seq,
                StepResult {
                    observed,
                    ..StepResult::default()
                },
            );
        }
        let steps = &recorder.runs()[0].steps;
        let flags: Vec<bool> = steps.iter().map(|s| s.observed).collect();
        assert_eq!(flags, [true, false, false]);
    }

    #[test]
    fn secrets_are_redacted() {
        let recorder = Recorder::new();
        recorder.add_secret("s3cr3t");
        assert_eq!(recorder.redact("token=s3cr3t;"), "token=***;");
    }

    #[test]
    fn a_hidden_diff_tells_sizes_not_text() {
        let shown = hidden_diff(Some("old key\n"), b"new key\n");
        assert!(shown.contains("changes: 8 bytes, sha256 "), "{shown}");
        assert!(!shown.contains("key"), "{shown}");
        assert!(hidden_diff(Some("a"), b"a").contains("unchanged"));
        assert!(hidden_diff(None, b"a").contains("new file: 1 bytes"));
    }

    #[test]
    fn diff_shows_changes() {
        let diff = file_diff(Some("a\nb\n"), "a\nc\n");
        assert!(diff.contains("-b") && diff.contains("+c"), "{diff}");
        assert!(file_diff(None, "x\n").contains("(absent)"));
    }
}
