//! The simulated cluster's state: every object, the event log that watches replay, the
//! timers of cluster time (pods starting, grace periods ending) and the work the controllers
//! still owe.
//!
//! Every change goes through [`World::put`] or [`World::remove`], which number it with the next
//! resourceVersion, log it for watchers and note which controllers must look again; the
//! controllers then run to a fixed point before the lock is released, so a client never sees
//! a half-reconciled cluster.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::clock::{Clock, timestamp};
use super::load::Cluster;
use super::object::{Stored, object_key};
use super::pages::ListSnapshots;
use super::resource::{Builtin, Registry, ResId};
use super::value::{At, set_meta, str_at};
use super::version::Version;
use crate::model::selector::Selector;

/// How many changes watchers can resume from; older resourceVersions get 410 Gone.
const LOG_CAPACITY: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One logged change. `previous` lets a watch with a selector turn a change that moves an
/// object out of (into) the selection into DELETED (ADDED), as the apiserver does.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub res: ResId,
    pub kind: EventType,
    pub object: Arc<Stored>,
    pub previous: Option<Arc<Stored>>,
}

/// Ids of the built-in kinds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids {
    pub pod: ResId,
    pub node: ResId,
    pub namespace: ResId,
    pub pdb: ResId,
    pub deployment: ResId,
    pub replicaset: ResId,
    pub statefulset: ResId,
    pub daemonset: ResId,
    pub event: ResId,
    pub lease: ResId,
}

impl Ids {
    fn new(registry: &Registry) -> Self {
        Ids {
            pod: registry.builtin(Builtin::Pod),
            node: registry.builtin(Builtin::Node),
            namespace: registry.builtin(Builtin::Namespace),
            pdb: registry.builtin(Builtin::PodDisruptionBudget),
            deployment: registry.builtin(Builtin::Deployment),
            replicaset: registry.builtin(Builtin::ReplicaSet),
            statefulset: registry.builtin(Builtin::StatefulSet),
            daemonset: registry.builtin(Builtin::DaemonSet),
            event: registry.builtin(Builtin::Event),
            lease: registry.builtin(Builtin::Lease),
        }
    }
}

/// Something due at a point of cluster time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// The pod's containers have started: Running and Ready.
    StartPod { key: String, uid: String },
    /// The pod's grace period is over: the kubelet has stopped it.
    RemovePod { key: String, uid: String },
    /// A recorded eviction in a PDB's `disruptedPods` expires.
    RecheckBudgets { namespace: String },
    /// Kubelets renew their leases and report their status.
    Heartbeat,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub at: DateTime<Utc>,
    pub seq: u64,
    pub kind: TimerKind,
}

/// Work the controllers owe, gathered while objects change.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    /// PDBs (by key) to recompute.
    pub budgets: BTreeSet<String>,
    /// Workloads (ReplicaSet, StatefulSet, DaemonSet, Deployment) to reconcile.
    pub workloads: BTreeSet<(ResId, String)>,
    /// Nodes whose readiness or schedulability changed.
    pub nodes: BTreeSet<String>,
    /// Pods waiting for a node.
    pub unscheduled: BTreeSet<String>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
            && self.workloads.is_empty()
            && self.nodes.is_empty()
            && self.unscheduled.is_empty()
    }
}

/// One pod template of a workload, as a ControllerRevision keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Revision {
    pub fingerprint: String,
    pub name: String,
    pub template: Value,
}

/// Controller settings, in cluster time.
#[derive(Debug, Clone)]
pub(crate) struct Behaviour {
    pub startup_delay: chrono::Duration,
    /// The Kubernetes version to play instead of the snapshot's (`krun sim serve --version`).
    pub version: Option<String>,
}

