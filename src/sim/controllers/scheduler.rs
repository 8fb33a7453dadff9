//! The scheduler: a pending pod goes to the least loaded node that fits it (taints, node
//! selector and affinity, capacity); one that fits nowhere gets the scheduler's summary of why.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::events::Involved;
use super::{NOT_READY_TAINT, UNSCHEDULABLE_TAINT};
use crate::model::selector::{node_affinity_matches, node_selector_terms};
use crate::model::taints::{tolerates, tolerates_all, tolerations_of};
use crate::sim::object::Stored;
use crate::sim::value::{At, object_at, set_condition};
use crate::sim::world::{NodeUsage, TimerKind, World};

/// Why a node cannot take a pod, worded like the scheduler's summary.
fn unfit_reason(
    world: &World,
    spec: &Value,
    pod_cpu: i64,
    pod_memory: i64,
    node: &Stored,
) -> Option<&'static str> {
    let info = node.node()?;
    let tolerations = tolerations_of(spec);
    if info.unschedulable && !tolerates(&tolerations, UNSCHEDULABLE_TAINT, "", "NoSchedule") {
        return Some("node(s) were unschedulable");
    }
    if !info.ready && !tolerates(&tolerations, NOT_READY_TAINT, "", "NoSchedule") {
        return Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }");
    }
    if !tolerates_all(&tolerations, &info.taints) {
        return Some("node(s) had untolerated taint(s)");
    }
    if let Some(selector) = spec.get("nodeSelector").and_then(Value::as_object)
        && selector
            .iter()
            .any(|(k, v)| node.labels.get(k).map(String::as_str) != v.as_str())
    {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    if let Some(terms) = spec.at(
        "/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    ) && !node_affinity_matches(&node_selector_terms(terms), &node.name, &node.labels)
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

impl World {
    pub(crate) fn schedule(&mut self, key: &str) {
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
                    let involved = Involved::of(self, self.ids.pod, &stored);
                    let message = format!(
                        "Successfully assigned {}/{} to {node}",
                        stored.namespace, stored.name
                    );
                    self.record_event(&involved, false, "Scheduled", &message, "default-scheduler");
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
                let before = pod.rv;
                let stored = self.modify(self.ids.pod, key, |v| {
                    set_condition(v, "PodScheduled", "False", "Unschedulable", &message, &now);
                });
                // One event per new reason, not one per retry.
                if let Some(stored) = stored.filter(|s| s.rv != before) {
                    let involved = Involved::of(self, self.ids.pod, &stored);
                    self.record_event(
                        &involved,
                        true,
                        "FailedScheduling",
                        &message,
                        "default-scheduler",
                    );
                }
                self.unschedulable.insert(key.to_string());
            }
        }
    }
}
