//! The effects boundary: every side effect a playbook causes passes through here, once.
//!
//! A primitive describes what it wants as an [`Effect`] with its [`Access`] (a read, or a change)
//! and hands it to [`Effects::perform`]. What happens next depends on the [`Performer`]:
//! [`Live`] executes everything; [`DryRun`] executes reads (when the node can be reached and the
//! run is not offline) and records changes without making them. Primitives never ask which mode
//! they are in. Recording, redaction and progress reporting live here too, so no primitive can
//! forget them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::error::Kind;
use crate::inventory::NodeSpec;
use crate::plan::{Origin, Recorder, RunId, StepRecord, StepResult};
use crate::resume::{Replay, Replayed};
use crate::transport::{Transport, TransportError};

/// Whether an effect only observes the node, or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// A side effect.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Run a shell command (already quoted) on a node.
    Exec {
        node: Arc<NodeSpec>,
        command: String,
        timeout: Option<Duration>,
    },
    /// Write a file on a node: content streamed to a temporary file, then moved into place.
    WriteFile {
        node: Arc<NodeSpec>,
        path: String,
        content: Vec<u8>,
        mode: u32,
    },
    /// A call on the etcd cluster.
    Etcd(crate::etcd_ops::EtcdCall),
    /// A call on the Kubernetes API.
    Kube(crate::kube_ops::KubeCall),
    /// Run `command` on a node until it exits 0, every `interval`, for at most `timeout`.
    Poll {
        node: Arc<NodeSpec>,
        command: String,
        interval: Duration,
        timeout: Duration,
    },
}

/// What a primitive asks for, and where in the playbook it asked.
#[derive(Debug, Clone)]
pub struct Step {
    /// The primitive's name as the playbook calls it (`sh`, `upload`, `pkg_install`, …).
    pub action: &'static str,
    /// What the step acts on: a node name, or a cluster service (`kubernetes`, `etcd`).
    pub target: String,
    pub access: Access,
    pub origin: Origin,
    /// How a resumed run settles this step if krun died while it ran.
    pub recheck: Recheck,
    /// The command prints a secret (a join command, a certificate key): its output is not
    /// streamed to the log, and every line of it is redacted everywhere from then on.
    pub secret_output: bool,
    /// The output is large and of no interest line by line (certificates read for their
    /// expiry): it is not streamed to the log, but recorded as usual.
    pub quiet_output: bool,
}

/// How a step whose outcome the journal does not know (krun was killed while it ran) is settled
/// when the run is resumed. The primitive that builds the step knows; the boundary applies it.
#[derive(Clone, Default)]
pub enum Recheck {
    /// Nothing tells whether it happened: the operator checks and decides
    /// (`krun resume --retry-unknown`).
    #[default]
    Ask,
    /// Doing it again reaches the same state (a cordon, a file write, `systemctl restart`, a
    /// wait): it simply runs again.
    Rerun,
    /// This read tells whether it happened. When `done` says so, the step counts as done (not
    /// executed again); otherwise it runs.
    ReadBack {
        probe: Box<Effect>,
        /// How the plan and the journal show the probe.
        shown: String,
        done: Arc<dyn Fn(&Outcome) -> bool + Send + Sync>,
    },
}

impl Recheck {
    /// A read-back by a command on a node that exits 0 exactly when the step's change is in place.
    pub fn command(node: Arc<NodeSpec>, command: String) -> Self {
        Recheck::ReadBack {
            shown: command.clone(),
            probe: Box::new(Effect::Exec {
                node,
                command,
                timeout: Some(Duration::from_secs(60)),
            }),
            done: Arc::new(|outcome: &Outcome| outcome.exit_code == 0),
        }
    }

    /// What an effect's kind implies when its primitive says nothing more.
    pub fn infer(effect: &Effect) -> Self {
        match effect {
            Effect::WriteFile { .. } | Effect::Poll { .. } => Recheck::Rerun,
            Effect::Kube(call) if call.converges() => Recheck::Rerun,
            Effect::Etcd(call) => call.recheck(),
            Effect::Kube(_) | Effect::Exec { .. } => Recheck::Ask,
        }
    }
}

impl std::fmt::Debug for Recheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recheck::Ask => f.write_str("Ask"),
            Recheck::Rerun => f.write_str("Rerun"),
            Recheck::ReadBack { shown, .. } => write!(f, "ReadBack({shown})"),
        }
    }
}

/// The result of a performed (or recorded) effect.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// False when the effect was not executed (a recorded change, or a read that could not run):
    /// the values are placeholders, not observations.
    pub observed: bool,
    /// Structured results of API effects (etcd, Kubernetes); `Null` for commands.
    pub data: serde_json::Value,
}

