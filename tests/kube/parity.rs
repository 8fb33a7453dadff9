//! Parity with `kubectl drain` (1.33): the same generated cluster is served twice, kubectl
//! drains one copy and krun the other, with the same flags. Both must attempt to evict the
//! same pods, skip the same DaemonSet pods, refuse the same pods, and leave the node in the
//! same state.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use krun::kube::drain_plan::SkipReason;
use krun::kube::error::DrainCause;
use krun::kube::{DrainEvent, DrainOptions, DrainPlan, KubeError};
use krun::sim::{GenOptions, generate};

use super::support::*;

/// What one drain did, in terms both tools can be compared on.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    succeeded: bool,
    /// Pods an eviction was attempted for.
    evicted: BTreeSet<String>,
    /// DaemonSet pods left in place (only reported when the drain was not refused).
    skipped: BTreeSet<String>,
    /// Pods the drain filters refused.
    refused: BTreeSet<String>,
    /// Pods on the node afterwards.
    remaining: Vec<String>,
    unschedulable: bool,
}

/// `a, b, c` after the last `": "` of a kubectl message line.
fn pod_list(line: &str) -> impl Iterator<Item = String> + '_ {
    line.rsplit_once(": ")
        .map_or("", |(_, pods)| pods)
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

async fn node_state(sim: &Sim, node: &str) -> (Vec<String>, bool) {
    let kube = sim.kube();
    let mut remaining: Vec<String> = kube
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
    remaining.sort();
    let unschedulable = kube.node_info(node).await.unwrap().unschedulable;
    (remaining, unschedulable)
}

async fn kubectl_drain(
    sim: &Sim,
    kubectl: &Kubectl,
    node: &str,
    flags: &[&str],
    timeout: Duration,
) -> Outcome {
    let timeout = format!("--timeout={}s", timeout.as_secs());
    let mut args = vec!["drain", node, &timeout];
    args.extend(flags);
    let run = kubectl.run(&args).await;
    let mut outcome = Outcome {
        succeeded: run.code == 0,
        evicted: BTreeSet::new(),
        skipped: BTreeSet::new(),
        refused: BTreeSet::new(),
        remaining: Vec::new(),
        unschedulable: false,
    };
    for line in run.stdout.lines() {
        if let Some(pod) = line.strip_prefix("evicting pod ") {
            outcome.evicted.insert(pod.to_owned());
        }
    }
    for line in run.stderr.lines() {
        if let Some(warnings) = line.strip_prefix("Warning: ") {
            for warning in warnings.split("; ") {
                if warning.starts_with("ignoring DaemonSet-managed Pods") {
                    outcome.skipped.extend(pod_list(warning));
                }
            }
        }
        if line.starts_with("cannot delete ") {
            outcome.refused.extend(pod_list(line));
        }
    }
    assert!(
        outcome.succeeded || !outcome.refused.is_empty() || run.stderr.contains("global timeout"),
        "kubectl failed for another reason:\n{}",
        run.stderr
    );
    (outcome.remaining, outcome.unschedulable) = node_state(sim, node).await;
    outcome
}

async fn krun_drain(sim: &Sim, node: &str, options: &DrainOptions) -> Outcome {
    let plan: Arc<Mutex<Option<DrainPlan>>> = Arc::default();
    let seen = Arc::clone(&plan);
    let result = sim
        .kube()
        .drain(node, options, &move |event| {
            if let DrainEvent::Planned { plan } = event {
                *seen.lock().unwrap() = Some(plan);
            }
        })
        .await;
    let plan = plan.lock().unwrap().clone().expect("the drain planned");
    let refused: BTreeSet<String> = plan.refused().map(|(p, _)| p.to_string()).collect();
    let mut outcome = Outcome {
        succeeded: result.is_ok(),
        evicted: if refused.is_empty() {
            plan.to_evict().map(ToString::to_string).collect()
        } else {
            BTreeSet::new()
        },
        skipped: if refused.is_empty() {
            plan.skipped()
                .filter(|(_, reason)| matches!(reason, SkipReason::DaemonSet { .. }))
                .map(|(p, _)| p.to_string())
                .collect()
        } else {
            BTreeSet::new()
        },
        refused,
        remaining: Vec::new(),
        unschedulable: false,
    };
    if let Err(error) = &result {
        let KubeError::DrainFailed(failed) = error else {
            panic!("krun failed for another reason: {error}");
        };
        assert!(
            matches!(
                failed.cause,
                DrainCause::Refused(_) | DrainCause::TimedOut(_)
            ),
            "krun failed for another reason: {error}"
        );
    }
    (outcome.remaining, outcome.unschedulable) = node_state(sim, node).await;
    outcome
}

