//! How one stored object is kept: its exact JSON plus the few fields the simulator reads often.
//!
//! Objects are kept serialized (a 20,000-pod cluster held as `serde_json::Value` trees would
//! need several hundred megabytes) and parsed again only when a request or a controller
//! changes them. Lists and watches copy the bytes as they are; Table rows and metadata-only
//! responses are spliced from the cells and the `metadata` bytes kept beside them, so that
//! serving `kubectl get pods -A` parses nothing.

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;

use super::cells::Cells;
use super::resource::{Builtin, ResourceType};
use super::value::{At, condition_status, str_at, string_map};
use crate::model::budget::OwnerRef;
use crate::model::quantity::quantity;
use crate::model::selector::Selector;
use crate::model::taints::Taint;

/// What the scheduler, the controllers and the PDB arithmetic read from a pod.
#[derive(Debug, Clone)]
pub(crate) struct PodInfo {
    pub node: String,
    pub phase: String,
    pub ready: bool,
    pub cpu_milli: i64,
    pub memory: i64,
}

impl PodInfo {
    /// Succeeded or Failed: holds no resources and is never restarted.
    pub fn terminal(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }
}

/// What the scheduler reads from a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeInfo {
    pub ready: bool,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    pub cpu_milli: i64,
    pub memory: i64,
    pub max_pods: i64,
}

#[derive(Debug, Clone)]
pub(crate) enum Info {
    None,
    Pod(PodInfo),
    Node(NodeInfo),
}

/// One object as stored.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub raw: Bytes,
    /// Where `metadata` is in `raw`.
    metadata: Range<usize>,
    /// The object's Table cells.
    pub cells: Cells,
    /// `namespace/name`, or `name` for cluster-scoped kinds; lists are ordered by it as etcd
    /// orders its keys.
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub rv: u64,
    pub labels: BTreeMap<String, String>,
    /// Values of the kind's selectable fields, for field selectors.
    pub fields: Vec<(&'static str, String)>,
    pub deleting: bool,
    /// The owner reference with `controller: true`.
    pub controller: Option<OwnerRef>,
    /// `spec.selector` of kinds that select pods (PDBs, workloads), parsed once.
    pub selector: Option<Selector>,
    /// `spec.replicas`, for kinds that scale.
    pub replicas: Option<i64>,
    pub info: Info,
}

pub(crate) fn object_key(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

impl Stored {
    /// Builds the stored form of `value`, which must already carry its final metadata.
    pub fn new(rt: &ResourceType, value: &Value) -> Stored {
        let (raw, metadata) = serialize(value);
        let namespace = str_at(value, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        let name = str_at(value, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let labels = string_map(value.at("/metadata/labels"));
        let fields = rt
            .selectable_fields()
            .iter()
            .map(|field| (*field, field_value(value, field)))
            .collect();
        let selector = match rt.builtin {
            Builtin::PodDisruptionBudget
            | Builtin::ReplicaSet
            | Builtin::StatefulSet
            | Builtin::DaemonSet
            | Builtin::Deployment => {
                let selector = value.at("/spec/selector");
                let empty = selector.is_some_and(|s| {
                    ["matchLabels", "matchExpressions"].iter().all(|field| {
                        s.get(field).is_none_or(|v| {
                            v.is_null()
                                || v.as_object().is_some_and(|m| m.is_empty())
                                || v.as_array().is_some_and(|a| a.is_empty())
                        })
                    })
                });
                Some(if empty && rt.empty_selector_selects_nothing {
                    Selector::nothing()
                } else {
                    Selector::from_json(selector).unwrap_or_else(|_| Selector::nothing())
                })
            }
            _ => None,
        };
        let info = match rt.builtin {
            Builtin::Pod => Info::Pod(pod_info(value)),
            Builtin::Node => Info::Node(node_info(value)),
            _ => Info::None,
        };
        Stored {
            // Copied to its exact size: the buffer it was written into has room to spare,
            // which 20,000 pods would keep for as long as they are stored.
            raw: Bytes::copy_from_slice(&raw),
            metadata,
            cells: Cells::of(rt.builtin, value),
            key: object_key(&namespace, &name),
            uid: str_at(value, &["metadata", "uid"])
                .unwrap_or_default()
                .to_string(),
            rv: str_at(value, &["metadata", "resourceVersion"])
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0),
            deleting: value
                .at("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null()),
            controller: controller_of(value),
            selector,
            replicas: value.at("/spec/replicas").and_then(Value::as_i64),
            namespace,
            name,
            labels,
            fields,
            info,
        }
    }

    /// The serialized `metadata` (`{}` for an object without one).
    pub fn metadata(&self) -> &[u8] {
        if self.metadata.is_empty() {
            b"{}"
        } else {
            &self.raw[self.metadata.clone()]
        }
    }

    /// The object's JSON as a client reading it through `api_version` (an older version the
    /// cluster still serves) sees it; as stored when `None`.
    pub fn json_as(&self, api_version: Option<&str>) -> Bytes {
        match api_version {
            None => self.raw.clone(),
            Some(version) => {
                let mut value = self.value();
                value["apiVersion"] = Value::from(version);
                Bytes::from(serde_json::to_vec(&value).expect("JSON values serialize"))
            }
        }
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.raw).expect("stored objects are valid JSON")
    }

    pub fn pod(&self) -> Option<&PodInfo> {
        match &self.info {
            Info::Pod(pod) => Some(pod),
            _ => None,
        }
    }

    pub fn node(&self) -> Option<&NodeInfo> {
        match &self.info {
            Info::Node(node) => Some(node),
            _ => None,
        }
    }

    /// The value of a field selector field; metadata fields are always selectable.
    pub fn field(&self, field: &str) -> Option<&str> {
        match field {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => self
                .fields
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, v)| v.as_str()),
        }
    }
}