pub(crate) struct World {
    pub registry: Registry,
    pub ids: Ids,
    pub clock: Arc<Clock>,
    pub behaviour: Behaviour,
    pub objects: Vec<BTreeMap<String, Arc<Stored>>>,
    pub rv: u64,
    pub log: VecDeque<Arc<Event>>,
    pub pods_by_node: HashMap<String, BTreeSet<String>>,
    /// What the pods bound to each node use, kept with `pods_by_node` so the scheduler does
    /// not add up every node's pods for every pod it places.
    pub node_usage: HashMap<String, NodeUsage>,
    /// Pod keys by the uid of their controller.
    pub pods_by_owner: HashMap<String, BTreeSet<String>>,
    /// Pod keys by `namespace/key=value` of each of their labels, so that a PDB finds its
    /// pods without testing every pod of its namespace.
    pub pods_by_label: HashMap<String, BTreeSet<String>>,
    pub timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    pub dirty: Dirty,
    /// Pods the scheduler could not place; retried when nodes or capacity change.
    pub unschedulable: BTreeSet<String>,
    pub rng: ChaCha8Rng,
    pub control_plane_version: String,
    /// What the API looks like: the control plane's version, or the one asked for.
    pub version: Version,
    /// How long the disruption controller takes to see a budget's new spec (opt-in, control
    /// API); meanwhile evictions are refused as "still being processed".
    pub budget_processing_delay: Option<chrono::Duration>,
    /// Budgets whose new spec the controller has not seen yet, with when it will.
    pub budgets_pending: HashMap<String, DateTime<Utc>>,
    /// Events the controllers recorded, oldest first.
    pub event_keys: VecDeque<String>,
    /// Nodes whose kubelet is stopped: no lease renewals, no heartbeats.
    pub stopped_kubelets: BTreeSet<String>,
    /// The templates each StatefulSet and DaemonSet has had, by its uid.
    pub revisions: HashMap<String, Vec<Revision>>,
    /// Paginated LISTs being read.
    pub list_snapshots: std::sync::Mutex<ListSnapshots>,
    pub next_pod_ip: u32,
}

impl World {
    pub fn new(cluster: Cluster, clock: Arc<Clock>, behaviour: Behaviour, seed: u64) -> World {
        let Cluster {
            registry, objects, ..
        } = cluster;
        let ids = Ids::new(&registry);
        let mut world = World {
            objects: vec![BTreeMap::new(); registry.len()],
            ids,
            registry,
            clock,
            behaviour,
            rv: 0,
            log: VecDeque::new(),
            pods_by_node: HashMap::new(),
            node_usage: HashMap::new(),
            pods_by_owner: HashMap::new(),
            pods_by_label: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            dirty: Dirty::default(),
            unschedulable: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            control_plane_version: String::new(),
            version: Version::newest(),
            list_snapshots: Default::default(),
            revisions: HashMap::new(),
            event_keys: VecDeque::new(),
            budget_processing_delay: None,
            budgets_pending: HashMap::new(),
            stopped_kubelets: BTreeSet::new(),
            next_pod_ip: 0,
        };
        // Only the pod indexes are built here: `after_load` hands every workload, budget and
        // node to the controllers anyway.
        for (res, stored) in objects {
            if res == ids.pod {
                world.index_pod(None, Some(&stored));
            }
            world.rv = world.rv.max(stored.rv);
            world.objects[res].insert(stored.key.clone(), stored);
        }
        world.control_plane_version = match &world.behaviour.version {
            Some(version) => version.clone(),
            None => world.detect_control_plane_version(),
        };
        world.version = Version::of(&world.control_plane_version)
            .unwrap_or_else(Version::newest)
            .clamped();
        world.registry.adapt_to(&world.version);
        world.store_as_served();
        world.after_load();
        world
    }

    /// Puts loaded objects of kinds whose group version depends on the cluster's version
    /// under the version this one serves (a snapshot's `policy/v1` budgets become
    /// `policy/v1beta1` on a 1.20 cluster, and select as budgets of that version do).
    fn store_as_served(&mut self) {
        for (res, rt) in self.registry.iter() {
            let versioned = self.version.served_versions(&rt.group, &rt.kind).is_some();
            if rt.builtin == Builtin::Other || !(versioned || rt.empty_selector_selects_nothing) {
                continue;
            }
            let api_version = rt.api_version();
            for stored in self.objects[res].values_mut() {
                let mut value = stored.value();
                value["apiVersion"] = Value::from(api_version.clone());
                *stored = Arc::new(Stored::new(rt, &value));
            }
        }
    }

