//! The replay that `krun resume` installs at the effects boundary.
//!
//! Resuming re-evaluates the playbook from the top. Every step the journal records as done —
//! and that its run went on past — is not executed again: its recorded result is handed back to
//! the script, so the playbook takes the same path to the point where it stopped. The step a run
//! stopped at is executed again; if its outcome is unknown (an intent without a result, or a
//! change that was interrupted) it needs `--retry-unknown`, unless it only reads.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Access, Outcome};
use crate::journal::view::{JournalStep, JournalView, without_warnings};

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
                detail: None,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;
    use crate::journal::view::JournalRun;

    fn view(command: &str) -> JournalView {
        let step = JournalStep {
            seq: 1,
            action: "kubeadm_upgrade_apply".into(),
            node: "m1".into(),
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
            torn: None,
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
