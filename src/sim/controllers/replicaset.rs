//! The ReplicaSet controller: as many pods as `spec.replicas`, the surplus deleted in the
//! order the real controller prefers (unscheduled, pending, unready first).

use std::sync::Arc;

use serde_json::json;

use super::set_or_remove;
use crate::sim::object::Stored;
use crate::sim::value::{int_at, object_at};
use crate::sim::world::World;

impl World {
    pub(crate) fn reconcile_replicaset(&mut self, key: &str) {
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
            let pod = self.admit_pod(pod);
            let message = format!("Created pod: {}", pod.name);
            self.controller_event(
                self.ids.replicaset,
                key,
                "SuccessfulCreate",
                &message,
                "replicaset-controller",
            );
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
                let name = victim.rsplit('/').next().unwrap_or_default();
                let message = format!("Deleted pod: {name}");
                self.controller_event(
                    self.ids.replicaset,
                    key,
                    "SuccessfulDelete",
                    &message,
                    "replicaset-controller",
                );
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
        self.modify_parsed(self.ids.replicaset, &rs, value, |v| {
            let status = object_at(v, &["status"]);
            status.insert("replicas".into(), json!(count));
            status.insert("fullyLabeledReplicas".into(), json!(count));
            set_or_remove(status, "readyReplicas", ready);
            set_or_remove(status, "availableReplicas", ready);
            status.insert("observedGeneration".into(), json!(generation));
        });
    }
}