/// `value` as compact JSON, as `serde_json::to_vec` writes it, and where its `metadata` is.
fn serialize(value: &Value) -> (Vec<u8>, Range<usize>) {
    let mut out = Vec::with_capacity(2048);
    let mut metadata = 0..0;
    let Value::Object(map) = value else {
        serde_json::to_writer(&mut out, value).expect("a JSON value always serializes");
        return (out, metadata);
    };
    out.push(b'{');
    for (i, (key, field)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).expect("a string always serializes");
        out.push(b':');
        let start = out.len();
        serde_json::to_writer(&mut out, field).expect("a JSON value always serializes");
        if key == "metadata" {
            metadata = start..out.len();
        }
    }
    out.push(b'}');
    (out, metadata)
}

/// Field selector values are strings; booleans print as `true`/`false`, missing fields as "".
fn field_value(value: &Value, field: &str) -> String {
    let mut current = value;
    for key in field.split('.') {
        match current.get(key) {
            Some(next) => current = next,
            None => {
                return if field == "spec.unschedulable" || field == "spec.hostNetwork" {
                    "false".into()
                } else {
                    String::new()
                };
            }
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The controller owner of an object, if any.
pub(crate) fn controller_of(value: &Value) -> Option<OwnerRef> {
    value
        .at("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find_map(|owner| {
            if owner.get("controller").and_then(Value::as_bool) != Some(true) {
                return None;
            }
            Some(OwnerRef {
                kind: owner.get("kind")?.as_str()?.to_string(),
                name: owner.get("name")?.as_str()?.to_string(),
                uid: owner
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
}

fn pod_info(value: &Value) -> PodInfo {
    let mut cpu_milli = 0;
    let mut memory = 0;
    if let Some(containers) = value.at("/spec/containers").and_then(Value::as_array) {
        for container in containers {
            let requests = container.at("/resources/requests");
            cpu_milli += requests
                .and_then(|r| r.get("cpu"))
                .and_then(quantity)
                .map(|q| (q * 1000.0).ceil() as i64)
                .unwrap_or(0);
            memory += requests
                .and_then(|r| r.get("memory"))
                .and_then(quantity)
                .map(|q| q.ceil() as i64)
                .unwrap_or(0);
        }
    }
    PodInfo {
        node: str_at(value, &["spec", "nodeName"])
            .unwrap_or_default()
            .to_string(),
        phase: str_at(value, &["status", "phase"])
            .unwrap_or("Pending")
            .to_string(),
        ready: condition_status(value, "Ready") == Some("True"),
        cpu_milli,
        memory,
    }
}

fn node_info(value: &Value) -> NodeInfo {
    let allocatable = value
        .at("/status/allocatable")
        .or_else(|| value.at("/status/capacity"));
    let amount = |name: &str| allocatable.and_then(|a| a.get(name)).and_then(quantity);
    let taints = value
        .at("/spec/taints")
        .and_then(Value::as_array)
        .map(|taints| {
            taints
                .iter()
                .map(|t| Taint {
                    key: str_at(t, &["key"]).unwrap_or_default().to_string(),
                    value: str_at(t, &["value"]).unwrap_or_default().to_string(),
                    effect: str_at(t, &["effect"]).unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    NodeInfo {
        ready: condition_status(value, "Ready") == Some("True"),
        unschedulable: value
            .at("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        taints,
        // A node that reports no capacity is treated as unbounded, as tests often omit it.
        cpu_milli: amount("cpu")
            .map(|q| (q * 1000.0) as i64)
            .unwrap_or(i64::MAX),
        memory: amount("memory").map(|q| q as i64).unwrap_or(i64::MAX),
        max_pods: amount("pods").map(|q| q as i64).unwrap_or(110),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_bytes_are_what_serde_json_writes() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "w\"eb"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running"},
        });
        let (raw, metadata) = serialize(&pod);
        assert_eq!(raw, serde_json::to_vec(&pod).unwrap());
        assert_eq!(
            &raw[metadata],
            serde_json::to_vec(&pod["metadata"]).unwrap().as_slice()
        );
        let (raw, metadata) = serialize(&json!({"kind": "Thing"}));
        assert_eq!(raw, br#"{"kind":"Thing"}"#);
        assert!(metadata.is_empty());
    }
}
