//! The kubelet: a scheduled pod starts (Running, Ready, an IP from the node's pod CIDR) after
//! the startup delay, and a deleted pod stops when its grace period is over; graceful
//! deletion itself (the deletion timestamp the apiserver sets) is here too.

use std::sync::Arc;

use serde_json::{Value, json};

use super::events::Involved;
use crate::sim::clock::timestamp;
use crate::sim::object::Stored;
use crate::sim::value::{At, int_at, object_at, set_condition, str_at};
use crate::sim::world::{TimerKind, World};

impl World {
    pub(crate) fn start_pod(&mut self, key: &str, uid: &str) {
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
            .at("/status/addresses")
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
                .at("/spec/containers")
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
    pub(crate) fn allocate_pod_ip(&mut self, node: &str, pod_cidr: Option<&str>) -> String {
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

    pub(crate) fn finish_pod(&mut self, key: &str, uid: &str) {
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
        // The kubelet stops the containers: a pod being deleted is no longer ready.
        let now = self.now_string();
        let stored = self
            .modify(self.ids.pod, key, |v| {
                set_condition(v, "Ready", "False", "", "", &now);
                set_condition(v, "ContainersReady", "False", "", "", &now);
                if let Some(statuses) = v
                    .pointer_mut("/status/containerStatuses")
                    .and_then(Value::as_array_mut)
                {
                    for status in statuses {
                        status["ready"] = json!(false);
                    }
                }
            })
            .unwrap_or(stored);
        let containers: Vec<String> = stored
            .value()
            .at("/spec/containers")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|c| str_at(c, &["name"]).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let involved = Involved::of(self, self.ids.pod, &stored);
        for container in containers {
            let message = format!("Stopping container {container}");
            self.record_event(&involved, false, "Killing", &message, "kubelet");
        }
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
}
