//! The controllers a drain depends on, reduced to what an upgrade observes: the scheduler,
//! the kubelet (pods start after a delay and stop after their grace period), the ReplicaSet,
//! StatefulSet, DaemonSet and Deployment controllers, the node lifecycle controller (taints,
//! pods of a NotReady node become unready) and the disruption controller.
//!
//! Not simulated: rolling updates of a changed pod template, taint-based eviction from
//! NotReady nodes, pod (anti-)affinity between pods, preemption, minReadySeconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::clock::{parse_timestamp, timestamp};
use super::disruption::{self, Budget, PodView};
use super::object::{OwnerRef, Stored, object_at, set_condition, str_at};
use super::resource::ResId;
use super::selector::{LabelSelector, node_affinity_matches};
use super::world::{NodeUsage, TimerKind, World};

const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// A toleration from a pod spec.
struct Toleration {
    key: String,
    exists: bool,
    value: String,
    effect: String,
}

fn tolerations(spec: &Value) -> Vec<Toleration> {
    spec.get("tolerations")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|t| Toleration {
                    key: str_at(t, &["key"]).unwrap_or_default().to_string(),
                    exists: str_at(t, &["operator"]) == Some("Exists"),
                    value: str_at(t, &["value"]).unwrap_or_default().to_string(),
                    effect: str_at(t, &["effect"]).unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn tolerates(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t.effect.is_empty() || t.effect == effect;
        let key_ok = (t.key.is_empty() && t.exists) || t.key == key;
        let value_ok = t.exists || t.value == value;
        effect_ok && key_ok && value_ok
    })
}

