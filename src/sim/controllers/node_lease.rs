//! The kubelet's heartbeats: every node's Lease in `kube-node-lease` renewed every 10 s of
//! cluster time (`renewInterval`, a quarter of the 40 s `leaseDurationSeconds`), and its
//! conditions' `lastHeartbeatTime` every 5 min (`nodeStatusReportFrequency`). A node whose
//! kubelet is stopped (control API) renews nothing; once its lease is older than its
//! duration the node controller marks it `Unknown` ("Kubelet stopped posting node status.").
//!
//! At high time scales the renewals are spread out (and the lease duration with them), so a
//! large cluster costs at most about 500 writes per real second.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::events::Involved;
use crate::sim::clock::{parse_timestamp, timestamp};
use crate::sim::value::{condition, condition_status, object_at, set_condition, str_at};
use crate::sim::world::{TimerKind, World};

pub(crate) const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Lease writes per real second the heartbeats may cost at most.
const WRITES_PER_SECOND: f64 = 500.0;

impl World {
    /// How often leases are renewed, in cluster time.
    pub(crate) fn renew_interval(&self) -> Duration {
        let nodes = self.objects[self.ids.node].len().max(1) as f64;
        let seconds = (nodes * self.clock.scale() / WRITES_PER_SECOND).max(10.0);
        Duration::milliseconds((seconds * 1000.0) as i64)
    }

    /// Renews the leases of running kubelets, advances heartbeats, and marks nodes whose
    /// lease ran out; then arms the next round.
    pub(crate) fn heartbeat(&mut self) {
        let now = self.clock.now();
        let interval = self.renew_interval();
        let duration = interval * 4;
        let report_every = Duration::minutes(5).max(interval);
        let nodes: Vec<String> = self.objects[self.ids.node].keys().cloned().collect();
        for node in nodes {
            let lease = self.get_in(self.ids.lease, LEASE_NAMESPACE, &node).cloned();
            let renewed = lease
                .as_ref()
                .and_then(|l| str_at(&l.value(), &["spec", "renewTime"]).and_then(parse_timestamp));
            if self.stopped_kubelets.contains(&node) {
                if renewed.is_none_or(|at| now - at > duration) {
                    self.lost_node(&node);
                }
                continue;
            }
            self.renew_lease(&node, now, duration);
            self.report_status(&node, now, report_every);
        }
        self.add_timer(now + interval, TimerKind::Heartbeat);
    }

    pub(crate) fn renew_lease(&mut self, node: &str, now: DateTime<Utc>, duration: Duration) {
        let renew = micro_time(now);
        let seconds = duration.num_seconds().max(40);
        match self.get_in(self.ids.lease, LEASE_NAMESPACE, node).cloned() {
            Some(lease) => {
                self.modify(self.ids.lease, &lease.key, |v| {
                    let spec = object_at(v, &["spec"]);
                    spec.insert("renewTime".into(), json!(renew));
                    spec.insert("leaseDurationSeconds".into(), json!(seconds));
                });
            }
            None => {
                if self.get(self.ids.namespace, LEASE_NAMESPACE).is_none() {
                    let namespace = json!({
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": LEASE_NAMESPACE, "labels": {"kubernetes.io/metadata.name": LEASE_NAMESPACE}},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    });
                    self.admit_object(self.ids.namespace, namespace);
                }
                let Some(owner) = self.get(self.ids.node, node).cloned() else {
                    return;
                };
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": node,
                        "namespace": LEASE_NAMESPACE,
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": owner.uid}],
                    },
                    "spec": {"holderIdentity": node, "leaseDurationSeconds": seconds, "renewTime": renew},
                });
                self.admit_object(self.ids.lease, lease);
            }
        }
    }

    /// The kubelet posts its node status: `lastHeartbeatTime` advances when a report is due.
    pub(crate) fn report_status(&mut self, node: &str, now: DateTime<Utc>, every: Duration) {
        let Some(stored) = self.get(self.ids.node, node).cloned() else {
            return;
        };
        let value = stored.value();
        let ready = condition(&value, "Ready");
        let last = ready
            .and_then(|c| str_at(c, &["lastHeartbeatTime"]))
            .and_then(parse_timestamp);
        let unknown = stored.node().is_some_and(|n| !n.ready)
            && ready.and_then(|c| str_at(c, &["reason"])) == Some("NodeStatusUnknown");
        if !unknown && last.is_some_and(|at| now - at < every) {
            return;
        }
        let beat = timestamp(now);
        self.modify(self.ids.node, node, |v| {
            if unknown {
                set_condition(
                    v,
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    &beat,
                );
            }
            if let Some(conditions) = v
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for condition in conditions {
                    condition["lastHeartbeatTime"] = json!(beat);
                }
            }
        });
    }

    /// The node controller gives up on a node whose lease expired.
    pub(crate) fn lost_node(&mut self, node: &str) {
        let Some(stored) = self.get(self.ids.node, node).cloned() else {
            return;
        };
        if condition_status(&stored.value(), "Ready") == Some("Unknown") {
            return;
        }
        let now = self.now_string();
        self.modify(self.ids.node, node, |v| {
            set_condition(
                v,
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                &now,
            );
        });
        if let Some(stored) = self.get(self.ids.node, node).cloned() {
            let involved = Involved::of(self, self.ids.node, &stored);
            self.record_event(
                &involved,
                false,
                "NodeNotReady",
                &format!("Node {node} status is now: NodeNotReady"),
                "node-controller",
            );
        }
    }

    /// Stops or restarts a node's kubelet (the control API's dead-kubelet switch).
    pub(crate) fn set_kubelet_running(&mut self, node: &str, running: bool) {
        if running {
            self.stopped_kubelets.remove(node);
            let now = self.clock.now();
            let duration = self.renew_interval() * 4;
            self.renew_lease(node, now, duration);
            self.report_status(node, now, Duration::zero());
        } else {
            self.stopped_kubelets.insert(node.to_string());
        }
    }
}

/// A `MicroTime`, as leases carry it.
fn micro_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
