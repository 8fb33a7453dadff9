//! Reading journals back: `krun runs`, `krun runs show ID`, and the replay that `krun resume`
//! installs at the effects boundary.
//!
//! Resuming re-evaluates the playbook from the top. Every step the journal records as done —
//! and that its run went on past — is not executed again: its recorded result is handed back to
//! the script, so the playbook takes the same path to the point where it stopped. The step a run
//! stopped at is executed again; if its outcome is unknown (an intent without a result, or a
//! change that was interrupted) it needs `--retry-unknown`, unless it only reads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::Error;
use crate::effects::{Access, Outcome};

/// What separates a step's command from the guard warnings the plan shows after it.
pub const WARNING_MARK: &str = "  # WARNING: ";

/// A step's command without the warnings a guard attached: those depend on the cluster at the
/// time (a skew warning is gone once the control plane has moved), not on what the step does.
pub fn without_warnings(command: &str) -> &str {
    command.split(WARNING_MARK).next().unwrap_or(command)
}

/// One step as the journal has it.
#[derive(Debug, Clone)]
pub struct JournalStep {
    pub seq: usize,
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
        let mut runs: BTreeMap<String, JournalRun> = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            // A crash can leave a torn last line; everything before it is intact.
            let Ok(record) = serde_json::from_str::<Value>(line) else {
                if index + 1 == text.lines().count() {
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
        })
    }

    /// Every run under the state directory, newest first.
    pub fn list(state_dir: &Path) -> Vec<Self> {
        let mut ids: Vec<String> = std::fs::read_dir(state_dir.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.iter()
            .filter_map(|id| Self::load(state_dir, id).ok())
            .collect()
    }

    /// A one-paragraph account per run: status, the step it stopped at and why.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}  {}{}\n",
            self.id,
            self.header["playbook"].as_str().unwrap_or("?"),
            if self.header["dry_run"] == true {
                "  (dry-run)"
            } else {
                ""
            }
        );
        for (name, run) in &self.runs {
            let last = run.steps.last();
            let state = match (run.status.as_str(), last) {
                ("ok", _) => format!("ok ({} steps)", run.steps.len()),
                (status, Some(step)) => {
                    let outcome = match &step.done {
                        None => "outcome unknown (no result recorded)".to_owned(),
                        Some(done) if !done["error"].is_null() => {
                            format!("error: {}", done["error"].as_str().unwrap_or(""))
                        }
                        Some(done) => format!("exit {}", done["exit_code"]),
                    };
                    let why = run
                        .failure
                        .as_ref()
                        .and_then(|f| f["message"].as_str())
                        .map(|m| format!(" — {}", m.lines().next().unwrap_or("")))
                        .unwrap_or_default();
                    format!(
                        "{} at step {} ({} `{}`, line {}): {outcome}{why}",
                        if status.is_empty() { "stopped" } else { status },
                        step.seq,
                        step.action,
                        step.command.lines().next().unwrap_or(""),
                        step.line.map_or("?".into(), |l| l.to_string())
                    )
                }
                (status, None) => {
                    if status.is_empty() {
                        "not started".into()
                    } else {
                        status.to_owned()
                    }
                }
            };
            out.push_str(&format!("  {name:<16} {state}\n"));
        }
        out
    }
}

/// What the boundary should do with a step on resume.
#[derive(Debug)]
pub enum Replayed {
    /// Done before: return this result instead of executing.
    Done(Outcome),
    /// Its outcome is unknown and it changes things: the step's [`crate::effects::Recheck`]
    /// settles it, or `--retry-unknown`.
    Unknown { seq: usize, command: String },
    /// Not recorded (or the run stopped here with a known result): execute it.
    Execute,
}

/// Recorded results by run and step, consumed as the resumed playbook reaches them.
pub struct Replay {
    runs: Mutex<HashMap<String, Vec<JournalStep>>>,
    finished_ok: Vec<String>,
    retry_unknown: bool,
}

