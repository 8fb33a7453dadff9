//! The cells of an object's Table row, computed once per version of the object as the
//! apiserver's printers compute them (`pkg/printers/internalversion/printers.go`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::clock::{human_duration, parse_timestamp};
use super::resource::Builtin;
use super::value::{At, condition_status, int_at, str_at};

/// A cell as computed from an object: fixed, or the time since a moment, which grows as
/// the clock runs (ages, `3 (2m ago)` restarts).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Fixed(Value),
    Since {
        at: Option<DateTime<Utc>>,
        before: String,
        after: String,
    },
}

impl From<Value> for Cell {
    fn from(value: Value) -> Cell {
        Cell::Fixed(value)
    }
}

fn since(at: Option<DateTime<Utc>>, before: &str, after: &str, now: DateTime<Utc>) -> String {
    match at {
        Some(at) => format!(
            "{before}{}{after}",
            human_duration((now - at).num_seconds())
        ),
        None => "<unknown>".into(),
    }
}

/// The cells of an object's row, serialized once per version of the object: the fixed cells
/// as JSON text, the clock-dependent ones filled in when a row is served.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cells {
    /// `"a","b",1` with the time-dependent cells left out.
    text: Box<[u8]>,
    /// Where in `text` each time-dependent cell goes.
    holes: Box<[(usize, Hole)]>,
}

#[derive(Debug, Clone)]
struct Hole {
    at: Option<DateTime<Utc>>,
    before: Box<str>,
    after: Box<str>,
}

impl Cells {
    /// The cells of `object`, a `builtin` kind.
    pub fn of(builtin: Builtin, object: &Value) -> Cells {
        let mut text = Vec::with_capacity(160);
        let mut holes = Vec::new();
        for (i, cell) in cells(builtin, object).into_iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            match cell {
                Cell::Fixed(value) => {
                    serde_json::to_writer(&mut text, &value).expect("JSON values serialize");
                }
                Cell::Since { at, before, after } => holes.push((
                    text.len(),
                    Hole {
                        at,
                        before: before.into(),
                        after: after.into(),
                    },
                )),
            }
        }
        Cells {
            text: text.into(),
            holes: holes.into(),
        }
    }

    /// Appends the cells as shown at `now`.
    pub fn write(&self, now: DateTime<Utc>, out: &mut Vec<u8>) {
        let mut done = 0;
        for (offset, hole) in &self.holes {
            out.extend_from_slice(&self.text[done..*offset]);
            let shown = since(hole.at, &hole.before, &hole.after, now);
            serde_json::to_writer(&mut *out, &shown).expect("strings serialize");
            done = *offset;
        }
        out.extend_from_slice(&self.text[done..]);
    }
}

fn text(value: &Value, path: &[&str]) -> String {
    str_at(value, path)
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>")
        .to_string()
}

fn int(value: &Value, pointer: &str) -> i64 {
    int_at(value, pointer, 0)
}

fn age(value: &Value) -> Cell {
    Cell::Since {
        at: str_at(value, &["metadata", "creationTimestamp"]).and_then(parse_timestamp),
        before: String::new(),
        after: String::new(),
    }
}

