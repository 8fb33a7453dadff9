//! What the cluster went through, as the simulator served it: every change to nodes, pods,
//! ReplicaSets and PodDisruptionBudgets from the moment a lab is up, recorded by watches and
//! put in resourceVersion order (one counter for the whole cluster, as etcd's revision is).
//!
//! The SOP matrix asserts the order of operations on it, not only the end state:
//! - no kubelet restarted on a node that was not drained: a node's kubelet stopping (Ready
//!   going False) or a new kubelet reporting (its version changing) happens only while the
//!   node is cordoned and holds no pods but DaemonSet and mirror pods;
//! - no budgeted pod evicted without its budget's consent: a Ready pod a budget covers starts
//!   terminating only once that budget recorded it in `status.disruptedPods` (what the
//!   Eviction API does when it admits an eviction), unless its own ReplicaSet was scaling down
//!   (a rollout, which budgets do not govern).
//!
//! Secrets are recorded too, for the bootstrap tokens a join uses: [`History::node_events`]
//! puts a node's cordon, drain, kubelet stop and start, uncordon and the tokens made in one
//! sequence, for tests that assert the steps of a procedure happened in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use krun::kube::ServedPdb;
use kube::Api;
use kube::runtime::watcher;
use serde_json::Value;

/// The kinds recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Node,
    Pod,
    ReplicaSet,
    Budget,
    Secret,
}

/// One change: the object after it (or as it was deleted).
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub deleted: bool,
    pub object: Value,
}

/// The recorded changes, shared with the watch tasks.
#[derive(Clone, Default)]
pub struct History {
    changes: Arc<Mutex<Vec<Change>>>,
}

