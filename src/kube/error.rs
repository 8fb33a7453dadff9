//! What can go wrong talking to a cluster, named so an operator can act on it: the node, the
//! pod, the budget that holds it, and what krun did about the node.

use std::fmt;
use std::time::Duration;

use super::drain_plan::RefusedDrain;
use super::pdb::{PdbStatus, describe};
use super::pod::PodRef;
use crate::error::Kind;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be read or does not name a usable context.
    #[error("Kubernetes configuration ({source_desc}): {message}")]
    Config {
        source_desc: String,
        message: String,
    },

    /// A request failed. `action` says what was asked (`GET node n1`).
    #[error("{action}: {}", api_message(.source))]
    Api {
        action: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("node {node} not found in the cluster")]
    NodeNotFound { node: String },

    #[error("invalid pod_selector {selector:?}: {reason}")]
    Selector { selector: String, reason: String },

    #[error(
        "the API server at {server} offers no Eviction API (policy/v1 or policy/v1beta1 \
         pods/eviction); krun will not fall back to plain deletes, which ignore \
         PodDisruptionBudgets"
    )]
    EvictionUnsupported { server: String },

    #[error(
        "pod {pod} cannot be evicted: it is covered by more than one PodDisruptionBudget ({}), \
         which the eviction API refuses; fix the overlapping budgets (API server: {message})",
        describe(.pdbs)
    )]
    MultiplePdbs {
        pod: PodRef,
        pdbs: Vec<PdbStatus>,
        message: String,
    },

    /// The API server refused an eviction for good, or kept failing.
    #[error("eviction of pod {pod} failed: {message}")]
    EvictionFailed { pod: PodRef, message: String },

    /// The eviction of one pod did not get through before its deadline.
    #[error("{0}")]
    EvictionTimedOut(Box<EvictionTimedOut>),

    /// A pod was evicted or deleted but is still there at the deadline.
    #[error(
        "pod {pod} was {how} but is still terminating after {}",
        humantime::format_duration(*.waited)
    )]
    DeletionTimedOut {
        pod: PodRef,
        how: &'static str,
        waited: Duration,
    },

    /// A drain could not finish; says which pods remain and what holds them.
    #[error("{0}")]
    DrainFailed(Box<DrainFailed>),

    #[error("{0}")]
    NotReady(Box<NotReady>),

    #[error("watching {what} failed: {message}")]
    Watch { what: String, message: String },

    /// A kept replica's replacement did not become Ready before the drain's deadline.
    #[error(
        "{owner} has no PodDisruptionBudget, so the drain keeps a replica of it ready and evicts \
         its pods one at a time: no replacement became Ready elsewhere in time (waiting for \
         {ready} ready). Make room for its pods on other nodes, give it a budget, or drain with \
         keep_replica: false"
    )]
    KeptReplica { owner: String, ready: i32 },

    #[error("interrupted while {doing}")]
    Cancelled { doing: String },
}

pub type KubeResult<T> = Result<T, KubeError>;

impl KubeError {
    pub(crate) fn api(action: impl Into<String>, source: kube::Error) -> Self {
        KubeError::Api {
            action: action.into(),
            source: Box::new(source),
        }
    }

    /// The exit-code kind: a safety guard (PDB, drain filters, overlapping budgets, no
    /// eviction API) refused, or the input was wrong, or something failed at runtime.
    pub fn kind(&self) -> Kind {
        match self {
            KubeError::MultiplePdbs { .. } | KubeError::EvictionUnsupported { .. } => Kind::Refused,
            KubeError::EvictionTimedOut(e) if !e.blocked_by.is_empty() => Kind::Refused,
            KubeError::KeptReplica { .. } => Kind::Refused,
            KubeError::DrainFailed(e) => e.kind(),
            KubeError::Config { .. } | KubeError::Selector { .. } => Kind::Input,
            KubeError::Cancelled { .. } => Kind::Interrupted,
            _ => Kind::Runtime,
        }
    }

    /// Whether asking again could succeed: the server answered "try again" (429, 5xx) or the
    /// request got no answer at all.
    pub fn transient(&self) -> bool {
        match self {
            KubeError::Api { source, .. } => super::retry::transient_error(source),
            _ => false,
        }
    }

    /// The HTTP status of a failed request, if it got that far.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            KubeError::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<KubeError> for crate::Error {
    fn from(error: KubeError) -> Self {
        crate::Error {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

/// The API server's own words when it answered, else the transport error.
pub(crate) fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({})", status.message, status.code)
        }
        kube::Error::Api(status) => format!("HTTP {} {}", status.code, status.reason),
        other => other.to_string(),
    }
}

/// An eviction that was still refused at its deadline.
#[derive(Debug)]
pub struct EvictionTimedOut {
    pub pod: PodRef,
    pub waited: Duration,
    /// The budgets that refused it at the last attempt (empty when it failed otherwise).
    pub blocked_by: Vec<PdbStatus>,
    /// The API server's last answer.
    pub last_answer: String,
}