    /// Sets up what a freshly loaded cluster owes: pods to start, terminating pods to finish,
    /// statuses to compute.
    fn after_load(&mut self) {
        let now = self.clock.now();
        let pods: Vec<Arc<Stored>> = self.objects[self.ids.pod].values().cloned().collect();
        for pod in &pods {
            let info = pod.pod().expect("pods carry pod info");
            if pod.deleting {
                let value = pod.value();
                let at = str_at(&value, &["metadata", "deletionTimestamp"])
                    .and_then(super::clock::parse_timestamp)
                    .unwrap_or(now);
                self.add_timer(
                    at.max(now),
                    TimerKind::RemovePod {
                        key: pod.key.clone(),
                        uid: pod.uid.clone(),
                    },
                );
            } else if info.node.is_empty() {
                self.dirty.unscheduled.insert(pod.key.clone());
            } else if info.phase == "Pending" {
                let at = now + self.behaviour.startup_delay;
                self.add_timer(
                    at,
                    TimerKind::StartPod {
                        key: pod.key.clone(),
                        uid: pod.uid.clone(),
                    },
                );
            }
        }
        for res in [
            self.ids.replicaset,
            self.ids.statefulset,
            self.ids.daemonset,
            self.ids.deployment,
        ] {
            let keys: Vec<String> = self.objects[res].keys().cloned().collect();
            self.dirty
                .workloads
                .extend(keys.into_iter().map(|k| (res, k)));
        }
        let budgets: Vec<String> = self.objects[self.ids.pdb].keys().cloned().collect();
        self.dirty.budgets.extend(budgets);
        let nodes: Vec<String> = self.objects[self.ids.node].keys().cloned().collect();
        self.dirty.nodes.extend(nodes);
        self.add_timer(now, TimerKind::Heartbeat);
    }

    /// The control-plane version: the kube-apiserver static pods' image tag, else the
    /// newest kubelet of a control-plane node, else of any node.
    fn detect_control_plane_version(&self) -> String {
        let from_pods = self.objects[self.ids.pod].values().find_map(|pod| {
            if pod.namespace != "kube-system"
                || pod.labels.get("component").map(String::as_str) != Some("kube-apiserver")
            {
                return None;
            }
            let value = pod.value();
            let image = value.at("/spec/containers/0/image")?.as_str()?;
            Some(image.rsplit_once(':')?.1.to_string())
        });
        if let Some(version) = from_pods {
            return version;
        }
        let mut kubelets: Vec<(bool, String)> = self.objects[self.ids.node]
            .values()
            .filter_map(|node| {
                let value = node.value();
                let version = value
                    .at("/status/nodeInfo/kubeletVersion")?
                    .as_str()?
                    .to_string();
                let control_plane = node
                    .labels
                    .contains_key("node-role.kubernetes.io/control-plane")
                    || node.labels.contains_key("node-role.kubernetes.io/master");
                Some((control_plane, version))
            })
            .collect();
        kubelets.sort_by_key(|a| (a.0, version_key(&a.1)));
        kubelets
            .pop()
            .map(|(_, v)| v)
            .unwrap_or_else(|| "v1.33.0".to_string())
    }

    pub fn get(&self, res: ResId, key: &str) -> Option<&Arc<Stored>> {
        self.objects[res].get(key)
    }

    pub fn get_in(&self, res: ResId, namespace: &str, name: &str) -> Option<&Arc<Stored>> {
        self.objects[res].get(&object_key(namespace, name))
    }

    /// Objects of a kind in one namespace (all of them for `""` on a cluster-scoped kind).
    pub fn in_namespace(&self, res: ResId, namespace: &str) -> impl Iterator<Item = &Arc<Stored>> {
        let map = &self.objects[res];
        let range: Box<dyn Iterator<Item = (&String, &Arc<Stored>)>> = if namespace.is_empty() {
            Box::new(map.iter())
        } else {
            let start = format!("{namespace}/");
            let end = format!("{namespace}0"); // '0' follows '/' in ASCII
            Box::new(map.range(start..end))
        };
        range.map(|(_, v)| v)
    }

    /// What the pods bound to `node` use now.
    pub fn usage_on_node(&self, node: &str) -> NodeUsage {
        self.node_usage.get(node).copied().unwrap_or_default()
    }

    pub fn pods_on_node(&self, node: &str) -> Vec<Arc<Stored>> {
        self.pods_by_node
            .get(node)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| self.objects[self.ids.pod].get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stores `value` (new or changed) with the next resourceVersion.
    pub fn put(&mut self, res: ResId, mut value: Value) -> Arc<Stored> {
        self.rv += 1;
        set_meta(
            &mut value,
            "resourceVersion",
            Value::from(self.rv.to_string()),
        );
        let stored = Arc::new(Stored::new(self.registry.get(res), &value));
        let previous = self.objects[res].insert(stored.key.clone(), stored.clone());
        self.index(res, previous.as_ref(), Some(&stored));
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Event {
            rv: self.rv,
            res,
            kind,
            object: stored.clone(),
            previous,
        });
        stored
    }

