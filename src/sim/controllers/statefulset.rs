//! The StatefulSet controller: pods named by ordinal, created in order (or all at once with
//! `podManagementPolicy: Parallel`), each with its stable identity; a changed template rolls
//! out one pod at a time from the highest ordinal down to the partition (`RollingUpdate`), or
//! only as pods are deleted (`OnDelete`), as `stateful_set_control.go` does.

use std::sync::Arc;

use serde_json::{Value, json};

use super::set_or_remove;
use crate::sim::object::Stored;
use crate::sim::value::{At, int_at, object_at, str_at};
use crate::sim::world::World;

impl World {
    pub(crate) fn reconcile_statefulset(&mut self, key: &str) {
        let Some(sts) = self.get(self.ids.statefulset, key).cloned() else {
            return;
        };
        if sts.deleting {
            return;
        }
        let value = sts.value();
        let replicas = int_at(&value, "/spec/replicas", 1);
        let parallel = str_at(&value, &["spec", "podManagementPolicy"]) == Some("Parallel");
        let template = value
            .at("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let seen = str_at(&value, &["status", "updateRevision"])
            .or_else(|| str_at(&value, &["status", "currentRevision"]))
            .map(str::to_string);
        let update_revision = self.template_revision(&sts, &template, seen);
        let current_revision = str_at(&value, &["status", "currentRevision"])
            .unwrap_or(&update_revision)
            .to_string();
        let on_delete = str_at(&value, &["spec", "updateStrategy", "type"]) == Some("OnDelete");
        let partition = if on_delete {
            replicas
        } else {
            int_at(&value, "/spec/updateStrategy/rollingUpdate/partition", 0)
        };
        let first_revision = self
            .first_revision(&sts)
            .unwrap_or_else(|| update_revision.clone());
        let revision_of = |pod: &Stored| {
            pod.labels
                .get("controller-revision-hash")
                .cloned()
                .unwrap_or_else(|| first_revision.clone())
        };
        let mut all_healthy = true;
        for ordinal in 0..replicas {
            let name = format!("{}-{ordinal}", sts.name);
            match self.get_in(self.ids.pod, &sts.namespace, &name).cloned() {
                Some(pod) => {
                    let healthy =
                        !pod.deleting && pod.pod().is_some_and(|i| i.ready && i.phase == "Running");
                    all_healthy &= healthy;
                    if !parallel && !healthy {
                        break;
                    }
                }
                None => {
                    all_healthy = false;
                    // Below the partition a pod comes back at the current revision; from it
                    // (and always with OnDelete) at the update revision.
                    let revision = if ordinal < partition && !on_delete {
                        current_revision.clone()
                    } else {
                        update_revision.clone()
                    };
                    let owner = match self.revision_template(&sts, &revision) {
                        Some(old) if revision != update_revision => {
                            let mut owner = value.clone();
                            owner["spec"]["template"] = old;
                            owner
                        }
                        _ => value.clone(),
                    };
                    let mut pod = self.pod_from_template(&owner, "StatefulSet", &name, None);
                    statefulset_identity(
                        &mut pod,
                        &value,
                        &name,
                        ordinal,
                        &revision,
                        self.version.pod_index_label(),
                    );
                    self.admit_pod(pod);
                    let message =
                        format!("create Pod {name} in StatefulSet {} successful", sts.name);
                    self.controller_event(
                        self.ids.statefulset,
                        key,
                        "SuccessfulCreate",
                        &message,
                        "statefulset-controller",
                    );
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
        if let Some((_, pod)) = excess.pop() {
            self.delete_pod(&pod, None);
            self.statefulset_deleted(key, &sts.name, &pod);
        } else if all_healthy && !on_delete {
            // RollingUpdate: one pod at a time, the highest ordinal first, down to the
            // partition, each only once every pod is Running and Ready.
            let outdated = (partition..replicas).rev().find_map(|ordinal| {
                let pod = self.get_in(
                    self.ids.pod,
                    &sts.namespace,
                    &format!("{}-{ordinal}", sts.name),
                )?;
                (revision_of(pod) != update_revision).then(|| pod.key.clone())
            });
            if let Some(pod) = outdated {
                self.delete_pod(&pod, None);
                self.statefulset_deleted(key, &sts.name, &pod);
            }
        }
        let owned = self.owned_pods(&sts.namespace, &sts.uid);
        let active: Vec<&Arc<Stored>> = owned.iter().filter(|p| !p.deleting).collect();
        let ready = active
            .iter()
            .filter(|p| p.pod().is_some_and(|i| i.ready))
            .count();
        let count = active.len();
        let updated = active
            .iter()
            .filter(|p| revision_of(p) == update_revision)
            .count();
        let current_revision = if updated as i64 == replicas && count as i64 == replicas {
            update_revision.clone()
        } else {
            current_revision
        };
        let current = active
            .iter()
            .filter(|p| revision_of(p) == current_revision)
            .count();
        let generation = int_at(&value, "/metadata/generation", 1);
        self.modify_parsed(self.ids.statefulset, &sts, value, |v| {
            let status = object_at(v, &["status"]);
            status.insert("replicas".into(), json!(count));
            set_or_remove(status, "readyReplicas", ready);
            set_or_remove(status, "availableReplicas", ready);
            set_or_remove(status, "currentReplicas", current);
            set_or_remove(status, "updatedReplicas", updated);
            status.insert("currentRevision".into(), json!(current_revision));
            status.insert("updateRevision".into(), json!(update_revision));
            status.insert("observedGeneration".into(), json!(generation));
        });
    }
}

impl World {
    pub(crate) fn statefulset_deleted(&mut self, key: &str, sts: &str, pod: &str) {
        let name = pod.rsplit('/').next().unwrap_or_default();
        let message = format!("delete Pod {name} in StatefulSet {sts} successful");
        self.controller_event(
            self.ids.statefulset,
            key,
            "SuccessfulDelete",
            &message,
            "statefulset-controller",
        );
    }
}

fn statefulset_identity(
    pod: &mut Value,
    sts: &Value,
    name: &str,
    ordinal: i64,
    revision: &str,
    index_label: bool,
) {
    let labels = object_at(pod, &["metadata", "labels"]);
    labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(name));
    if index_label {
        labels.insert(
            "apps.kubernetes.io/pod-index".into(),
            json!(ordinal.to_string()),
        );
    }
    labels.insert("controller-revision-hash".into(), json!(revision));
    let spec = object_at(pod, &["spec"]);
    spec.insert("hostname".into(), json!(name));
    if let Some(service) = str_at(sts, &["spec", "serviceName"]) {
        spec.insert("subdomain".into(), json!(service));
    }
    if let Some(claims) = sts
        .at("/spec/volumeClaimTemplates")
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