/// Why an effect could not be performed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EffectError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("interrupted before this step started")]
    Cancelled,
    /// A safety guard refused the change (exit 3).
    #[error("{0}")]
    Refused(String),
    /// The step's input is invalid, e.g. a missing inventory section (exit 2).
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Other(String),
}

/// How effects are carried out: [`Live`] or [`DryRun`].
pub trait Performer: Send + Sync {
    fn perform<'a>(
        &'a self,
        access: Access,
        effect: &'a Effect,
        context: &'a PerformContext,
    ) -> BoxFuture<'a, Result<Performed, EffectError>>;

    fn is_dry_run(&self) -> bool;
}

/// What a performer reports back: the outcome, and for file writes in dry-run the file as it is.
#[derive(Debug, Default)]
pub struct Performed {
    pub outcome: Outcome,
    /// For a recorded file write: the node's current content, when it could be read.
    pub previous_content: Option<Option<String>>,
}

/// Per-step plumbing handed to a performer.
pub struct PerformContext {
    pub cancel: CancellationToken,
    pub on_output: Box<dyn Fn(&str) + Send + Sync>,
}

/// Executes every effect.
pub struct Live {
    pub transport: Arc<dyn Transport>,
    pub etcd: Arc<crate::etcd_ops::EtcdService>,
    pub kube: Arc<crate::kube_ops::KubeService>,
}

impl Performer for Live {
    fn perform<'a>(
        &'a self,
        _access: Access,
        effect: &'a Effect,
        context: &'a PerformContext,
    ) -> BoxFuture<'a, Result<Performed, EffectError>> {
        Box::pin(async move {
            let outcome = match effect {
                Effect::Etcd(call) => Outcome {
                    data: self.etcd.live(call).await?,
                    observed: true,
                    ..Outcome::default()
                },
                Effect::Kube(call) => Outcome {
                    data: self.kube.live(call).await?,
                    observed: true,
                    ..Outcome::default()
                },
                _ => execute(self.transport.as_ref(), effect, context).await?,
            };
            Ok(Performed {
                outcome,
                previous_content: None,
            })
        })
    }

    fn is_dry_run(&self) -> bool {
        false
    }
}

/// Executes reads, records changes.
pub struct DryRun {
    /// `None` when offline: nothing is contacted, every read is unobserved.
    pub transport: Option<Arc<dyn Transport>>,
    /// `None` when offline.
    pub etcd: Option<Arc<crate::etcd_ops::EtcdService>>,
    /// `None` when offline.
    pub kube: Option<Arc<crate::kube_ops::KubeService>>,
    /// Rehearsal: Kubernetes calls really happen (in the simulator).
    pub kube_live: bool,
}

impl Performer for DryRun {
    fn perform<'a>(
        &'a self,
        access: Access,
        effect: &'a Effect,
        context: &'a PerformContext,
    ) -> BoxFuture<'a, Result<Performed, EffectError>> {
        Box::pin(async move {
            if let (Effect::Etcd(call), Some(etcd)) = (effect, &self.etcd) {
                let data = etcd.dry_run(call).await?;
                return Ok(Performed {
                    outcome: Outcome {
                        observed: access == Access::Read,
                        data: data.unwrap_or_default(),
                        ..Outcome::default()
                    },
                    previous_content: None,
                });
            }
            if let (Effect::Kube(call), Some(kube)) = (effect, &self.kube) {
                if self.kube_live {
                    // The kubelet upgrade that would precede this wait was only recorded.
                    if let crate::kube_ops::KubeCall::WaitReady {
                        node,
                        version: Some(version),
                        ..
                    } = call
                    {
                        kube.rehearse_kubelet(node, version).await?;
                    }
                    let data = kube.live(call).await?;
                    return Ok(Performed {
                        outcome: Outcome {
                            observed: true,
                            data,
                            ..Outcome::default()
                        },
                        previous_content: None,
                    });
                }
                let data = kube.dry_run(call).await?;
                return Ok(Performed {
                    outcome: Outcome {
                        observed: access == Access::Read,
                        data: data.unwrap_or_default(),
                        ..Outcome::default()
                    },
                    previous_content: None,
                });
            }
            let Some(transport) = &self.transport else {
                return Ok(Performed::default());
            };
            match (access, effect) {
                (Access::Read, _) => match execute(transport.as_ref(), effect, context).await {
                    Ok(outcome) => Ok(Performed {
                        outcome,
                        previous_content: None,
                    }),
                    Err(EffectError::Transport(e)) if e.is_unreachable() => {
                        tracing::warn!("{e}; later steps depend on unobserved state");
                        Ok(Performed::default())
                    }
                    Err(e) => Err(e),
                },
                (_, Effect::WriteFile { node, path, .. }) => {
                    let previous = read_file(transport.as_ref(), node, path, context).await;
                    Ok(Performed {
                        outcome: Outcome::default(),
                        previous_content: Some(previous),
                    })
                }
                (Access::Change | Access::Wait, _) => Ok(Performed::default()),
            }
        })
    }

    fn is_dry_run(&self) -> bool {
        true
    }
}

