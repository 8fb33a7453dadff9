//! The DaemonSet controller: one pod on every node the template fits, pinned there with node
//! affinity and given the tolerations that keep it through node trouble. A changed template
//! rolls out node by node within `maxUnavailable` (`RollingUpdate`) or as pods are deleted
//! (`OnDelete`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{NOT_READY_TAINT, UNSCHEDULABLE_TAINT, set_or_remove};
use crate::model::budget::IntOrPercent;
use crate::model::selector::{node_affinity_matches, node_selector_terms};
use crate::model::taints::{tolerates_all, tolerations_of};
use crate::sim::object::Stored;
use crate::sim::value::{At, int_at, object_at, str_at};
use crate::sim::world::World;

impl World {
    pub(crate) fn reconcile_daemonset(&mut self, key: &str) {
        let Some(ds) = self.get(self.ids.daemonset, key).cloned() else {
            return;
        };
        if ds.deleting {
            return;
        }
        let value = ds.value();
        let mut template_spec = value
            .at("/spec/template/spec")
            .cloned()
            .unwrap_or_else(|| json!({}));
        add_daemon_tolerations(&mut template_spec);
        let owned = self.owned_pods(&ds.namespace, &ds.uid);
        // The revision the snapshot's pods carry names the template first seen.
        let mut labelled: BTreeMap<&str, usize> = BTreeMap::new();
        for pod in &owned {
            if let Some(hash) = pod.labels.get("controller-revision-hash") {
                *labelled.entry(hash).or_default() += 1;
            }
        }
        let seen = labelled
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(hash, _)| hash.to_string());
        let template = value
            .at("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let revision = self.template_revision(&ds, &template, seen);
        let first_revision = self.first_revision(&ds).unwrap_or_else(|| revision.clone());
        let updated_pod = |pod: &Stored| {
            pod.labels
                .get("controller-revision-hash")
                .unwrap_or(&first_revision)
                == &revision
        };
        let mut by_node: BTreeMap<String, Vec<Arc<Stored>>> = BTreeMap::new();
        for pod in owned.iter().filter(|p| !p.deleting) {
            let node = match pod.pod().map(|p| p.node.clone()).unwrap_or_default() {
                node if node.is_empty() => pinned_node(&pod.value()).unwrap_or_default(),
                node => node,
            };
            by_node.entry(node).or_default().push(pod.clone());
        }
        let terminating: Vec<String> = owned
            .iter()
            .filter(|p| p.deleting)
            .map(|p| p.pod().map(|i| i.node.clone()).unwrap_or_default())
            .collect();
        let nodes: Vec<Arc<Stored>> = self.objects[self.ids.node].values().cloned().collect();
        let (mut desired, mut current, mut ready, mut misscheduled, mut updated) =
            (0usize, 0usize, 0usize, 0usize, 0usize);
        let mut outdated: Vec<(bool, String)> = Vec::new();
        for node in &nodes {
            let should_run = daemon_should_run(&template_spec, node);
            let pods = by_node.get(&node.name).cloned().unwrap_or_default();
            if should_run {
                desired += 1;
                if pods.is_empty() {
                    // A pod still terminating on the node holds its place (maxSurge 0).
                    if terminating.contains(&node.name) {
                        continue;
                    }
                    let name = format!("{}-{}", ds.name, self.random_suffix(5));
                    let mut pod = self.pod_from_template(
                        &value,
                        "DaemonSet",
                        &name,
                        Some(format!("{}-", ds.name)),
                    );
                    pin_to_node(&mut pod, &node.name);
                    object_at(&mut pod, &["metadata", "labels"])
                        .insert("controller-revision-hash".into(), json!(revision));
                    let pod = self.admit_pod(pod);
                    let message = format!("Created pod: {}", pod.name);
                    self.controller_event(
                        self.ids.daemonset,
                        key,
                        "SuccessfulCreate",
                        &message,
                        "daemonset-controller",
                    );
                } else {
                    current += 1;
                    let node_ready = pods.iter().any(|p| p.pod().is_some_and(|i| i.ready));
                    ready += usize::from(node_ready);
                    if pods.iter().any(|p| updated_pod(p)) {
                        updated += 1;
                    } else {
                        outdated.extend(pods.iter().map(|p| (node_ready, p.key.clone())));
                    }
                }
            } else if !pods.is_empty() {
                misscheduled += 1;
                for pod in pods {
                    self.daemon_pod_deleted(key, &pod.key);
                }
            }
        }
        // RollingUpdate: old pods go node by node while at most maxUnavailable nodes lack an
        // available pod; unavailable old pods go at once (`rolling_update.go`).
        let on_delete = str_at(&value, &["spec", "updateStrategy", "type"]) == Some("OnDelete");
        if !on_delete {
            let max_unavailable = value
                .at("/spec/updateStrategy/rollingUpdate/maxUnavailable")
                .and_then(|v| IntOrPercent::parse(v).ok())
                .unwrap_or(IntOrPercent::Int(1))
                .scaled(i32::try_from(desired).unwrap_or(i32::MAX), true)
                .max(1) as usize;
            let mut unavailable = desired.saturating_sub(ready);
            for (available, pod) in outdated {
                if !available {
                    self.daemon_pod_deleted(key, &pod);
                } else if unavailable < max_unavailable {
                    unavailable += 1;
                    self.daemon_pod_deleted(key, &pod);
                }
            }
        }
        let generation = int_at(&value, "/metadata/generation", 1);
        self.modify(self.ids.daemonset, key, |v| {
            let status = object_at(v, &["status"]);
            status.insert("desiredNumberScheduled".into(), json!(desired));
            status.insert("currentNumberScheduled".into(), json!(current));
            status.insert("numberMisscheduled".into(), json!(misscheduled));
            status.insert("numberReady".into(), json!(ready));
            set_or_remove(status, "numberAvailable", ready);
            set_or_remove(status, "updatedNumberScheduled", updated);
            set_or_remove(status, "numberUnavailable", desired.saturating_sub(ready));
            status.insert("observedGeneration".into(), json!(generation));
        });
    }
}

