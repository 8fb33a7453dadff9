//! A `cordon → drain → uncordon` playbook through the `krun` binary against the simulator:
//! dry-run changes nothing and shows the drain plan; a real run drains and uncordons.

use super::support::*;
use crate::cli::Krun;

const PLAYBOOK: &str = r#"
let info = node_info(node);
log(`${node.name}: kubelet ${info.kubelet_version}, unschedulable ${info.unschedulable}`);
cordon(node);
let report = drain(node, #{ ignore_daemonsets: true, delete_emptydir_data: true, force: true, timeout: "5m" });
uncordon(node);
wait_ready(node, "1m");
"#;

fn files(sim: &Sim) -> (std::path::PathBuf, std::path::PathBuf) {
    let playbook = sim.dir.path().join("drain.rhai");
    std::fs::write(&playbook, PLAYBOOK).unwrap();
    let inventory = sim.dir.path().join("inventory.toml");
    std::fs::write(&inventory, "[nodes.worker-1]\nhost = \"127.0.0.1\"\n").unwrap();
    (playbook, inventory)
}

async fn krun(args: Vec<String>) -> crate::cli::Output {
    tokio::task::spawn_blocking(move || Krun::new().args(args).run())
        .await
        .unwrap()
}

fn args(sim: &Sim, extra: &[&str]) -> Vec<String> {
    let (playbook, inventory) = files(sim);
    let mut args: Vec<String> = vec![
        playbook.display().to_string(),
        "--inventory".into(),
        inventory.display().to_string(),
        "--kubeconfig".into(),
        sim.kubeconfig.display().to_string(),
        "--node".into(),
        "worker-1".into(),
        "--output".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn pods_on_worker_1(sim: &Sim) -> Vec<String> {
    let kube = sim.kube();
    let runtime = tokio::runtime::Handle::current();
    let pods = std::thread::spawn(move || runtime.block_on(kube.pods_on("worker-1")))
        .join()
        .unwrap()
        .unwrap();
    let mut names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_the_drain_and_changes_nothing() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let before = pods_on_worker_1(&sim);
    let out = krun(args(&sim, &["--dry-run"])).await;
    out.code(0);
    assert_eq!(pods_on_worker_1(&sim), before, "a dry-run evicted pods");
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    let actions: Vec<&str> = steps
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["node_info", "cordon", "drain", "uncordon", "wait_ready"]
    );
    assert!(
        steps
            .iter()
            .all(|s| s["access"] == "read" || s["executed"] == false)
    );
    let drain = &steps[2];
    assert_eq!(
        drain["command"],
        "kubectl drain worker-1 --ignore-daemonsets --delete-emptydir-data --force --timeout=5m"
    );
    let plan = serde_json::to_string(&drain["data"]).unwrap();
    assert!(plan.contains("web-5d8f7c9b4-k2x7p"), "{plan}");
    let evictions = drain["data"]["evictions"].as_array().unwrap();
    assert!(
        evictions
            .iter()
            .all(|e| e["answer"]["answer"] == "accepted"),
        "{plan}"
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&drain["data"]).unwrap());
    let node = sim.kube();
    let runtime = tokio::runtime::Handle::current();
    let unschedulable = std::thread::spawn(move || runtime.block_on(node.node_info("worker-1")))
        .join()
        .unwrap()
        .unwrap()
        .unschedulable;
    assert!(!unschedulable, "a dry-run cordoned the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_drains_and_uncordons() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let out = krun(args(&sim, &[])).await;
    out.code(0);
    let remaining = pods_on_worker_1(&sim);
    assert!(
        remaining.iter().all(|p| p.starts_with("kube-proxy")),
        "pods left on worker-1: {remaining:?}"
    );
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["executed"] == true), "{steps:#?}");
    assert_eq!(steps[1]["data"]["changed"], true);
    let drain = &steps[2]["data"];
    assert!(
        !drain["evicted"].as_array().unwrap().is_empty(),
        "{drain:#}"
    );
    assert!(
        sim.requests()
            .get("create pods/eviction")
            .copied()
            .unwrap_or(0)
            > 0
    );
    let node = sim.kube();
    let runtime = tokio::runtime::Handle::current();
    let info = std::thread::spawn(move || runtime.block_on(node.node_info("worker-1")))
        .join()
        .unwrap()
        .unwrap();
    assert!(!info.unschedulable, "the node was left cordoned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_come_from_the_cluster_when_the_inventory_lacks_them() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let (playbook, _) = files(&sim);
    let base = vec![
        playbook.display().to_string(),
        "--kubeconfig".into(),
        sim.kubeconfig.display().to_string(),
    ];
    let mut args = base.clone();
    args.extend(["--node", "worker-2", "--dry-run", "--output", "json"].map(String::from));
    let out = krun(args).await;
    out.code(0)
        .stderr_has("node worker-2 is not in the inventory; the cluster says it is at");
    assert_eq!(out.json()["nodes"][0]["status"], "ok");

    let mut args = base;
    args.extend(["--node", "worker-9", "--dry-run"].map(String::from));
    krun(args)
        .await
        .code(2)
        .stderr_has("unknown node `worker-9`")
        .stderr_has("does not have it either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_drains_a_simulated_copy() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("cluster.yaml");
    std::fs::write(&snapshot, DRAIN_CLUSTER).unwrap();
    let playbook = dir.path().join("drain.rhai");
    std::fs::write(&playbook, PLAYBOOK).unwrap();
    let args: Vec<String> = [
        playbook.display().to_string(),
        "--rehearse".into(),
        snapshot.display().to_string(),
        "--node".into(),
        "worker-1".into(),
        "--output".into(),
        "json".into(),
    ]
    .to_vec();
    let out = krun(args).await;
    out.code(0);
    let json = out.json();
    assert_eq!(json["dry_run"], true);
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    // In the simulated copy the drain really happened: pods were evicted and replaced.
    assert!(steps.iter().all(|s| s["executed"] == true), "{steps:#?}");
    let evicted: Vec<&str> = steps[2]["data"]["evicted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pod"]["name"].as_str().unwrap())
        .collect();
    for pod in ["web-5d8f7c9b4-k2x7p", "web-5d8f7c9b4-m4q9z"] {
        assert!(evicted.contains(&pod), "{pod} not evicted: {evicted:?}");
    }
    // The snapshot file itself is untouched.
    assert_eq!(std::fs::read_to_string(&snapshot).unwrap(), DRAIN_CLUSTER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_drain_names_its_node_left_cordoned() {
    // A budget that allows no disruption: the drain cordons, then cannot evict.
    let cluster = DRAIN_CLUSTER.replace("minAvailable: 2", "minAvailable: 3");
    let sim = Sim::start(&cluster, 100.0).await;
    // krun judges the run first and would refuse the blocked drain; accepted, the drain runs
    // into the budget as it would have without the judgement.
    let json_args = args(
        &sim,
        &["--accept", "pdb-zero-disruptions", "--accept", "forecast"],
    );
    // The playbook drains without cordoning first.
    std::fs::write(
        &json_args[0],
        "drain(node, #{ ignore_daemonsets: true, delete_emptydir_data: true, force: true, timeout: \"3s\" });\n",
    )
    .unwrap();
    let out = krun(json_args.clone()).await;
    // A drain held by a budget is refused by a guard (exit 3).
    out.code(3).stderr_has("worker-1 is left CORDONED");
    let json = out.json();
    assert_eq!(
        json["nodes"][0]["failure"]["left_cordoned"],
        serde_json::json!(["worker-1"]),
        "{json:#}"
    );
    let node = sim.kube();
    let runtime = tokio::runtime::Handle::current();
    let info = std::thread::spawn(move || runtime.block_on(node.node_info("worker-1")))
        .join()
        .unwrap()
        .unwrap();
    assert!(info.unschedulable, "the drain did not cordon");

    // Again with the node already cordoned, in the text summary.
    let at = json_args.iter().position(|a| a == "--output").unwrap();
    let mut text_args = json_args.clone();
    text_args.drain(at..at + 2);
    let out = krun(text_args).await;
    out.code(3).stdout_has("worker-1 is left CORDONED");
}

/// A dry-run asks the server about the drain as the real one would, with the same filters: a
/// pod the drain would refuse (here one no controller manages, without `force`) is shown with
/// its reason and the dry-run exits 3, as the real run would fail after cordoning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_pod_a_drain_would_refuse_and_exits_3() {
    // A pod someone started by hand on worker-1: no controller would bring it back.
    let by_hand = "- apiVersion: v1
  kind: Pod
  metadata:
    creationTimestamp: \"2024-03-01T09:00:00Z\"
    name: debug-shell
    namespace: shop
    uid: 00000000-0000-4000-b000-0000000000ff
  spec:
    containers:
    - image: registry.example.com/tools/shell:1
      name: shell
    nodeName: worker-1
  status:
    conditions:
    - lastTransitionTime: \"2024-03-01T09:00:20Z\"
      status: \"True\"
      type: Ready
    phase: Running
kind: List
";
    let cluster = DRAIN_CLUSTER.replacen("kind: List\n", by_hand, 1);
    let sim = Sim::start(&cluster, 100.0).await;
    let before = pods_on_worker_1(&sim);
    let json_args = args(&sim, &["--dry-run"]);
    std::fs::write(
        &json_args[0],
        "cordon(node);\ndrain(node, #{ ignore_daemonsets: true, delete_emptydir_data: true, timeout: \"5m\" });\nuncordon(node);\n",
    )
    .unwrap();
    let out = krun(json_args.clone()).await;
    out.code(3);
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    let drain = steps
        .iter()
        .find(|s| s["action"] == "drain")
        .expect("the drain is in the plan");
    let refused = serde_json::to_string(&drain["data"]).unwrap();
    assert!(refused.contains("shop/debug-shell"), "{refused}");
    assert!(
        !steps.iter().any(|s| s["action"] == "uncordon"),
        "the plan goes on past a drain that would fail: {steps:#?}"
    );
    assert_eq!(pods_on_worker_1(&sim), before, "a dry-run evicted pods");
    assert_eq!(
        sim.requests()
            .get("create pods/eviction")
            .copied()
            .unwrap_or(0),
        0,
        "a dry-run posted an eviction"
    );

    // The text plan names the pod and why, under the drain.
    let at = json_args.iter().position(|a| a == "--output").unwrap();
    let mut text_args = json_args;
    text_args.drain(at..at + 2);
    let out = krun(text_args).await;
    out.code(3);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("shop/debug-shell"), "{said}");
    assert!(said.contains("force"), "{said}");
}
