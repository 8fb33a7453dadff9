//! The controllers a drain depends on, reduced to what an upgrade observes, one file each:
//! the scheduler, the kubelet (pods start after a delay and stop after their grace period),
//! the ReplicaSet, StatefulSet, DaemonSet and Deployment controllers, the node lifecycle
//! controller (taints, pods of a NotReady node become unready) and the disruption controller.
//! `admission.rs` stores what they create the way the apiserver stores a new object.
//!
//! They run to a fixed point after every change ([`World::settle`]) and when cluster time
//! reaches a timer ([`World::run_timers`]).
//!
//! Not simulated: taint-based eviction from NotReady nodes, pod (anti-)affinity between pods,
//! preemption.

mod admission;
mod daemonset;
mod deployment;
mod disruption;
pub(crate) mod events;
mod kubelet;
mod node_lease;
mod node_lifecycle;
mod replicaset;
mod scheduler;
mod statefulset;

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::object::Stored;
use super::resource::ResId;
use super::value::str_at;
use super::world::{Revision, TimerKind, World};

pub(crate) use disruption::set_budget_condition;

pub(super) const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub(super) const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

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
                TimerKind::Heartbeat => self.heartbeat(),
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
        let value = current.value();
        self.write_if_changed(res, &current, value, change)
    }

    /// [`World::modify`] for a controller that has already parsed `parsed` into `value`:
    /// parsing is most of what reconciling costs, so it is not done twice unless the object
    /// was written in between.
    pub fn modify_parsed(
        &mut self,
        res: ResId,
        parsed: &Arc<Stored>,
        value: Value,
        change: impl FnOnce(&mut Value),
    ) -> Option<Arc<Stored>> {
        let current = self.get(res, &parsed.key)?.clone();
        let value = if Arc::ptr_eq(&current, parsed) {
            value
        } else {
            current.value()
        };
        self.write_if_changed(res, &current, value, change)
    }

    fn write_if_changed(
        &mut self,
        res: ResId,
        current: &Arc<Stored>,
        mut value: Value,
        change: impl FnOnce(&mut Value),
    ) -> Option<Arc<Stored>> {
        change(&mut value);
        // The stored bytes are what serde_json writes, so writing the result is the cheaper
        // way to tell whether it changed than keeping a copy to compare with.
        if serde_json::to_vec(&value).is_ok_and(|bytes| bytes == current.raw) {
            return Some(current.clone());
        }
        Some(self.put(res, value))
    }

    /// The revision (`controller-revision-hash`) of a StatefulSet's or DaemonSet's
    /// `template`, as its ControllerRevisions would name it: the first template seen keeps
    /// the name the snapshot gave it (`first_seen`), every new one is `{name}-{hash}`. The
    /// template of each revision is kept, so that a pod can be recreated at an older one.
    pub(crate) fn template_revision(
        &mut self,
        owner: &Stored,
        template: &Value,
        first_seen: Option<String>,
    ) -> String {
        let fingerprint = template_hash(template);
        let known = self.revisions.entry(owner.uid.clone()).or_default();
        if let Some(revision) = known.iter().find(|r| r.fingerprint == fingerprint) {
            return revision.name.clone();
        }
        let name = match first_seen.filter(|_| known.is_empty()) {
            Some(name) => name,
            None => format!("{}-{fingerprint}", owner.name),
        };
        known.push(Revision {
            fingerprint,
            name: name.clone(),
            template: template.clone(),
        });
        name
    }

    /// An event from a workload controller about the workload `key` of `res`.
    pub(crate) fn controller_event(
        &mut self,
        res: ResId,
        key: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        if let Some(owner) = self.get(res, key).cloned() {
            let involved = events::Involved::of(self, res, &owner);
            self.record_event(&involved, false, reason, message, component);
        }
    }

    /// The revision of the first template seen: what a pod without a
    /// `controller-revision-hash` label (a trimmed snapshot's) was made from.
    fn first_revision(&self, owner: &Stored) -> Option<String> {
        self.revisions
            .get(&owner.uid)
            .and_then(|known| known.first())
            .map(|r| r.name.clone())
    }

    /// The template of a revision named by [`Self::template_revision`].
    pub(crate) fn revision_template(&self, owner: &Stored, name: &str) -> Option<Value> {
        self.revisions
            .get(&owner.uid)?
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.template.clone())
    }

    /// Pods controlled by the object with `uid` in `namespace`.
    pub(crate) fn owned_pods(&self, namespace: &str, uid: &str) -> Vec<Arc<Stored>> {
        self.pods_by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|key| self.get(self.ids.pod, key))
            .filter(|p| p.namespace == namespace)
            .cloned()
            .collect()
    }
}

fn set_or_remove(status: &mut Map<String, Value>, field: &str, n: usize) {
    if n == 0 {
        status.remove(field);
    } else {
        status.insert(field.into(), json!(n));
    }
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