/// The current content of a file on a node, or `None` when it does not exist or cannot be read.
async fn read_file(
    transport: &dyn Transport,
    node: &NodeSpec,
    path: &str,
    context: &PerformContext,
) -> Option<String> {
    let command = format!("cat -- {}", crate::quote::quote(path));
    let output = transport
        .exec(
            node,
            &command,
            None,
            Some(Duration::from_secs(30)),
            &context.cancel,
            &|_| {},
        )
        .await
        .ok()?;
    (output.exit_code == 0).then_some(output.stdout)
}

async fn execute(
    transport: &dyn Transport,
    effect: &Effect,
    context: &PerformContext,
) -> Result<Outcome, EffectError> {
    match effect {
        Effect::Exec {
            node,
            command,
            timeout,
        } => Ok(transport
            .exec(
                node,
                command,
                None,
                *timeout,
                &context.cancel,
                &*context.on_output,
            )
            .await?),
        Effect::WriteFile {
            node,
            path,
            content,
            mode,
        } => {
            let command = crate::quote::write_file_command(path, *mode);
            Ok(transport
                .exec(
                    node,
                    &command,
                    Some(content),
                    Some(Duration::from_secs(600)),
                    &context.cancel,
                    &|_| {},
                )
                .await?)
        }
        Effect::Etcd(_) | Effect::Kube(_) => Err(EffectError::Other(
            "etcd calls are not node commands".into(),
        )),
        Effect::Poll {
            node,
            command,
            interval,
            timeout,
        } => {
            let deadline = Instant::now() + *timeout;
            loop {
                let outcome = transport
                    .exec(
                        node,
                        command,
                        None,
                        Some(*interval + Duration::from_secs(30)),
                        &context.cancel,
                        &|_| {},
                    )
                    .await?;
                if outcome.exit_code == 0 || Instant::now() + *interval > deadline {
                    return Ok(outcome);
                }
                tokio::select! {
                    () = tokio::time::sleep(*interval) => {}
                    () = context.cancel.cancelled() => return Err(EffectError::Cancelled),
                }
            }
        }
    }
}

/// A failed step, as carried through the Rhai engine to the edge.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub kind: Kind,
    pub node: Option<String>,
    pub action: String,
    pub command: Option<String>,
    pub message: String,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How an unknown step was settled on resume.
enum Settled {
    /// Run it; the text says why, for the log and the journal.
    Run(String),
    /// It had happened: this outcome stands for it.
    Done(Outcome, String),
    /// The operator must decide; the text adds what was tried.
    Ask(String),
}

/// The boundary itself: a performer plus the recorder, shared by every run of a command.
pub struct Effects {
    performer: Box<dyn Performer>,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
    replay: Option<Arc<Replay>>,
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
        }
    }

    /// Resuming: steps the journal records as done return their recorded results.
    pub fn with_replay(mut self, replay: Arc<Replay>) -> Self {
        self.replay = Some(replay);
        self
    }

    pub fn is_dry_run(&self) -> bool {
        self.performer.is_dry_run()
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
        let seq = self.recorder.begin(
            run,
            StepRecord::new(
                step.action,
                &step.target,
                step.access,
                shown.clone(),
                step.origin.clone(),
            ),
        );
        if let Some(replay) = &self.replay {
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
        let started = Instant::now();
        let node_name = step.target.clone();
        let recorder = Arc::clone(&self.recorder);
        let secret_output = step.secret_output;
        let quiet_output = step.quiet_output;
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
            let stdout = &performed.outcome.stdout;
            self.recorder.add_secret(stdout.trim());
            for line in stdout.lines().map(str::trim).filter(|l| l.len() >= 8) {
                self.recorder.add_secret(line);
            }
        }
        let duration = started.elapsed();
        match result {
            Ok(performed) => {
                let outcome = performed.outcome;
                let diff = match (&effect, performed.previous_content) {
                    (Effect::WriteFile { content, .. }, Some(previous)) => {
                        Some(crate::plan::file_diff(
                            previous.as_deref(),
                            &String::from_utf8_lossy(content),
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
                    EffectError::Transport(e) if e.cancelled => "interrupted".to_owned(),
                    other => other.to_string(),
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
                        resolved,
                        ..StepResult::default()
                    },
                );
                let mut failure = fail(format!(
                    "step {seq} ({}) on {}: {message}",
                    step.action, step.target
                ));
                failure.kind = match error {
                    EffectError::Refused(_) => Kind::Refused,
                    EffectError::Input(_) => Kind::Input,
                    EffectError::Cancelled => Kind::Interrupted,
                    _ => Kind::Runtime,
                };
                Err(failure)
            }
        }
    }
}
