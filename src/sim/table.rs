//! Server-side printing: `meta.k8s.io/v1` `Table` responses, which kubectl asks for on `get`
//! and prints as they come. Columns and cells follow the apiserver's printers so that
//! `kubectl get pods -A -o wide` reads as it does against a real cluster.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::clock::{human_duration, parse_timestamp};
use super::object::{condition_status, str_at};
use super::resource::{Builtin, ResourceType};

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(text: Option<&str>) -> Self {
        match text {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Name, type and priority (1 = shown only with `-o wide`).
type Column = (&'static str, &'static str, u8);

fn columns(builtin: Builtin) -> &'static [Column] {
    match builtin {
        Builtin::Pod => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        Builtin::Node => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        Builtin::Namespace => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        Builtin::PodDisruptionBudget => &[
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        Builtin::Deployment => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Builtin::ReplicaSet => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Builtin::StatefulSet => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        Builtin::DaemonSet => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Builtin::Lease => &[
            ("Name", "string", 0),
            ("Holder", "string", 0),
            ("Age", "string", 0),
        ],
        Builtin::Event => &[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        Builtin::Other => &[("Name", "string", 0), ("Created At", "date", 0)],
    }
}

/// The `columnDefinitions` of a kind's table.
pub(crate) fn column_definitions(rt: &ResourceType) -> Value {
    Value::Array(
        columns(rt.builtin)
            .iter()
            .map(|(name, kind, priority)| {
                let format = if *name == "Name" { "name" } else { "" };
                json!({"name": name, "type": kind, "format": format, "description": name, "priority": priority})
            })
            .collect(),
    )
}

/// A whole table.
pub(crate) fn table(
    rt: &ResourceType,
    rows: Vec<Value>,
    rv: u64,
    continue_token: Option<&str>,
) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(rt),
        "rows": rows,
    })
}

/// One row for an object.
pub(crate) fn row(
    rt: &ResourceType,
    object: &Value,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let mut row = json!({"cells": cells(rt.builtin, object, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(object),
        IncludeObject::Object => row["object"] = object.clone(),
    }
    row
}

/// The object as `PartialObjectMetadata`.
pub(crate) fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn text(value: &Value, path: &[&str]) -> String {
    str_at(value, path)
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>")
        .to_string()
}

fn int(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn age(value: &Value, now: DateTime<Utc>) -> String {
    match str_at(value, &["metadata", "creationTimestamp"]).and_then(parse_timestamp) {
        Some(created) => human_duration((now - created).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn containers_and_images(value: &Value, pointer: &str) -> (String, String) {
    let containers = value
        .pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| str_at(c, &["name"]))
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .filter_map(|c| str_at(c, &["image"]))
        .collect();
    (names.join(","), images.join(","))
}

/// A label selector as `kubectl` prints it (`app=web,tier in (a,b)`).
fn format_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector else {
        return "<none>".into();
    };
    let mut parts = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(expressions) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in expressions {
            let key = str_at(e, &["key"]).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match str_at(e, &["operator"]).unwrap_or_default() {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                other => format!("{key} {other} ({})", values.join(",")),
            });
        }
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn cells(builtin: Builtin, v: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(str_at(v, &["metadata", "name"]).unwrap_or_default());
    match builtin {
        Builtin::Pod => pod_cells(v, now),
        Builtin::Node => {
            let mut status = match condition_status(v, "Ready") {
                Some("True") => "Ready".to_string(),
                Some("False") => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let mut roles: Vec<String> = v
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(
                            |(k, val)| match k.strip_prefix("node-role.kubernetes.io/") {
                                Some(role) if !role.is_empty() => Some(role.to_string()),
                                _ if k == "kubernetes.io/role" => val.as_str().map(str::to_string),
                                _ => None,
                            },
                        )
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            roles.dedup();
            let address = |kind: &str| {
                v.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|a| str_at(a, &["type"]) == Some(kind)))
                    .and_then(|a| str_at(a, &["address"]))
                    .unwrap_or("<none>")
                    .to_string()
            };
            vec![
                name,
                json!(status),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                json!(age(v, now)),
                json!(text(v, &["status", "nodeInfo", "kubeletVersion"])),
                json!(address("InternalIP")),
                json!(address("ExternalIP")),
                json!(text(v, &["status", "nodeInfo", "osImage"])),
                json!(text(v, &["status", "nodeInfo", "kernelVersion"])),
                json!(text(v, &["status", "nodeInfo", "containerRuntimeVersion"])),
            ]
        }
        Builtin::Namespace => vec![
            name,
            json!(text(v, &["status", "phase"])),
            json!(age(v, now)),
        ],
        Builtin::PodDisruptionBudget => {
            let field = |f: &str| match v.pointer(&format!("/spec/{f}")) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => "N/A".into(),
            };
            vec![
                name,
                json!(field("minAvailable")),
                json!(field("maxUnavailable")),
                json!(int(v, "/status/disruptionsAllowed")),
                json!(age(v, now)),
            ]
        }
        Builtin::Deployment => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            let replicas = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(format!("{}/{replicas}", int(v, "/status/readyReplicas"))),
                json!(int(v, "/status/updatedReplicas")),
                json!(int(v, "/status/availableReplicas")),
                json!(age(v, now)),
                json!(containers),
                json!(images),
                json!(format_selector(v.pointer("/spec/selector"))),
            ]
        }
        Builtin::ReplicaSet => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            vec![
                name,
                json!(
                    v.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                json!(int(v, "/status/replicas")),
                json!(int(v, "/status/readyReplicas")),
                json!(age(v, now)),
                json!(containers),
                json!(images),
                json!(format_selector(v.pointer("/spec/selector"))),
            ]
        }
        Builtin::StatefulSet => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            let replicas = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(format!("{}/{replicas}", int(v, "/status/readyReplicas"))),
                json!(age(v, now)),
                json!(containers),
                json!(images),
            ]
        }
        Builtin::DaemonSet => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            let node_selector = v
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(int(v, "/status/desiredNumberScheduled")),
                json!(int(v, "/status/currentNumberScheduled")),
                json!(int(v, "/status/numberReady")),
                json!(int(v, "/status/updatedNumberScheduled")),
                json!(int(v, "/status/numberAvailable")),
                json!(node_selector),
                json!(age(v, now)),
                json!(containers),
                json!(images),
                json!(format_selector(v.pointer("/spec/selector"))),
            ]
        }
        Builtin::Lease => vec![
            name,
            json!(str_at(v, &["spec", "holderIdentity"]).unwrap_or("")),
            json!(age(v, now)),
        ],
        Builtin::Event => {
            let last = str_at(v, &["lastTimestamp"])
                .or_else(|| str_at(v, &["eventTime"]))
                .and_then(parse_timestamp)
                .map(|t| human_duration((now - t).num_seconds()))
                .unwrap_or_else(|| "<unknown>".into());
            let object = format!(
                "{}/{}",
                str_at(v, &["involvedObject", "kind"])
                    .unwrap_or_default()
                    .to_lowercase(),
                str_at(v, &["involvedObject", "name"]).unwrap_or_default()
            );
            vec![
                json!(last),
                json!(text(v, &["type"])),
                json!(text(v, &["reason"])),
                json!(object),
                json!(str_at(v, &["message"]).unwrap_or("")),
            ]
        }
        Builtin::Other => vec![
            name,
            json!(str_at(v, &["metadata", "creationTimestamp"]).unwrap_or("")),
        ],
    }
}