/// Why a node cannot take a pod, worded like the scheduler's summary.
fn unfit_reason(
    world: &World,
    spec: &Value,
    pod_cpu: i64,
    pod_memory: i64,
    node: &Stored,
) -> Option<&'static str> {
    let info = node.node()?;
    let tolerations = tolerations(spec);
    if info.unschedulable && !tolerates(&tolerations, UNSCHEDULABLE_TAINT, "", "NoSchedule") {
        return Some("node(s) were unschedulable");
    }
    if !info.ready && !tolerates(&tolerations, NOT_READY_TAINT, "", "NoSchedule") {
        return Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }");
    }
    for taint in &info.taints {
        if (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !tolerates(&tolerations, &taint.key, &taint.value, &taint.effect)
        {
            return Some("node(s) had untolerated taint(s)");
        }
    }
    if let Some(selector) = spec.get("nodeSelector").and_then(Value::as_object)
        && selector
            .iter()
            .any(|(k, v)| node.labels.get(k).map(String::as_str) != v.as_str())
    {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    if let Some(terms) = spec.pointer(
        "/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    ) && !node_affinity_matches(terms, &node.name, &node.labels)
    {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    let NodeUsage {
        cpu_milli: cpu,
        memory,
        running: count,
        ..
    } = world.usage_on_node(&node.name);
    if count + 1 > info.max_pods {
        return Some("Too many pods");
    }
    if cpu.saturating_add(pod_cpu) > info.cpu_milli {
        return Some("Insufficient cpu");
    }
    if memory.saturating_add(pod_memory) > info.memory {
        return Some("Insufficient memory");
    }
    None
}

fn int_at(value: &Value, pointer: &str, default: i64) -> i64 {
    value
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

impl World {
    /// Runs the controllers until nothing is left to do.
    pub fn settle(&mut self) {
        for _ in 0..100 {
            if self.dirty.is_empty() {
                return;
            }
            let dirty = std::mem::take(&mut self.dirty);
            for node in dirty.nodes {
                self.sync_node(&node);
            }
            for (res, key) in dirty.workloads {
                match res {
                    r if r == self.ids.replicaset => self.reconcile_replicaset(&key),
                    r if r == self.ids.statefulset => self.reconcile_statefulset(&key),
                    r if r == self.ids.daemonset => self.reconcile_daemonset(&key),
                    r if r == self.ids.deployment => self.reconcile_deployment(&key),
                    _ => {}
                }
            }
            for pod in dirty.unscheduled {
                self.schedule(&pod);
            }
            for budget in dirty.budgets {
                self.recompute_budget(&budget);
            }
        }
        tracing::warn!("controllers did not settle after 100 rounds");
    }

    /// Applies the timers that are due, then settles.
    pub fn run_timers(&mut self) {
        for timer in self.due_timers() {
            match timer {
                TimerKind::StartPod { key, uid } => self.start_pod(&key, &uid),
                TimerKind::RemovePod { key, uid } => self.finish_pod(&key, &uid),
                TimerKind::RecheckBudgets { namespace } => self.mark_budgets_in(&namespace),
            }
        }
        self.settle();
    }

    /// Parses an object, lets `change` edit it, and stores it if anything changed.
    pub fn modify(
        &mut self,
        res: ResId,
        key: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Arc<Stored>> {
        let current = self.get(res, key)?.clone();
        let before = current.value();
        let mut after = before.clone();
        change(&mut after);
        if after == before {
            return Some(current);
        }
        Some(self.put(res, after))
    }

    fn sync_node(&mut self, name: &str) {
        let Some(node) = self.get(self.ids.node, name).cloned() else {
            return;
        };
        let info = node.node().expect("nodes carry node info").clone();
        let now = self.now_string();
        self.modify(self.ids.node, name, |value| {
            let mut taints: Vec<Value> = value
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| {
                    let key = str_at(t, &["key"]).unwrap_or_default();
                    key != NOT_READY_TAINT && key != UNSCHEDULABLE_TAINT
                })
                .collect();
            let existing = value
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let keep_or = |key: &str, effect: &str, fresh: Value| {
                existing
                    .iter()
                    .find(|t| {
                        str_at(t, &["key"]) == Some(key) && str_at(t, &["effect"]) == Some(effect)
                    })
                    .cloned()
                    .unwrap_or(fresh)
            };
            if info.unschedulable {
                taints.push(keep_or(
                    UNSCHEDULABLE_TAINT,
                    "NoSchedule",
                    json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now}),
                ));
            }
            if !info.ready {
                taints.push(keep_or(
                    NOT_READY_TAINT,
                    "NoSchedule",
                    json!({"key": NOT_READY_TAINT, "effect": "NoSchedule"}),
                ));
                taints.push(keep_or(
                    NOT_READY_TAINT,
                    "NoExecute",
                    json!({"key": NOT_READY_TAINT, "effect": "NoExecute", "timeAdded": now}),
                ));
            }
            let spec = object_at(value, &["spec"]);
            if taints.is_empty() {
                spec.remove("taints");
            } else {
                spec.insert("taints".into(), Value::Array(taints));
            }
        });

        let now_time = self.clock.now();
        for pod in self.pods_on_node(name) {
            let Some(p) = pod.pod() else { continue };
            if p.terminal() {
                continue;
            }
            if !info.ready {
                if p.ready {
                    let now = now.clone();
                    self.modify(self.ids.pod, &pod.key, |v| {
                        set_condition(
                            v,
                            "Ready",
                            "False",
                            "NodeNotReady",
                            "the node's kubelet stopped posting node status",
                            &now,
                        );
                        set_condition(v, "ContainersReady", "False", "NodeNotReady", "", &now);
                    });
                }
                continue;
            }
            if pod.deleting {
                let due = str_at(&pod.value(), &["metadata", "deletionTimestamp"])
                    .and_then(parse_timestamp)
                    .unwrap_or(now_time);
                if due <= now_time {
                    self.remove(self.ids.pod, &pod.key);
                }
                continue;
            }
            // Parsed only for the few pods whose readiness the node may have taken away.
            let not_ready_by_node = p.phase == "Running"
                && !p.ready
                && pod
                    .value()
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|c| c.iter().find(|c| str_at(c, &["type"]) == Some("Ready")))
                    .and_then(|c| str_at(c, &["reason"]))
                    == Some("NodeNotReady");
            if not_ready_by_node {
                let now = now.clone();
                self.modify(self.ids.pod, &pod.key, |v| {
                    set_condition(v, "Ready", "True", "", "", &now);
                    set_condition(v, "ContainersReady", "True", "", "", &now);
                });
            } else if p.phase == "Pending" {
                let at = now_time + self.behaviour.startup_delay;
                self.add_timer(
                    at,
                    TimerKind::StartPod {
                        key: pod.key.clone(),
                        uid: pod.uid.clone(),
                    },
                );
            }
        }

        if info.ready && !info.unschedulable {
            let retry = std::mem::take(&mut self.unschedulable);
            self.dirty.unscheduled.extend(retry);
        }
        let daemonsets: Vec<String> = self.objects[self.ids.daemonset].keys().cloned().collect();
        let ds = self.ids.daemonset;
        self.dirty
            .workloads
            .extend(daemonsets.into_iter().map(|k| (ds, k)));
    }

    /// Pods controlled by the object with `uid` in `namespace`.
    fn owned_pods(&self, namespace: &str, uid: &str) -> Vec<Arc<Stored>> {
        self.pods_by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|key| self.get(self.ids.pod, key))
            .filter(|p| p.namespace == namespace)
            .cloned()
            .collect()
    }

    fn reconcile_replicaset(&mut self, key: &str) {
        let Some(rs) = self.get(self.ids.replicaset, key).cloned() else {
            return;
        };
        if rs.deleting {
            return;
        }
        let value = rs.value();
        let replicas = int_at(&value, "/spec/replicas", 1);
        let owned = self.owned_pods(&rs.namespace, &rs.uid);
        let mut active: Vec<&Arc<Stored>> = owned
            .iter()
            .filter(|p| !p.deleting && !p.pod().is_some_and(|i| i.terminal()))
            .collect();
        let missing = replicas - active.len() as i64;
        for _ in 0..missing.max(0) {
            let name = format!("{}-{}", rs.name, self.random_suffix(5));
            let pod =
                self.pod_from_template(&value, "ReplicaSet", &name, Some(format!("{}-", rs.name)));
            self.admit_pod(pod);
        }
        if missing < 0 {
            // Prefer unscheduled, then pending, then unready, then the newest pods.
            active.sort_by_key(|p| {
                let i = p.pod().expect("pod");
                (!i.node.is_empty(), i.phase != "Pending", i.ready)
            });
            let victims: Vec<String> = active
                .iter()
                .take((-missing) as usize)
                .map(|p| p.key.clone())
                .collect();
            for victim in victims {
                self.delete_pod(&victim, None);
            }
        }
        let owned = self.owned_pods(&rs.namespace, &rs.uid);
        let active: Vec<&Arc<Stored>> = owned
            .iter()
            .filter(|p| !p.deleting && !p.pod().is_some_and(|i| i.terminal()))
            .collect();
        let ready = active
            .iter()
            .filter(|p| p.pod().is_some_and(|i| i.ready))
            .count();
        let generation = int_at(&value, "/metadata/generation", 1);
        let count = active.len();
        self.modify(self.ids.replicaset, key, |v| {
            let status = object_at(v, &["status"]);
            status.insert("replicas".into(), json!(count));
            status.insert("fullyLabeledReplicas".into(), json!(count));
            set_or_remove(status, "readyReplicas", ready);
            set_or_remove(status, "availableReplicas", ready);
            status.insert("observedGeneration".into(), json!(generation));
        });
    }

    fn reconcile_statefulset(&mut self, key: &str) {
        let Some(sts) = self.get(self.ids.statefulset, key).cloned() else {
            return;
        };
        if sts.deleting {
            return;
        }
        let value = sts.value();
        let replicas = int_at(&value, "/spec/replicas", 1);
        let parallel = str_at(&value, &["spec", "podManagementPolicy"]) == Some("Parallel");
        for ordinal in 0..replicas {
            let name = format!("{}-{ordinal}", sts.name);
            match self.get_in(self.ids.pod, &sts.namespace, &name).cloned() {
                Some(pod) => {
                    let healthy =
                        !pod.deleting && pod.pod().is_some_and(|i| i.ready && i.phase == "Running");
                    if !parallel && !healthy {
                        break;
                    }
                }
                None => {
                    let mut pod = self.pod_from_template(&value, "StatefulSet", &name, None);
                    statefulset_identity(&mut pod, &value, &name, ordinal);
                    self.admit_pod(pod);
                    if !parallel {
                        break;
                    }
                }
            }
        }
        let owned = self.owned_pods(&sts.namespace, &sts.uid);
        let mut excess: Vec<(i64, String)> = owned
            .iter()
            .filter(|p| !p.deleting)
            .filter_map(|p| {
                let ordinal: i64 = p.name.rsplit_once('-')?.1.parse().ok()?;
                (ordinal >= replicas).then(|| (ordinal, p.key.clone()))
            })
            .collect();
        excess.sort();
        if let Some((_, key)) = excess.pop() {
            self.delete_pod(&key, None);
        }
        let owned = self.owned_pods(&sts.namespace, &sts.uid);
        let active: Vec<&Arc<Stored>> = owned.iter().filter(|p| !p.deleting).collect();
        let ready = active
            .iter()
            .filter(|p| p.pod().is_some_and(|i| i.ready))
            .count();
        let count = active.len();
        let generation = int_at(&value, "/metadata/generation", 1);
        self.modify(self.ids.statefulset, key, |v| {
            let status = object_at(v, &["status"]);
            status.insert("replicas".into(), json!(count));
            set_or_remove(status, "readyReplicas", ready);
            set_or_remove(status, "availableReplicas", ready);
            set_or_remove(status, "currentReplicas", count);
            set_or_remove(status, "updatedReplicas", count);
            status.insert("observedGeneration".into(), json!(generation));
        });
    }

    fn reconcile_daemonset(&mut self, key: &str) {
        let Some(ds) = self.get(self.ids.daemonset, key).cloned() else {
            return;
        };
        if ds.deleting {
            return;
        }
        let value = ds.value();
        let mut template_spec = value
            .pointer("/spec/template/spec")
            .cloned()
            .unwrap_or_else(|| json!({}));
        add_daemon_tolerations(&mut template_spec);
        let owned = self.owned_pods(&ds.namespace, &ds.uid);
        let mut by_node: BTreeMap<String, Vec<Arc<Stored>>> = BTreeMap::new();
        for pod in owned.iter().filter(|p| !p.deleting) {
            let node = match pod.pod().map(|p| p.node.clone()).unwrap_or_default() {
                node if node.is_empty() => pinned_node(&pod.value()).unwrap_or_default(),
                node => node,
            };
            by_node.entry(node).or_default().push(pod.clone());
        }
        let nodes: Vec<Arc<Stored>> = self.objects[self.ids.node].values().cloned().collect();
        let (mut desired, mut current, mut ready, mut misscheduled) =
            (0usize, 0usize, 0usize, 0usize);
        for node in &nodes {
            let should_run = daemon_should_run(&template_spec, node);
            let pods = by_node.get(&node.name).cloned().unwrap_or_default();
            if should_run {
                desired += 1;
                if pods.is_empty() {
                    let name = format!("{}-{}", ds.name, self.random_suffix(5));
                    let mut pod = self.pod_from_template(
                        &value,
                        "DaemonSet",
                        &name,
                        Some(format!("{}-", ds.name)),
                    );
                    pin_to_node(&mut pod, &node.name);
                    self.admit_pod(pod);
                } else {
                    current += 1;
                    ready += pods
                        .iter()
                        .filter(|p| p.pod().is_some_and(|i| i.ready))
                        .count();
                }
            } else if !pods.is_empty() {
                misscheduled += 1;
                for pod in pods {
                    self.delete_pod(&pod.key, None);
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
            set_or_remove(status, "updatedNumberScheduled", current);
            set_or_remove(status, "numberUnavailable", desired.saturating_sub(ready));
            status.insert("observedGeneration".into(), json!(generation));
        });
    }

    fn reconcile_deployment(&mut self, key: &str) {
        let Some(deployment) = self.get(self.ids.deployment, key).cloned() else {
            return;
        };
        if deployment.deleting {
            return;
        }
        let value = deployment.value();
        let replicas = int_at(&value, "/spec/replicas", 1);
        let generation = int_at(&value, "/metadata/generation", 1);
        let observed = int_at(&value, "/status/observedGeneration", 0);
        let mut sets: Vec<Arc<Stored>> = self
            .in_namespace(self.ids.replicaset, &deployment.namespace)
            .filter(|rs| {
                rs.controller
                    .as_ref()
                    .is_some_and(|c| c.uid == deployment.uid)
            })
            .cloned()
            .collect();
        sets.sort_by_key(|rs| {
            let v = rs.value();
            let revision: i64 = str_at(
                &v,
                &[
                    "metadata",
                    "annotations",
                    "deployment.kubernetes.io/revision",
                ],
            )
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
            (
                revision,
                str_at(&v, &["metadata", "creationTimestamp"])
                    .unwrap_or_default()
                    .to_string(),
            )
        });
        if sets.is_empty() {
            let rs = self.replicaset_for(&value, replicas);
            sets.push(self.admit_object(self.ids.replicaset, rs));
        } else if generation > observed {
            let newest = sets.len() - 1;
            for (i, rs) in sets.iter().enumerate() {
                let want = if i == newest { replicas } else { 0 };
                self.modify(self.ids.replicaset, &rs.key, |v| {
                    if int_at(v, "/spec/replicas", 1) != want {
                        object_at(v, &["spec"]).insert("replicas".into(), json!(want));
                        bump_generation(v);
                    }
                });
            }
        }
        let (mut total, mut ready, mut available, mut updated) = (0, 0, 0, 0);
        for (i, rs) in sets.iter().enumerate() {
            let Some(rs) = self.get(self.ids.replicaset, &rs.key) else {
                continue;
            };
            let v = rs.value();
            total += int_at(&v, "/status/replicas", 0);
            ready += int_at(&v, "/status/readyReplicas", 0);
            available += int_at(&v, "/status/availableReplicas", 0);
            if i == sets.len() - 1 {
                updated = int_at(&v, "/status/replicas", 0);
            }
        }
        let max_unavailable = value
            .pointer("/spec/strategy/rollingUpdate/maxUnavailable")
            .and_then(|m| disruption::IntOrPercent::parse(m).ok())
            .map(|m| match m {
                disruption::IntOrPercent::Int(n) => i64::from(n),
                disruption::IntOrPercent::Percent(p) => i64::from(p) * replicas / 100,
            })
            .unwrap_or(replicas / 4);
        let now = self.now_string();
        self.modify(self.ids.deployment, key, |v| {
            let status = object_at(v, &["status"]);
            set_or_remove(status, "replicas", total as usize);
            set_or_remove(status, "updatedReplicas", updated as usize);
            set_or_remove(status, "readyReplicas", ready as usize);
            set_or_remove(status, "availableReplicas", available as usize);
            set_or_remove(
                status,
                "unavailableReplicas",
                (replicas - available).max(0) as usize,
            );
            status.insert("observedGeneration".into(), json!(generation));
            let (state, reason, message) = if available >= replicas - max_unavailable {
                (
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            } else {
                (
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            };
            set_condition(v, "Available", state, reason, message, &now);
        });
    }

    /// A ReplicaSet for a Deployment that has none.
    fn replicaset_for(&mut self, deployment: &Value, replicas: i64) -> Value {
        let template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = template_hash(&template);
        let name = format!(
            "{}-{hash}",
            str_at(deployment, &["metadata", "name"]).unwrap_or_default()
        );
        let mut template = template;
        object_at(&mut template, &["metadata", "labels"])
            .insert("pod-template-hash".into(), json!(hash));
        let mut selector = deployment
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        object_at(&mut selector, &["matchLabels"]).insert("pod-template-hash".into(), json!(hash));
        let labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": str_at(deployment, &["metadata", "namespace"]),
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string(), "deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [owner_reference(deployment, "Deployment")],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        })
    }

    /// Stores a controller-made object with the metadata the apiserver would set.
    pub fn admit_object(&mut self, res: ResId, mut value: Value) -> Arc<Stored> {
        let uid = self.new_uid();
        let now = self.now_string();
        let meta = object_at(&mut value, &["metadata"]);
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        if super::world::uses_generation(self.registry.get(res).builtin) {
            meta.insert("generation".into(), json!(1));
        }
        self.put(res, value)
    }

    fn pod_from_template(
        &mut self,
        owner: &Value,
        kind: &str,
        name: &str,
        generate_name: Option<String>,
    ) -> Value {
        let template = owner
            .pointer("/spec/template")
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
                .pointer(&format!("/metadata/{field}"))
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

    fn schedule(&mut self, key: &str) {
        let Some(pod) = self.get(self.ids.pod, key).cloned() else {
            return;
        };
        let info = pod.pod().expect("pod").clone();
        if pod.deleting || !info.node.is_empty() || info.terminal() {
            return;
        }
        let value = pod.value();
        let spec = value.get("spec").cloned().unwrap_or_default();
        let nodes: Vec<Arc<Stored>> = self.objects[self.ids.node].values().cloned().collect();
        let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut best: Option<(i64, i64, String)> = None;
        for node in &nodes {
            match unfit_reason(self, &spec, info.cpu_milli, info.memory, node) {
                Some(reason) => *reasons.entry(reason).or_default() += 1,
                None => {
                    let usage = self.usage_on_node(&node.name);
                    let capacity = node.node().map(|n| n.cpu_milli).unwrap_or(i64::MAX).max(1);
                    let score = (
                        usage.cpu_milli.saturating_mul(1000) / capacity,
                        usage.pods,
                        node.name.clone(),
                    );
                    if best.as_ref().is_none_or(|b| score < *b) {
                        best = Some(score);
                    }
                }
            }
        }
        let now = self.now_string();
        match best {
            Some((_, _, node)) => {
                self.unschedulable.remove(key);
                let stored = self.modify(self.ids.pod, key, |v| {
                    object_at(v, &["spec"]).insert("nodeName".into(), json!(node));
                    set_condition(v, "PodScheduled", "True", "", "", &now);
                });
                if let Some(stored) = stored {
                    let at = self.clock.now() + self.behaviour.startup_delay;
                    self.add_timer(
                        at,
                        TimerKind::StartPod {
                            key: stored.key.clone(),
                            uid: stored.uid.clone(),
                        },
                    );
                }
            }
            None => {
                let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                let message = format!(
                    "0/{} nodes are available: {}. preemption: not eligible.",
                    nodes.len(),
                    if detail.is_empty() {
                        "no nodes".to_string()
                    } else {
                        detail.join(", ")
                    }
                );
                self.modify(self.ids.pod, key, |v| {
                    set_condition(v, "PodScheduled", "False", "Unschedulable", &message, &now);
                });
                self.unschedulable.insert(key.to_string());
            }
        }
    }

    fn start_pod(&mut self, key: &str, uid: &str) {
        let Some(pod) = self.get(self.ids.pod, key).cloned() else {
            return;
        };
        let info = pod.pod().expect("pod").clone();
        if pod.uid != uid || pod.deleting || info.node.is_empty() || info.phase != "Pending" {
            return;
        }
        let Some(node) = self.get(self.ids.node, &info.node).cloned() else {
            return;
        };
        if !node.node().is_some_and(|n| n.ready) {
            return; // started by `sync_node` when the node is back
        }
        let node_value = node.value();
        let host_ip = node_value
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|a| str_at(a, &["type"]) == Some("InternalIP"))
            })
            .and_then(|a| str_at(a, &["address"]))
            .unwrap_or("10.0.0.1")
            .to_string();
        let pod_ip = self.allocate_pod_ip(&info.node, str_at(&node_value, &["spec", "podCIDR"]));
        let now = self.now_string();
        let host_network = pod.field("spec.hostNetwork") == Some("true");
        let container_id_seed = self.new_uid().replace('-', "");
        self.modify(self.ids.pod, key, |v| {
            let containers = v
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let statuses: Vec<Value> = containers
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    json!({
                        "name": str_at(c, &["name"]),
                        "image": str_at(c, &["image"]),
                        "imageID": "",
                        "containerID": format!("containerd://{container_id_seed}{i:04}"),
                        "ready": true,
                        "started": true,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    })
                })
                .collect();
            let ip = if host_network {
                host_ip.clone()
            } else {
                pod_ip.clone()
            };
            let status = object_at(v, &["status"]);
            status.insert("phase".into(), json!("Running"));
            status.insert("hostIP".into(), json!(host_ip));
            status.insert("hostIPs".into(), json!([{"ip": host_ip}]));
            status.insert("podIP".into(), json!(ip));
            status.insert("podIPs".into(), json!([{"ip": ip}]));
            status.entry("startTime").or_insert_with(|| json!(now));
            status.insert("containerStatuses".into(), Value::Array(statuses));
            for condition in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
                set_condition(v, condition, "True", "", "", &now);
            }
        });
    }

    /// A free address in the node's pod CIDR (its first three octets), else from a spare range.
    fn allocate_pod_ip(&mut self, node: &str, pod_cidr: Option<&str>) -> String {
        let used: std::collections::HashSet<String> = self
            .pods_on_node(node)
            .iter()
            .filter_map(|p| p.field("status.podIP").map(str::to_string))
            .collect();
        let prefix = pod_cidr
            .and_then(|c| c.split_once('/'))
            .map(|(base, _)| base.rsplitn(2, '.').last().unwrap_or(base).to_string());
        if let Some(prefix) = prefix.filter(|p| p.split('.').count() == 3) {
            for _ in 0..252 {
                self.next_pod_ip += 1;
                let ip = format!("{prefix}.{}", 2 + self.next_pod_ip % 252);
                if !used.contains(&ip) {
                    return ip;
                }
            }
        }
        self.next_pod_ip += 1;
        let n = self.next_pod_ip;
        format!(
            "10.{}.{}.{}",
            200 + (n >> 16) % 50,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }

    fn finish_pod(&mut self, key: &str, uid: &str) {
        let Some(pod) = self.get(self.ids.pod, key).cloned() else {
            return;
        };
        if pod.uid != uid || !pod.deleting {
            return;
        }
        let node = pod.pod().map(|p| p.node.clone()).unwrap_or_default();
        let kubelet_up = node.is_empty()
            || self
                .get(self.ids.node, &node)
                .is_none_or(|n| n.node().is_some_and(|i| i.ready));
        if kubelet_up {
            self.remove(self.ids.pod, key);
        }
    }

    /// Deletes a pod as the apiserver does: at once if it never ran or has finished (or the
    /// grace period is zero), otherwise by setting its deletion timestamp; the kubelet then
    /// stops it when the grace period ends. Returns the pod as the DELETE response shows it.
    pub fn delete_pod(&mut self, key: &str, grace: Option<i64>) -> Option<Arc<Stored>> {
        let pod = self.get(self.ids.pod, key)?.clone();
        let (period, current) = self.grace_period(&pod, grace);
        if period == 0 {
            return self.remove(self.ids.pod, key);
        }
        if current.is_some_and(|c| c <= period) {
            return Some(pod);
        }
        let at = self.clock.now() + chrono::Duration::seconds(period);
        let stored = self.modify(self.ids.pod, key, |v| {
            let meta = object_at(v, &["metadata"]);
            meta.insert("deletionTimestamp".into(), json!(timestamp(at)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(period));
        })?;
        self.add_timer(
            at,
            TimerKind::RemovePod {
                key: key.to_string(),
                uid: stored.uid.clone(),
            },
        );
        Some(stored)
    }

    /// The grace period a deletion would use, and the one already running if any.
    pub fn grace_period(&self, pod: &Stored, requested: Option<i64>) -> (i64, Option<i64>) {
        let value = pod.value();
        let info = pod.pod().expect("pod");
        let default = int_at(&value, "/spec/terminationGracePeriodSeconds", 30);
        let mut period = requested.filter(|g| *g >= 0).unwrap_or(default);
        if info.node.is_empty() || info.terminal() {
            period = 0;
        }
        let current = pod
            .deleting
            .then(|| int_at(&value, "/metadata/deletionGracePeriodSeconds", 0));
        (period, current)
    }

    /// The scale of a pod's controller for the PDB arithmetic: a ReplicaSet managed by a
    /// Deployment counts as the Deployment.
    fn controller_scale(&self, namespace: &str, owner: &OwnerRef) -> Option<(String, i32)> {
        let res = match owner.kind.as_str() {
            "ReplicaSet" => self.ids.replicaset,
            "StatefulSet" => self.ids.statefulset,
            "ReplicationController" => self.registry.by_kind("v1", "ReplicationController")?,
            _ => return None,
        };
        let object = self.get_in(res, namespace, &owner.name)?;
        if object.uid != owner.uid {
            return None;
        }
        if res == self.ids.replicaset
            && let Some(deployment) = object
                .controller
                .as_ref()
                .filter(|c| c.kind == "Deployment")
        {
            let d = self.get_in(self.ids.deployment, namespace, &deployment.name)?;
            return Some((
                d.uid.clone(),
                int_at(&d.value(), "/spec/replicas", 1) as i32,
            ));
        }
        Some((
            object.uid.clone(),
            int_at(&object.value(), "/spec/replicas", 1) as i32,
        ))
    }

    /// The PDBs in `namespace` whose selector matches `labels`.
    pub fn budgets_for(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Arc<Stored>> {
        self.in_namespace(self.ids.pdb, namespace)
            .filter(|pdb| pdb.selector.as_ref().is_some_and(|s| s.matches(labels)))
            .cloned()
            .collect()
    }

    fn recompute_budget(&mut self, key: &str) {
        let Some(pdb) = self.get(self.ids.pdb, key).cloned() else {
            return;
        };
        let now = self.clock.now();
        let namespace = pdb.namespace.as_str();
        let value = pdb.value();
        let outcome = Budget::from_spec(value.get("spec")).and_then(|budget| {
            let selector = LabelSelector::from_object(value.pointer("/spec/selector"))?;
            let pods: Vec<PodView> = self
                .pods_selectable_by(namespace, &selector)
                .filter(|p| selector.matches(&p.labels))
                .map(|p| {
                    let info = p.pod().expect("pod");
                    PodView {
                        name: p.name.clone(),
                        ready: info.ready,
                        deleting: p.deleting,
                        controller: p.controller.clone(),
                    }
                })
                .collect();
            let disrupted: BTreeMap<String, DateTime<Utc>> = value
                .pointer("/status/disruptedPods")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), parse_timestamp(v.as_str()?)?)))
                        .collect()
                })
                .unwrap_or_default();
            let scale_of = |owner: &OwnerRef| self.controller_scale(namespace, owner);
            disruption::compute(&budget, &pods, &scale_of, &disrupted, now)
        });
        let recheck = outcome.as_ref().ok().and_then(|computed| {
            computed
                .disrupted_pods
                .values()
                .map(|at| *at + chrono::Duration::seconds(disruption::DELETION_TIMEOUT_SECONDS))
                .min()
        });
        let generation = int_at(&value, "/metadata/generation", 1);
        let now_text = timestamp(now);
        self.modify(self.ids.pdb, key, |v| {
            write_budget_status(v, &outcome, generation, &now_text)
        });
        if let Some(at) = recheck {
            self.add_timer(
                at,
                TimerKind::RecheckBudgets {
                    namespace: pdb.namespace.clone(),
                },
            );
        }
    }
}

