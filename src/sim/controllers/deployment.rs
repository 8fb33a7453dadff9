//! The Deployment controller (`pkg/controller/deployment`): one ReplicaSet per pod template,
//! the newest scaled up and the older ones down as the strategy allows. A changed template
//! (`kubectl set image`, `rollout restart`) makes a new ReplicaSet and rolls to it:
//! `RollingUpdate` keeps at most `replicas + maxSurge` pods and at least
//! `replicas - maxUnavailable` available (`rolling.go`), `Recreate` removes every old pod
//! before starting new ones (`recreate.go`). Status is computed from the ReplicaSets as
//! `sync.go` `calculateStatus` does, so `kubectl rollout status` waits for what really
//! happened.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{owner_reference, set_or_remove, template_hash};
use crate::model::budget::IntOrPercent;
use crate::sim::object::Stored;
use crate::sim::value::{At, int_at, object_at, set_condition, str_at};
use crate::sim::world::World;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// One ReplicaSet of a Deployment as the rollout reads it.
struct Set {
    key: String,
    name: String,
    revision: i64,
    spec: i64,
    replicas: i64,
    ready: i64,
    available: i64,
    current: bool,
}

impl World {
    pub(crate) fn reconcile_deployment(&mut self, key: &str) {
        let Some(deployment) = self.get(self.ids.deployment, key).cloned() else {
            return;
        };
        if deployment.deleting {
            return;
        }
        let value = deployment.value();
        let replicas = int_at(&value, "/spec/replicas", 1);
        let generation = int_at(&value, "/metadata/generation", 1);
        let template = value
            .at("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let paused = value.at("/spec/paused").and_then(Value::as_bool) == Some(true);
        let mut sets = self.sets_of(&deployment, &template);
        if !sets.iter().any(|s| s.current) && !paused {
            let revision = sets.iter().map(|s| s.revision).max().unwrap_or(0) + 1;
            // The first ReplicaSet starts at full scale; a later one grows as the strategy
            // lets it.
            let initial = if sets.is_empty() { replicas } else { 0 };
            let rs = self.replicaset_for(&value, initial, revision);
            self.admit_object(self.ids.replicaset, rs);
            sets = self.sets_of(&deployment, &template);
        }
        if !paused {
            let recreate = str_at(&value, &["spec", "strategy", "type"]) == Some("Recreate");
            let wanted = if recreate {
                recreate_scales(&sets, replicas)
            } else {
                let (surge, unavailable) = rolling_limits(&value, replicas);
                rolling_scales(&sets, replicas, surge, unavailable)
            };
            let mut scaled = false;
            for (set, want) in sets.iter().zip(&wanted) {
                if *want != set.spec {
                    scaled = true;
                    let direction = if *want > set.spec { "up" } else { "down" };
                    let message = format!("Scaled {direction} replica set {} to {want}", set.name);
                    self.controller_event(
                        self.ids.deployment,
                        key,
                        "ScalingReplicaSet",
                        &message,
                        "deployment-controller",
                    );
                    self.modify(self.ids.replicaset, &set.key, |v| {
                        object_at(v, &["spec"]).insert("replicas".into(), json!(want));
                        object_at(v, &["metadata", "annotations"]).insert(
                            "deployment.kubernetes.io/desired-replicas".into(),
                            json!(replicas.to_string()),
                        );
                    });
                }
            }
            if scaled {
                sets = self.sets_of(&deployment, &template);
            }
        }
        self.write_deployment_status(&deployment, value, &sets, replicas, generation);
    }

    /// The Deployment's ReplicaSets, oldest revision first.
    fn sets_of(&self, deployment: &Stored, template: &Value) -> Vec<Set> {
        let mut sets: Vec<Set> = self
            .in_namespace(self.ids.replicaset, &deployment.namespace)
            .filter(|rs| {
                !rs.deleting
                    && rs
                        .controller
                        .as_ref()
                        .is_some_and(|c| c.uid == deployment.uid)
            })
            .map(|rs| {
                let v = rs.value();
                Set {
                    key: rs.key.clone(),
                    name: rs.name.clone(),
                    revision: str_at(&v, &["metadata", "annotations", REVISION])
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0),
                    spec: int_at(&v, "/spec/replicas", 1),
                    replicas: int_at(&v, "/status/replicas", 0),
                    ready: int_at(&v, "/status/readyReplicas", 0),
                    available: int_at(&v, "/status/availableReplicas", 0),
                    current: same_template(v.at("/spec/template"), template),
                }
            })
            .collect();
        sets.sort_by_key(|s| (s.revision, s.name.clone()));
        // Two ReplicaSets with the template: the newest is the Deployment's.
        if let Some(newest) = sets.iter().rposition(|s| s.current) {
            for (i, set) in sets.iter_mut().enumerate() {
                set.current = i == newest;
            }
        }
        sets
    }