impl fmt::Display for EvictionTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pod {} could not be evicted within {}",
            self.pod,
            humantime::format_duration(self.waited)
        )?;
        if self.blocked_by.is_empty() {
            write!(f, ": {}", self.last_answer)
        } else {
            write!(
                f,
                ": blocked by PodDisruptionBudget {}",
                describe(&self.blocked_by)
            )
        }
    }
}

/// A pod still on the node when a drain gave up, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingPod {
    pub pod: PodRef,
    /// `eviction refused`, `terminating`, `not yet evicted`, or the error that stopped it.
    pub state: String,
    pub blocked_by: Vec<PdbStatus>,
}

impl fmt::Display for PendingPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.pod, self.state)?;
        if !self.blocked_by.is_empty() {
            write!(
                f,
                ", held by PodDisruptionBudget {}",
                describe(&self.blocked_by)
            )?;
        }
        Ok(())
    }
}

/// What the node was left as after a failed drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeLeft {
    /// Still cordoned: new pods stay away until someone uncordons it.
    Cordoned,
    /// Still cordoned, as it already was before the drain.
    CordonedBefore,
    /// Uncordoned again because `uncordon_on_failure` was set.
    Uncordoned,
    /// `uncordon_on_failure` was set but the uncordon failed too.
    UncordonFailed,
}

/// Why a drain stopped.
#[derive(Debug)]
pub enum DrainCause {
    /// The drain filters refused pods; nothing was evicted.
    Refused(RefusedDrain),
    /// Pods to evict are covered by more than one PodDisruptionBudget, which the Eviction API
    /// refuses; nothing was evicted.
    OverlappingBudgets(Vec<(PodRef, Vec<PdbStatus>)>),
    /// The drain's `timeout` ran out.
    TimedOut(Duration),
    /// An operation failed.
    Failed(Box<KubeError>),
}

#[derive(Debug)]
pub struct DrainFailed {
    pub node: String,
    pub cause: DrainCause,
    /// Pods that should have left and are still there (or whose fate is unknown).
    pub pending: Vec<PendingPod>,
    pub evicted: usize,
    pub node_left: NodeLeft,
}

impl DrainFailed {
    pub fn kind(&self) -> Kind {
        match &self.cause {
            DrainCause::Refused(_) | DrainCause::OverlappingBudgets(_) => Kind::Refused,
            _ if self.pending.iter().any(|p| !p.blocked_by.is_empty()) => Kind::Refused,
            DrainCause::Failed(inner) => inner.kind(),
            DrainCause::TimedOut(_) => Kind::Runtime,
        }
    }
}

impl DrainFailed {
    fn write_failure(&self, f: &mut fmt::Formatter<'_>, why: &str) -> fmt::Result {
        write!(
            f,
            "drain of node {} failed: {why}\n{} pod{} evicted, {} still on the node",
            self.node,
            self.evicted,
            if self.evicted == 1 { "" } else { "s" },
            self.pending.len()
        )?;
        for pending in &self.pending {
            write!(f, "\n  {pending}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DrainFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            DrainCause::Refused(refused) => write!(f, "{refused}")?,
            DrainCause::OverlappingBudgets(pods) => {
                write!(
                    f,
                    "drain of node {} refused, nothing was evicted: the Eviction API cannot evict \
                     a pod covered by more than one PodDisruptionBudget; fix these budgets first:",
                    self.node
                )?;
                for (pod, budgets) in pods {
                    write!(f, "\n  {pod}: {}", describe(budgets))?;
                }
            }
            DrainCause::TimedOut(after) => self.write_failure(
                f,
                &format!("timed out after {}", humantime::format_duration(*after)),
            )?,
            DrainCause::Failed(error) => self.write_failure(f, &error.to_string())?,
        }
        match self.node_left {
            NodeLeft::Cordoned => write!(
                f,
                "\nnode {} stays cordoned (uncordon_on_failure is not set)",
                self.node
            ),
            NodeLeft::CordonedBefore => write!(
                f,
                "\nnode {} stays cordoned, as it was before the drain",
                self.node
            ),
            NodeLeft::Uncordoned => write!(
                f,
                "\nnode {} was uncordoned again (uncordon_on_failure)",
                self.node
            ),
            NodeLeft::UncordonFailed => write!(
                f,
                "\nnode {} is STILL CORDONED: uncordon_on_failure was set but the uncordon failed",
                self.node
            ),
        }
    }
}

/// A node that did not become Ready (or report the wanted kubelet) in time.
#[derive(Debug)]
pub struct NotReady {
    pub node: String,
    pub waited: Duration,
    pub wanted_kubelet: Option<String>,
    /// What the node last said: `Ready=False (KubeletNotReady: …), kubelet v1.21.14`, or
    /// that it was never seen.
    pub last_seen: String,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} did not become Ready", self.node)?;
        if let Some(version) = &self.wanted_kubelet {
            write!(f, " with kubelet {version}")?;
        }
        write!(
            f,
            " within {}; last seen: {}",
            humantime::format_duration(self.waited),
            self.last_seen
        )
    }
}
