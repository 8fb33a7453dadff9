//! The boundary itself: one performer, the record, the journal, replay and redaction, shared
//! by every run of a command.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::perform::{PerformContext, Performer};
use super::replay::{Replay, Replayed};
use super::{Access, Effect, EffectError, Outcome, Recheck, Step, StepFailure};
use crate::error::Kind;
use crate::plan::{Recorder, RunId, StepRecord, StepResult};

/// How an unknown step was settled on resume.
enum Settled {
    /// Run it; the text says why, for the log and the journal.
    Run(String),
    /// It had happened: this outcome stands for it.
    Done(Outcome, String),
    /// The operator must decide; the text adds what was tried.
    Ask(String),
}

/// Something that must hold before every change (the cluster lock is still this run's).
pub trait Precondition: Send + Sync {
    /// `Err` says why no change may be made.
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>>;
}

/// The boundary itself: a performer plus the recorder, shared by every run of a command.
pub struct Effects {
    performer: Box<dyn Performer>,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
    replay: Option<Arc<Replay>>,
    preconditions: std::sync::RwLock<Vec<Arc<dyn Precondition>>>,
}

impl Effects {
    pub fn new(
        performer: Box<dyn Performer>,
        recorder: Arc<Recorder>,
        cancel: CancellationToken,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            performer,
            recorder,
            cancel,
            runtime,
            replay: None,
            preconditions: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// From now on, every change first checks `precondition`; a change it refuses is not made.
    pub fn require(&self, precondition: Arc<dyn Precondition>) {
        self.preconditions
            .write()
            .expect("preconditions lock")
            .push(precondition);
    }

    /// The first precondition that refuses a change, if any.
    async fn refusal(&self) -> Option<String> {
        let preconditions = self
            .preconditions
            .read()
            .expect("preconditions lock")
            .clone();
        for precondition in preconditions {
            if let Err(why) = precondition.check().await {
                return Some(why);
            }
        }
        None
    }

    /// Resuming: steps the journal records as done return their recorded results.
    pub fn with_replay(mut self, replay: Arc<Replay>) -> Self {
        self.replay = Some(replay);
        self
    }

    /// Decides what to do with a step the run being resumed left with an unknown outcome.
    async fn settle(&self, step: &Step, retry_unknown: bool) -> Settled {
        if retry_unknown {
            return Settled::Run("running it again (--retry-unknown)".to_owned());
        }
        match &step.recheck {
            Recheck::Ask => Settled::Ask(String::new()),
            Recheck::Rerun => Settled::Run(format!(
                "running it again: {} twice reaches the same state",
                step.action
            )),
            Recheck::ReadBack { probe, shown, done } => {
                let context = PerformContext {
                    cancel: self.cancel.child_token(),
                    on_output: Box::new(|_: &str| {}),
                };
                let shown = self.recorder.redact(shown);
                match self.performer.perform(Access::Read, probe, &context).await {
                    Ok(read) if done(&read.outcome) => Settled::Done(
                        Outcome {
                            exit_code: 0,
                            observed: true,
                            data: read.outcome.data,
                            ..Outcome::default()
                        },
                        format!(
                            "read back with `{shown}`: it had happened, so it is not run again"
                        ),
                    ),
                    Ok(_) => Settled::Run(format!(
                        "read back with `{shown}`: it had not happened, so it runs now"
                    )),
                    Err(e) => {
                        Settled::Ask(format!(" (reading it back with `{shown}` failed: {e})"))
                    }
                }
            }
        }
    }

    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Performs (or records) one effect for run `run`, blocking the calling playbook thread.
    ///
    /// `shown` is the exact command or description the plan and the logs show.
    pub fn perform(
        &self,
        run: RunId,
        step: Step,
        shown: String,
        effect: Effect,
    ) -> Result<Outcome, StepFailure> {
        self.runtime
            .block_on(self.perform_async(run, step, shown, effect))
    }

    /// The same as [`Effects::perform`], for primitives that run several effects concurrently.
    pub async fn perform_async(
        &self,
        run: RunId,
        step: Step,
        shown: String,
        effect: Effect,
    ) -> Result<Outcome, StepFailure> {
        let fail = |message: String| StepFailure {
            kind: Kind::Runtime,
            node: Some(step.target.clone()),
            action: step.action.to_owned(),
            command: Some(self.recorder.redact(&shown)),
            message,
        };
        if self.cancel.is_cancelled() {
            return Err(fail(EffectError::Cancelled.to_string()));
        }
        let shown = self.recorder.redact(&shown);
        let mut resolved: Option<String> = None;
        let seq = match self.recorder.begin(
            run,
            StepRecord::new(
                step.action,
                &step.target,
                step.access,
                shown.clone(),
                step.origin.clone(),
            ),
        ) {
            Ok(seq) => seq,
            Err((seq, why)) => {
                let message = format!(
                    "step {seq} ({}) on {} was not run: {why}. krun records every step before                      it runs it, so no further step runs; the steps before this one ran and are                      recorded. Free space in the state directory (or pass --state-dir), then                      resume the run",
                    step.action, step.target
                );
                self.recorder.finish(
                    run,
                    seq,
                    StepResult {
                        error: Some(message.clone()),
                        observed: true,
                        ..StepResult::default()
                    },
                );
                return Err(fail(message));
            }
        };
        let replayable = match &effect {
            Effect::Call(call) => call.replayable(),
            _ => true,
        };
        if let Some(replay) = self.replay.as_ref().filter(|_| replayable) {
            let run_name = self.recorder.run_name(run);
            match replay.consult(&run_name, seq, step.action, &shown, step.access) {
                Replayed::Done(outcome) => {
                    self.recorder.finish(
                        run,
                        seq,
                        StepResult {
                            exit_code: Some(outcome.exit_code),
                            observed: outcome.observed || step.access != Access::Read,
                            // Kept, so a run resumed from this one can replay it again.
                            stdout: Some(outcome.stdout.clone()),
                            stderr: Some(outcome.stderr.clone()),
                            data: outcome.data.clone(),
                            replayed: true,
                            ..StepResult::default()
                        },
                    );
                    return Ok(outcome);
                }
                Replayed::Unknown { seq, command } => {
                    match self.settle(&step, replay.retry_unknown()).await {
                        Settled::Run(how) => {
                            tracing::warn!(
                                "[{}] step {seq} (`{command}`) was interrupted in the run being resumed; {how}",
                                step.target
                            );
                            resolved = Some(how);
                        }
                        Settled::Done(outcome, how) => {
                            tracing::warn!(
                                "[{}] step {seq} (`{command}`) was interrupted in the run being resumed; {how}",
                                step.target
                            );
                            self.recorder.finish(
                                run,
                                seq,
                                StepResult {
                                    exit_code: Some(outcome.exit_code),
                                    observed: true,
                                    stdout: Some(String::new()),
                                    stderr: Some(String::new()),
                                    data: outcome.data.clone(),
                                    resolved: Some(how),
                                    ..StepResult::default()
                                },
                            );
                            return Ok(outcome);
                        }
                        Settled::Ask(why) => {
                            let message = format!(
                                "step {seq} (`{command}`) on {} was interrupted or its result was never recorded: it may or may \
                                 not have happened{why}. Check the node, then resume with --retry-unknown to run it again",
                                step.target
                            );
                            self.recorder.finish(
                                run,
                                seq,
                                StepResult {
                                    error: Some(message.clone()),
                                    ..StepResult::default()
                                },
                            );
                            let mut failure = fail(message);
                            failure.kind = Kind::Refused;
                            return Err(failure);
                        }
                    }
                }
                Replayed::Execute => {}
            }
        }
        if step.access == Access::Change
            && let Some(why) = self.refusal().await
        {
            let message = format!(
                "step {seq} ({}) on {} was not run: {why}",
                step.action, step.target
            );
            self.recorder.finish(
                run,
                seq,
                StepResult {
                    error: Some(message.clone()),
                    observed: true,
                    resolved,
                    ..StepResult::default()
                },
            );
            let mut failure = fail(message);
            failure.kind = Kind::Refused;
            return Err(failure);
        }
        let started = Instant::now();
        let node_name = step.target.clone();
        let recorder = Arc::clone(&self.recorder);
        let secret_output = step.secret_output;
        let quiet_output = step.quiet_output;
        let hide_content = step.hide_content;
        let context = PerformContext {
            cancel: self.cancel.child_token(),
            on_output: Box::new(move |line: &str| {
                if secret_output || quiet_output {
                    return;
                }
                let line = recorder.redact(line);
                tracing::info!(target: "krun::output", "[{node_name}] {line}");
            }),
        };
        let result = self.performer.perform(step.access, &effect, &context).await;
        if let (true, Ok(performed)) = (secret_output, &result) {
            // A single line whole; otherwise line by line, as a join command's output also
            // holds short lines that are not secret.
            let stdout = performed.outcome.stdout.trim();
            if !stdout.contains('\n') {
                self.recorder.add_secret(stdout);
            }
            for line in stdout.lines().map(str::trim).filter(|l| l.len() >= 8) {
                self.recorder.add_secret(line);
            }
        }
        let duration = started.elapsed();
        match result {
            Ok(performed) => {
                let outcome = performed.outcome;
                let diff = match (&effect, performed.previous_content) {
                    (Effect::WriteFile { content, .. }, Some(previous)) if hide_content => {
                        Some(crate::plan::hidden_diff(previous.as_deref(), content))
                    }
                    // Both sides are redacted before the diff splits a secret into lines.
                    (Effect::WriteFile { content, .. }, Some(previous)) => {
                        Some(crate::plan::file_diff(
                            previous.map(|p| self.recorder.redact(&p)).as_deref(),
                            &self.recorder.redact(&String::from_utf8_lossy(content)),
                        ))
                    }
                    _ => None,
                };
                self.recorder.finish(
                    run,
                    seq,
                    StepResult {
                        exit_code: outcome.observed.then_some(outcome.exit_code),
                        duration_ms: outcome.observed.then_some(duration.as_millis() as u64),
                        observed: outcome.observed || step.access != Access::Read,
                        executed: outcome.observed,
                        diff: diff.map(|d| self.recorder.redact(&d)),
                        error: None,
                        stdout: outcome
                            .observed
                            .then(|| self.recorder.redact(&outcome.stdout)),
                        stderr: outcome
                            .observed
                            .then(|| self.recorder.redact(&outcome.stderr)),
                        replayed: false,
                        data: self.recorder.redact_json(&outcome.data),
                        resolved,
                    },
                );
                Ok(outcome)
            }
            Err(error) => {
                let message = match &error {
                    EffectError::Cancelled => "interrupted".to_owned(),
                    // What became of the command on the node matters to the operator.
                    EffectError::Transport(e) if e.cancelled => format!("interrupted: {e}"),
                    other => other.to_string(),
                };
                let data = match &error {
                    EffectError::WithData { data, .. } => self.recorder.redact_json(data),
                    _ => serde_json::Value::Null,
                };
                self.recorder.finish(
                    run,
                    seq,
                    StepResult {
                        exit_code: None,
                        duration_ms: Some(duration.as_millis() as u64),
                        observed: true,
                        executed: false,
                        diff: None,
                        error: Some(self.recorder.redact(&message)),
                        data,
                        resolved,
                        ..StepResult::default()
                    },
                );
                let mut failure = fail(format!(
                    "step {seq} ({}) on {}: {message}",
                    step.action, step.target
                ));
                failure.kind = error.kind();
                Err(failure)
            }
        }
    }
}