    /// Removes an object now; watchers see its last state with the deletion's resourceVersion.
    pub fn remove(&mut self, res: ResId, key: &str) -> Option<Arc<Stored>> {
        let previous = self.objects[res].remove(key)?;
        self.rv += 1;
        let mut value = previous.value();
        set_meta(
            &mut value,
            "resourceVersion",
            Value::from(self.rv.to_string()),
        );
        let last = Arc::new(Stored::new(self.registry.get(res), &value));
        self.index(res, Some(&previous), None);
        self.record(Event {
            rv: self.rv,
            res,
            kind: EventType::Deleted,
            object: last.clone(),
            previous: Some(previous),
        });
        Some(last)
    }

    fn record(&mut self, event: Event) {
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(Arc::new(event));
    }

    /// The oldest resourceVersion a watch can resume from.
    pub fn oldest_resumable(&self) -> u64 {
        self.log.front().map(|e| e.rv - 1).unwrap_or(self.rv)
    }

    /// Logged events after `rv`, or `None` if they are no longer kept.
    pub fn events_after(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.oldest_resumable() {
            return None;
        }
        let Some(first) = self.log.front().map(|e| e.rv) else {
            return Some(Vec::new());
        };
        let skip = (rv + 1).saturating_sub(first) as usize;
        Some(self.log.iter().skip(skip).cloned().collect())
    }

    /// Keeps indexes current and notes which controllers must look again.
    fn index(&mut self, res: ResId, old: Option<&Arc<Stored>>, new: Option<&Arc<Stored>>) {
        let ids = self.ids;
        let object = new.or(old).expect("a change has a side");
        let builtin = self.registry.get(res).builtin;
        match builtin {
            Builtin::Pod => {
                self.index_pod(old.map(|o| &**o), new.map(|n| &**n));
                let budgets: Vec<String> = self
                    .in_namespace(ids.pdb, &object.namespace)
                    .filter(|pdb| {
                        let selector = pdb.selector.as_ref();
                        [old, new]
                            .into_iter()
                            .flatten()
                            .any(|side| selector.is_some_and(|s| s.matches(&side.labels)))
                    })
                    .map(|pdb| pdb.key.clone())
                    .collect();
                self.dirty.budgets.extend(budgets);
                for side in [old, new].into_iter().flatten() {
                    if let Some(owner) = side.controller.as_ref() {
                        let owner_res = match owner.kind.as_str() {
                            "ReplicaSet" => ids.replicaset,
                            "StatefulSet" => ids.statefulset,
                            "DaemonSet" => ids.daemonset,
                            _ => continue,
                        };
                        self.dirty
                            .workloads
                            .insert((owner_res, object_key(&side.namespace, &owner.name)));
                    }
                }
                if new.is_none() && !self.unschedulable.is_empty() {
                    // Freed capacity: retry pods that did not fit.
                    let retry = std::mem::take(&mut self.unschedulable);
                    self.dirty.unscheduled.extend(retry);
                }
                if new.is_none() {
                    self.dirty.unscheduled.remove(&object.key);
                    self.unschedulable.remove(&object.key);
                }
            }
            Builtin::Node => {
                // Heartbeats change only timestamps; the controllers look again when what
                // they read (readiness, schedulability, taints, labels, capacity) changes.
                let relevant = |n: &Arc<Stored>| (n.node().cloned(), n.labels.clone());
                if old.map(relevant) != new.map(relevant) {
                    self.dirty.nodes.insert(object.name.clone());
                }
            }
            Builtin::PodDisruptionBudget if new.is_some() => {
                self.dirty.budgets.insert(object.key.clone());
                // A new spec waits for the disruption controller when a delay is set.
                let changed_spec = old.is_none_or(|o| {
                    o.value().at("/metadata/generation")
                        != object.value().at("/metadata/generation")
                });
                if let Some(delay) = self.budget_processing_delay.filter(|_| changed_spec) {
                    let due = self.clock.now() + delay;
                    self.budgets_pending.insert(object.key.clone(), due);
                    self.add_timer(
                        due,
                        TimerKind::RecheckBudgets {
                            namespace: object.namespace.clone(),
                        },
                    );
                }
            }
            Builtin::ReplicaSet
            | Builtin::StatefulSet
            | Builtin::DaemonSet
            | Builtin::Deployment => {
                if new.is_some() {
                    self.dirty.workloads.insert((res, object.key.clone()));
                }
                // A new scale changes the pods the namespace's budgets expect.
                let scale_changed = match (old, new) {
                    (Some(o), Some(n)) => o.replicas != n.replicas,
                    _ => true,
                };
                if scale_changed && builtin != Builtin::DaemonSet {
                    self.mark_budgets_in(&object.namespace.clone());
                }
                if builtin == Builtin::ReplicaSet
                    && let Some(owner) = object
                        .controller
                        .as_ref()
                        .filter(|o| o.kind == "Deployment")
                {
                    self.dirty
                        .workloads
                        .insert((ids.deployment, object_key(&object.namespace, &owner.name)));
                }
            }
            _ => {}
        }
    }