impl World {
    pub(crate) fn daemon_pod_deleted(&mut self, key: &str, pod: &str) {
        self.delete_pod(pod, None);
        let name = pod.rsplit('/').next().unwrap_or_default();
        let message = format!("Deleted pod: {name}");
        self.controller_event(
            self.ids.daemonset,
            key,
            "SuccessfulDelete",
            &message,
            "daemonset-controller",
        );
    }
}

/// The tolerations the DaemonSet controller adds so its pods survive node trouble.
fn add_daemon_tolerations(spec: &mut Value) {
    let wanted = [
        (NOT_READY_TAINT, "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        (UNSCHEDULABLE_TAINT, "NoSchedule"),
    ];
    let map = object_at(spec, &[]);
    let list = map.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let list = list.as_array_mut().expect("array");
    for (key, effect) in wanted {
        let present = list
            .iter()
            .any(|t| str_at(t, &["key"]) == Some(key) && str_at(t, &["effect"]) == Some(effect));
        if !present {
            list.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
}

fn daemon_should_run(spec: &Value, node: &Stored) -> bool {
    let tolerations = tolerations_of(spec);
    let Some(info) = node.node() else {
        return false;
    };
    let taints_ok = tolerates_all(&tolerations, &info.taints);
    let selector_ok = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| node.labels.get(k).map(String::as_str) == v.as_str())
        });
    let affinity_ok = spec
        .at("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .is_none_or(|terms| {
            node_affinity_matches(&node_selector_terms(terms), &node.name, &node.labels)
        });
    taints_ok && selector_ok && affinity_ok
}

/// Pins a DaemonSet pod to its node with node affinity, as the DaemonSet controller does.
fn pin_to_node(pod: &mut Value, node: &str) {
    let spec = object_at(pod, &["spec"]);
    spec.insert(
        "affinity".into(),
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]}}}),
    );
    add_daemon_tolerations(&mut pod["spec"]);
}

/// The node a DaemonSet pod is pinned to by its node affinity.
fn pinned_node(pod: &Value) -> Option<String> {
    let term = pod.at("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0")?;
    (str_at(term, &["key"]) == Some("metadata.name"))
        .then(|| term.at("/values/0")?.as_str().map(str::to_string))?
}