/// Writes the disruption controller's result (or its fail-safe) into a PDB.
fn write_budget_status(
    pdb: &mut Value,
    outcome: &Result<disruption::Computed, String>,
    generation: i64,
    now: &str,
) {
    let (allowed_state, reason, message) = match outcome {
        Ok(c) if c.disruptions_allowed > 0 => ("True", "SufficientPods", String::new()),
        Ok(_) => ("False", "InsufficientPods", String::new()),
        Err(e) => ("False", "SyncFailed", e.clone()),
    };
    let status = object_at(pdb, &["status"]);
    match outcome {
        Ok(c) => {
            status.insert("currentHealthy".into(), json!(c.current_healthy));
            status.insert("desiredHealthy".into(), json!(c.desired_healthy));
            status.insert("expectedPods".into(), json!(c.expected_pods));
            status.insert("disruptionsAllowed".into(), json!(c.disruptions_allowed));
            status.insert("observedGeneration".into(), json!(generation));
            if c.disrupted_pods.is_empty() {
                status.remove("disruptedPods");
            } else {
                let map: Map<String, Value> = c
                    .disrupted_pods
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(timestamp(*v))))
                    .collect();
                status.insert("disruptedPods".into(), Value::Object(map));
            }
        }
        Err(_) => {
            status.insert("disruptionsAllowed".into(), json!(0));
            for field in ["currentHealthy", "desiredHealthy", "expectedPods"] {
                status.entry(field).or_insert(json!(0));
            }
        }
    }
    let observed = status
        .get("observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    set_budget_condition(status, allowed_state, reason, &message, now, observed);
}