fn containers_and_images(value: &Value, pointer: &str) -> (String, String) {
    let containers = value
        .at(pointer)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
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
pub(crate) fn format_selector(selector: Option<&Value>) -> String {
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

fn cells(builtin: Builtin, v: &Value) -> Vec<Cell> {
    let name = json!(str_at(v, &["metadata", "name"]).unwrap_or_default());
    match builtin {
        Builtin::Pod => pod_cells(v),
        Builtin::Node => {
            let mut status = match condition_status(v, "Ready") {
                Some("True") => "Ready".to_string(),
                Some("False") => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if v.at("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let mut roles: Vec<String> = v
                .at("/metadata/labels")
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
                v.at("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|a| str_at(a, &["type"]) == Some(kind)))
                    .and_then(|a| str_at(a, &["address"]))
                    .unwrap_or("<none>")
                    .to_string()
            };
            vec![
                name.into(),
                json!(status).into(),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                })
                .into(),
                age(v),
                json!(text(v, &["status", "nodeInfo", "kubeletVersion"])).into(),
                json!(address("InternalIP")).into(),
                json!(address("ExternalIP")).into(),
                json!(text(v, &["status", "nodeInfo", "osImage"])).into(),
                json!(text(v, &["status", "nodeInfo", "kernelVersion"])).into(),
                json!(text(v, &["status", "nodeInfo", "containerRuntimeVersion"])).into(),
            ]
        }
        Builtin::Namespace => vec![
            name.into(),
            json!(text(v, &["status", "phase"])).into(),
            age(v),
        ],
        Builtin::PodDisruptionBudget => {
            let field = |f: &str| match v.at(&format!("/spec/{f}")) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => "N/A".into(),
            };
            vec![
                name.into(),
                json!(field("minAvailable")).into(),
                json!(field("maxUnavailable")).into(),
                json!(int(v, "/status/disruptionsAllowed")).into(),
                age(v),
            ]
        }
        Builtin::Deployment => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            let replicas = int_at(v, "/spec/replicas", 1);
            vec![
                name.into(),
                json!(format!("{}/{replicas}", int(v, "/status/readyReplicas"))).into(),
                json!(int(v, "/status/updatedReplicas")).into(),
                json!(int(v, "/status/availableReplicas")).into(),
                age(v),
                json!(containers).into(),
                json!(images).into(),
                json!(format_selector(v.at("/spec/selector"))).into(),
            ]
        }
        Builtin::ReplicaSet => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            vec![
                name.into(),
                json!(int_at(v, "/spec/replicas", 1)).into(),
                json!(int(v, "/status/replicas")).into(),
                json!(int(v, "/status/readyReplicas")).into(),
                age(v),
                json!(containers).into(),
                json!(images).into(),
                json!(format_selector(v.at("/spec/selector"))).into(),
            ]
        }
        Builtin::StatefulSet => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            let replicas = int_at(v, "/spec/replicas", 1);
            vec![
                name.into(),
                json!(format!("{}/{replicas}", int(v, "/status/readyReplicas"))).into(),
                age(v),
                json!(containers).into(),
                json!(images).into(),
            ]
        }
        Builtin::DaemonSet => {
            let (containers, images) = containers_and_images(v, "/spec/template/spec/containers");
            let node_selector = v
                .at("/spec/template/spec/nodeSelector")
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
                name.into(),
                json!(int(v, "/status/desiredNumberScheduled")).into(),
                json!(int(v, "/status/currentNumberScheduled")).into(),
                json!(int(v, "/status/numberReady")).into(),
                json!(int(v, "/status/updatedNumberScheduled")).into(),
                json!(int(v, "/status/numberAvailable")).into(),
                json!(node_selector).into(),
                age(v),
                json!(containers).into(),
                json!(images).into(),
                json!(format_selector(v.at("/spec/selector"))).into(),
            ]
        }
        Builtin::Lease => vec![
            name.into(),
            json!(str_at(v, &["spec", "holderIdentity"]).unwrap_or("")).into(),
            age(v),
        ],
        Builtin::Event => {
            let last = Cell::Since {
                at: str_at(v, &["lastTimestamp"])
                    .or_else(|| str_at(v, &["eventTime"]))
                    .and_then(parse_timestamp),
                before: String::new(),
                after: String::new(),
            };
            let object = format!(
                "{}/{}",
                str_at(v, &["involvedObject", "kind"])
                    .unwrap_or_default()
                    .to_lowercase(),
                str_at(v, &["involvedObject", "name"]).unwrap_or_default()
            );
            vec![
                last,
                json!(text(v, &["type"])).into(),
                json!(text(v, &["reason"])).into(),
                json!(object).into(),
                json!(str_at(v, &["message"]).unwrap_or("")).into(),
            ]
        }
        Builtin::Plain | Builtin::Other | Builtin::AccessReview => vec![
            name.into(),
            json!(str_at(v, &["metadata", "creationTimestamp"]).unwrap_or("")).into(),
        ],
    }
}

fn pod_cells(v: &Value) -> Vec<Cell> {
    let total = v
        .at("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses = v
        .at("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
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
    let restarts: Cell = match last_restart {
        Some(at) if restarts > 0 => Cell::Since {
            at: Some(at),
            before: format!("{restarts} ("),
            after: " ago)".into(),
        },
        _ => json!(restarts.to_string()).into(),
    };
    let gates = v
        .at("/spec/readinessGates")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
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
        json!(str_at(v, &["metadata", "name"]).unwrap_or_default()).into(),
        json!(format!("{ready}/{total}")).into(),
        json!(pod_status(v)).into(),
        restarts,
        age(v),
        json!(text(v, &["status", "podIP"])).into(),
        json!(text(v, &["spec", "nodeName"])).into(),
        json!(text(v, &["status", "nominatedNodeName"])).into(),
        json!(gates).into(),
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
        && v.at("/status/containerStatuses").is_none()
    {
        reason = "ContainerCreating".into();
    }
    let statuses = v
        .at("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut running = false;
    for s in statuses.iter().rev() {
        if let Some(waiting) = str_at(s, &["state", "waiting", "reason"]).filter(|r| !r.is_empty())
        {
            reason = waiting.to_string();
        } else if let Some(terminated) = s.at("/state/terminated") {
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
        } else if s.at("/state/running").is_some()
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
    if v.at("/metadata/deletionTimestamp")
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
    fn cells_fill_in_ages_when_served() {
        let pod = json!({
            "metadata": {"name": "web-1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "worker-1"},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2,
                "state": {"running": {}},
                "lastState": {"terminated": {"finishedAt": "2024-01-01T00:50:00Z"}}}]},
        });
        let cells = Cells::of(Builtin::Pod, &pod);
        let now = parse_timestamp("2024-01-01T01:00:00Z").unwrap();
        let mut out = b"[".to_vec();
        cells.write(now, &mut out);
        out.push(b']');
        let shown: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            shown,
            json!([
                "web-1",
                "1/1",
                "Running",
                "2 (10m ago)",
                "60m",
                "<none>",
                "worker-1",
                "<none>",
                "<none>"
            ])
        );
    }

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
        let now = Utc::now();
        let cells: Vec<Value> = cells(Builtin::Node, &node)
            .into_iter()
            .map(|cell| match cell {
                Cell::Fixed(value) => value,
                Cell::Since { at, before, after } => json!(since(at, &before, &after, now)),
            })
            .collect();
        assert_eq!(cells[1], json!("Ready,SchedulingDisabled"));
        assert_eq!(cells[2], json!("control-plane"));
        assert_eq!(cells[4], json!("v1.28.9"));
    }
}
