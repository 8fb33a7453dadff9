//! Injected faults and latency, and the request counters: what tests set up to see how a
//! client copes with a failing or slow API server.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::status::ApiError;

fn any() -> String {
    "*".into()
}

/// The next `count` API requests matching `verb` and `resource` fail with `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// An API verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`) or `*`.
    #[serde(default = "any")]
    pub verb: String,
    /// A plural with an optional subresource (`pods`, `pods/eviction`, `nodes/status`),
    /// `discovery` for discovery documents, or `*`.
    #[serde(default = "any")]
    pub resource: String,
    /// Only requests in this namespace; any when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    pub count: u32,
    /// HTTP status code; the `Status` reason follows from it (500 InternalError, 503
    /// ServiceUnavailable, 429 TooManyRequests, 409 Conflict, …).
    pub code: u16,
    #[serde(default)]
    pub message: Option<String>,
}

/// Every API request matching `verb` and `resource` is delayed by `milliseconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    #[serde(default = "any")]
    pub verb: String,
    #[serde(default = "any")]
    pub resource: String,
    pub milliseconds: u64,
}

/// What an API request is, for counters, faults and latency.
#[derive(Debug, Clone)]
pub(crate) struct RequestKind {
    pub verb: &'static str,
    pub resource: String,
    pub namespace: Option<String>,
}

impl RequestKind {
    fn matches(&self, verb: &str, resource: &str) -> bool {
        (verb == "*" || verb == self.verb) && (resource == "*" || resource == self.resource)
    }

    /// The counter name: `list pods`, `create pods/eviction`.
    pub fn counter(&self) -> String {
        format!("{} {}", self.verb, self.resource)
    }
}

#[derive(Debug, Default)]
pub(crate) struct ControlState {
    pub faults: Vec<Fault>,
    pub latency: Vec<Latency>,
    pub counters: BTreeMap<String, u64>,
}

impl ControlState {
    /// Counts a request and says whether it must fail and how long it must wait first.
    pub fn admit(&mut self, kind: &RequestKind) -> (Option<ApiError>, Duration) {
        *self.counters.entry(kind.counter()).or_default() += 1;
        let delay = self
            .latency
            .iter()
            .filter(|l| kind.matches(&l.verb, &l.resource))
            .map(|l| Duration::from_millis(l.milliseconds))
            .max()
            .unwrap_or_default();
        let fault = self.faults.iter_mut().find(|f| {
            f.count > 0
                && kind.matches(&f.verb, &f.resource)
                && f.namespace
                    .as_ref()
                    .is_none_or(|ns| Some(ns) == kind.namespace.as_ref())
        });
        let error = fault.map(|f| {
            f.count -= 1;
            let message = f.message.clone().unwrap_or_else(|| {
                format!("fault injected by the simulator for {}", kind.counter())
            });
            ApiError::injected(f.code, message)
        });
        self.faults.retain(|f| f.count > 0);
        (error, delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(verb: &'static str, resource: &str) -> RequestKind {
        RequestKind {
            verb,
            resource: resource.into(),
            namespace: Some("shop".into()),
        }
    }

    #[test]
    fn faults_fire_the_requested_number_of_times() {
        let mut control = ControlState::default();
        control.faults.push(Fault {
            verb: "create".into(),
            resource: "pods/eviction".into(),
            namespace: None,
            count: 2,
            code: 503,
            message: None,
        });
        assert!(control.admit(&kind("get", "pods")).0.is_none());
        let (first, _) = control.admit(&kind("create", "pods/eviction"));
        assert_eq!(
            first.map(|e| (e.code, e.reason)),
            Some((503, "ServiceUnavailable"))
        );
        assert!(control.admit(&kind("create", "pods/eviction")).0.is_some());
        assert!(control.admit(&kind("create", "pods/eviction")).0.is_none());
        assert_eq!(control.counters["create pods/eviction"], 3);
    }

    #[test]
    fn latency_applies_to_matching_requests() {
        let mut control = ControlState::default();
        control.latency.push(Latency {
            verb: "*".into(),
            resource: "nodes".into(),
            milliseconds: 50,
        });
        assert_eq!(
            control.admit(&kind("patch", "nodes")).1,
            Duration::from_millis(50)
        );
        assert_eq!(control.admit(&kind("patch", "pods")).1, Duration::ZERO);
    }
}