    fn write_deployment_status(
        &mut self,
        deployment: &Arc<Stored>,
        value: Value,
        sets: &[Set],
        replicas: i64,
        generation: i64,
    ) {
        let total_spec: i64 = sets.iter().map(|s| s.spec).sum();
        let actual: i64 = sets.iter().map(|s| s.replicas).sum();
        let ready: i64 = sets.iter().map(|s| s.ready).sum();
        let available: i64 = sets.iter().map(|s| s.available).sum();
        let new = sets.iter().find(|s| s.current);
        let updated = new.map_or(0, |s| s.replicas);
        let new_name = new.map(|s| s.name.clone()).unwrap_or_default();
        let revision = new.map(|s| s.revision);
        let (_, max_unavailable) = rolling_limits(&value, replicas);
        let complete = updated == replicas && actual == replicas && available == replicas;
        let now = self.now_string();
        let noted = str_at(&value, &["metadata", "annotations", REVISION]).is_some();
        self.modify_parsed(self.ids.deployment, deployment, value, |v| {
            // The revision rolled to; a snapshot trimmed of the annotation keeps it trimmed
            // until a rollout happens.
            if let Some(revision) = revision.filter(|r| noted || *r > 1) {
                object_at(v, &["metadata", "annotations"])
                    .insert(REVISION.into(), json!(revision.to_string()));
            }
            let status = object_at(v, &["status"]);
            set_or_remove(status, "replicas", actual as usize);
            set_or_remove(status, "updatedReplicas", updated as usize);
            set_or_remove(status, "readyReplicas", ready as usize);
            set_or_remove(status, "availableReplicas", available as usize);
            set_or_remove(
                status,
                "unavailableReplicas",
                (total_spec - available).max(0) as usize,
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
            let (reason, message) = if complete {
                (
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                )
            } else {
                (
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{new_name}\" is progressing."),
                )
            };
            set_condition(v, "Progressing", "True", reason, &message, &now);
        });
    }

