//! What the apiserver does to an object a controller (or a client) creates: server-set
//! metadata, the defaults of a pod spec, its QoS class; and pods made from a template.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{NOT_READY_TAINT, owner_reference};
use crate::sim::object::Stored;
use crate::sim::resource::ResId;
use crate::sim::value::{At, object_at, str_at};
use crate::sim::world::{TimerKind, World};

impl World {
    /// Stores a controller-made object with the metadata the apiserver would set.
    pub fn admit_object(&mut self, res: ResId, mut value: Value) -> Arc<Stored> {
        let uid = self.new_uid();
        let now = self.now_string();
        let meta = object_at(&mut value, &["metadata"]);
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        if self.registry.get(res).uses_generation() {
            meta.insert("generation".into(), json!(1));
        }
        self.put(res, value)
    }

    pub(crate) fn pod_from_template(
        &mut self,
        owner: &Value,
        kind: &str,
        name: &str,
        generate_name: Option<String>,
    ) -> Value {
        let template = owner
            .at("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut metadata = Map::new();
        if let Some(prefix) = generate_name {
            metadata.insert("generateName".into(), json!(prefix));
        }
        metadata.insert("name".into(), json!(name));
        metadata.insert(
            "namespace".into(),
            json!(str_at(owner, &["metadata", "namespace"])),
        );
        for field in ["labels", "annotations"] {
            if let Some(map) = template
                .at(&format!("/metadata/{field}"))
                .filter(|m| !m.is_null())
            {
                metadata.insert(field.into(), map.clone());
            }
        }
        metadata.insert(
            "ownerReferences".into(),
            json!([owner_reference(owner, kind)]),
        );
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
        })
    }

    /// Stores a new pod the way the apiserver admits one: defaults filled in, Pending, queued
    /// for the scheduler unless it names its node.
    pub fn admit_pod(&mut self, mut pod: Value) -> Arc<Stored> {
        let uid = self.new_uid();
        let now = self.now_string();
        let meta = object_at(&mut pod, &["metadata"]);
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        default_pod_spec(&mut pod);
        let qos = qos_class(&pod);
        let status = object_at(&mut pod, &["status"]);
        status.entry("phase").or_insert_with(|| json!("Pending"));
        status.insert("qosClass".into(), json!(qos));
        let stored = self.put(self.ids.pod, pod);
        let info = stored.pod().expect("pod");
        if info.node.is_empty() {
            self.dirty.unscheduled.insert(stored.key.clone());
        } else if info.phase == "Pending" {
            let at = self.clock.now() + self.behaviour.startup_delay;
            self.add_timer(
                at,
                TimerKind::StartPod {
                    key: stored.key.clone(),
                    uid: stored.uid.clone(),
                },
            );
        }
        stored
    }
}

/// Defaults the apiserver fills into a pod spec.
fn default_pod_spec(pod: &mut Value) {
    let spec = object_at(pod, &["spec"]);
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("serviceAccountName", json!("default")),
        ("serviceAccount", json!("default")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("priority", json!(0)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
    ];
    for (field, value) in defaults {
        spec.entry(field).or_insert(value);
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [NOT_READY_TAINT, "node.kubernetes.io/unreachable"] {
            if !list.iter().any(|t| str_at(t, &["key"]) == Some(key)) {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for container in containers {
            let Some(c) = container.as_object_mut() else {
                continue;
            };
            let latest = c
                .get("image")
                .and_then(Value::as_str)
                .is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
            c.entry("imagePullPolicy")
                .or_insert_with(|| json!(if latest { "Always" } else { "IfNotPresent" }));
            c.entry("terminationMessagePath")
                .or_insert_with(|| json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy")
                .or_insert_with(|| json!("File"));
            c.entry("resources").or_insert_with(|| json!({}));
        }
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub(crate) fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.at("/resources/requests").and_then(Value::as_object);
        let limits = c.at("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn qos_classes() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
    }
}
