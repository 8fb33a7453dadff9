//! The disruption controller: each PodDisruptionBudget's status from the pods it selects and
//! the scale of their controllers (the arithmetic is `crate::model::budget`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::model::budget::{self, Budget, OwnerRef, PodView};
use crate::model::selector::Selector;
use crate::sim::clock::{parse_timestamp, timestamp};
use crate::sim::object::Stored;
use crate::sim::value::{At, int_at, object_at, str_at};
use crate::sim::world::{TimerKind, World};

impl World {
    /// The scale of a pod's controller for the PDB arithmetic: a ReplicaSet managed by a
    /// Deployment counts as the Deployment.
    pub(crate) fn controller_scale(
        &self,
        namespace: &str,
        owner: &OwnerRef,
    ) -> Option<(String, i32)> {
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
            return Some((d.uid.clone(), d.replicas.unwrap_or(1) as i32));
        }
        Some((object.uid.clone(), object.replicas.unwrap_or(1) as i32))
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

    pub(crate) fn recompute_budget(&mut self, key: &str) {
        let Some(pdb) = self.get(self.ids.pdb, key).cloned() else {
            return;
        };
        let now = self.clock.now();
        if let Some(due) = self.budgets_pending.get(key).copied() {
            if now < due {
                return;
            }
            self.budgets_pending.remove(key);
        }
        let namespace = pdb.namespace.as_str();
        let value = pdb.value();
        let outcome = Budget::from_spec(value.get("spec")).and_then(|budget| {
            let selector =
                Selector::from_json(value.at("/spec/selector")).map_err(|e| e.to_string())?;
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
                .at("/status/disruptedPods")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), parse_timestamp(v.as_str()?)?)))
                        .collect()
                })
                .unwrap_or_default();
            let scale_of = |owner: &OwnerRef| self.controller_scale(namespace, owner);
            budget::compute(&budget, &pods, &scale_of, &disrupted, now)
        });
        let recheck = outcome.as_ref().ok().and_then(|computed| {
            computed
                .disrupted_pods
                .values()
                .map(|at| *at + chrono::Duration::seconds(budget::DELETION_TIMEOUT_SECONDS))
                .min()
        });
        let generation = int_at(&value, "/metadata/generation", 1);
        let now_text = timestamp(now);
        self.modify_parsed(self.ids.pdb, &pdb, value, |v| {
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
    outcome: &Result<budget::Computed, String>,
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
