//! The control side of the simulator: what tests and node emulation change behind the API's
//! back (a node going NotReady, a kubelet reporting its new version after an upgrade, the
//! control plane moving to a new release), injected faults and latency, and request counters.
//!
//! Served over HTTP under `/sim/` and available in-process through [`SimHandle`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ControlError;
use super::faults::{Fault, Latency};
use super::shared::Shared;
use super::value::{object_at, set_condition, str_at};
use super::world::World;

fn valid_version(version: &str) -> Result<(), ControlError> {
    let numbers: Vec<&str> = version
        .strip_prefix('v')
        .unwrap_or("")
        .split(['.', '-', '+'])
        .collect();
    if numbers.len() >= 3 && numbers[..3].iter().all(|n| n.parse::<u32>().is_ok()) {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "{version:?} is not a Kubernetes version like v1.28.9"
        )))
    }
}

impl World {
    pub(crate) fn node_key(&self, name: &str) -> Result<String, ControlError> {
        match self.get(self.ids.node, name) {
            Some(node) => Ok(node.key.clone()),
            None => Err(ControlError::NoSuchNode(name.to_string())),
        }
    }

    /// The kubelet stops or resumes posting Ready.
    pub fn set_node_ready(&mut self, name: &str, ready: bool) -> Result<(), ControlError> {
        let key = self.node_key(name)?;
        let now = self.now_string();
        self.modify(self.ids.node, &key, |v| {
            let (status, reason, message) = if ready {
                ("True", "KubeletReady", "kubelet is posting ready status")
            } else {
                (
                    "False",
                    "KubeletNotReady",
                    "container runtime network not ready: the kubelet is down",
                )
            };
            set_condition(v, "Ready", status, reason, message, &now);
            if let Some(conditions) = v
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for condition in conditions
                    .iter_mut()
                    .filter(|c| str_at(c, &["type"]) == Some("Ready"))
                {
                    condition["lastHeartbeatTime"] = json!(now);
                }
            }
        });
        self.settle();
        Ok(())
    }

    /// What `kubelet --version` and `crictl version` would now report on the node.
    pub fn set_node_versions(
        &mut self,
        name: &str,
        kubelet: Option<&str>,
        runtime: Option<&str>,
    ) -> Result<(), ControlError> {
        if let Some(version) = kubelet {
            valid_version(version)?;
        }
        let key = self.node_key(name)?;
        self.modify(self.ids.node, &key, |v| {
            let info = object_at(v, &["status", "nodeInfo"]);
            if let Some(version) = kubelet {
                info.insert("kubeletVersion".into(), json!(version));
                info.insert("kubeProxyVersion".into(), json!(version));
            }
            if let Some(runtime) = runtime {
                info.insert("containerRuntimeVersion".into(), json!(runtime));
            }
        });
        self.settle();
        Ok(())
    }

    /// The control plane now runs `version`: served at `/version` and written into the images
    /// of the control-plane static pods (of `node` only, when given).
    pub fn set_control_plane_version(
        &mut self,
        version: &str,
        node: Option<&str>,
    ) -> Result<(), ControlError> {
        valid_version(version)?;
        if let Some(node) = node {
            self.node_key(node)?;
        }
        self.control_plane_version = version.to_string();
        let pods: Vec<String> = self
            .in_namespace(self.ids.pod, "kube-system")
            .filter(|p| {
                let component = p.labels.get("component").map(String::as_str);
                matches!(
                    component,
                    Some("kube-apiserver" | "kube-controller-manager" | "kube-scheduler")
                ) && node.is_none_or(|n| p.pod().is_some_and(|i| i.node == n))
            })
            .map(|p| p.key.clone())
            .collect();
        for key in pods {
            self.modify(self.ids.pod, &key, |v| {
                for pointer in ["/spec/containers", "/status/containerStatuses"] {
                    if let Some(containers) = v.pointer_mut(pointer).and_then(Value::as_array_mut) {
                        for container in containers {
                            if let Some((repository, _)) =
                                str_at(container, &["image"]).and_then(|i| i.rsplit_once(':'))
                            {
                                container["image"] = json!(format!("{repository}:{version}"));
                            }
                        }
                    }
                }
            });
        }
        self.settle();
        Ok(())
    }
}

