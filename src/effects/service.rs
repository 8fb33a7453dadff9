//! Cluster services behind the boundary: the Kubernetes API and etcd.
//!
//! Each client owns its call type (`kube::Call`, `etcd::Call`); the boundary knows of a call only
//! what this module's [`Call`] says (which service performs it, how the plan shows it, how a
//! resumed run settles it), and hands it to that [`Service`]. A performer decides whether the
//! service performs the call or previews it.

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{Detail, EffectError, Recheck};

/// A call on a cluster service, in the client's own type.
pub trait Call: std::fmt::Debug + Send + Sync + 'static {
    /// The name of the service that performs it (`kubernetes`, `etcd`).
    fn service(&self) -> &'static str;

    /// How the plan shows it (close to the command a person would type).
    fn describe(&self) -> String;

    /// How a resumed run settles it if krun died while it ran.
    fn recheck(&self) -> Recheck {
        Recheck::Ask
    }

    /// Whether a resumed run may hand back the journal's record instead of performing it.
    /// Reads whose result is too large to record (see [`super::Outcome::detail`]) are performed
    /// again.
    fn replayable(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any;
}

/// What a service answers.
#[derive(Debug, Default)]
pub struct Reply {
    /// Structured data for the plan, the journal and the script.
    pub data: Value,
    /// The full typed result, when `data` is only its summary.
    pub detail: Option<Detail>,
}

impl Reply {
    pub fn data(data: Value) -> Self {
        Reply { data, detail: None }
    }
}

/// A cluster service: performs its client's calls, or previews them for a dry-run.
pub trait Service: Send + Sync {
    /// The name calls give in [`Call::service`].
    fn name(&self) -> &'static str;

    /// Performs the call.
    fn perform<'a>(&'a self, call: &'a dyn Call) -> BoxFuture<'a, Result<Reply, EffectError>>;

    /// What a dry-run does instead: reads answer; a change is judged against the live state
    /// without being made (a drain's preview, a server-side dry-run eviction, the etcd quorum
    /// guard on a simulated membership), or only recorded (`None`).
    fn preview<'a>(
        &'a self,
        call: &'a dyn Call,
    ) -> BoxFuture<'a, Result<Option<Reply>, EffectError>>;
}

/// The services one command talks to, by name.
#[derive(Clone, Default)]
pub struct Services(Vec<Arc<dyn Service>>);

impl Services {
    pub fn with(mut self, service: Arc<dyn Service>) -> Self {
        self.0.push(service);
        self
    }

    /// The service that performs `call`, if this command has it.
    pub fn get(&self, call: &dyn Call) -> Option<&Arc<dyn Service>> {
        self.0.iter().find(|s| s.name() == call.service())
    }
}
