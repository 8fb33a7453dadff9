//! Drain benchmark: krun against `kubectl drain` (1.33) on copies of the same simulated
//! cluster, wall time and API requests (counted by the simulator). Prints figures, asserts
//! only that both drains succeeded. Run by `scripts/bench-drain.sh`; ignored otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use krun::kube::DrainOptions;
use krun::sim::{GenOptions, generate};
use serde_yaml_ng::Value;

use super::support::*;

const NODE: &str = "worker-001";
const TIME_SCALE: f64 = 100.0;

/// A generated cluster (a control plane, three workers, about `pods` pods per worker) with
/// exactly `pods` non-DaemonSet pods on `NODE` (moved there from the other workers), with or
/// without its PodDisruptionBudgets.
fn cluster(pods: usize, seed: u64, keep_budgets: bool) -> String {
    let mut list: Value = serde_yaml_ng::from_str(&generate(&GenOptions {
        nodes: 4,
        pods: pods * 3,
        seed,
        ..GenOptions::default()
    }))
    .unwrap();
    let items = list["items"].as_sequence_mut().unwrap();
    if !keep_budgets {
        items.retain(|i| i["kind"] != "PodDisruptionBudget");
    }
    let movable = |i: &Value| {
        i["kind"] == "Pod"
            && i["metadata"]["ownerReferences"][0]["kind"] != "DaemonSet"
            && i["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| n.starts_with("worker-"))
    };
    let on_node = items
        .iter()
        .filter(|i| movable(i) && i["spec"]["nodeName"] == NODE)
        .count();
    let mut missing = pods.saturating_sub(on_node);
    for item in items.iter_mut() {
        if missing == 0 {
            break;
        }
        if movable(item) && item["spec"]["nodeName"] != NODE {
            item["spec"]["nodeName"] = Value::from(NODE);
            missing -= 1;
        }
    }
    assert_eq!(missing, 0, "the generator made too few pods");
    serde_yaml_ng::to_string(&list).unwrap()
}

/// Drops the budgets that allow no disruption at all (a drain would only time out).
async fn without_blocking_budgets(yaml: &str) -> String {
    let probe = Sim::start(yaml, TIME_SCALE).await;
    let blocking: BTreeSet<(String, String)> = probe
        .kube()
        .pdbs()
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.status.as_ref().is_none_or(|s| s.disruptions_allowed == 0))
        .map(|b| (b.metadata.namespace.unwrap(), b.metadata.name.unwrap()))
        .collect();
    let mut list: Value = serde_yaml_ng::from_str(yaml).unwrap();
    list["items"].as_sequence_mut().unwrap().retain(|i| {
        i["kind"] != "PodDisruptionBudget"
            || !blocking.contains(&(
                i["metadata"]["namespace"].as_str().unwrap().to_owned(),
                i["metadata"]["name"].as_str().unwrap().to_owned(),
            ))
    });
    serde_yaml_ng::to_string(&list).unwrap()
}

struct Figures {
    wall: Duration,
    requests: BTreeMap<String, u64>,
}

impl Figures {
    fn total(&self) -> u64 {
        self.requests.values().sum()
    }
}

async fn run_kubectl(yaml: &str) -> Option<Figures> {
    let sim = Sim::start(yaml, TIME_SCALE).await;
    let kubectl = sim.kubectl("1.33")?;
    sim.handle().reset_request_counts();
    let started = Instant::now();
    let run = kubectl
        .run(&[
            "drain",
            NODE,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=300s",
        ])
        .await;
    let wall = started.elapsed();
    assert_eq!(run.code, 0, "kubectl drain failed:\n{}", run.stderr);
    Some(Figures {
        wall,
        requests: sim.requests(),
    })
}

async fn run_krun(yaml: &str) -> Figures {
    let sim = Sim::start(yaml, TIME_SCALE).await;
    let kube = sim.kube();
    sim.handle().reset_request_counts();
    let mut options = DrainOptions {
        timeout: Some(Duration::from_secs(300)),
        ..DrainOptions::default()
    };
    options.filters.ignore_daemonsets = true;
    options.filters.delete_emptydir_data = true;
    let started = Instant::now();
    let report = kube.drain(NODE, &options, &|_| {}).await;
    let wall = started.elapsed();
    let report = report.unwrap_or_else(|e| panic!("krun drain failed: {e}"));
    assert!(!report.evicted.is_empty());
    Figures {
        wall,
        requests: sim.requests(),
    }
}

fn show(scenario: &str, tool: &str, runs: &[Figures]) {
    let mut walls: Vec<Duration> = runs.iter().map(|f| f.wall).collect();
    walls.sort();
    let median = walls[walls.len() / 2];
    let last = runs.last().unwrap();
    let breakdown: Vec<String> = last
        .requests
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "{scenario:<28} {tool:<8} median {:>7.2}s  (runs: {})  requests {:>5}  [{}]",
        median.as_secs_f64(),
        walls
            .iter()
            .map(|w| format!("{:.2}", w.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        last.total(),
        breakdown.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-drain.sh"]
async fn drain_benchmark() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let scenarios = [
        ("200 pods, no PDBs", cluster(200, 7, false)),
        // Small enough that the replacements fit on the other workers: budgets only wait
        // for replacements that can become Ready.
        (
            "50 pods, PDB-limited",
            without_blocking_budgets(&cluster(50, 7, true)).await,
        ),
    ];
    println!(
        "drain of {NODE} with --ignore-daemonsets --delete-emptydir-data; simulator time scale {TIME_SCALE}"
    );
    for (scenario, yaml) in &scenarios {
        let mut theirs = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..runs {
            if let Some(figures) = run_kubectl(yaml).await {
                theirs.push(figures);
            }
            ours.push(run_krun(yaml).await);
        }
        if !theirs.is_empty() {
            show(scenario, "kubectl", &theirs);
        }
        show(scenario, "krun", &ours);
    }
}
