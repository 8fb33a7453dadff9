//! kube-rs as a client of the simulator, as krun's own drain code uses it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::support::*;

fn eviction(name: &str, namespace: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}})
}

async fn evict(pods: &Api<Pod>, name: &str, namespace: &str) -> Result<Value, kube::Error> {
    pods.create_subresource(
        "eviction",
        name,
        &PostParams::default(),
        &eviction(name, namespace),
    )
    .await
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_with_selectors_get_and_not_found() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let pods: Api<Pod> = Api::all(sim.client());
    let on_worker_1 = pods
        .list(&ListParams::default().fields("spec.nodeName=worker-1"))
        .await
        .unwrap();
    let mut names: Vec<String> = on_worker_1
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "kube-proxy-bbbbb",
            "web-5d8f7c9b4-k2x7p",
            "web-5d8f7c9b4-m4q9z"
        ]
    );

    let shop: Api<Pod> = Api::namespaced(sim.client(), "shop");
    let db = shop
        .list(&ListParams::default().labels("app in (db),statefulset.kubernetes.io/pod-name!=db-0"))
        .await
        .unwrap();
    assert_eq!(db.items.len(), 1);
    assert_eq!(db.items[0].metadata.name.as_deref(), Some("db-1"));

    // Paging: two pods per page, all eleven pods in the end.
    let mut seen = 0;
    let mut params = ListParams::default().limit(2);
    loop {
        let page = pods.list(&params).await.unwrap();
        seen += page.items.len();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen, 11);

    let status = api_error(shop.get("nope").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, r#"pods "nope" not found"#);

    let status = api_error(
        pods.list(&ListParams::default().fields("spec.bogus=1"))
            .await,
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (400, "field label not supported: spec.bogus")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_and_all_patch_types_on_nodes() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let nodes: Api<Node> = Api::all(sim.client());
    let node = nodes.cordon("worker-2").await.unwrap();
    assert_eq!(node.spec.unwrap().unschedulable, Some(true));
    nodes.uncordon("worker-2").await.unwrap();

    let params = PatchParams::default();
    nodes
        .patch(
            "worker-2",
            &params,
            &Patch::Strategic(json!({"metadata": {"labels": {"a": "1"}}})),
        )
        .await
        .unwrap();
    nodes
        .patch(
            "worker-2",
            &params,
            &Patch::Merge(json!({"metadata": {"labels": {"b": "2"}}})),
        )
        .await
        .unwrap();
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels/c", "value": "3"}]))
            .unwrap();
    let node = nodes
        .patch("worker-2", &params, &Patch::Json::<()>(ops))
        .await
        .unwrap();
    let labels = node.metadata.labels.unwrap();
    assert_eq!(
        (
            labels["a"].as_str(),
            labels["b"].as_str(),
            labels["c"].as_str()
        ),
        ("1", "2", "3")
    );
    // kube-rs uncordons with `unschedulable: false`.
    assert_eq!(node.spec.unwrap().unschedulable, Some(false));

    // A stale resourceVersion is a conflict.
    let stale = json!({"metadata": {"resourceVersion": "1", "labels": {"d": "4"}}});
    let status = api_error(nodes.patch("worker-2", &params, &Patch::Merge(stale)).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    // dryRun=All answers with the result and stores nothing.
    let dry = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let answered = nodes
        .patch(
            "worker-3",
            &dry,
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    assert_eq!(answered.spec.unwrap().unschedulable, Some(true));
    assert_eq!(
        nodes
            .get("worker-3")
            .await
            .unwrap()
            .spec
            .unwrap()
            .unschedulable,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_follow_the_disruption_budget() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let pods: Api<Pod> = Api::namespaced(sim.client(), "shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(sim.client(), "shop");

    // Server-side dry run: allowed, nothing changes.
    let dry = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-5d8f7c9b4-k2x7p"}, "deleteOptions": {"dryRun": ["All"]}});
    let status: Value = pods
        .create_subresource(
            "eviction",
            "web-5d8f7c9b4-k2x7p",
            &PostParams::default(),
            &dry,
        )
        .await
        .unwrap();
    assert_eq!(status["status"], "Success");
    assert!(
        pods.get("web-5d8f7c9b4-k2x7p")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    let status = evict(&pods, "web-5d8f7c9b4-k2x7p", "shop").await.unwrap();
    assert_eq!(
        (status["status"].as_str(), status["code"].as_i64()),
        (Some("Success"), Some(201))
    );
    let evicted = pods.get("web-5d8f7c9b4-k2x7p").await.unwrap();
    assert!(evicted.metadata.deletion_timestamp.is_some());
    assert_eq!(evicted.metadata.deletion_grace_period_seconds, Some(30));

    let status = api_error(evict(&pods, "web-5d8f7c9b4-m4q9z", "shop").await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(
        status.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    // An integer minAvailable expects every matching pod: the terminating one and its
    // not yet ready replacement included.
    let pdb = pdbs.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        (
            pdb.current_healthy,
            pdb.desired_healthy,
            pdb.disruptions_allowed,
            pdb.expected_pods
        ),
        (2, 2, 0, 4)
    );

    // A second PDB over the same pods makes evictions fail with 500.
    let overlapping: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-extra"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &overlapping)
        .await
        .unwrap();
    let status = api_error(evict(&pods, "web-5d8f7c9b4-r8w2n", "shop").await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    assert_eq!(
        status.message,
        "Internal error occurred: This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pods_are_replaced_and_terminate_after_their_grace_period() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let handle = sim.server.handle();
    let pods: Api<Pod> = Api::namespaced(sim.client(), "shop");
    pods.delete(
        "web-5d8f7c9b4-r8w2n",
        &DeleteParams::default().grace_period(3600),
    )
    .await
    .unwrap();
    let terminating = pods.get("web-5d8f7c9b4-r8w2n").await.unwrap();
    assert_eq!(
        terminating.metadata.deletion_grace_period_seconds,
        Some(3600)
    );
    // The ReplicaSet replaces the pod at once, the replacement becomes ready after the
    // startup delay, and the terminating pod goes when the grace period ends.
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 4);
    handle.advance_clock(Duration::from_secs(3601));
    let gone = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if matches!(pods.get_opt("web-5d8f7c9b4-r8w2n").await, Ok(None)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the pod outlived its grace period");
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 3);
    let replacement = web
        .items
        .iter()
        .find(|p| {
            !p.metadata.name.as_ref().unwrap().ends_with("k2x7p")
                && !p.metadata.name.as_ref().unwrap().ends_with("m4q9z")
        })
        .unwrap();
    let status = replacement.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some());
    assert_ne!(replacement.spec.as_ref().unwrap().node_name, None);

    // A bare pod deleted with grace period 0 is gone at once and not recreated.
    let default: Api<Pod> = Api::namespaced(sim.client(), "default");
    default
        .delete("debug", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(default.get_opt("debug").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_use_optimistic_concurrency() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let leases: Api<Lease> = Api::namespaced(sim.client(), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "krun-upgrade"}, "spec": {"holderIdentity": "operator-a", "leaseDurationSeconds": 60}
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let status = api_error(leases.create(&PostParams::default(), &lease).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().holder_identity = Some("operator-b".into());
    let replaced = leases
        .replace("krun-upgrade", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_eq!(
        replaced.spec.unwrap().holder_identity.as_deref(),
        Some("operator-b")
    );
    // Replacing with the old resourceVersion loses the race.
    let status = api_error(
        leases
            .replace("krun-upgrade", &PostParams::default(), &created)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    let missing = api_error(
        Api::<Lease>::namespaced(sim.client(), "no-such-namespace")
            .create(&PostParams::default(), &lease)
            .await,
    );
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, r#"namespaces "no-such-namespace" not found"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_evictions_and_replacements() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let pods: Api<Pod> = Api::namespaced(sim.client(), "shop");
    let stream = watcher(pods.clone(), watcher::Config::default().labels("app=web"));
    let mut stream = std::pin::pin!(stream);
    let mut initial = 0;
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(_) => initial += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, 3);
    evict(&pods, "web-5d8f7c9b4-k2x7p", "shop").await.unwrap();
    let mut added = None;
    let mut deleted = false;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while !(deleted && added.is_some()) {
            match stream.try_next().await.unwrap().unwrap() {
                watcher::Event::Apply(pod)
                    if ![
                        "web-5d8f7c9b4-k2x7p",
                        "web-5d8f7c9b4-m4q9z",
                        "web-5d8f7c9b4-r8w2n",
                    ]
                    .contains(&pod.metadata.name.as_deref().unwrap())
                        && pod.status.as_ref().and_then(|s| s.phase.as_deref())
                            == Some("Running") =>
                {
                    added = pod.metadata.name.clone();
                }
                watcher::Event::Delete(pod) => {
                    deleted |= pod.metadata.name.as_deref() == Some("web-5d8f7c9b4-k2x7p")
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "saw deletion: {deleted}, running replacement: {added:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watches_resume_bookmark_and_expire() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let nodes: Api<Node> = Api::all(sim.client());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    nodes.cordon("worker-1").await.unwrap();

    // Resuming from the list's resourceVersion replays the change made since, then bookmarks.
    let mut events = nodes
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let first = events.try_next().await.unwrap().unwrap();
    match first {
        WatchEvent::Modified(node) => assert_eq!(node.metadata.name.as_deref(), Some("worker-1")),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    let bookmark = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let WatchEvent::Bookmark(b) = events.try_next().await.unwrap().unwrap() {
                return b;
            }
        }
    })
    .await
    .expect("a bookmark arrives");
    assert!(
        bookmark.metadata.resource_version.parse::<u64>().unwrap() > rv.parse::<u64>().unwrap()
    );

    // Sending initial events ends with the initial-events-end bookmark.
    let params = WatchParams::streaming_lists();
    let mut initial = nodes.watch(&params, "").await.unwrap().boxed();
    let mut added = 0;
    loop {
        match initial.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(_) => added += 1,
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, 4);

    // Dropping all watches ends the streams, as an apiserver restart does.
    sim.server.handle().drop_watches();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            event.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch did not end");
}