impl History {
    /// Starts the watches on `runtime`; the future completes once every initial list is in.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        config: kube::Config,
    ) -> (
        History,
        impl std::future::Future<Output = ()> + Send + use<>,
    ) {
        let history = History::default();
        let client = {
            let _entered = runtime.enter();
            kube::Client::try_from(config.clone()).expect("a client for the simulator")
        };
        let listed = vec![
            record(
                runtime,
                made(Api::<Node>::all(client.clone())),
                &history,
                Kind::Node,
                to_value,
            ),
            record(
                runtime,
                made(Api::<Pod>::all(client.clone())),
                &history,
                Kind::Pod,
                to_value,
            ),
            record(
                runtime,
                made(Api::<ReplicaSet>::all(client.clone())),
                &history,
                Kind::ReplicaSet,
                to_value,
            ),
            record(
                runtime,
                made(Api::<Secret>::all(client)),
                &history,
                Kind::Secret,
                to_value,
            ),
            // Budgets through the policy version the cluster serves (policy/v1beta1 before
            // 1.21): a watch of policy/v1 on an older cluster is answered 404 and never lists.
            record(
                runtime,
                async move {
                    krun::kube::Kube::from_config(config, "the lab's history".into())
                        .expect("a client for the simulator")
                        .pdb_api(None)
                        .await
                },
                &history,
                Kind::Budget,
                |budget: &ServedPdb| serde_json::to_value(&budget.0).unwrap_or_default(),
            ),
        ];
        (history, async move {
            for wait in listed {
                let _ = wait.await;
            }
        })
    }

    /// The changes so far, in resourceVersion order.
    pub fn changes(&self) -> Vec<Change> {
        let mut changes = self
            .changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        changes.sort_by_key(|c| (c.rv, c.kind));
        changes.dedup_by(|a, b| a.rv == b.rv && a.kind == b.kind && a.deleted == b.deleted);
        changes
    }

    /// The newest resourceVersion recorded: changes after it are "since" it.
    pub fn latest(&self) -> u64 {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|c| c.rv)
            .max()
            .unwrap_or(0)
    }

    /// Every kubelet stop or start after resourceVersion `since` on a node that was
    /// schedulable or still held pods.
    pub fn undrained_kubelet_restarts(&self, since: u64) -> Vec<String> {
        let mut state = State::default();
        let mut found = Vec::new();
        for change in self.changes() {
            if change.kind == Kind::Node && !change.deleted {
                let name = name(&change.object);
                if let Some(before) = state.nodes.get(&name) {
                    let stopped = ready(before) && !ready(&change.object);
                    let new_kubelet = kubelet(before) != kubelet(&change.object);
                    if (stopped || new_kubelet) && change.rv > since {
                        let what = if new_kubelet {
                            format!("kubelet {} reported", kubelet(&change.object))
                        } else {
                            "kubelet stopped".to_string()
                        };
                        let cordoned = change.object["spec"]["unschedulable"] == true;
                        let pods = state.workload_pods_on(&name);
                        if !cordoned || !pods.is_empty() {
                            found.push(format!(
                                "{name}: {what} at resourceVersion {} while {}{}",
                                change.rv,
                                if cordoned { "cordoned" } else { "schedulable" },
                                if pods.is_empty() {
                                    String::new()
                                } else {
                                    format!(", running {}", pods.join(", "))
                                }
                            ));
                        }
                    }
                }
            }
            state.apply(&change);
        }
        found
    }

    /// What happened to `node` after resourceVersion `since`, in the order the cluster saw it:
    /// `cordoned`, `drained` (its last pod that a drain moves gone), `kubelet stopped` (Ready
    /// went False), `kubelet ready` (Ready went True), `kubelet vX reported` (a new version),
    /// `uncordoned`; and `bootstrap token made` for every bootstrap token Secret created in
    /// kube-system (a join's credential, whichever node it is for).
    pub fn node_events(&self, node: &str, since: u64) -> Vec<String> {
        let mut state = State::default();
        let mut events = Vec::new();
        for change in self.changes() {
            let after = change.rv > since;
            match change.kind {
                Kind::Node if !change.deleted && name(&change.object) == node => {
                    if let Some(before) = state.nodes.get(node)
                        && after
                    {
                        let cordoned = |n: &Value| n["spec"]["unschedulable"] == true;
                        match (cordoned(before), cordoned(&change.object)) {
                            (false, true) => events.push("cordoned".to_string()),
                            (true, false) => events.push("uncordoned".to_string()),
                            _ => {}
                        }
                        match (ready(before), ready(&change.object)) {
                            (true, false) => events.push("kubelet stopped".to_string()),
                            (false, true) => events.push("kubelet ready".to_string()),
                            _ => {}
                        }
                        if kubelet(before) != kubelet(&change.object) {
                            events.push(format!("kubelet {} reported", kubelet(&change.object)));
                        }
                    }
                }
                Kind::Pod => {
                    let held = !state.workload_pods_on(node).is_empty();
                    state.apply(&change);
                    if after && held && state.workload_pods_on(node).is_empty() {
                        events.push("drained".to_string());
                    }
                    continue;
                }
                Kind::Secret
                    if after
                        && !change.deleted
                        && change.object["metadata"]["namespace"] == "kube-system"
                        && change.object["type"] == "bootstrap.kubernetes.io/token"
                        && !state.secrets.contains_key(&key(&change.object)) =>
                {
                    events.push("bootstrap token made".to_string());
                }
                _ => {}
            }
            state.apply(&change);
        }
        events
    }

    /// Every budgeted, Ready pod that started terminating after resourceVersion `since`
    /// without its budget's consent.
    pub fn evictions_without_consent(&self, since: u64) -> Vec<String> {
        let mut state = State::default();
        let mut found = Vec::new();
        for change in self.changes() {
            if change.kind == Kind::Pod {
                let pod_key = key(&change.object);
                let terminating_now =
                    change.deleted || !change.object["metadata"]["deletionTimestamp"].is_null();
                let before = state.pods.get(&pod_key);
                let terminating_before =
                    before.is_some_and(|p| !p["metadata"]["deletionTimestamp"].is_null());
                if let Some(before) = before
                    && change.rv > since
                    && terminating_now
                    && !terminating_before
                    && pod_ready(before)
                    && !state.scaling_down(before)
                {
                    let pod_name = name(before);
                    for budget in state.covering(before) {
                        let consented = budget["status"]["disruptedPods"].get(&pod_name).is_some();
                        if !consented {
                            found.push(format!(
                                "{pod_key} terminated at resourceVersion {} without the consent of \
                                 budget {} (disruptionsAllowed {})",
                                change.rv,
                                key(budget),
                                budget["status"]["disruptionsAllowed"]
                            ));
                        }
                    }
                }
            }
            state.apply(&change);
        }
        found
    }
}