/// Drives a running simulator from the inside: the in-process equivalent of `/sim/`.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Marks a node Ready or NotReady, as its kubelet would by posting status or stopping.
    pub fn set_node_ready(&self, node: &str, ready: bool) -> Result<(), ControlError> {
        self.shared.with_world(|w| w.set_node_ready(node, ready))
    }

    /// Stops a node's kubelet: its lease is no longer renewed nor its status reported, and
    /// once the lease has expired the node turns `Unknown`, as when a kubelet dies.
    pub fn stop_kubelet(&self, node: &str) -> Result<(), ControlError> {
        self.shared.with_world(|w| {
            w.node_key(node)?;
            w.set_kubelet_running(node, false);
            Ok(())
        })
    }

    /// Starts a stopped kubelet again: lease renewed and Ready reported at once.
    pub fn start_kubelet(&self, node: &str) -> Result<(), ControlError> {
        self.shared.with_world(|w| {
            w.node_key(node)?;
            w.set_kubelet_running(node, true);
            w.settle();
            Ok(())
        })
    }

    /// Sets the kubelet version a node reports.
    pub fn set_kubelet_version(&self, node: &str, version: &str) -> Result<(), ControlError> {
        self.shared
            .with_world(|w| w.set_node_versions(node, Some(version), None))
    }

    /// Sets the container runtime version a node reports (`containerd://1.7.13`).
    pub fn set_container_runtime_version(
        &self,
        node: &str,
        version: &str,
    ) -> Result<(), ControlError> {
        self.shared
            .with_world(|w| w.set_node_versions(node, None, Some(version)))
    }

    /// Sets the control-plane version (see `World::set_control_plane_version`).
    pub fn set_control_plane_version(
        &self,
        version: &str,
        node: Option<&str>,
    ) -> Result<(), ControlError> {
        self.shared
            .with_world(|w| w.set_control_plane_version(version, node))
    }

    /// Makes the disruption controller take `delay` of cluster time to see a budget's new
    /// spec, as a busy controller does: meanwhile evictions covered by it answer 429 "still
    /// being processed" with `Retry-After: 10`. `None` (the default) processes at once.
    pub fn set_budget_processing_delay(&self, delay: Option<Duration>) {
        self.shared.with_world(|w| {
            w.budget_processing_delay =
                delay.map(|d| chrono::Duration::milliseconds(d.as_millis() as i64));
        });
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.shared.control().faults.push(fault);
    }

    /// Adds latency; a rule with 0 ms for the same verb and resource removes it.
    pub fn set_latency(&self, latency: Latency) {
        let mut control = self.shared.control();
        control
            .latency
            .retain(|l| !(l.verb == latency.verb && l.resource == latency.resource));
        if latency.milliseconds > 0 {
            control.latency.push(latency);
        }
    }

    /// Removes all pending faults and latency rules.
    pub fn clear_faults(&self) {
        let mut control = self.shared.control();
        control.faults.clear();
        control.latency.clear();
    }

    /// Ends every open watch, as an apiserver restart does.
    pub fn drop_watches(&self) {
        self.shared.drops.send_modify(|generation| *generation += 1);
    }

    /// Requests served so far, by `verb resource`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.control().counters.clone()
    }

    pub fn reset_request_counts(&self) {
        self.shared.control().counters.clear();
    }

    /// Moves cluster time forward; due timers (pods starting, grace periods) fire.
    pub fn advance_clock(&self, by: Duration) {
        self.shared
            .clock
            .advance(chrono::Duration::milliseconds(by.as_millis() as i64));
        self.shared.controllers.notify_one();
    }

    /// The current cluster time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.clock.now()
    }

    /// Every object, as the `List` `kubectl get … -o yaml` would print.
    pub fn snapshot(&self) -> Value {
        self.shared.with_world(|w| w.snapshot())
    }

    /// One object, if it exists.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.shared.with_world(|w| {
            let res = w.registry.by_kind(api_version, kind)?;
            let namespace = if w.registry.get(res).namespaced {
                namespace
            } else {
                ""
            };
            w.get_in(res, namespace, name).map(|o| o.value())
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeChange {
    ready: Option<bool>,
    /// `"stopped"` or `"running"`: the node's kubelet.
    kubelet: Option<String>,
    kubelet_version: Option<String>,
    container_runtime_version: Option<String>,
}

#[derive(Deserialize)]
struct ControlPlaneChange {
    version: String,
    node: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BudgetProcessing {
    delay_seconds: f64,
}

#[derive(Deserialize)]
struct Advance {
    seconds: f64,
}

fn reply(code: StatusCode, body: Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

// The error is the HTTP answer itself, built once on a cold path; boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("invalid request body: {e}")}),
        )
    })
}

