//! The node lifecycle controller and the part of the kubelet that follows its node: a node's
//! `unschedulable` and `not-ready` taints follow its spec and Ready condition, and the pods of
//! a node that stopped reporting are marked not ready (and ready again when it is back).

use serde_json::{Value, json};

use super::events::Involved;
use super::{NOT_READY_TAINT, UNSCHEDULABLE_TAINT};
use crate::sim::clock::parse_timestamp;
use crate::sim::value::{At, condition, object_at, set_condition, str_at};
use crate::sim::world::{TimerKind, World};

impl World {
    pub(crate) fn sync_node(&mut self, name: &str) {
        let Some(node) = self.get(self.ids.node, name).cloned() else {
            return;
        };
        let info = node.node().expect("nodes carry node info").clone();
        let now = self.now_string();
        let was_unschedulable = info.taints.iter().any(|t| t.key == UNSCHEDULABLE_TAINT);
        if was_unschedulable != info.unschedulable {
            let (reason, status) = if info.unschedulable {
                ("NodeNotSchedulable", "NodeNotSchedulable")
            } else {
                ("NodeSchedulable", "NodeSchedulable")
            };
            let involved = Involved::of(self, self.ids.node, &node);
            let message = format!("Node {name} status is now: {status}");
            self.record_event(&involved, false, reason, &message, "kubelet");
        }
        self.modify(self.ids.node, name, |value| {
            let mut taints: Vec<Value> = value
                .at("/spec/taints")
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
                .at("/spec/taints")
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
                && condition(&pod.value(), "Ready").and_then(|c| str_at(c, &["reason"]))
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
}
