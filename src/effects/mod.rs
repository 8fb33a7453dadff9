//! The effects boundary: every side effect a playbook causes passes through here, once.
//!
//! A primitive describes what it wants as an [`Effect`] with its [`Access`] (a read, a change,
//! or a wait) and hands it to [`Effects::perform`]. What happens next is the [`Performer`]'s
//! business, chosen once by the command's wiring: `Live` executes everything; `DryRun` executes
//! reads and records changes without making them; `Rehearse` does what a dry-run does on the
//! nodes while the cluster calls really happen in a stand-in cluster. Primitives never ask which
//! one it is. Recording, the journal, replay on resume, redaction and progress reporting live
//! here too, so no primitive can forget them.
//!
//! Node commands go through the [`transport`] (ssh). Calls on cluster services (the Kubernetes
//! API, etcd) are each client's own call type ([`Call`]), performed by that client's
//! [`Service`]; adding a client adds a service, not a case here.

mod boundary;
pub mod etcd;
pub mod kube;
pub mod perform;
pub mod replay;
mod service;
pub mod transport;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

pub use boundary::{Effects, Precondition};
pub use perform::{PerformContext, Performed, Performer};
pub use service::{Call, Reply, Service, Services};

use crate::error::Kind;
use crate::inventory::NodeSpec;
pub use crate::plan::Access;
use crate::plan::Origin;
use transport::TransportError;

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
    /// Run `command` on a node until it exits 0, every `interval`, for at most `timeout`.
    Poll {
        node: Arc<NodeSpec>,
        command: String,
        interval: Duration,
        timeout: Duration,
    },
    /// A call on a cluster service (the Kubernetes API, etcd).
    Call(Arc<dyn Call>),
}

impl Effect {
    /// A call on the cluster service that performs `call`.
    pub fn call(call: impl Call) -> Self {
        Effect::Call(Arc::new(call))
    }
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
    /// A file written from a local file the playbook did not mark showable (`upload`,
    /// `render`): the plan shows its size and digest, not its text.
    pub hide_content: bool,
}

impl Step {
    /// A step with the usual settings: settled on resume as its effect's kind implies, output
    /// streamed to the log.
    pub fn new(
        action: &'static str,
        target: impl Into<String>,
        access: Access,
        origin: Origin,
    ) -> Self {
        Step {
            action,
            target: target.into(),
            access,
            origin,
            recheck: Recheck::Ask,
            secret_output: false,
            quiet_output: false,
            hide_content: false,
        }
    }
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
            Effect::Call(call) => call.recheck(),
            Effect::Exec { .. } => Recheck::Ask,
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
    /// Structured results of calls (etcd, Kubernetes); `Null` for commands. This is what the
    /// plan, the journal and a resumed run see.
    pub data: serde_json::Value,
    /// A call's full typed result when it is too large to record (the cluster view a forecast
    /// is made on); `data` then holds a summary. Never replayed: such calls are performed again
    /// on resume.
    pub detail: Option<Detail>,
}

impl Outcome {
    /// The typed result of a call, when the service gave one of type `T`.
    pub fn detail<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.detail
            .as_ref()
            .and_then(|d| Arc::clone(&d.0).downcast::<T>().ok())
    }
}

/// A call's typed result, as a service hands it over (see [`Outcome::detail`]).
#[derive(Clone)]
pub struct Detail(pub Arc<dyn Any + Send + Sync>);

impl Detail {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Detail(Arc::new(value))
    }
}

impl std::fmt::Debug for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Detail(..)")
    }
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
    /// A failure that still says what it left behind (a drain that failed with its node
    /// cordoned): `data` is recorded with the failed step.
    #[error("{message}")]
    WithData {
        kind: Kind,
        message: String,
        data: serde_json::Value,
    },
}

impl EffectError {
    /// The exit code class of this error.
    pub fn kind(&self) -> Kind {
        match self {
            EffectError::Refused(_) => Kind::Refused,
            EffectError::Input(_) => Kind::Input,
            EffectError::Cancelled => Kind::Interrupted,
            EffectError::WithData { kind, .. } => *kind,
            _ => Kind::Runtime,
        }
    }

    /// The error of a client, by the exit-code class it falls in.
    pub fn from_kind(kind: Kind, message: String) -> Self {
        match kind {
            Kind::Refused => EffectError::Refused(message),
            Kind::Input => EffectError::Input(message),
            Kind::Interrupted => EffectError::Cancelled,
            _ => EffectError::Other(message),
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