    /// Keeps the pod indexes (by node, by controller, by label) current.
    fn index_pod(&mut self, old: Option<&Stored>, new: Option<&Stored>) {
        let key = new.or(old).map(|o| o.key.as_str()).unwrap_or_default();
        let (old_node, new_node) = (node_of(old), node_of(new));
        if old_node != new_node {
            if let Some(keys) = old_node.and_then(|n| self.pods_by_node.get_mut(n)) {
                keys.remove(key);
            }
            if let Some(n) = new_node {
                self.pods_by_node
                    .entry(n.to_string())
                    .or_default()
                    .insert(key.to_string());
            }
        }
        if let Some((node, usage)) = usage_of(old) {
            self.node_usage
                .entry(node.to_string())
                .or_default()
                .remove(usage);
        }
        if let Some((node, usage)) = usage_of(new) {
            self.node_usage
                .entry(node.to_string())
                .or_default()
                .add(usage);
        }
        let (old_owner, new_owner) = (owner_of(old), owner_of(new));
        if old_owner != new_owner {
            if let Some(uid) = old_owner
                && let Some(keys) = self.pods_by_owner.get_mut(uid)
            {
                keys.remove(key);
                if keys.is_empty() {
                    self.pods_by_owner.remove(uid);
                }
            }
            if let Some(uid) = new_owner {
                self.pods_by_owner
                    .entry(uid.to_string())
                    .or_default()
                    .insert(key.to_string());
            }
        }
        if old.map(|o| (&o.namespace, &o.labels)) != new.map(|n| (&n.namespace, &n.labels)) {
            if let Some(old) = old {
                for (k, v) in &old.labels {
                    let label = format!("{}/{k}={v}", old.namespace);
                    if let Some(keys) = self.pods_by_label.get_mut(&label) {
                        keys.remove(key);
                        if keys.is_empty() {
                            self.pods_by_label.remove(&label);
                        }
                    }
                }
            }
            if let Some(new) = new {
                for (k, v) in &new.labels {
                    self.pods_by_label
                        .entry(format!("{}/{k}={v}", new.namespace))
                        .or_default()
                        .insert(key.to_string());
                }
            }
        }
    }

    /// The pods of `namespace` that `selector` may match: those carrying its required label
    /// when it has one, else all of them. Callers still test the selector.
    pub fn pods_selectable_by<'a>(
        &'a self,
        namespace: &'a str,
        selector: &Selector,
    ) -> Box<dyn Iterator<Item = &'a Arc<Stored>> + 'a> {
        match selector.required_label() {
            Some((k, v)) => Box::new(
                self.pods_by_label
                    .get(&format!("{namespace}/{k}={v}"))
                    .into_iter()
                    .flatten()
                    .filter_map(|key| self.objects[self.ids.pod].get(key)),
            ),
            None => Box::new(self.in_namespace(self.ids.pod, namespace)),
        }
    }

    /// Every PDB of a namespace must be recomputed.
    pub fn mark_budgets_in(&mut self, namespace: &str) {
        let budgets: Vec<String> = self
            .in_namespace(self.ids.pdb, namespace)
            .map(|p| p.key.clone())
            .collect();
        self.dirty.budgets.extend(budgets);
    }

    pub fn add_timer(&mut self, at: DateTime<Utc>, kind: TimerKind) {
        self.timer_seq += 1;
        self.timers.push(Reverse(Timer {
            at,
            seq: self.timer_seq,
            kind,
        }));
    }

    pub fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.timers.peek().map(|Reverse(t)| t.at)
    }

    /// Takes the timers that are due.
    pub fn due_timers(&mut self) -> Vec<TimerKind> {
        let now = self.clock.now();
        let mut due = Vec::new();
        while self.timers.peek().is_some_and(|Reverse(t)| t.at <= now) {
            due.push(self.timers.pop().expect("peeked").0.kind);
        }
        due
    }

    pub fn now_string(&self) -> String {
        timestamp(self.clock.now())
    }

    /// A fresh uid.
    pub fn new_uid(&mut self) -> String {
        uid(&mut self.rng)
    }

    /// A random suffix as the API machinery generates for `generateName`.
    pub fn random_suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    /// All objects as a `List`, as `kubectl get … -o yaml` prints them.
    pub fn snapshot(&self) -> Value {
        let mut items = Vec::new();
        for (res, _) in self.registry.iter() {
            for stored in self.objects[res].values() {
                items.push(stored.value());
            }
        }
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
    }
}