/// The `DisruptionAllowed` condition (a `metav1.Condition`, so `message` and
/// `observedGeneration` are always present).
pub(crate) fn set_budget_condition(
    status: &mut Map<String, Value>,
    state: &str,
    reason: &str,
    message: &str,
    now: &str,
    observed: Value,
) {
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("array");
    let existing = list
        .iter_mut()
        .find(|c| str_at(c, &["type"]) == Some("DisruptionAllowed"));
    let transition = match &existing {
        Some(c) if str_at(c, &["status"]) == Some(state) => str_at(c, &["lastTransitionTime"])
            .unwrap_or(now)
            .to_string(),
        _ => now.to_string(),
    };
    let condition = json!({
        "type": "DisruptionAllowed",
        "status": state,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
        "observedGeneration": observed,
    });
    match existing {
        Some(c) => *c = condition,
        None => list.push(condition),
    }
}

fn set_or_remove(status: &mut Map<String, Value>, field: &str, n: usize) {
    if n == 0 {
        status.remove(field);
    } else {
        status.insert(field.into(), json!(n));
    }
}

fn bump_generation(value: &mut Value) {
    let generation = int_at(value, "/metadata/generation", 1);
    object_at(value, &["metadata"]).insert("generation".into(), json!(generation + 1));
}