fn options(flags: &[&str], timeout: Duration) -> DrainOptions {
    let mut options = DrainOptions {
        timeout: Some(timeout),
        ..DrainOptions::default()
    };
    for flag in flags {
        match *flag {
            "--ignore-daemonsets" => options.filters.ignore_daemonsets = true,
            "--delete-emptydir-data" => options.filters.delete_emptydir_data = true,
            "--force" => options.filters.force = true,
            other => panic!("unknown flag {other}"),
        }
    }
    options
}

fn generated(seed: u64) -> String {
    generate(&GenOptions {
        nodes: 5,
        pods: 50,
        seed,
        ..GenOptions::default()
    })
}

/// Drains `node` of `cluster` with kubectl and with krun, and compares. Returns whether the
/// drain went through (so callers can try more flags).
async fn compare(cluster: &str, node: &str, flags: &[&str], timeout: Duration) -> bool {
    let theirs = Sim::start(cluster, 100.0).await;
    let ours = Sim::start(cluster, 100.0).await;
    let Some(kubectl) = theirs.kubectl("1.33") else {
        return true;
    };
    let options = options(flags, timeout);
    let (expected, actual) = tokio::join!(
        kubectl_drain(&theirs, &kubectl, node, flags, timeout),
        krun_drain(&ours, node, &options)
    );
    assert_eq!(
        actual, expected,
        "node {node}, flags {flags:?}: krun (left) differs from kubectl (right)"
    );
    assert!(actual.unschedulable);
    eprintln!(
        "{node} {flags:?}: succeeded {}, {} evicted, {} skipped, {} refused, {} remain",
        expected.succeeded,
        expected.evicted.len(),
        expected.skipped.len(),
        expected.refused.len(),
        expected.remaining.len()
    );
    expected.succeeded
}

const USUAL: [&str; 2] = ["--ignore-daemonsets", "--delete-emptydir-data"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_like_kubectl_on_generated_clusters() {
    let timeout = Duration::from_secs(20);
    for (seed, node) in [(1, "worker-001"), (2, "worker-002"), (3, "worker-001")] {
        let cluster = generated(seed);
        assert!(
            !compare(&cluster, node, &[], timeout).await,
            "refused without flags"
        );
        assert!(
            compare(&cluster, node, &USUAL, timeout).await,
            "seed {seed}: the usual flags drain a generated worker"
        );
    }
}

/// A pod manifest for `node`, added to a generated cluster.
fn extra_pod(name: &str, node: &str, extra: &str) -> serde_yaml_ng::Value {
    let text = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  uid: 00000000-0000-4000-f000-{:012}
  creationTimestamp: \"2024-03-01T10:00:00Z\"
spec:
  nodeName: {node}
  containers:
  - name: main
    image: docker.io/library/busybox:1.36
{extra}",
        name.len() * 7919
    );
    serde_yaml_ng::from_str(&text).unwrap()
}

/// A generated cluster with the awkward cases a drain meets: a bare pod with scratch space,
/// a finished bare pod, a pod of a DaemonSet that no longer exists, and a budget that
/// allows no disruption at all.
fn awkward_cluster(seed: u64, node: &str) -> String {
    let mut list: serde_yaml_ng::Value = serde_yaml_ng::from_str(&generated(seed)).unwrap();
    let running =
        "status:\n  phase: Running\n  conditions:\n  - type: Ready\n    status: \"True\"\n";
    let items = list["items"].as_sequence_mut().unwrap();
    items.push(extra_pod(
        "scratch",
        node,
        &format!("  volumes:\n  - name: tmp\n    emptyDir: {{}}\n{running}"),
    ));
    items.push(extra_pod(
        "migration-done",
        node,
        "status:\n  phase: Succeeded\n",
    ));
    let mut ghost = extra_pod("ghost-agent", node, running);
    ghost["metadata"]["ownerReferences"] = serde_yaml_ng::from_str(
        "- {apiVersion: apps/v1, kind: DaemonSet, name: ghost, uid: 00000000-0000-4000-f000-00000000dead, controller: true}",
    )
    .unwrap();
    items.push(ghost);
    let replicas = items
        .iter()
        .find(|i| i["kind"] == "Deployment" && i["metadata"]["name"] == "checkout-api-0")
        .map(|d| d["spec"]["replicas"].clone())
        .expect("the generated cluster has checkout-api-0");
    let budget = items
        .iter_mut()
        .find(|i| i["kind"] == "PodDisruptionBudget" && i["metadata"]["name"] == "checkout-api-0")
        .expect("checkout-api-0 has a budget");
    budget["spec"]["minAvailable"] = replicas;
    serde_yaml_ng::to_string(&list).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_forces_and_times_out_like_kubectl() {
    let node = "worker-001";
    let cluster = awkward_cluster(4, node);
    let timeout = Duration::from_secs(8);
    assert!(
        !compare(&cluster, node, &USUAL, timeout).await,
        "refused without force"
    );
    let forced = [&USUAL[..], &["--force"]].concat();
    assert!(
        !compare(&cluster, node, &forced, timeout).await,
        "the zero-disruption budget holds until the timeout"
    );
}
