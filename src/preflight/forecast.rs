//! The disruption forecast: what a batch plan does to the workloads, batch by batch.
//!
//! Server-side dry-run judges one eviction at a time; what hurts in an upgrade is a whole
//! batch at once (two Ingress nodes, every replica of a service). The forecast plays the plan
//! against a model of the cluster on cluster time, with the rules the simulator and a real
//! cluster follow: a batch's nodes are cordoned, every pod a drain evicts (`kubectl drain
//! --ignore-daemonsets --delete-emptydir-data`) is evicted through its PodDisruptionBudget
//! and retried whenever the budget changes; an evicted pod terminates over its grace period;
//! ReplicaSets replace it at once, StatefulSets once it is gone (in ordinal order); the
//! scheduler places replacements on the least loaded node that fits; a replacement is Ready
//! after the startup delay. After its drain a node is upgraded (DaemonSet pods on it are down
//! meanwhile) and uncordoned; the next batch starts when the whole batch is back and the
//! replacements that can be placed are Ready.
//!
//! The same model chooses `--batch auto` plans, so the plan and its forecast agree.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Serialize;

use super::ClusterView;
use super::workload::Index;
use crate::kube::pod;
use crate::model::budget::{self, Budget, BudgetStatus, IntOrPercent, Verdict as Admission};
use crate::model::quantity::parse_quantity;
use crate::model::selector::{NodeSelectorTerm, node_affinity_matches};
use crate::model::taints::{Taint, Toleration, tolerates, tolerates_all};

/// How the forecast models time.
#[derive(Debug, Clone)]
pub struct ForecastOptions {
    /// Cluster seconds from a pod being scheduled to it being Ready (the simulator's
    /// `--startup-delay`).
    pub startup_seconds: f64,
    /// Cluster seconds a node is down for its upgrade after its drain (its DaemonSet pods are
    /// not Ready meanwhile). 0 when nothing on the node is restarted.
    pub upgrade_seconds: f64,
    /// Evict pods without a controller (`drain --force`); otherwise they refuse the drain.
    pub force: bool,
    /// The drains keep a ready replica of every workload with a controller and no budget
    /// (`drain`'s `keep_replica`, on by default): modelled as a budget of one unavailable pod.
    pub keep_replica: bool,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        ForecastOptions {
            startup_seconds: 10.0,
            upgrade_seconds: 60.0,
            force: false,
            keep_replica: true,
        }
    }
}

/// A pod the plan evicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Eviction {
    pub namespace: String,
    pub pod: String,
    pub node: String,
    /// `Deployment ns/name`; absent for pods without a controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Cluster seconds after the batch started that the eviction was admitted.
    pub at_seconds: f64,
}

/// What one batch does to one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impact {
    pub workload: String,
    pub replicas: i32,
    /// Pods evicted (or, for a DaemonSet, stopped with their node).
    pub disrupted: usize,
    pub ready_before: i32,
    pub min_ready: i32,
    /// `namespace/name` of the covering budget, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb_min_healthy: Option<i32>,
    pub below_pdb: bool,
    pub zero_ready: bool,
    /// Cluster seconds its evictions waited on its budget.
    pub held_seconds: f64,
    /// An ingress controller, Prometheus, Alertmanager, CoreDNS or a `--critical` workload.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
}

/// A pod whose eviction never gets through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stuck {
    pub namespace: String,
    pub pod: String,
    pub node: String,
    pub reason: String,
}

/// The forecast of one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchForecast {
    pub index: usize,
    pub nodes: Vec<String>,
    pub evicted: Vec<Eviction>,
    /// Workloads that lose a pod, worst first.
    pub workloads: Vec<Impact>,
    /// Pods the drain refuses (no controller, without force).
    pub refused: Vec<String>,
    /// Evictions that never get through: the drain would wait until its timeout.
    pub stuck: Vec<Stuck>,
    /// Cluster seconds the batch is held by budgets (the last admitted eviction's wait).
    pub hold_seconds: f64,
    /// Cluster seconds from the batch's start until its nodes are back and the replacements
    /// Ready; absent when stuck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Why the batch blocks the run (zero ready replicas, stuck, refused pods).
    pub blocks: Vec<String>,
    /// Why `--batch auto` chose these nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl BatchForecast {
    pub fn blocked(&self) -> bool {
        !self.blocks.is_empty()
    }
}

/// The forecast of a whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// `N`, `N%` or `auto`, as asked.
    pub plan: String,
    pub batches: Vec<BatchForecast>,
    /// Cluster seconds for the whole plan; absent when a batch never finishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_seconds: Option<f64>,
    /// Workload-batches that went below their budget or to zero ready, plus stuck evictions.
    pub violations: usize,
    pub verdict: Verdict,
    /// Accepted with `--accept forecast`: shown, logged, not blocking.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub accepted: bool,
}

/// The forecast's judgement of the plan: `ok`, or `block` with each batch that blocks and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<BlockingBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Block,
}

/// A batch that blocks the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockingBatch {
    pub batch: usize,
    pub reasons: Vec<String>,
}