fn pod_cells(v: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let total = v
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|s| s.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
        .sum();
    let last_restart = statuses
        .iter()
        .filter_map(|s| {
            str_at(s, &["lastState", "terminated", "finishedAt"]).and_then(parse_timestamp)
        })
        .max();
    let restarts = match last_restart {
        Some(at) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration((now - at).num_seconds())
        ),
        _ => restarts.to_string(),
    };
    let gates = v
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passed = gates
            .iter()
            .filter(|g| {
                str_at(g, &["conditionType"])
                    .is_some_and(|t| condition_status(v, t) == Some("True"))
            })
            .count();
        format!("{passed}/{}", gates.len())
    };
    vec![
        json!(str_at(v, &["metadata", "name"]).unwrap_or_default()),
        json!(format!("{ready}/{total}")),
        json!(pod_status(v)),
        json!(restarts),
        json!(age(v, now)),
        json!(text(v, &["status", "podIP"])),
        json!(text(v, &["spec", "nodeName"])),
        json!(text(v, &["status", "nominatedNodeName"])),
        json!(gates),
    ]
}

/// The STATUS column: the phase, refined by container states and deletion.
fn pod_status(v: &Value) -> String {
    let mut reason = str_at(v, &["status", "phase"])
        .unwrap_or("Pending")
        .to_string();
    if let Some(r) = str_at(v, &["status", "reason"]).filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    if reason == "Pending"
        && condition_status(v, "PodScheduled") == Some("True")
        && v.pointer("/status/containerStatuses").is_none()
    {
        reason = "ContainerCreating".into();
    }
    let statuses = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut running = false;
    for s in statuses.iter().rev() {
        if let Some(waiting) = str_at(s, &["state", "waiting", "reason"]).filter(|r| !r.is_empty())
        {
            reason = waiting.to_string();
        } else if let Some(terminated) = s.pointer("/state/terminated") {
            reason = match str_at(terminated, &["reason"]).filter(|r| !r.is_empty()) {
                Some(r) => r.to_string(),
                None => match terminated
                    .get("signal")
                    .and_then(Value::as_i64)
                    .filter(|s| *s != 0)
                {
                    Some(signal) => format!("Signal:{signal}"),
                    None => format!(
                        "ExitCode:{}",
                        terminated
                            .get("exitCode")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    ),
                },
            };
        } else if s.pointer("/state/running").is_some()
            && s.get("ready").and_then(Value::as_bool) == Some(true)
        {
            running = true;
        }
    }
    if reason == "Completed" && running {
        reason = if condition_status(v, "Ready") == Some("True") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    if v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        reason = if str_at(v, &["status", "reason"]) == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_column() {
        let running = json!({"status": {"phase": "Running", "containerStatuses": [{"ready": true, "state": {"running": {}}}]}});
        assert_eq!(pod_status(&running), "Running");
        let creating = json!({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}});
        assert_eq!(pod_status(&creating), "ContainerCreating");
        let crash = json!({"status": {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status(&crash), "CrashLoopBackOff");
        let deleting = json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&deleting), "Terminating");
    }

    #[test]
    fn selectors_print_like_kubectl() {
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(format_selector(Some(&s)), "app=web,tier in (a,b)");
        assert_eq!(format_selector(None), "<none>");
    }

    #[test]
    fn node_row_shows_roles_and_scheduling() {
        let node = json!({
            "metadata": {"name": "cp-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.28.9"}}
        });
        let cells = cells(Builtin::Node, &node, Utc::now());
        assert_eq!(cells[1], json!("Ready,SchedulingDisabled"));
        assert_eq!(cells[2], json!("control-plane"));
        assert_eq!(cells[4], json!("v1.28.9"));
    }
}
