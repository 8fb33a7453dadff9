//! Draining against the simulator: budgets that make the drain wait, budgets that never
//! allow it, overlapping budgets, refusals, the override, dry runs, and injected faults.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use krun::error::Kind;
use krun::kube::drain::PreviewedEviction;
use krun::kube::eviction::{EvictionOutcome, Progress, RetryPolicy};
use krun::kube::{
    DrainEvent, DrainOptions, EvictionAnswer, EvictionApi, EvictionBypass, Kube, KubeError,
};
use krun::sim::{Fault, Latency};

use super::nodes::until_requested;
use super::support::*;

/// Every budget of the fixture allowing nothing: web needs all 3 replicas.
fn zero_disruption_cluster() -> String {
    let cluster = DRAIN_CLUSTER.replace("minAvailable: 2", "minAvailable: 3");
    assert_ne!(cluster, DRAIN_CLUSTER);
    cluster
}

/// A second budget over the web pods: the Eviction API refuses to choose between them.
fn overlapping_cluster() -> String {
    let extra = "- apiVersion: policy/v1
  kind: PodDisruptionBudget
  metadata:
    name: web-too
    namespace: shop
  spec:
    maxUnavailable: 1
    selector:
      matchLabels:
        app: web
kind: List
";
    let cluster = DRAIN_CLUSTER.replacen("kind: List\n", extra, 1);
    assert_ne!(cluster, DRAIN_CLUSTER);
    cluster
}

fn options(ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool) -> DrainOptions {
    let mut options = DrainOptions::default();
    options.filters.ignore_daemonsets = ignore_daemonsets;
    options.filters.delete_emptydir_data = delete_emptydir_data;
    options.filters.force = force;
    options
}

/// `namespace/name` of every pod on the node, sorted.
async fn pods_on(kube: &Kube, node: &str) -> Vec<String> {
    let mut names: Vec<String> = kube
        .pods_on(node)
        .await
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap(),
                p.metadata.name.as_deref().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

/// Collects drain events for assertions.
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<DrainEvent>>>);

impl Events {
    fn observer(&self) -> impl Fn(DrainEvent) + Send + Sync + use<> {
        let events = Arc::clone(&self.0);
        move |event| events.lock().unwrap().push(event)
    }