fn owner_reference(owner: &Value, kind: &str) -> Value {
    json!({
        "apiVersion": str_at(owner, &["apiVersion"]).unwrap_or("apps/v1"),
        "kind": kind,
        "name": str_at(owner, &["metadata", "name"]),
        "uid": str_at(owner, &["metadata", "uid"]),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A short stable hash of a pod template, as a `pod-template-hash` label.
fn template_hash(template: &Value) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let digest = sha2::Sha256::digest(template.to_string().as_bytes());
    digest
        .iter()
        .take(10)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn statefulset_identity(pod: &mut Value, sts: &Value, name: &str, ordinal: i64) {
    let labels = object_at(pod, &["metadata", "labels"]);
    labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(name));
    labels.insert(
        "apps.kubernetes.io/pod-index".into(),
        json!(ordinal.to_string()),
    );
    if let Some(revision) = str_at(sts, &["status", "updateRevision"]) {
        labels.insert("controller-revision-hash".into(), json!(revision));
    }
    let spec = object_at(pod, &["spec"]);
    spec.insert("hostname".into(), json!(name));
    if let Some(service) = str_at(sts, &["spec", "serviceName"]) {
        spec.insert("subdomain".into(), json!(service));
    }
    if let Some(claims) = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
    {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            for claim in claims {
                let Some(claim_name) = str_at(claim, &["metadata", "name"]) else {
                    continue;
                };
                volumes.push(json!({"name": claim_name, "persistentVolumeClaim": {"claimName": format!("{claim_name}-{name}")}}));
            }
        }
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
    let tolerations = tolerations(spec);
    let Some(info) = node.node() else {
        return false;
    };
    let taints_ok = info.taints.iter().all(|t| {
        !(t.effect == "NoSchedule" || t.effect == "NoExecute")
            || tolerates(&tolerations, &t.key, &t.value, &t.effect)
    });
    let selector_ok = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| node.labels.get(k).map(String::as_str) == v.as_str())
        });
    let affinity_ok = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .is_none_or(|terms| node_affinity_matches(terms, &node.name, &node.labels));
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
    let term = pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0")?;
    (str_at(term, &["key"]) == Some("metadata.name"))
        .then(|| term.pointer("/values/0")?.as_str().map(str::to_string))?
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
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
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
    fn tolerations_match_like_the_scheduler() {
        let spec = json!({"tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
        ]});
        let t = tolerations(&spec);
        assert!(tolerates(&t, "dedicated", "db", "NoSchedule"));
        assert!(!tolerates(&t, "dedicated", "web", "NoSchedule"));
        assert!(!tolerates(&t, "dedicated", "db", "NoExecute"));
        assert!(tolerates(&t, UNSCHEDULABLE_TAINT, "", "NoSchedule"));
        let all = tolerations(&json!({"tolerations": [{"operator": "Exists"}]}));
        assert!(tolerates(&all, "anything", "x", "NoExecute"));
    }

    #[test]
    fn qos_classes() {
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
