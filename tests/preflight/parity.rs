//! The forecast equals what happens: the same batch plan, drained for real with krun's drain
//! in the simulator, evicts the same pods and takes every workload to the same minimum of
//! ready replicas as the forecast said.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use krun::kube::{DrainFilters, DrainOptions, Kube};
use krun::preflight::{BatchSpec, ForecastOptions, batches};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};

use super::{names, serve};

/// Ready replicas per workload (`Deployment shop/web`), now and the lowest since the reset.
#[derive(Default)]
struct Readiness {
    now: BTreeMap<String, i32>,
    min: BTreeMap<String, i32>,
}

impl Readiness {
    fn set(&mut self, workload: String, ready: i32) {
        let min = self.min.entry(workload.clone()).or_insert(ready);
        *min = (*min).min(ready);
        self.now.insert(workload, ready);
    }

    fn reset(&mut self) {
        self.min = self.now.clone();
    }
}

fn label_of_rs(rs: &ReplicaSet) -> Option<String> {
    let owner = rs.metadata.owner_references.as_ref()?.first()?;
    Some(format!(
        "{} {}/{}",
        owner.kind,
        rs.metadata.namespace.as_deref()?,
        owner.name
    ))
}

fn ready_of_rs(rs: &ReplicaSet) -> (i32, i32) {
    (
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
    )
}

fn ready_of_sts(sts: &StatefulSet) -> (i32, i32) {
    (
        sts.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
    )
}

fn watch(kube: &Kube, readiness: Arc<Mutex<Readiness>>) {
    let rs: Api<ReplicaSet> = Api::all(kube.client().clone());
    let state = Arc::clone(&readiness);
    tokio::spawn(async move {
        let mut stream = watcher(rs, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(rs)) = stream.next().await {
            if let Some(label) = label_of_rs(&rs) {
                state.lock().unwrap().set(label, ready_of_rs(&rs).0);
            }
        }
    });
    let sts: Api<StatefulSet> = Api::all(kube.client().clone());
    tokio::spawn(async move {
        let mut stream = watcher(sts, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(sts)) = stream.next().await {
            let label = format!(
                "StatefulSet {}/{}",
                sts.metadata.namespace.as_deref().unwrap_or_default(),
                sts.metadata.name.as_deref().unwrap_or_default()
            );
            readiness.lock().unwrap().set(label, ready_of_sts(&sts).0);
        }
    });
}