    fn all(&self) -> Vec<DrainEvent> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_held_by_a_budget_completes_once_replacements_are_ready() {
    // A replacement takes a second to become Ready: long enough that the second eviction
    // is always refused first, even on a busy machine.
    let sim = Sim::start(DRAIN_CLUSTER, 10.0).await;
    let kube = sim.kube();
    let events = Events::default();
    let report = kube
        .drain("worker-1", &options(true, true, false), &events.observer())
        .await
        .unwrap();

    assert!(report.cordoned);
    let evicted: Vec<_> = report.evicted.iter().map(|e| e.pod.name.as_str()).collect();
    assert_eq!(evicted, ["web-5d8f7c9b4-k2x7p", "web-5d8f7c9b4-m4q9z"]);
    assert!(
        report
            .evicted
            .iter()
            .all(|e| e.outcome == EvictionOutcome::Evicted)
    );
    // web (minAvailable 2 of 3) lets one replica go at a time: the second eviction waited.
    let waits: Vec<_> = report.waits().collect();
    assert_eq!(waits.len(), 1, "{report:#?}");
    assert_eq!(waits[0].blocked_by[0].key(), "shop/web");
    assert_eq!(waits[0].blocked_by[0].desired_healthy, 2);
    assert!(waits[0].attempts >= 2);
    let skipped: Vec<_> = report
        .plan
        .skipped()
        .map(|(p, _)| p.name.as_str())
        .collect();
    assert_eq!(skipped, ["kube-proxy-bbbbb"]);
    assert_eq!(
        report.eviction_api.map(|a| a.api_version()),
        Some("policy/v1")
    );
    assert_eq!(report.bypassed_budgets, None);

    assert_eq!(
        pods_on(&kube, "worker-1").await,
        ["kube-system/kube-proxy-bbbbb"]
    );
    assert!(kube.node_info("worker-1").await.unwrap().unschedulable);
    // Every write went through the observer: cordon, then one accepted eviction per pod.
    let events = events.all();
    assert!(matches!(
        events.first(),
        Some(DrainEvent::Cordoned { changed: true, .. })
    ));
    let accepted = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                DrainEvent::Eviction {
                    progress: Progress::Accepted { .. }
                }
            )
        })
        .count();
    assert_eq!(accepted, 2);
    let waiting = events.iter().find_map(|e| match e {
        DrainEvent::Eviction {
            progress: Progress::Waiting { budgets, .. },
        } => Some(budgets.clone()),
        _ => None,
    });
    let waiting = waiting.expect("the wait was reported");
    // The numbers move while the replacement starts; the refusal itself does not.
    let shown = waiting[0].to_string();
    assert!(
        shown.starts_with("shop/web: needs 2 healthy, has ")
            && shown.contains(", 0 disruptions allowed (minAvailable: 2, "),
        "{shown}"
    );
    // Waiting was done by watch: no pod was read one by one.
    let requests = sim.requests();
    assert_eq!(requests.get("get pods"), None, "{requests:?}");
    assert_eq!(requests.get("watch pods"), Some(&1), "{requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_disruption_budget_times_out_naming_the_budget_and_its_numbers() {
    let sim = Sim::start(&zero_disruption_cluster(), 100.0).await;
    let kube = sim.kube();
    let mut options = options(true, true, false);
    options.timeout = Some(Duration::from_secs(2));
    let events = Events::default();
    let error = kube
        .drain("worker-1", &options, &events.observer())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), Kind::Refused);
    let message = error.to_string();
    for expected in [
        "drain of node worker-1 failed: timed out after 2s",
        "0 pods evicted, 2 still on the node",
        "shop/web-5d8f7c9b4-k2x7p (eviction refused until the deadline), held by PodDisruptionBudget shop/web: needs 3 healthy, has 3, 0 disruptions allowed (minAvailable: 3, 3 pods)",
        "shop/web-5d8f7c9b4-m4q9z (eviction refused until the deadline)",
        "node worker-1 stays cordoned (uncordon_on_failure is not set)",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} not in:\n{message}"
        );
    }
    assert_eq!(pods_on(&kube, "worker-1").await.len(), 3);
    assert!(kube.node_info("worker-1").await.unwrap().unschedulable);
    // Retried with backoff, not hammered: at most one attempt per half second or so.
    let attempts = sim.requests()["create pods/eviction"];
    assert!((4..=20).contains(&attempts), "{attempts} eviction requests");
    // Said why at a steady pace (every 10 s by default), not on every retry: once per pod.
    let waiting = events
        .all()
        .iter()
        .filter(|e| {
            matches!(
                e,
                DrainEvent::Eviction {
                    progress: Progress::Waiting { .. }
                }
            )
        })
        .count();
    assert_eq!(waiting, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncordon_on_failure_puts_the_node_back_in_service() {
    let sim = Sim::start(&zero_disruption_cluster(), 100.0).await;
    let kube = sim.kube();
    let mut options = options(true, true, false);
    options.timeout = Some(Duration::from_millis(700));
    options.uncordon_on_failure = true;
    let events = Events::default();
    let error = kube
        .drain("worker-1", &options, &events.observer())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("node worker-1 was uncordoned again (uncordon_on_failure)"),
        "{error}"
    );
    assert!(!kube.node_info("worker-1").await.unwrap().unschedulable);
    assert!(matches!(
        events.all().last(),
        Some(DrainEvent::Uncordoned { .. })
    ));

    // A node that was cordoned before the drain stays cordoned.
    kube.cordon("worker-1").await.unwrap();
    let error = kube.drain("worker-1", &options, &|_| {}).await.unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("node worker-1 stays cordoned, as it was before the drain"),
        "{error}"
    );
    assert!(kube.node_info("worker-1").await.unwrap().unschedulable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_drain_names_every_pod_and_option_and_evicts_nothing() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let kube = sim.kube();
    let error = kube
        .drain("worker-1", &DrainOptions::default(), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), Kind::Refused);
    let message = error.to_string();
    for expected in [
        "drain of node worker-1 refused, nothing was evicted: 3 pods cannot be removed:",
        "kube-system/kube-proxy-bbbbb: managed by DaemonSet kube-system/kube-proxy (allow with ignore_daemonsets)",
        "shop/web-5d8f7c9b4-k2x7p: uses emptyDir (local data would be lost) (allow with delete_emptydir_data)",
        "shop/web-5d8f7c9b4-m4q9z: uses emptyDir",
        "set delete_emptydir_data, ignore_daemonsets to drain anyway",
        "node worker-1 stays cordoned",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} not in:\n{message}"
        );
    }
    assert_eq!(sim.requests().get("create pods/eviction"), None);

    let error = kube
        .drain("worker-3", &options(true, true, false), &|_| {})
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(
            "default/debug: has no controller (it would not be recreated) (allow with force)"
        ),
        "{message}"
    );
    assert_eq!(sim.requests().get("create pods/eviction"), None);
    assert_eq!(pods_on(&kube, "worker-3").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_budgets_are_refused_before_anything_is_evicted() {
    let sim = Sim::start(&overlapping_cluster(), 100.0).await;
    let kube = sim.kube();
    let error = kube
        .drain("worker-1", &options(true, true, false), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), Kind::Refused);
    let message = error.to_string();
    assert!(
        message.contains("covered by more than one PodDisruptionBudget"),
        "{message}"
    );
    assert!(
        message.contains(
            "shop/web-5d8f7c9b4-k2x7p: shop/web: needs 2 healthy, has 3, 1 disruption allowed \
             (minAvailable: 2, 3 pods); shop/web-too: needs 2 healthy, has 3, 1 disruption allowed \
             (maxUnavailable: 1, 3 pods)"
        ),
        "{message}"
    );
    assert_eq!(sim.requests().get("create pods/eviction"), None);

    // Evicting the pod directly gets the API server's 500, reported at once, not retried.
    let error = kube
        .evict_pod(
            "shop",
            "web-5d8f7c9b4-r8w2n",
            &RetryPolicy::default(),
            None,
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(error, KubeError::MultiplePdbs { .. }), "{error:?}");
    assert_eq!(error.kind(), Kind::Refused);
    assert!(error.to_string().contains("shop/web-too"), "{error}");
    assert_eq!(sim.requests()["create pods/eviction"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_eviction_deletes_past_budgets_and_says_so() {
    let sim = Sim::start(&zero_disruption_cluster(), 100.0).await;
    let kube = sim.kube();
    let mut options = options(true, true, false);
    options.disable_eviction = Some(EvictionBypass::acknowledged("test: budgets bypassed"));
    let report = kube.drain("worker-1", &options, &|_| {}).await.unwrap();
    assert_eq!(
        report.bypassed_budgets.as_deref(),
        Some("test: budgets bypassed")
    );
    assert_eq!(report.eviction_api, None);
    assert!(
        report
            .evicted
            .iter()
            .all(|e| e.outcome == EvictionOutcome::Deleted)
    );
    assert_eq!(
        pods_on(&kube, "worker-1").await,
        ["kube-system/kube-proxy-bbbbb"]
    );
    let requests = sim.requests();
    assert_eq!(requests.get("create pods/eviction"), None);
    assert_eq!(requests.get("delete pods"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_asks_the_server_and_changes_nothing() {
    let sim = Sim::start(&zero_disruption_cluster(), 100.0).await;
    let kube = sim.kube();
    let preview = kube
        .preview_drain("worker-1", &options(true, true, false))
        .await
        .unwrap();
    assert!(preview.would_cordon);
    assert!(preview.check().is_ok());
    assert_eq!(preview.evictions.len(), 2);
    for PreviewedEviction {
        answer, budgets, ..
    } in &preview.evictions
    {
        assert!(
            matches!(answer, EvictionAnswer::BlockedByBudget { .. }),
            "{answer:?}"
        );
        assert_eq!(budgets[0].key(), "shop/web");
    }
    assert_eq!(pods_on(&kube, "worker-1").await.len(), 3);
    assert!(!kube.node_info("worker-1").await.unwrap().unschedulable);
    let requests = sim.requests();
    assert_eq!(requests.get("patch nodes"), None);
    assert_eq!(requests["create pods/eviction"], 2);

    // With room in the budget the server would admit the eviction.
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let preview = sim
        .kube()
        .preview_drain("worker-1", &options(true, true, false))
        .await
        .unwrap();
    assert!(
        preview
            .evictions
            .iter()
            .all(|e| e.answer == EvictionAnswer::Accepted)
    );
    assert_eq!(pods_on(&sim.kube(), "worker-1").await.len(), 3);

    // A refused plan is shown as such, and nothing is asked.
    let preview = sim
        .kube()
        .preview_drain("worker-3", &options(true, false, false))
        .await
        .unwrap();
    let refused = preview.check().unwrap_err();
    assert_eq!(refused.pods.len(), 1);
    assert!(preview.evictions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_on_evictions_are_retried() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    sim.handle().inject_fault(Fault {
        verb: "create".to_owned(),
        resource: "pods/eviction".to_owned(),
        namespace: None,
        count: 3,
        code: 500,
        message: Some("etcdserver: leader changed".to_owned()),
    });
    sim.handle().set_latency(Latency {
        verb: "create".to_owned(),
        resource: "pods/eviction".to_owned(),
        milliseconds: 150,
    });
    let kube = sim.kube();
    let report = kube
        .drain("worker-1", &options(true, true, false), &|_| {})
        .await
        .unwrap();
    assert_eq!(report.evicted.len(), 2);
    assert_eq!(
        pods_on(&kube, "worker-1").await,
        ["kube-system/kube-proxy-bbbbb"]
    );
    let requests = sim.requests();
    assert!(requests["create pods/eviction"] >= 5, "{requests:?}");
    assert_eq!(
        requests.get("delete pods"),
        None,
        "nothing was deleted instead"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_server_errors_fail_the_drain_without_deleting_anything() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    sim.handle().inject_fault(Fault {
        verb: "create".to_owned(),
        resource: "pods/eviction".to_owned(),
        namespace: None,
        count: 1000,
        code: 503,
        message: None,
    });
    let kube = sim.kube();
    let mut options = options(true, true, false);
    options.max_backoff = Duration::from_millis(100);
    let error = kube.drain("worker-1", &options, &|_| {}).await.unwrap_err();
    assert_eq!(error.kind(), Kind::Runtime);
    let message = error.to_string();
    assert!(
        message.contains("gave up after 6 failures in a row"),
        "{message}"
    );
    assert!(message.contains("2 still on the node"), "{message}");
    assert_eq!(pods_on(&kube, "worker-1").await.len(), 3);
    let requests = sim.requests();
    assert_eq!(requests["create pods/eviction"], 12);
    assert_eq!(requests.get("delete pods"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_survives_an_api_server_restart_while_it_waits() {
    // Slower cluster time: replacements take a second to become Ready.
    let sim = Sim::start(DRAIN_CLUSTER, 10.0).await;
    let kube = sim.kube();
    let draining = tokio::spawn({
        let kube = kube.clone();
        async move {
            kube.drain("worker-1", &options(true, true, false), &|_| {})
                .await
        }
    });
    // One eviction admitted, the other refused by the budget: the drain is waiting.
    until_requested(&sim, "create pods/eviction", 2).await;
    sim.handle().drop_watches();
    until_requested(&sim, "watch pods", 2).await;
    sim.handle().drop_watches();
    let report = draining.await.unwrap().unwrap();
    assert_eq!(report.evicted.len(), 2);
    assert_eq!(
        pods_on(&kube, "worker-1").await,
        ["kube-system/kube-proxy-bbbbb"]
    );
    let web_ready = kube
        .pods_on("worker-2")
        .await
        .unwrap()
        .into_iter()
        .chain(kube.pods_on("worker-3").await.unwrap())
        .filter(|p| p.metadata.name.as_deref().unwrap().starts_with("web-"))
        .count();
    assert!(web_ready >= 2, "the web replicas moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_does_not_need_permission_to_read_budgets() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    sim.handle().inject_fault(Fault {
        verb: "list".to_owned(),
        resource: "poddisruptionbudgets".to_owned(),
        namespace: None,
        count: 1000,
        code: 403,
        message: Some(
            "poddisruptionbudgets.policy is forbidden: User \"drainer\" cannot list resource \"poddisruptionbudgets\""
                .to_owned(),
        ),
    });
    let kube = sim.kube();
    let report = kube
        .drain("worker-1", &options(true, true, false), &|_| {})
        .await
        .unwrap();
    assert_eq!(report.evicted.len(), 2);
    // The budget still held the second eviction; it just could not be named.
    assert!(
        report.evicted.iter().any(|e| e.attempts >= 2),
        "{report:#?}"
    );
    assert_eq!(report.waits().count(), 0);
    assert_eq!(
        pods_on(&kube, "worker-1").await,
        ["kube-system/kube-proxy-bbbbb"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_can_be_posted_as_policy_v1beta1() {
    // policy/v1beta1 Evictions are served until 1.25 (deprecation guide); play 1.21.
    let sim = Sim::start_as(DRAIN_CLUSTER, 100.0, Some("v1.21.14")).await;
    let kube = sim.kube().with_eviction_api(EvictionApi::V1beta1);
    let report = kube
        .drain("worker-1", &options(true, true, false), &|_| {})
        .await
        .unwrap();
    assert_eq!(report.eviction_api, Some(EvictionApi::V1beta1));
    assert_eq!(report.evicted.len(), 2);
    assert_eq!(
        pods_on(&kube, "worker-1").await,
        ["kube-system/kube-proxy-bbbbb"]
    );
    // Discovery was skipped.
    assert_eq!(sim.requests().get("get discovery"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_a_statefulset_pod_waits_for_the_old_one_only() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let kube = sim.kube();
    let before = sim.handle().object("v1", "Pod", "shop", "db-1").unwrap();
    let report = kube
        .evict_pod("shop", "db-1", &RetryPolicy::default(), None, &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(
            report.outcome,
            EvictionOutcome::Evicted | EvictionOutcome::Replaced
        ),
        "{report:?}"
    );
    assert_eq!(report.attempts, 1);
    let uid = before["metadata"]["uid"].as_str().unwrap();
    assert_eq!(report.pod.uid, uid);
    // The StatefulSet recreates db-1 under the same name: a new pod.
    if let Some(after) = sim.handle().object("v1", "Pod", "shop", "db-1") {
        assert_ne!(after["metadata"]["uid"].as_str().unwrap(), uid);
    }

    // A pod that does not exist is already gone.
    let report = kube
        .evict_pod(
            "shop",
            "no-such-pod",
            &RetryPolicy::default(),
            None,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, EvictionOutcome::AlreadyGone);
    assert_eq!(report.attempts, 0);
}