    /// A ReplicaSet for the Deployment's current template.
    fn replicaset_for(&mut self, deployment: &Value, replicas: i64, revision: i64) -> Value {
        let template = deployment
            .at("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = template_hash(&template);
        let base = str_at(deployment, &["metadata", "name"]).unwrap_or_default();
        let namespace = str_at(deployment, &["metadata", "namespace"]).unwrap_or_default();
        let mut name = format!("{base}-{hash}");
        // A name taken by a ReplicaSet of another template (the controller's collisionCount).
        while self.get_in(self.ids.replicaset, namespace, &name).is_some() {
            name = format!("{base}-{}", template_hash(&json!([name, template])));
        }
        let mut template = template;
        object_at(&mut template, &["metadata", "labels"])
            .insert("pod-template-hash".into(), json!(hash));
        let mut selector = deployment
            .at("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        object_at(&mut selector, &["matchLabels"]).insert("pod-template-hash".into(), json!(hash));
        let labels = template
            .at("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string(), REVISION: revision.to_string()},
                "ownerReferences": [owner_reference(deployment, "Deployment")],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        })
    }
}

/// Whether a ReplicaSet's template is the Deployment's, its `pod-template-hash` label aside
/// (`EqualIgnoreHash`).
fn same_template(rs: Option<&Value>, deployment: &Value) -> bool {
    let (Some(Value::Object(rs)), Value::Object(deployment)) = (rs, deployment) else {
        return rs == Some(deployment);
    };
    // Only the small `metadata` is copied to be compared; the rest compares in place.
    let metadata = |template: &Map<String, Value>, replica_set: bool| {
        let mut meta = template.get("metadata").cloned();
        if let Some(Value::Object(meta)) = &mut meta {
            if replica_set && let Some(Value::Object(labels)) = meta.get_mut("labels") {
                labels.remove("pod-template-hash");
            }
            // An empty map and a missing one are the same template.
            meta.retain(|_, v| !(v.is_null() || v.as_object().is_some_and(|m| m.is_empty())));
        }
        meta
    };
    rs.len() == deployment.len()
        && rs
            .iter()
            .zip(deployment)
            .all(|((k, a), (l, b))| k == l && (k == "metadata" || a == b))
        && metadata(rs, true) == metadata(deployment, false)
}

/// `(maxSurge, maxUnavailable)` of a rolling update, in pods: defaults 25 % each, the surge
/// rounded up and the unavailability down; both zero would stall, so unavailability is then
/// one (`deploymentutil.ResolveFenceposts`).
fn rolling_limits(deployment: &Value, replicas: i64) -> (i64, i64) {
    let limit = |field: &str| {
        deployment
            .at(&format!("/spec/strategy/rollingUpdate/{field}"))
            .and_then(|v| IntOrPercent::parse(v).ok())
            .unwrap_or(IntOrPercent::Percent(25))
    };
    let total = i32::try_from(replicas).unwrap_or(i32::MAX);
    let surge = i64::from(limit("maxSurge").scaled(total, true));
    let unavailable = i64::from(limit("maxUnavailable").scaled(total, false));
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The replicas each set should have next under `RollingUpdate` (`rolling.go`).
fn rolling_scales(sets: &[Set], replicas: i64, surge: i64, unavailable: i64) -> Vec<i64> {
    let mut want: Vec<i64> = sets.iter().map(|s| s.spec).collect();
    let Some(new) = sets.iter().position(|s| s.current) else {
        return want;
    };
    // Scale the new set up as far as the surge allows (`NewRSNewReplicas`).
    if want[new] > replicas {
        want[new] = replicas;
    } else {
        let total: i64 = want.iter().sum();
        let room = replicas + surge - total;
        if room > 0 {
            want[new] = replicas.min(want[new] + room);
        }
    }
    // Scale old sets down while enough pods stay available (`reconcileOldReplicaSets`).
    let all: i64 = want.iter().sum();
    let min_available = replicas - unavailable;
    let new_unavailable = (want[new] - sets[new].available).max(0);
    let mut max_down = all - min_available - new_unavailable;
    if max_down <= 0 {
        return want;
    }
    // First the old pods that are not available anyway, oldest set first.
    for (i, set) in sets.iter().enumerate() {
        if i == new || max_down == 0 || want[i] == 0 {
            continue;
        }
        let unhealthy = (want[i] - set.available).max(0);
        let down = unhealthy.min(max_down);
        want[i] -= down;
        max_down -= down;
    }
    // Then available ones, as far as availability allows.
    let available: i64 = sets.iter().map(|s| s.available).sum();
    let mut down_left = (available - min_available).max(0);
    for (i, _) in sets.iter().enumerate() {
        if i == new || down_left == 0 {
            continue;
        }
        let down = want[i].min(down_left);
        want[i] -= down;
        down_left -= down;
    }
    want
}

/// The replicas each set should have next under `Recreate`: old sets to zero, the new one up
/// once no old pod is left.
fn recreate_scales(sets: &[Set], replicas: i64) -> Vec<i64> {
    let old_pods: i64 = sets.iter().filter(|s| !s.current).map(|s| s.replicas).sum();
    sets.iter()
        .map(|s| match (s.current, old_pods) {
            (true, 0) => replicas,
            (true, _) => s.spec,
            (false, _) => 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn set(current: bool, spec: i64, available: i64) -> Set {
        Set {
            key: String::new(),
            name: String::new(),
            revision: 0,
            spec,
            replicas: spec,
            ready: available,
            available,
            current,
        }
    }

    // "Rolling Update Deployment" in the Deployments concept page: 3 replicas with the
    // default 25 % surge and unavailability start one new pod, then retire old pods only as
    // new ones become available.
    #[test]
    pub(crate) fn a_rolling_update_surges_then_waits_for_availability() {
        let (surge, unavailable) = rolling_limits(&json!({"spec": {}}), 3);
        assert_eq!((surge, unavailable), (1, 0));
        let sets = [set(false, 3, 3), set(true, 0, 0)];
        assert_eq!(rolling_scales(&sets, 3, surge, unavailable), [3, 1]);
        let sets = [set(false, 3, 3), set(true, 1, 0)];
        assert_eq!(rolling_scales(&sets, 3, surge, unavailable), [3, 1]);
        let sets = [set(false, 3, 3), set(true, 1, 1)];
        assert_eq!(rolling_scales(&sets, 3, surge, unavailable), [2, 1]);
        let sets = [set(false, 2, 2), set(true, 1, 1)];
        assert_eq!(rolling_scales(&sets, 3, surge, unavailable), [2, 2]);
    }

    #[test]
    pub(crate) fn max_unavailable_retires_old_pods_before_new_ones_are_ready() {
        let deployment =
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}}});
        let (surge, unavailable) = rolling_limits(&deployment, 4);
        assert_eq!((surge, unavailable), (0, 1));
        let sets = [set(false, 4, 4), set(true, 0, 0)];
        assert_eq!(rolling_scales(&sets, 4, surge, unavailable), [3, 0]);
        let sets = [set(false, 3, 3), set(true, 0, 0)];
        assert_eq!(rolling_scales(&sets, 4, surge, unavailable), [3, 1]);
    }

    #[test]
    pub(crate) fn recreate_waits_for_every_old_pod() {
        let mut old = set(false, 0, 0);
        old.replicas = 2;
        assert_eq!(recreate_scales(&[old, set(true, 0, 0)], 3), [0, 0]);
        assert_eq!(
            recreate_scales(&[set(false, 0, 0), set(true, 0, 0)], 3),
            [0, 3]
        );
    }

    #[test]
    pub(crate) fn templates_match_without_the_hash_label() {
        let deployment = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}});
        let rs = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}});
        assert!(same_template(Some(&rs), &deployment));
        let changed = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}});
        assert!(!same_template(Some(&rs), &changed));
    }
}
