//! Each incident gives a block finding or a forecast block, and `--batch auto` finds a plan
//! that avoids it.

use krun::preflight::forecast::Forecast;
use krun::preflight::{
    self, BatchSpec, ForecastOptions, PreflightOptions, Severity, Version, batches,
};

use super::{judge, names, serve};

fn ids(findings: &[preflight::Finding], severity: Severity) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.id.clone())
        .collect()
}

fn zero_ready(forecast: &Forecast) -> Vec<(usize, String)> {
    forecast
        .batches
        .iter()
        .flat_map(|b| {
            b.workloads
                .iter()
                .filter(|w| w.zero_ready)
                .map(move |w| (b.index, w.workload.clone()))
        })
        .collect()
}

#[tokio::test]
async fn two_ingress_nodes_in_one_batch_block_and_auto_keeps_them_apart() {
    let (_server, kube, view) = serve("two-ingress-nodes", 100.0).await;
    let found = judge(&kube, &PreflightOptions::default()).await.unwrap();
    assert_eq!(
        ids(&found, Severity::Block),
        ["critical-without-pdb/ingress-nginx/ingress-nginx-controller"]
    );
    let nodes = names(&["ingress-1", "ingress-2", "worker-1", "worker-2", "worker-3"]);
    let options = ForecastOptions::default();
    let fixed = batches::plan(&view, &[], &nodes, BatchSpec::Fixed(2), &options);
    assert!(fixed.blocked(), "{}", fixed.verdict);
    assert_eq!(
        zero_ready(&fixed),
        [(
            1,
            "DaemonSet ingress-nginx/ingress-nginx-controller".to_owned()
        )]
    );
    assert_eq!(fixed.batches[0].nodes, ["ingress-1", "ingress-2"]);

    let auto = batches::plan(&view, &[], &nodes, BatchSpec::Auto, &options);
    assert!(
        !auto.blocked(),
        "{}",
        preflight::render::forecast(&auto, krun::paint::Paint::PLAIN)
    );
    assert_eq!(auto.violations, 0);
    for batch in &auto.batches {
        let ingress = batch
            .nodes
            .iter()
            .filter(|n| n.starts_with("ingress"))
            .count();
        assert!(ingress <= 1, "batch {} has {:?}", batch.index, batch.nodes);
        assert!(batch.explanation.is_some());
    }
    let planned: usize = auto.batches.iter().map(|b| b.nodes.len()).sum();
    assert_eq!(planned, nodes.len(), "every node is planned exactly once");
}

#[tokio::test]
async fn a_service_whose_replicas_sit_in_one_batch_blocks_and_auto_splits_them() {
    let (_server, _kube, view) = serve("service-in-one-batch", 100.0).await;
    let nodes = names(&["worker-1", "worker-2", "worker-3", "worker-4"]);
    // Drains that evict a workload without a budget all at once.
    let options = ForecastOptions {
        keep_replica: false,
        ..ForecastOptions::default()
    };
    let fixed = batches::plan(&view, &[], &nodes, BatchSpec::Fixed(2), &options);
    assert!(fixed.blocked());
    assert_eq!(
        zero_ready(&fixed)[0],
        (1, "Deployment shop/checkout".to_owned())
    );
    let first = &fixed.batches[0];
    assert_eq!(first.evicted.len(), 3, "{:?}", first.evicted);
    assert!(first.blocks[0].contains("shop/checkout goes to 0 ready"));

    let auto = batches::plan(&view, &[], &nodes, BatchSpec::Auto, &options);
    assert!(
        !auto.blocked(),
        "{}",
        preflight::render::forecast(&auto, krun::paint::Paint::PLAIN)
    );
    assert!(zero_ready(&auto).is_empty());
    assert_eq!(auto.violations, 0);

    // Drains that keep a ready replica (the default): the same fixed plan keeps shop/checkout
    // up, its pods leaving one at a time.
    let kept = batches::plan(
        &view,
        &[],
        &nodes,
        BatchSpec::Fixed(2),
        &ForecastOptions::default(),
    );
    assert!(
        zero_ready(&kept).is_empty(),
        "{}",
        preflight::render::forecast(&kept, krun::paint::Paint::PLAIN)
    );
    assert!(!kept.blocked(), "{}", kept.verdict);
}

#[tokio::test]
async fn prometheus_without_a_pdb_is_a_block_finding_and_auto_never_takes_it_to_zero() {
    let (_server, kube, view) = serve("prometheus-without-pdb", 100.0).await;
    let found = judge(&kube, &PreflightOptions::default()).await.unwrap();
    let prometheus = found
        .iter()
        .find(|f| f.id == "critical-without-pdb/monitoring/prometheus-k8s")
        .expect("Prometheus without a budget is found");
    assert_eq!(prometheus.severity, Severity::Block);
    assert!(prometheus.fix.contains("PodDisruptionBudget"));

    let nodes = names(&["worker-1", "worker-2", "worker-3", "worker-4"]);
    let options = ForecastOptions {
        keep_replica: false,
        ..ForecastOptions::default()
    };
    let fixed = batches::plan(&view, &[], &nodes, BatchSpec::Percent(50), &options);
    assert_eq!(
        zero_ready(&fixed)[0],
        (1, "StatefulSet monitoring/prometheus-k8s".to_owned())
    );
    let kept = batches::plan(
        &view,
        &[],
        &nodes,
        BatchSpec::Percent(50),
        &ForecastOptions::default(),
    );
    assert!(
        zero_ready(&kept).is_empty(),
        "{}",
        preflight::render::forecast(&kept, krun::paint::Paint::PLAIN)
    );
    let auto = batches::plan(&view, &[], &nodes, BatchSpec::Auto, &options);
    assert!(
        !auto.blocked(),
        "{}",
        preflight::render::forecast(&auto, krun::paint::Paint::PLAIN)
    );
    for batch in &auto.batches {
        assert!(
            !(batch.nodes.contains(&"worker-1".to_owned())
                && batch.nodes.contains(&"worker-2".to_owned())),
            "both Prometheus nodes in batch {}",
            batch.index
        );
    }
}