impl Verdict {
    /// One line however many batches block: the first, and how many more.
    pub fn short(&self) -> String {
        match self.blocking.as_slice() {
            [] => "ok".to_owned(),
            [first, rest @ ..] => {
                let mut text = format!("block: batch {}: {}", first.batch, first.reasons[0]);
                let more = first.reasons.len() - 1;
                if more > 0 {
                    text.push_str(&format!(" (and {more} more reason{})", plural(more)));
                }
                if !rest.is_empty() {
                    text.push_str(&format!(
                        "; {} more batch{} block{}",
                        rest.len(),
                        if rest.len() == 1 { "" } else { "es" },
                        if rest.len() == 1 { "s" } else { "" }
                    ));
                }
                text
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.blocking.is_empty() {
            return f.write_str("ok");
        }
        let batches: Vec<String> = self
            .blocking
            .iter()
            .map(|b| format!("batch {}: {}", b.batch, b.reasons.join("; ")))
            .collect();
        write!(f, "block: {}", batches.join(" | "))
    }
}

impl Forecast {
    pub fn blocked(&self) -> bool {
        !self.accepted && self.batches.iter().any(BatchForecast::blocked)
    }

    pub(super) fn finish(plan: String, batches: Vec<BatchForecast>) -> Self {
        let total_seconds = batches
            .iter()
            .map(|b| b.duration_seconds)
            .sum::<Option<f64>>();
        let violations = batches
            .iter()
            .map(|b| {
                b.workloads
                    .iter()
                    .filter(|w| (w.zero_ready && w.ready_before > 1) || w.below_pdb)
                    .count()
                    + b.stuck.len()
            })
            .sum();
        let blocking: Vec<BlockingBatch> = batches
            .iter()
            .filter(|b| b.blocked())
            .map(|b| BlockingBatch {
                batch: b.index,
                reasons: b.blocks.clone(),
            })
            .collect();
        let verdict = Verdict {
            outcome: if blocking.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Block
            },
            blocking,
        };
        Forecast {
            plan,
            batches,
            total_seconds,
            violations,
            verdict,
            accepted: false,
        }
    }
}

/// A pod's name as the operator reads it. The model names a replacement after the pod it
/// replaces with a `~`; the real one gets a random suffix nobody can know yet, so it is shown
/// as its controller's prefix with `*****` for the suffix (`web-7d9f-*****`).
fn shown_name(name: &str) -> String {
    match name.strip_suffix('~') {
        None => name.to_owned(),
        Some(original) => {
            let original = original.trim_end_matches('~');
            let prefix = original.rsplit_once('-').map_or(original, |(p, _)| p);
            format!("{prefix}-*****")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodKind {
    /// Evicted and replaced by its controller.
    Replicated,
    /// Recreated under its own name once gone, ordinal by ordinal.
    Stateful,
    /// Not evicted; stops while its node is upgraded.
    Daemon,
    /// The kubelet's static pod: never evicted.
    Mirror,
    /// Evicted only with force; nothing replaces it.
    Bare,
    /// A controller the model does not run (Job, an operator's kind): evicted, not replaced.
    Other,
}

#[derive(Debug, Clone)]
struct Sched {
    node_selector: BTreeMap<String, String>,
    tolerations: Vec<Toleration>,
    /// Required node affinity: terms, any of which must match.
    affinity: Option<Vec<NodeSelectorTerm>>,
    cpu: i64,
    memory: i64,
    grace: f64,
}

#[derive(Debug, Clone)]
struct MPod {
    namespace: Arc<str>,
    name: Arc<str>,
    node: Option<usize>,
    running: bool,
    ready: bool,
    deleting: bool,
    gone: bool,
    kind: PodKind,
    workload: Option<usize>,
    budgets: Arc<[usize]>,
    sched: Arc<Sched>,
    /// Removal or start timers are valid only for the pod's current generation.
    generation: u32,
}

#[derive(Debug, Clone)]
struct MNode {
    name: Arc<str>,
    labels: Arc<BTreeMap<String, String>>,
    taints: Arc<[Taint]>,
    unschedulable: bool,
    ready: bool,
    cpu: i64,
    memory: i64,
    max_pods: i64,
    used_cpu: i64,
    used_memory: i64,
    active: i64,
    all: i64,
    pods: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
struct MBudget {
    name: Arc<str>,
    desired: i32,
    healthy: i32,
    expected: i32,
    always_allow_unhealthy: bool,
}

impl MBudget {
    fn allowed(&self) -> i32 {
        budget::disruptions_allowed(self.expected, self.healthy, self.desired)
    }
}

#[derive(Debug, Clone)]
struct MWorkload {
    label: Arc<str>,
    replicas: i32,
    ready: i32,
    parallel: bool,
    critical: bool,
    ingress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Timer {
    at: f64,
    seq: u64,
    event: Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Start { pod: usize, generation: u32 },
    Remove { pod: usize, generation: u32 },
    NodeBack { node: usize },
}

impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        // Earliest first in a max-heap.
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// What a drain does with a pod on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Evicts,
    /// A pod without a controller, when the drain has no `force`: the whole drain refuses.
    Refuses,
    /// DaemonSet and mirror pods stay; they stop with the node.
    Leaves,
}

/// The model's pods. A clone keeps the room to grow: `--batch auto` plays trial batches in
/// clones, each adding replacements, and a clone without room copies every pod again at its
/// first replacement.
#[derive(Debug)]
struct Pods(Vec<MPod>);

impl Clone for Pods {
    fn clone(&self) -> Self {
        let mut pods = Vec::with_capacity(self.0.capacity());
        pods.extend_from_slice(&self.0);
        Pods(pods)
    }
}

impl std::ops::Deref for Pods {
    type Target = Vec<MPod>;
    fn deref(&self) -> &Vec<MPod> {
        &self.0
    }
}

impl std::ops::DerefMut for Pods {
    fn deref_mut(&mut self) -> &mut Vec<MPod> {
        &mut self.0
    }
}

/// The cluster as the forecast plays it.
#[derive(Debug, Clone)]
pub struct Model {
    options: ForecastOptions,
    now: f64,
    seq: u64,
    pods: Pods,
    nodes: Vec<MNode>,
    node_index: Arc<HashMap<Arc<str>, usize>>,
    budgets: Vec<MBudget>,
    workloads: Vec<MWorkload>,
    timers: BinaryHeap<Timer>,
    unscheduled: BTreeSet<usize>,
    /// StatefulSet pods by (workload, ordinal).
    stateful: HashMap<(usize, i64), usize>,
    /// The budget covering each workload's pods (the first, if several).
    workload_budget: Vec<Option<usize>>,
}

/// Quantities as the simulator reads them (the forecast models the simulator's scheduler).
fn quantity(text: &str) -> Option<f64> {
    parse_quantity(text)
}

fn sched_of(p: &Pod) -> Sched {
    let spec = p.spec.clone().unwrap_or_default();
    let mut cpu = 0i64;
    let mut memory = 0i64;
    for c in &spec.containers {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        if let Some(q) = requests
            .and_then(|r| r.get("cpu"))
            .and_then(|q| quantity(&q.0))
        {
            cpu += (q * 1000.0).ceil() as i64;
        }
        if let Some(q) = requests
            .and_then(|r| r.get("memory"))
            .and_then(|q| quantity(&q.0))
        {
            memory += q.ceil() as i64;
        }
    }
    let tolerations = spec
        .tolerations
        .unwrap_or_default()
        .into_iter()
        .map(|t| Toleration {
            key: t.key.unwrap_or_default(),
            exists: t.operator.as_deref() == Some("Exists"),
            value: t.value.unwrap_or_default(),
            effect: t.effect.unwrap_or_default(),
        })
        .collect();
    let affinity = spec
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .map(|selector| {
            selector
                .node_selector_terms
                .iter()
                .map(|term| {
                    NodeSelectorTerm::from_json(&serde_json::to_value(term).unwrap_or_default())
                })
                .collect()
        });
    Sched {
        node_selector: spec.node_selector.unwrap_or_default(),
        tolerations,
        affinity,
        cpu,
        memory,
        grace: spec.termination_grace_period_seconds.unwrap_or(30).max(0) as f64,
    }
}

fn node_of(node: &Node) -> MNode {
    let info = crate::kube::NodeInfo::of(node);
    let allocatable = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap_or_default();
    let amount = |name: &str| allocatable.get(name).and_then(|q| quantity(&q.0));
    MNode {
        name: Arc::from(info.name.as_str()),
        labels: Arc::new(node.metadata.labels.clone().unwrap_or_default()),
        taints: info
            .taints
            .iter()
            .map(|t| Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone(),
            })
            .collect(),
        unschedulable: info.unschedulable,
        ready: info.ready,
        cpu: amount("cpu").map_or(i64::MAX, |q| (q * 1000.0) as i64),
        memory: amount("memory").map_or(i64::MAX, |q| q as i64),
        max_pods: amount("pods").map_or(110, |q| q as i64),
        used_cpu: 0,
        used_memory: 0,
        active: 0,
        all: 0,
        pods: BTreeSet::new(),
    }
}

impl Model {
    /// The cluster as `view` shows it, at cluster time 0.
    pub fn new(view: &ClusterView, critical: &[String], options: ForecastOptions) -> Self {
        let index = Index::build(view, critical);
        let nodes: Vec<MNode> = view.nodes.iter().map(node_of).collect();
        let node_index = Arc::new(
            nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (Arc::clone(&n.name), i))
                .collect(),
        );
        let workloads = index
            .workloads
            .iter()
            .map(|w| {
                let parallel = w.id.kind == "StatefulSet"
                    && view.statefulsets.iter().any(|s| {
                        s.metadata.name.as_deref() == Some(&w.id.name)
                            && s.metadata.namespace.as_deref() == Some(&w.id.namespace)
                            && s.spec
                                .as_ref()
                                .and_then(|s| s.pod_management_policy.as_deref())
                                == Some("Parallel")
                    });
                MWorkload {
                    label: Arc::from(w.id.to_string()),
                    replicas: w.replicas,
                    ready: 0,
                    parallel,
                    critical: w.critical,
                    ingress: w.ingress,
                }
            })
            .collect();
        let mut model = Model {
            options,
            now: 0.0,
            seq: 0,
            pods: Pods(Vec::with_capacity(view.pods.len())),
            nodes,
            node_index,
            budgets: Vec::new(),
            workloads,
            timers: BinaryHeap::new(),
            unscheduled: BTreeSet::new(),
            stateful: HashMap::new(),
            workload_budget: (0..index.workloads.len())
                .map(|w| index.budgets_of_workload(w).first().copied())
                .collect(),
        };
        let mut namespaces: HashMap<String, Arc<str>> = HashMap::new();
        let mut budget_sets: HashMap<Vec<usize>, Arc<[usize]>> = HashMap::new();
        for (i, p) in view.pods.iter().enumerate() {
            if pod::is_finished(p) {
                continue;
            }
            let workload = index.workload_of.get(&i).copied();
            let kind = if pod::is_mirror(p) {
                PodKind::Mirror
            } else {
                match pod::controller_of(p).map(|o| o.kind.as_str()) {
                    None => PodKind::Bare,
                    Some("DaemonSet") => PodKind::Daemon,
                    Some("StatefulSet") => PodKind::Stateful,
                    Some("ReplicaSet") => PodKind::Replicated,
                    Some(_) => PodKind::Other,
                }
            };
            let namespace = p.metadata.namespace.clone().unwrap_or_default();
            let namespace = namespaces
                .entry(namespace.clone())
                .or_insert_with(|| Arc::from(namespace.as_str()))
                .clone();
            let budgets = index.budgets_of.get(&i).cloned().unwrap_or_default();
            let budgets = budget_sets
                .entry(budgets.clone())
                .or_insert_with(|| Arc::from(budgets))
                .clone();
            let name = p.metadata.name.clone().unwrap_or_default();
            let ordinal = (kind == PodKind::Stateful)
                .then(|| name.rsplit_once('-').and_then(|(_, o)| o.parse().ok()))
                .flatten();
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .and_then(|n| model.node_index.get(n.as_str()).copied());
            let running = pod::phase(p) == "Running";
            let ready = pod::is_ready(p) && running;
            let deleting = p.metadata.deletion_timestamp.is_some();
            let sched = Arc::new(sched_of(p));
            let id = model.pods.len();
            model.pods.push(MPod {
                namespace,
                name: Arc::from(name),
                node,
                running,
                ready,
                deleting,
                gone: false,
                kind,
                workload,
                budgets,
                sched,
                generation: 0,
            });
            if let (Some(w), Some(o)) = (workload, ordinal) {
                model.stateful.insert((w, o), id);
            }
            match node {
                Some(n) => model.place(id, n),
                None => {
                    model.unscheduled.insert(id);
                }
            }
            if deleting {
                let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(0) as f64;
                model.timer(
                    grace,
                    Event::Remove {
                        pod: id,
                        generation: 0,
                    },
                );
            } else if node.is_some() && !running {
                let delay = model.options.startup_seconds;
                model.timer(
                    delay,
                    Event::Start {
                        pod: id,
                        generation: 0,
                    },
                );
            }
        }
        for (w, workload) in model.workloads.iter_mut().enumerate() {
            workload.ready = index.workloads[w]
                .pods
                .iter()
                .filter(|&&p| {
                    pod::is_ready(&view.pods[p])
                        && view.pods[p].metadata.deletion_timestamp.is_none()
                })
                .count() as i32;
        }
        model.budgets = view
            .pdbs
            .iter()
            .enumerate()
            .map(|(b, pdb)| budget_of(view, &index, b, pdb))
            .collect();
        if model.options.keep_replica {
            model.keep_replicas();
        }
        model
    }

    /// The drains' kept replica, as a budget of one unavailable pod over every workload that
    /// has a controller the model runs and no budget of its own: its pods leave one at a time,
    /// each once the one before has a Ready replacement.
    fn keep_replicas(&mut self) {
        let mut pods_of: Vec<Vec<usize>> = vec![Vec::new(); self.workloads.len()];
        for (p, pod) in self.pods.iter().enumerate() {
            if let Some(w) = pod.workload
                && matches!(pod.kind, PodKind::Replicated | PodKind::Stateful)
            {
                pods_of[w].push(p);
            }
        }
        for (w, pods) in pods_of.into_iter().enumerate() {
            if self.workload_budget[w].is_some() || pods.is_empty() {
                continue;
            }
            let workload = &self.workloads[w];
            let budget = self.budgets.len();
            self.budgets.push(MBudget {
                name: Arc::from(format!("kept replica of {}", workload.label)),
                desired: (workload.ready - 1).max(0),
                healthy: workload.ready,
                expected: workload.replicas,
                always_allow_unhealthy: false,
            });
            self.workload_budget[w] = Some(budget);
            for p in pods {
                let mut budgets = self.pods[p].budgets.to_vec();
                budgets.push(budget);
                self.pods[p].budgets = Arc::from(budgets);
            }
        }
    }

    fn timer(&mut self, after: f64, event: Event) {
        self.seq += 1;
        self.timers.push(Timer {
            at: self.now + after,
            seq: self.seq,
            event,
        });
    }

    fn place(&mut self, pod: usize, node: usize) {
        let p = &self.pods[pod];
        let n = &mut self.nodes[node];
        n.used_cpu += p.sched.cpu;
        n.used_memory += p.sched.memory;
        n.active += 1;
        n.all += 1;
        n.pods.insert(pod);
    }

    fn unplace(&mut self, pod: usize) {
        let Some(node) = self.pods[pod].node else {
            return;
        };
        let p = &self.pods[pod];
        let n = &mut self.nodes[node];
        n.used_cpu -= p.sched.cpu;
        n.used_memory -= p.sched.memory;
        n.active -= 1;
        n.all -= 1;
        n.pods.remove(&pod);
    }

    fn fits(&self, sched: &Sched, node: &MNode) -> bool {
        if node.unschedulable
            && !tolerates(
                &sched.tolerations,
                "node.kubernetes.io/unschedulable",
                "",
                "NoSchedule",
            )
        {
            return false;
        }
        if !node.ready
            && !tolerates(
                &sched.tolerations,
                "node.kubernetes.io/not-ready",
                "",
                "NoSchedule",
            )
        {
            return false;
        }
        if !tolerates_all(&sched.tolerations, &node.taints) {
            return false;
        }
        if sched
            .node_selector
            .iter()
            .any(|(k, v)| node.labels.get(k) != Some(v))
        {
            return false;
        }
        if let Some(terms) = &sched.affinity
            && !node_affinity_matches(terms, &node.name, &node.labels)
        {
            return false;
        }
        node.active < node.max_pods
            && node.used_cpu.saturating_add(sched.cpu) <= node.cpu
            && node.used_memory.saturating_add(sched.memory) <= node.memory
    }

    /// Places a pending pod as the scheduler would: the least loaded node that fits.
    fn schedule(&mut self, pod: usize) -> bool {
        let sched = Arc::clone(&self.pods[pod].sched);
        let mut best: Option<(i64, i64, usize)> = None;
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.fits(&sched, node) {
                continue;
            }
            let score = (
                node.used_cpu.saturating_mul(1000) / node.cpu.max(1),
                node.all,
                i,
            );
            let better = match best {
                None => true,
                Some((c, a, b)) => (score.0, score.1, &node.name) < (c, a, &self.nodes[b].name),
            };
            if better {
                best = Some(score);
            }
        }
        let Some((_, _, node)) = best else {
            self.unscheduled.insert(pod);
            return false;
        };
        self.unscheduled.remove(&pod);
        self.pods[pod].node = Some(node);
        self.place(pod, node);
        let generation = self.pods[pod].generation;
        let delay = self.options.startup_seconds;
        self.timer(delay, Event::Start { pod, generation });
        true
    }

    fn retry_unscheduled(&mut self) {
        let waiting: Vec<usize> = self.unscheduled.iter().copied().collect();
        for pod in waiting {
            self.schedule(pod);
        }
    }

    fn set_ready(&mut self, pod: usize, ready: bool) {
        let p = &self.pods[pod];
        let counted = p.ready && !p.deleting && !p.gone;
        if counted == ready {
            return;
        }
        let delta = if ready { 1 } else { -1 };
        for &b in p.budgets.iter() {
            self.budgets[b].healthy += delta;
        }
        if let Some(w) = p.workload {
            self.workloads[w].ready += delta;
        }
    }

    /// A new pod of `like`'s workload, pending.
    fn replacement(&mut self, like: usize, name: Arc<str>) -> usize {
        let p = &self.pods[like];
        let new = MPod {
            namespace: Arc::clone(&p.namespace),
            name,
            node: None,
            running: false,
            ready: false,
            deleting: false,
            gone: false,
            kind: p.kind,
            workload: p.workload,
            budgets: Arc::clone(&p.budgets),
            sched: Arc::clone(&p.sched),
            generation: 0,
        };
        let id = self.pods.len();
        self.pods.push(new);
        self.schedule(id);
        id
    }

    fn evict(&mut self, pod: usize) {
        self.set_ready(pod, false);
        let p = &mut self.pods[pod];
        p.deleting = true;
        let grace = if p.node.is_none() { 0.0 } else { p.sched.grace };
        let generation = p.generation;
        self.timer(grace, Event::Remove { pod, generation });
        if self.pods[pod].kind == PodKind::Replicated {
            let name = Arc::from(format!("{}~", self.pods[pod].name));
            self.replacement(pod, name);
        }
    }

    fn remove(&mut self, pod: usize) {
        self.set_ready(pod, false);
        self.unplace(pod);
        let p = &mut self.pods[pod];
        p.gone = true;
        p.node = None;
        self.unscheduled.remove(&pod);
        if let (PodKind::Stateful, Some(w)) = (self.pods[pod].kind, self.pods[pod].workload) {
            self.reconcile_stateful(w, pod);
        }
        self.retry_unscheduled();
    }

    /// The StatefulSet controller: recreate missing ordinals, in order unless Parallel.
    fn reconcile_stateful(&mut self, w: usize, like: usize) {
        let replicas = i64::from(self.workloads[w].replicas);
        let parallel = self.workloads[w].parallel;
        for ordinal in 0..replicas {
            match self.stateful.get(&(w, ordinal)).copied() {
                Some(p) if !self.pods[p].gone => {
                    let healthy = !self.pods[p].deleting && self.pods[p].ready;
                    if !parallel && !healthy {
                        break;
                    }
                }
                _ => {
                    let base = self.pods[like]
                        .name
                        .rsplit_once('-')
                        .map_or(self.pods[like].name.to_string(), |(b, _)| b.to_owned());
                    let id = self.replacement(like, Arc::from(format!("{base}-{ordinal}")));
                    self.stateful.insert((w, ordinal), id);
                    if !parallel {
                        break;
                    }
                }
            }
        }
    }

    fn start(&mut self, pod: usize) {
        let p = &self.pods[pod];
        if p.gone || p.deleting || p.running {
            return;
        }
        let Some(node) = p.node else { return };
        if !self.nodes[node].ready {
            return; // started when the node is back
        }
        self.pods[pod].running = true;
        self.set_ready(pod, true);
        self.pods[pod].ready = true;
        if let (PodKind::Stateful, Some(w)) = (self.pods[pod].kind, self.pods[pod].workload) {
            self.reconcile_stateful(w, pod);
        }
    }

    /// Runs due timers up to and including `until`.
    fn advance_to(&mut self, until: f64) {
        while let Some(timer) = self.timers.peek().copied() {
            if timer.at > until {
                break;
            }
            self.timers.pop();
            self.now = self.now.max(timer.at);
            match timer.event {
                Event::Start { pod, generation } if self.pods[pod].generation == generation => {
                    self.start(pod);
                }
                Event::Remove { pod, generation }
                    if self.pods[pod].generation == generation && !self.pods[pod].gone =>
                {
                    self.remove(pod);
                }
                Event::NodeBack { node } => self.node_back(node),
                _ => {}
            }
        }
        self.now = self.now.max(until);
    }

    fn next_timer(&self) -> Option<f64> {
        self.timers.peek().map(|t| t.at)
    }

    fn node_down(&mut self, node: usize) {
        self.nodes[node].ready = false;
        let pods: Vec<usize> = self.nodes[node].pods.iter().copied().collect();
        for pod in pods {
            if self.pods[pod].running && !self.pods[pod].deleting {
                self.set_ready(pod, false);
                self.pods[pod].ready = false;
                self.pods[pod].running = false;
            }
        }
    }

    fn node_back(&mut self, node: usize) {
        self.nodes[node].ready = true;
        let pods: Vec<usize> = self.nodes[node].pods.iter().copied().collect();
        for pod in pods {
            self.start(pod);
        }
    }

    /// Whether the eviction API admits evicting `pod` now; `Err` with the reason if not.
    fn admits(&self, pod: usize) -> Result<(), String> {
        let p = &self.pods[pod];
        if !p.running || p.deleting {
            return Ok(()); // pending and terminating pods cost nothing
        }
        match p.budgets.len() {
            0 => Ok(()),
            1 => {
                let b = &self.budgets[p.budgets[0]];
                let rules = Budget {
                    min_available: None,
                    max_unavailable: None,
                    always_allow_unhealthy: b.always_allow_unhealthy,
                };
                let status = BudgetStatus {
                    disruptions_allowed: b.allowed(),
                    current_healthy: b.healthy,
                    desired_healthy: b.desired,
                    observed_generation: 0,
                    generation: 0,
                };
                match budget::check_eviction(p.ready, &rules, status) {
                    Admission::AllowUnhealthy | Admission::AllowAndDecrement => Ok(()),
                    _ => Err(format!(
                        "PodDisruptionBudget {} needs {} healthy, has {}",
                        b.name, b.desired, b.healthy
                    )),
                }
            }
            _ => Err(format!(
                "covered by more than one PodDisruptionBudget ({}): the eviction API answers 500",
                p.budgets
                    .iter()
                    .map(|&b| self.budgets[b].name.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn drain_of(&self, pod: &MPod) -> Drain {
        match pod.kind {
            PodKind::Replicated | PodKind::Stateful | PodKind::Other => Drain::Evicts,
            PodKind::Bare if self.options.force => Drain::Evicts,
            PodKind::Bare => Drain::Refuses,
            PodKind::Daemon | PodKind::Mirror => Drain::Leaves,
        }
    }

    /// Names of the nodes, in the cluster's order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.to_string()).collect()
    }

    pub fn node_label(&self, node: &str, label: &str) -> Option<String> {
        let n = self.node_index.get(node)?;
        self.nodes[*n].labels.get(label).cloned()
    }

    /// Plays one batch: cordon, drain every node (evictions retried as budgets allow),
    /// upgrade, uncordon. Returns the forecast; the model is left after the batch.
    pub fn run_batch(&mut self, index: usize, names: &[String]) -> BatchForecast {
        let start = self.now;
        let nodes: Vec<usize> = names
            .iter()
            .filter_map(|n| self.node_index.get(n.as_str()).copied())
            .collect();
        for &n in &nodes {
            self.nodes[n].unschedulable = true;
        }
        let mut ready_before: BTreeMap<usize, i32> = BTreeMap::new();
        let mut min_ready: BTreeMap<usize, i32> = BTreeMap::new();
        let mut disrupted: BTreeMap<usize, usize> = BTreeMap::new();
        let mut held: BTreeMap<usize, f64> = BTreeMap::new();
        let mut pending: Vec<usize> = Vec::new();
        let mut refused = Vec::new();
        for &n in &nodes {
            for &p in &self.nodes[n].pods {
                let pod = &self.pods[p];
                if pod.gone || pod.deleting {
                    continue;
                }
                match self.drain_of(pod) {
                    Drain::Evicts => pending.push(p),
                    Drain::Refuses => refused.push(format!(
                        "{}/{} on {} has no controller (drain needs force; it would not be recreated)",
                        pod.namespace, pod.name, self.nodes[n].name
                    )),
                    Drain::Leaves => {
                        if pod.kind == PodKind::Daemon
                            && let Some(w) = pod.workload
                        {
                            *disrupted.entry(w).or_default() += 1;
                        }
                    }
                }
            }
        }
        pending.sort_by(|&a, &b| {
            (&self.pods[a].namespace, &self.pods[a].name)
                .cmp(&(&self.pods[b].namespace, &self.pods[b].name))
        });
        for &p in &pending {
            if let Some(w) = self.pods[p].workload {
                *disrupted.entry(w).or_default() += 1;
            }
        }
        for &w in disrupted.keys() {
            ready_before.insert(w, self.workloads[w].ready);
            min_ready.insert(w, self.workloads[w].ready);
        }
        let track = |model: &Model, min_ready: &mut BTreeMap<usize, i32>| {
            for (w, min) in min_ready.iter_mut() {
                *min = (*min).min(model.workloads[*w].ready);
            }
        };
        let mut evicted = Vec::new();
        let mut hold = 0.0f64;
        let mut stuck = Vec::new();
        let mut node_done: BTreeMap<usize, f64> = BTreeMap::new();
        let mut blocked_since: HashMap<usize, (f64, String)> = HashMap::new();
        loop {
            let mut still = Vec::new();
            for &p in &pending {
                match self.admits(p) {
                    Ok(()) => {
                        let waited = blocked_since.remove(&p).map(|(t, _)| self.now - t);
                        if let Some(waited) = waited {
                            hold = hold.max(self.now - start);
                            if let Some(w) = self.pods[p].workload {
                                let h = held.entry(w).or_default();
                                *h = h.max(waited);
                            }
                        }
                        let pod = &self.pods[p];
                        evicted.push(Eviction {
                            namespace: pod.namespace.to_string(),
                            pod: shown_name(&pod.name),
                            node: pod
                                .node
                                .map(|n| self.nodes[n].name.to_string())
                                .unwrap_or_default(),
                            workload: pod.workload.map(|w| self.workloads[w].label.to_string()),
                            at_seconds: self.now - start,
                        });
                        self.evict(p);
                        track(self, &mut min_ready);
                    }
                    Err(reason) => {
                        blocked_since.entry(p).or_insert((self.now, reason.clone()));
                        if let Some(entry) = blocked_since.get_mut(&p) {
                            entry.1 = reason;
                        }
                        still.push(p);
                    }
                }
            }
            pending = still;
            // A node's drain is done when none of its evicted pods is left.
            for &n in &nodes {
                if node_done.contains_key(&n) {
                    continue;
                }
                let busy = self.nodes[n]
                    .pods
                    .iter()
                    .any(|&p| self.drain_of(&self.pods[p]) == Drain::Evicts);
                if !busy {
                    node_done.insert(n, self.now);
                    if self.options.upgrade_seconds > 0.0 {
                        self.node_down(n);
                        track(self, &mut min_ready);
                        let up = self.options.upgrade_seconds;
                        self.timer(up, Event::NodeBack { node: n });
                    }
                }
            }
            let all_done = node_done.len() == nodes.len();
            let upgrading = nodes.iter().any(|&n| !self.nodes[n].ready);
            if all_done && !upgrading {
                break;
            }
            let Some(next) = self.next_timer() else {
                // Nothing will ever change: the remaining evictions are stuck.
                for &p in &pending {
                    let pod = &self.pods[p];
                    stuck.push(Stuck {
                        namespace: pod.namespace.to_string(),
                        pod: shown_name(&pod.name),
                        node: pod
                            .node
                            .map(|n| self.nodes[n].name.to_string())
                            .unwrap_or_default(),
                        reason: blocked_since
                            .get(&p)
                            .map(|(_, r)| r.clone())
                            .unwrap_or_default(),
                    });
                    if let Some(w) = pod.workload {
                        held.insert(w, f64::INFINITY);
                    }
                }
                break;
            };
            // Let the timers of one instant all fire before trying again.
            self.advance_to(next);
            track(self, &mut min_ready);
        }
        let finished = stuck.is_empty();
        let end = self.now;
        for &n in &nodes {
            self.nodes[n].unschedulable = false;
            if !self.nodes[n].ready {
                self.node_back(n);
            }
        }
        self.retry_unscheduled();
        // The batch is over when its replacements are Ready (those that can be placed).
        while let Some(next) = self.next_timer() {
            self.advance_to(next);
        }
        let end = if finished { self.now } else { end };

        let mut impacts: Vec<Impact> = disrupted
            .iter()
            .map(|(&w, &count)| {
                let workload = &self.workloads[w];
                let budget = self.budget_of_workload(w);
                let min = min_ready[&w];
                let pdb_min = budget.map(|b| self.budgets[b].desired);
                Impact {
                    workload: workload.label.to_string(),
                    replicas: workload.replicas,
                    disrupted: count,
                    ready_before: ready_before[&w],
                    min_ready: min,
                    pdb: budget.map(|b| self.budgets[b].name.to_string()),
                    pdb_min_healthy: pdb_min,
                    below_pdb: pdb_min.is_some_and(|d| min < d && min < ready_before[&w]),
                    zero_ready: min == 0 && ready_before[&w] > 0,
                    held_seconds: held.get(&w).copied().unwrap_or(0.0),
                    critical: workload.critical,
                }
            })
            .collect();
        impacts.sort_by(|a, b| {
            (b.zero_ready, b.below_pdb, a.min_ready, &a.workload).cmp(&(
                a.zero_ready,
                a.below_pdb,
                b.min_ready,
                &b.workload,
            ))
        });
        let mut blocks = Vec::new();
        // A single replica goes to zero whatever the plan (preflight's single-replica finding
        // says so); a batch that takes two or more to zero is the plan's doing.
        for impact in impacts
            .iter()
            .filter(|i| i.zero_ready && i.ready_before > 1)
        {
            blocks.push(format!(
                "{} goes to 0 ready replicas (of {})",
                impact.workload, impact.ready_before
            ));
        }
        if !stuck.is_empty() {
            blocks.push(format!(
                "{} eviction{} never get{} through ({})",
                stuck.len(),
                if stuck.len() == 1 { "" } else { "s" },
                if stuck.len() == 1 { "s" } else { "" },
                stuck[0].reason
            ));
        }
        if !refused.is_empty() {
            blocks.push(format!(
                "the drain refuses {} pod{} without a controller",
                refused.len(),
                if refused.len() == 1 { "" } else { "s" }
            ));
        }
        BatchForecast {
            index,
            nodes: names.to_vec(),
            evicted,
            workloads: impacts,
            refused,
            stuck,
            hold_seconds: if finished { hold } else { f64::INFINITY },
            duration_seconds: finished.then_some(end - start),
            blocks,
            explanation: None,
        }
    }

    /// The budget of a workload's pods (the first, if several).
    fn budget_of_workload(&self, w: usize) -> Option<usize> {
        self.workload_budget.get(w).copied().flatten()
    }
}

fn budget_of(
    view: &ClusterView,
    index: &Index,
    b: usize,
    pdb: &k8s_openapi::api::policy::v1::PodDisruptionBudget,
) -> MBudget {
    let spec = pdb.spec.clone().unwrap_or_default();
    let matched: Vec<usize> = index.pods_of_budget[b].clone();
    let healthy = matched
        .iter()
        .filter(|&&p| {
            pod::is_ready(&view.pods[p]) && view.pods[p].metadata.deletion_timestamp.is_none()
        })
        .count() as i32;
    let scale = || {
        let workloads: BTreeSet<usize> = matched
            .iter()
            .filter_map(|p| index.workload_of.get(p).copied())
            .collect();
        workloads
            .iter()
            .map(|&w| index.workloads[w].replicas)
            .sum::<i32>()
    };
    // A value that is not a number or a percentage counts as the strictest budget, as the
    // forecast has no status to fall back on: no disruption allowed.
    let rules = Budget {
        max_unavailable: spec
            .max_unavailable
            .as_ref()
            .map(|v| IntOrPercent::from_api(v).unwrap_or(IntOrPercent::Int(0))),
        min_available: spec
            .min_available
            .as_ref()
            .map(|v| IntOrPercent::from_api(v).unwrap_or(IntOrPercent::Percent(100))),
        always_allow_unhealthy: false,
    };
    let (expected, desired) = rules
        .expected_and_desired(matched.len() as i32, || {
            Ok::<_, std::convert::Infallible>(scale())
        })
        .unwrap_or_else(|never| match never {});
    MBudget {
        name: Arc::from(format!(
            "{}/{}",
            pdb.metadata.namespace.as_deref().unwrap_or_default(),
            pdb.metadata.name.as_deref().unwrap_or_default()
        )),
        desired,
        healthy,
        expected,
        always_allow_unhealthy: spec.unhealthy_pod_eviction_policy.as_deref()
            == Some("AlwaysAllow"),
    }
}

/// Plays `batches` in order against a model of `view`.
pub fn forecast(
    view: &ClusterView,
    critical: &[String],
    plan: &str,
    batches: &[Vec<String>],
    options: &ForecastOptions,
) -> Forecast {
    let mut model = Model::new(view, critical, options.clone());
    let results = batches
        .iter()
        .enumerate()
        .map(|(i, batch)| model.run_batch(i + 1, batch))
        .collect();
    Forecast::finish(plan.to_owned(), results)
}

/// What `--batch auto` needs from the model.
impl Model {
    /// Pods a drain of `node` disrupts, by workload (DaemonSet pods included: they stop with
    /// the node).
    pub(super) fn disrupted_by(&self, node: &str) -> BTreeMap<usize, i32> {
        let mut counts = BTreeMap::new();
        let Some(&n) = self.node_index.get(node) else {
            return counts;
        };
        for &p in &self.nodes[n].pods {
            let pod = &self.pods[p];
            if pod.gone || pod.deleting || pod.kind == PodKind::Mirror {
                continue;
            }
            if let Some(w) = pod.workload {
                *counts.entry(w).or_default() += 1;
            }
        }
        counts
    }

    /// Why a drain of `node` cannot finish in any batch that starts now, judged without
    /// playing one: a pod the drain refuses (no controller, without force), or a pod whose
    /// eviction the API refuses now while no event is pending. Within a batch no budget gains
    /// a healthy pod (replacements carry their pod's budgets; cordoned nodes free no room for
    /// pending pods), so that refusal lasts. `None` when the node may drain, or when pending
    /// events leave the answer to the batch.
    pub(super) fn never_drains(&self, node: &str) -> Option<String> {
        if !self.timers.is_empty() {
            return None;
        }
        let &n = self.node_index.get(node)?;
        for &p in &self.nodes[n].pods {
            let pod = &self.pods[p];
            if pod.gone || pod.deleting {
                continue;
            }
            let reason = match self.drain_of(pod) {
                Drain::Refuses => Some("it has no controller (drain needs force)".to_owned()),
                Drain::Evicts => self.admits(p).err(),
                Drain::Leaves => None,
            };
            if let Some(reason) = reason {
                return Some(format!(
                    "{}/{}: {reason}",
                    pod.namespace,
                    shown_name(&pod.name)
                ));
            }
        }
        None
    }

    /// How many of the workload's pods may go at once: its budget's allowance now, or all
    /// but one ready replica when it has none.
    pub(super) fn allowance(&self, w: usize) -> i32 {
        match self.budget_of_workload(w) {
            Some(b) => self.budgets[b].allowed(),
            None => (self.workloads[w].ready - 1).max(0),
        }
    }

    /// Which of `among`'s workloads of two or more ready replicas without a budget (or
    /// critical) have all their pods on one node not yet upgraded: the next batch with that
    /// node takes them to zero.
    pub(super) fn piles(
        &self,
        upgraded: impl Fn(&str) -> bool,
        among: &BTreeSet<usize>,
    ) -> BTreeSet<usize> {
        let mut wanted = vec![false; self.workloads.len()];
        for &w in among {
            wanted[w] = true;
        }
        let mut nodes_of: HashMap<usize, BTreeSet<usize>> = HashMap::new();
        for p in self.pods.iter() {
            if p.gone || p.deleting || !matches!(p.kind, PodKind::Replicated | PodKind::Stateful) {
                continue;
            }
            if let (Some(w), Some(n)) = (p.workload, p.node)
                && wanted[w]
            {
                nodes_of.entry(w).or_default().insert(n);
            }
        }
        nodes_of
            .into_iter()
            .filter(|(w, nodes)| {
                let workload = &self.workloads[*w];
                let unprotected = workload.critical || self.budget_of_workload(*w).is_none();
                unprotected
                    && workload.replicas >= 2
                    && nodes.len() == 1
                    && nodes.iter().all(|&n| !upgraded(&self.nodes[n].name))
            })
            .map(|(w, _)| w)
            .collect()
    }

    pub(super) fn workload_label(&self, w: usize) -> &str {
        &self.workloads[w].label
    }

    pub(super) fn workload_ready(&self, w: usize) -> i32 {
        self.workloads[w].ready
    }

    pub(super) fn workload_has_budget(&self, w: usize) -> bool {
        self.budget_of_workload(w).is_some()
    }

    /// Critical or ingress workloads: never two of their nodes in one batch.
    pub(super) fn workload_is_critical(&self, w: usize) -> bool {
        self.workloads[w].critical || self.workloads[w].ingress
    }
}