/// The node a pod is bound to.
/// What the pods bound to a node take from it: every pod counts, only pods that have not
/// finished hold CPU and memory (and count against `maxPods`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeUsage {
    pub pods: i64,
    pub running: i64,
    pub cpu_milli: i64,
    pub memory: i64,
}

impl NodeUsage {
    fn add(&mut self, other: NodeUsage) {
        self.pods += other.pods;
        self.running += other.running;
        self.cpu_milli += other.cpu_milli;
        self.memory += other.memory;
    }

    fn remove(&mut self, other: NodeUsage) {
        self.pods -= other.pods;
        self.running -= other.running;
        self.cpu_milli -= other.cpu_milli;
        self.memory -= other.memory;
    }
}

/// The node a pod is bound to and what it takes from it.
fn usage_of(pod: Option<&Stored>) -> Option<(&str, NodeUsage)> {
    let node = node_of(pod)?;
    let info = pod?.pod()?;
    let live = !info.terminal();
    Some((
        node,
        NodeUsage {
            pods: 1,
            running: i64::from(live),
            cpu_milli: if live { info.cpu_milli } else { 0 },
            memory: if live { info.memory } else { 0 },
        },
    ))
}

fn node_of(pod: Option<&Stored>) -> Option<&str> {
    pod.and_then(Stored::pod)
        .map(|p| p.node.as_str())
        .filter(|n| !n.is_empty())
}

/// The uid of an object's controller.
fn owner_of(object: Option<&Stored>) -> Option<&str> {
    object
        .and_then(|o| o.controller.as_ref())
        .map(|c| c.uid.as_str())
}

fn uid(rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 16] = rng.random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Orders `v1.28.10` after `v1.28.9`.
pub(crate) fn version_key(version: &str) -> Vec<u64> {
    version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map_while(|part| part.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Cluster, GenOptions, generate};

    /// The usage kept per node, recounted from the node's pods.
    fn recount(world: &World, node: &str) -> NodeUsage {
        let mut usage = NodeUsage::default();
        for pod in world.pods_on_node(node) {
            if let Some((_, one)) = usage_of(Some(&pod)) {
                usage.add(one);
            }
        }
        usage
    }

    #[test]
    fn node_usage_follows_evictions_rescheduling_and_finished_pods() {
        let text = generate(&GenOptions {
            nodes: 8,
            pods: 160,
            seed: 3,
            ..GenOptions::default()
        });
        let cluster = Cluster::load(&text).expect("the generated cluster loads");
        let behaviour = Behaviour {
            startup_delay: chrono::Duration::seconds(5),
            version: None,
        };
        let mut world = World::new(cluster, Arc::new(Clock::new(1.0)), behaviour, 1);
        let nodes: Vec<String> = world.objects[world.ids.node].keys().cloned().collect();
        let check = |world: &World| {
            for node in &nodes {
                assert_eq!(world.usage_on_node(node), recount(world, node), "{node}");
            }
        };
        check(&world);
        let busiest = nodes
            .iter()
            .max_by_key(|n| world.usage_on_node(n).running)
            .expect("nodes")
            .clone();
        assert!(world.usage_on_node(&busiest).cpu_milli > 0);
        let mut evicted = 0;
        for pod in world.pods_on_node(&busiest) {
            let body = serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction"});
            if world.evict(&pod.namespace, &pod.name, &body, false).is_ok() {
                evicted += 1;
            }
            world.settle();
            check(&world);
        }
        assert!(evicted > 0);
        world.clock.advance(chrono::Duration::minutes(5));
        world.run_timers();
        check(&world);
    }
}