/// Waits until every ReplicaSet and StatefulSet has all its replicas Ready.
async fn settle(kube: &Kube) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rs: Api<ReplicaSet> = Api::all(kube.client().clone());
        let sts: Api<StatefulSet> = Api::all(kube.client().clone());
        let rs = rs.list(&ListParams::default()).await.unwrap();
        let sts = sts.list(&ListParams::default()).await.unwrap();
        let settled = rs.items.iter().map(ready_of_rs).all(|(r, n)| r == n)
            && sts.items.iter().map(ready_of_sts).all(|(r, n)| r == n);
        if settled {
            // Let the watches deliver what led here.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        assert!(Instant::now() < deadline, "the cluster did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The workload of every pod on `nodes`, by `namespace/name`.
async fn workloads_on(kube: &Kube, nodes: &[String]) -> BTreeMap<String, String> {
    let rs: Api<ReplicaSet> = Api::all(kube.client().clone());
    let deployments: BTreeMap<String, String> = rs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|rs| {
            Some((
                format!(
                    "{}/{}",
                    rs.metadata.namespace.as_deref()?,
                    rs.metadata.name.as_deref()?
                ),
                label_of_rs(rs)?,
            ))
        })
        .collect();
    let mut map = BTreeMap::new();
    for node in nodes {
        for pod in kube.pods_on(node).await.unwrap() {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let Some(owner) = krun::kube::pod::controller_of(&pod) else {
                continue;
            };
            let label = match owner.kind.as_str() {
                "ReplicaSet" => deployments
                    .get(&format!("{namespace}/{}", owner.name))
                    .cloned()
                    .unwrap_or_default(),
                kind => format!("{kind} {namespace}/{}", owner.name),
            };
            map.insert(
                format!("{namespace}/{}", pod.metadata.name.unwrap_or_default()),
                label,
            );
        }
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecast_equals_a_real_drain_of_the_same_plan() {
    let (_server, kube, view) = serve("forecast-parity", 50.0).await;
    let nodes = names(&["w-1", "w-2", "w-3", "w-4"]);
    // Drains that evict a workload without a budget all at once (`keep_replica: false`).
    let forecast = batches::plan(
        &view,
        &[],
        &nodes,
        BatchSpec::Fixed(2),
        &ForecastOptions {
            upgrade_seconds: 0.0,
            keep_replica: false,
            ..ForecastOptions::default()
        },
    );
    assert_eq!(forecast.batches.len(), 2);
    assert!(forecast.blocked(), "shop/cache goes to zero in batch 1");
    drain_as_planned(&kube, &forecast, false, false, forecast.batches.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_kept_replica_forecast_and_drain_keep_a_workload_without_a_budget_up() {
    let (_server, kube, view) = serve("forecast-parity", 50.0).await;
    let nodes = names(&["w-1", "w-2", "w-3", "w-4"]);
    let forecast = batches::plan(
        &view,
        &[],
        &nodes,
        BatchSpec::Fixed(2),
        &ForecastOptions {
            upgrade_seconds: 0.0,
            ..ForecastOptions::default()
        },
    );
    let cache: Vec<i32> = forecast
        .batches
        .iter()
        .flat_map(|b| &b.workloads)
        .filter(|w| w.workload.ends_with("shop/cache"))
        .map(|w| w.min_ready)
        .collect();
    assert!(
        !cache.is_empty() && cache.iter().all(|&ready| ready >= 1),
        "the kept replica keeps shop/cache up: {cache:?}"
    );
    assert!(!forecast.blocked(), "{}", forecast.verdict);
    drain_as_planned(&kube, &forecast, false, true, forecast.batches.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecast_of_a_generated_cluster_equals_its_real_drain() {
    let text = krun::sim::generate(&krun::sim::GenOptions {
        nodes: 12,
        pods: 300,
        seed: 7,
        ..krun::sim::GenOptions::default()
    });
    // Budgets that allow nothing would hold the drain forever.
    let mut list: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    list["items"].as_sequence_mut().unwrap().retain(|i| {
        i["kind"] != "PodDisruptionBudget" || i["status"]["disruptionsAllowed"].as_i64() != Some(0)
    });
    let text = serde_yaml_ng::to_string(&list).unwrap();
    // The forecast evicts a batch's pods at one instant; a real drain of ~75 pods must finish
    // its evictions before the first replacement is Ready (10 s of cluster time, 1 s here) or
    // the real minimum comes out higher. At 50x a busy machine broke that.
    let (_server, kube, view) = super::serve_text(&text, 10.0).await;
    let nodes: Vec<String> = view
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .filter(|n| n.starts_with("worker-"))
        .collect();
    let forecast = batches::plan(
        &view,
        &[],
        &nodes,
        BatchSpec::Fixed(3),
        &ForecastOptions {
            upgrade_seconds: 0.0,
            force: true,
            keep_replica: false,
            ..ForecastOptions::default()
        },
    );
    // Only the first batch starts from the snapshot itself: later ones depend on where the
    // replacements of earlier batches landed, which depends on the order the evictions of
    // concurrent drains reach the scheduler — different from one real run to the next.
    drain_as_planned(&kube, &forecast, true, false, 1).await;
}

/// Drains the forecast's first `batches` batches for real, one after another, and compares.
async fn drain_as_planned(
    kube: &Kube,
    forecast: &krun::preflight::Forecast,
    force: bool,
    keep_replica: bool,
    batches: usize,
) {
    let readiness = Arc::new(Mutex::new(Readiness::default()));
    watch(kube, Arc::clone(&readiness));
    let options = DrainOptions {
        filters: DrainFilters {
            ignore_daemonsets: true,
            delete_emptydir_data: true,
            force,
            ..DrainFilters::default()
        },
        max_backoff: Duration::from_millis(100),
        keep_replica,
        ..DrainOptions::default()
    };
    for batch in forecast.batches.iter().take(batches) {
        settle(kube).await;
        readiness.lock().unwrap().reset();
        let workloads = workloads_on(kube, &batch.nodes).await;
        for node in &batch.nodes {
            kube.cordon(node).await.unwrap();
        }
        let drains = futures::future::join_all(
            batch
                .nodes
                .iter()
                .map(|node| kube.drain(node, &options, &|_| {})),
        )
        .await;
        for node in &batch.nodes {
            kube.uncordon(node).await.unwrap();
        }
        settle(kube).await;

        let mut real: Vec<(String, String)> = drains
            .into_iter()
            .flat_map(|d| d.expect("the drain finishes").evicted)
            .map(|e| {
                let key = e.pod.key();
                (workloads.get(&key).cloned().unwrap_or_default(), key)
            })
            .collect();
        let mut forecast_evictions: Vec<(String, String)> = batch
            .evicted
            .iter()
            .map(|e| {
                (
                    e.workload.clone().unwrap_or_default(),
                    format!("{}/{}", e.namespace, e.pod),
                )
            })
            .collect();
        assert!(!real.is_empty(), "batch {} evicts pods", batch.index);
        real.sort();
        forecast_evictions.sort();
        assert_eq!(
            forecast_evictions, real,
            "batch {}: the same pods are evicted",
            batch.index
        );

        let min = readiness.lock().unwrap().min.clone();
        for impact in batch
            .workloads
            .iter()
            .filter(|w| !w.workload.starts_with("DaemonSet"))
        {
            assert_eq!(
                Some(&impact.min_ready),
                min.get(&impact.workload),
                "batch {}: lowest ready replicas of {}",
                batch.index,
                impact.workload
            );
        }
    }
}