fn made<T: Send + 'static>(value: T) -> impl std::future::Future<Output = T> + Send + 'static {
    std::future::ready(value)
}

fn to_value<K: serde::Serialize>(object: &K) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

/// Watches every object `api` (once made) serves, recording each change as `value` shows it;
/// returns when the first list is in.
fn record<K>(
    runtime: &tokio::runtime::Runtime,
    api: impl std::future::Future<Output = Api<K>> + Send + 'static,
    history: &History,
    kind: Kind,
    value: fn(&K) -> Value,
) -> tokio::sync::oneshot::Receiver<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let changes = Arc::clone(&history.changes);
    let (listed, wait) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        let api = api.await;
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        let mut listed = Some(listed);
        while let Some(event) = stream.next().await {
            let (object, deleted) = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                Ok(watcher::Event::Delete(o)) => (o, true),
                Ok(watcher::Event::InitDone) => {
                    if let Some(done) = listed.take() {
                        let _ = done.send(());
                    }
                    continue;
                }
                Ok(watcher::Event::Init) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let value = value(&object);
            let rv = value["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Change {
                    rv,
                    kind,
                    deleted,
                    object: value,
                });
        }
    });
    wait
}

/// The cluster replayed up to a change.
#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Value>,
    pods: BTreeMap<String, Value>,
    replica_sets: BTreeMap<String, Value>,
    budgets: BTreeMap<String, Value>,
    secrets: BTreeMap<String, Value>,
}

impl State {
    fn apply(&mut self, change: &Change) {
        let map = match change.kind {
            Kind::Node => &mut self.nodes,
            Kind::Pod => &mut self.pods,
            Kind::ReplicaSet => &mut self.replica_sets,
            Kind::Budget => &mut self.budgets,
            Kind::Secret => &mut self.secrets,
        };
        let key = if change.kind == Kind::Node {
            name(&change.object)
        } else {
            key(&change.object)
        };
        if change.deleted {
            map.remove(&key);
        } else {
            map.insert(key, change.object.clone());
        }
    }

    /// Pods on `node` a drain moves: all but DaemonSet and mirror (static) pods.
    fn workload_pods_on(&self, node: &str) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, p)| p["spec"]["nodeName"] == node)
            .filter(|(_, p)| {
                let owner = controller(p).map(|(kind, _)| kind).unwrap_or_default();
                owner != "DaemonSet"
                    && owner != "Node"
                    && p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null()
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether the pod's ReplicaSet wants fewer pods than it has (its controller deletes it).
    fn scaling_down(&self, pod: &Value) -> bool {
        let Some((kind, owner)) = controller(pod) else {
            return false;
        };
        if kind != "ReplicaSet" {
            return false;
        }
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let Some(set) = self.replica_sets.get(&format!("{namespace}/{owner}")) else {
            return false;
        };
        let wanted = set["spec"]["replicas"].as_u64().unwrap_or(1);
        let live = self
            .pods
            .values()
            .filter(|p| {
                p["metadata"]["namespace"] == namespace
                    && controller(p).is_some_and(|(_, name)| name == owner)
                    && p["metadata"]["deletionTimestamp"].is_null()
            })
            .count() as u64;
        live > wanted
    }

    fn covering(&self, pod: &Value) -> Vec<&Value> {
        let namespace = &pod["metadata"]["namespace"];
        let labels = &pod["metadata"]["labels"];
        self.budgets
            .values()
            .filter(|b| b["metadata"]["namespace"] == *namespace)
            .filter(|b| selects(&b["spec"]["selector"], labels))
            .collect()
    }
}

/// A label selector (matchLabels and matchExpressions) against a pod's labels; an empty
/// selector selects every pod (policy/v1).
fn selects(selector: &Value, labels: &Value) -> bool {
    if selector.is_null() {
        return false;
    }
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

fn controller(object: &Value) -> Option<(String, String)> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["name"].as_str().unwrap_or_default().to_string(),
            )
        })
}

fn name(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        name(object)
    )
}

fn ready(node: &Value) -> bool {
    condition(node, "Ready")
}

fn pod_ready(pod: &Value) -> bool {
    condition(pod, "Ready")
}

fn condition(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

fn kubelet(node: &Value) -> &str {
    node["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .unwrap_or_default()
}
