//! Figures for the simulator on a cluster the size of the largest in the field reports:
//! generation, load time, memory, `kubectl get pods -A` latency and eviction throughput.
//!
//! Run with `cargo bench --bench sim` (release build). Sizes can be changed with
//! `SIM_BENCH_NODES` and `SIM_BENCH_PODS`. Prints figures; asserts nothing about time.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use krun::sim::{Cluster, GenOptions, Server, SimOptions, generate};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

#[path = "support/measure.rs"]
mod measure;
use measure::{env_usize, memory};

fn kubectl() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    let dispatcher = std::env::split_paths(&paths)
        .map(|p| p.join("kubectl"))
        .find(|p| p.is_file())?;
    let real = std::fs::canonicalize(dispatcher).ok()?;
    let candidate = real.parent()?.join("kubectl.1.33");
    candidate.is_file().then_some(candidate)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes = env_usize("SIM_BENCH_NODES", 500);
    let pods = env_usize("SIM_BENCH_PODS", 20_000);
    println!("simulator benchmark: {nodes} nodes, {pods} pods");

    let start = Instant::now();
    let text = generate(&GenOptions {
        nodes,
        pods,
        seed: 1,
        ..GenOptions::default()
    });
    println!(
        "generate:               {:>8.2} s  ({:.1} MiB of YAML)",
        start.elapsed().as_secs_f64(),
        text.len() as f64 / 1048576.0
    );
    let (rss_before, _) = memory();

    let start = Instant::now();
    let cluster = Cluster::load(&text).expect("the generated cluster loads");
    let parsed = start.elapsed();
    let options = SimOptions {
        time_scale: 1000.0,
        startup_delay: Duration::from_secs(5),
        ..SimOptions::default()
    };
    let server = Server::start(cluster, options)
        .await
        .expect("the simulator starts");
    let loaded = start.elapsed();
    println!("load (parse):           {:>8.2} s", parsed.as_secs_f64());
    println!("load (parse + start):   {:>8.2} s", loaded.as_secs_f64());
    drop(text);
    let (rss, peak) = memory();
    println!(
        "resident memory:        {rss:>8.0} MiB  (before load {rss_before:.0} MiB, peak {peak:.0} MiB incl. the YAML text)"
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    match kubectl() {
        Some(kubectl) => {
            for args in [
                &["get", "pods", "-A"][..],
                &["get", "pods", "-A", "-o", "wide"],
                &["get", "pods", "-A", "-o", "json"],
                // One request instead of kubectl's 40 pages of 500, which its client-side
                // limit of 5 requests a second spreads over 6 s against any server.
                &["get", "pods", "-A", "--chunk-size=0"],
            ] {
                let mut times = Vec::new();
                let mut lines = 0;
                for _ in 0..3 {
                    let start = Instant::now();
                    let output = Command::new(&kubectl)
                        .arg("--kubeconfig")
                        .arg(&kubeconfig)
                        .arg("--cache-dir")
                        .arg(dir.path().join("cache"))
                        .args(args)
                        .env("HOME", dir.path())
                        .output()
                        .expect("kubectl runs");
                    times.push(start.elapsed().as_secs_f64());
                    assert!(
                        output.status.success(),
                        "{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    lines = output.stdout.iter().filter(|b| **b == b'\n').count();
                }
                let shown: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
                println!(
                    "kubectl {:<22} {} s  ({lines} lines)",
                    args.join(" "),
                    shown.join(" / ")
                );
            }
        }
        None => println!("kubectl.1.33 not found beside kubectl on PATH: latency not measured"),
    }

    // Evictions: every pod of the team namespaces, 16 in flight; 429s are counted, not retried.
    let client = kube::Client::try_from(server.kube_config()).expect("client");
    let all: Api<Pod> = Api::all(client.clone());
    // Names only: the figure at the end is the simulator's memory, not the client's copy.
    let targets: Vec<(String, String)> = all
        .list_metadata(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|p| {
            let namespace = p.metadata.namespace?;
            namespace
                .starts_with("team-")
                .then_some((namespace, p.metadata.name?))
        })
        .collect();
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    futures::stream::iter(targets.clone())
        .for_each_concurrent(16, |(namespace, name)| {
            let client = client.clone();
            let accepted = accepted.clone();
            let refused = refused.clone();
            async move {
                let pods: Api<Pod> = Api::namespaced(client, &namespace);
                let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}});
                match pods.create_subresource::<_, Value>("eviction", &name, &PostParams::default(), &eviction).await {
                    Ok(_) => accepted.fetch_add(1, Ordering::Relaxed),
                    Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "evictions:              {:>8.0} /s accepted  ({accepted} accepted, {} refused by PDBs, {} requests in {elapsed:.2} s = {:.0} requests/s)",
        accepted as f64 / elapsed,
        refused.load(Ordering::Relaxed),
        targets.len(),
        targets.len() as f64 / elapsed
    );
    let (rss, peak) = memory();
    println!("resident memory at end: {rss:>8.0} MiB  (peak {peak:.0} MiB)");
    server.shutdown().await;
}