#[tokio::test]
async fn objects_in_removed_api_versions_block_the_target_that_removes_them() {
    let (_server, kube, _view) = serve("removed-api", 100.0).await;
    let options = |target: &str| PreflightOptions {
        target: Version::parse(target),
        ..PreflightOptions::default()
    };
    let found = judge(&kube, &options("1.22.4")).await.unwrap();
    let blocks = ids(&found, Severity::Block);
    // Two minors up from 1.20: kubeadm's own rule for the kubelets blocks too.
    assert_eq!(
        blocks,
        [
            "kubeadm-kubelet-rule/1.22",
            "removed-api/extensions/v1beta1/Ingress/shop/web"
        ]
    );
    let ingress = found
        .iter()
        .find(|f| f.id == "removed-api/extensions/v1beta1/Ingress/shop/web")
        .unwrap();
    assert!(ingress.fix.contains("networking.k8s.io/v1"), "{ingress:?}");
    // Crossing 1.21: the non-root pod without fsGroup.
    assert!(
        ids(&found, Severity::Warn).contains(&"bound-sa-token/Deployment/shop/api".to_owned()),
        "{found:#?}"
    );

    // 1.25 also removes policy/v1beta1 PodSecurityPolicy; 1.21 removes nothing used here.
    let found = judge(&kube, &options("1.25.0")).await.unwrap();
    assert!(
        ids(&found, Severity::Block)
            .contains(&"removed-api/policy/v1beta1/PodSecurityPolicy//restricted".to_owned())
    );
    let found = judge(&kube, &options("1.21.14")).await.unwrap();
    assert!(
        !found.iter().any(|f| f.check() == "removed-api"),
        "{found:#?}"
    );

    // Manifests are read too.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("cron.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\n\
         apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: nightly\n  namespace: shop\n",
    )
    .unwrap();
    let found = judge(
        &kube,
        &PreflightOptions {
            manifests: vec![dir.path().to_path_buf()],
            ..options("1.25.0")
        },
    )
    .await
    .unwrap();
    let cron = found
        .iter()
        .find(|f| {
            f.id.starts_with("removed-api/batch/v1beta1/CronJob/shop/nightly@")
        })
        .expect("the manifest's CronJob is found");
    assert!(cron.id.ends_with("cron.yaml#2"), "{}", cron.id);
    assert_eq!(cron.severity, Severity::Block);
}

#[tokio::test]
async fn accepting_a_finding_by_id_or_check_unblocks_it() {
    let (_server, kube, _view) = serve("two-ingress-nodes", 100.0).await;
    let mut found = judge(&kube, &PreflightOptions::default()).await.unwrap();
    assert!(found.iter().any(preflight::Finding::blocks));
    let unmatched = preflight::accept(
        &mut found,
        &[
            "critical-without-pdb".to_owned(),
            "no-such-check".to_owned(),
        ],
    );
    assert_eq!(unmatched, ["no-such-check"]);
    assert!(!found.iter().any(preflight::Finding::blocks));
    assert!(found.iter().any(|f| f.accepted));
}

#[tokio::test]
async fn auto_sends_a_node_whose_drain_cannot_finish_alone_and_after_the_others() {
    // shop/web's budget allows no disruption: worker-1, worker-3 and worker-4 each hold a web
    // pod its eviction will never free. worker-2 holds none. One zone, so one group.
    let text = std::fs::read_to_string(super::snapshot("service-in-one-batch"))
        .unwrap()
        .replace("    maxUnavailable: 1\n", "    maxUnavailable: 0\n")
        .replace("zone-b", "zone-a")
        .replace("zone-c", "zone-a");
    let (_server, _kube, view) = super::serve_text(&text, 100.0).await;
    let nodes = names(&["worker-1", "worker-2", "worker-3", "worker-4"]);
    let options = ForecastOptions::default();
    let auto = batches::plan(&view, &[], &nodes, BatchSpec::Auto, &options);
    let plan: Vec<Vec<String>> = auto.batches.iter().map(|b| b.nodes.clone()).collect();
    assert_eq!(
        plan,
        [
            names(&["worker-2"]),
            names(&["worker-1"]),
            names(&["worker-3"]),
            names(&["worker-4"])
        ],
        "{}",
        preflight::render::forecast(&auto, krun::paint::Paint::PLAIN)
    );
    assert!(!auto.batches[0].blocked());
    let second = &auto.batches[1];
    assert!(second.blocked());
    let explanation = second.explanation.as_deref().unwrap();
    assert!(
        explanation.starts_with(
            "1 worker node of zone-a; worker-1 goes alone: its drain cannot finish (shop/web-"
        ) && explanation.ends_with("PodDisruptionBudget shop/web needs 3 healthy, has 3)"),
        "{explanation}"
    );
    assert_eq!(second.stuck.len(), 1, "{:?}", second.stuck);
}