fn outcome(result: Result<(), ControlError>) -> Response {
    match result {
        Ok(()) => reply(StatusCode::OK, json!({"ok": true})),
        Err(e @ ControlError::NoSuchNode(_)) => {
            reply(StatusCode::NOT_FOUND, json!({"error": e.to_string()}))
        }
        Err(e) => reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
    }
}

/// Serves `/sim/…`.
pub(crate) fn handle(shared: Arc<Shared>, method: &Method, path: &str, body: &Bytes) -> Response {
    let handle = SimHandle { shared };
    let segments: Vec<&str> = path
        .trim_start_matches("/sim/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let result = match (method.as_str(), segments.as_slice()) {
        ("PUT" | "POST" | "PATCH", ["nodes", node]) => parse::<NodeChange>(body).map(|change| {
            let mut result = Ok(());
            if let Some(ready) = change.ready {
                result = result.and_then(|_| handle.set_node_ready(node, ready));
            }
            match change.kubelet.as_deref() {
                None => {}
                Some("stopped") => result = result.and_then(|_| handle.stop_kubelet(node)),
                Some("running") => result = result.and_then(|_| handle.start_kubelet(node)),
                Some(other) => {
                    result = Err(ControlError::Invalid(format!(
                        "kubelet must be \"stopped\" or \"running\", not {other:?}"
                    )))
                }
            }
            if change.kubelet_version.is_some() || change.container_runtime_version.is_some() {
                result = result.and_then(|_| {
                    handle.shared.with_world(|w| {
                        w.set_node_versions(
                            node,
                            change.kubelet_version.as_deref(),
                            change.container_runtime_version.as_deref(),
                        )
                    })
                });
            }
            outcome(result)
        }),
        ("PUT" | "POST", ["control-plane"]) => parse::<ControlPlaneChange>(body)
            .map(|c| outcome(handle.set_control_plane_version(&c.version, c.node.as_deref()))),
        ("PUT" | "POST", ["budget-processing"]) => parse::<BudgetProcessing>(body).map(|b| {
            let delay = (b.delay_seconds.is_finite() && b.delay_seconds > 0.0)
                .then(|| Duration::from_secs_f64(b.delay_seconds));
            handle.set_budget_processing_delay(delay);
            reply(StatusCode::OK, json!({"ok": true}))
        }),
        ("POST", ["faults"]) => parse::<Fault>(body).map(|fault| {
            handle.inject_fault(fault);
            reply(StatusCode::OK, json!({"ok": true}))
        }),
        ("DELETE", ["faults"]) => {
            handle.clear_faults();
            Ok(reply(StatusCode::OK, json!({"ok": true})))
        }
        ("POST" | "PUT", ["latency"]) => parse::<Latency>(body).map(|latency| {
            handle.set_latency(latency);
            reply(StatusCode::OK, json!({"ok": true}))
        }),
        ("POST", ["watches", "drop"]) => {
            handle.drop_watches();
            Ok(reply(StatusCode::OK, json!({"ok": true})))
        }
        ("GET", ["requests"]) => {
            let counts = handle.request_counts();
            let total: u64 = counts.values().sum();
            Ok(reply(
                StatusCode::OK,
                json!({"total": total, "requests": counts}),
            ))
        }
        ("DELETE", ["requests"]) => {
            handle.reset_request_counts();
            Ok(reply(StatusCode::OK, json!({"ok": true})))
        }
        ("GET", ["time"]) => Ok(reply(
            StatusCode::OK,
            json!({"now": super::clock::timestamp(handle.now()), "timeScale": handle.shared.clock_scale()}),
        )),
        ("POST", ["time", "advance"]) => parse::<Advance>(body).map(|a| {
            handle.advance_clock(Duration::from_secs_f64(a.seconds.max(0.0)));
            reply(
                StatusCode::OK,
                json!({"now": super::clock::timestamp(handle.now())}),
            )
        }),
        ("GET", ["snapshot"]) => {
            let yaml = serde_yaml_ng::to_string(&handle.snapshot()).unwrap_or_default();
            Ok((StatusCode::OK, [("content-type", "application/yaml")], yaml).into_response())
        }
        _ => Ok(reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no control endpoint {method} {path}")}),
        )),
    };
    result.unwrap_or_else(|response| response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_validated() {
        assert!(valid_version("v1.28.9").is_ok());
        assert!(valid_version("v1.29.0-rc.1").is_ok());
        assert!(valid_version("1.28").is_err());
    }
}