impl Replay {
    pub fn new(view: &JournalView, retry_unknown: bool) -> Self {
        let finished_ok = view
            .runs
            .iter()
            .filter(|(_, r)| r.status == "ok")
            .map(|(n, _)| n.clone())
            .collect();
        let runs = view
            .runs
            .iter()
            .map(|(name, run)| (name.clone(), run.steps.clone()))
            .collect();
        Self {
            runs: Mutex::new(runs),
            finished_ok,
            retry_unknown,
        }
    }

    /// Whether `--retry-unknown` was given.
    pub fn retry_unknown(&self) -> bool {
        self.retry_unknown
    }

    /// Decides for step `seq` of run `run`, which the playbook now asks for with `action` and
    /// `command`. A step that differs from the record ends replay for that run.
    pub fn consult(
        &self,
        run: &str,
        seq: usize,
        action: &str,
        command: &str,
        access: Access,
    ) -> Replayed {
        let mut runs = self.runs.lock().expect("replay lock");
        let Some(steps) = runs.get_mut(run) else {
            return Replayed::Execute;
        };
        let Some(index) = steps.iter().position(|s| s.seq == seq) else {
            return Replayed::Execute;
        };
        let recorded = &steps[index];
        if recorded.action != action
            || without_warnings(&recorded.command) != without_warnings(command)
        {
            tracing::warn!(
                "[{run}] step {seq} differs from the journal ({} `{}`); executing from here on",
                recorded.action,
                recorded.command
            );
            steps.clear();
            return Replayed::Execute;
        }
        let went_on = index + 1 < steps.len() || self.finished_ok.iter().any(|n| n == run);
        let done = recorded.done.clone();
        match (done, went_on) {
            (Some(done), true) if done["error"].is_null() => Replayed::Done(Outcome {
                exit_code: done["exit_code"].as_i64().unwrap_or(0) as i32,
                stdout: done["stdout"].as_str().unwrap_or_default().to_owned(),
                stderr: done["stderr"].as_str().unwrap_or_default().to_owned(),
                observed: done["observed"].as_bool().unwrap_or(true),
                data: done["data"].clone(),
            }),
            // The step completed with a known (failed) result: running it again is the retry.
            (Some(done), _) if done["error"].is_null() => Replayed::Execute,
            // No result, or interrupted mid-way: a change may or may not have happened.
            _ if access == Access::Read => Replayed::Execute,
            _ => Replayed::Unknown {
                seq,
                command: command.to_owned(),
            },
        }
    }
}

/// The state directory's journals, for `krun runs`.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(command: &str) -> JournalView {
        let step = JournalStep {
            seq: 1,
            action: "kubeadm_upgrade_apply".into(),
            command: command.into(),
            access: "change".into(),
            line: Some(12),
            done: Some(serde_json::json!({"exit_code": 0, "stdout": "upgraded", "data": null})),
        };
        let run = JournalRun {
            status: "failed".into(),
            steps: vec![step.clone(), JournalStep { seq: 2, ..step }],
            failure: None,
        };
        JournalView {
            id: "r".into(),
            header: Value::Null,
            runs: BTreeMap::from([("m1".to_string(), run)]),
        }
    }

    #[test]
    fn a_step_whose_guard_warning_changed_is_still_the_recorded_step() {
        let recorded = "kubeadm upgrade apply -y v1.22.17  # WARNING: skew guard overridden";
        let replay = Replay::new(&view(recorded), false);
        let now = "kubeadm upgrade apply -y v1.22.17";
        assert!(matches!(
            replay.consult("m1", 1, "kubeadm_upgrade_apply", now, Access::Change),
            Replayed::Done(outcome) if outcome.stdout == "upgraded"
        ));
        // A different command is not the recorded step: replay ends and it executes.
        let replay = Replay::new(&view(recorded), false);
        let other = "kubeadm upgrade apply -y v1.23.17";
        assert!(matches!(
            replay.consult("m1", 1, "kubeadm_upgrade_apply", other, Access::Change),
            Replayed::Execute
        ));
        assert_eq!(without_warnings(recorded), now);
        assert_eq!(without_warnings(now), now);
    }
}
