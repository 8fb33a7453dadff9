//! Latency figures for the etcd operations on a loopback cluster. Prints, never asserts on
//! time: `cargo test --test integration etcd::bench -- --ignored --nocapture`.

use std::future::Future;
use std::time::{Duration, Instant};

use super::healthy_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn print_operation_latencies() {
    let Some((cluster, client)) = healthy_cluster(3).await else {
        return;
    };
    // About 1 MB of keys, so the snapshot figure means something.
    let mut kv =
        crate::support::etcd_kv::Kv::connect(&cluster.client_urls()[0], Duration::from_secs(10));
    let value = "x".repeat(500);
    for k in 0..2000 {
        kv.put(&format!("/bench/{k:06}"), &value).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let rows = [
        (
            "members",
            time(50, || async {
                assert_eq!(client.members().await.unwrap().len(), 3)
            })
            .await,
        ),
        (
            "status (3 endpoints)",
            time(50, || async {
                assert!(client.status().await.iter().all(|s| s.result.is_ok()))
            })
            .await,
        ),
        (
            "health (3 endpoints)",
            time(50, || async {
                assert!(client.health().await.iter().all(|h| h.is_healthy()))
            })
            .await,
        ),
        (
            "cluster_view",
            time(50, || async {
                assert!(client.cluster_view().await.unwrap().is_fully_healthy())
            })
            .await,
        ),
        (
            "snapshot to file",
            time(10, || async {
                client.snapshot(&path).await.unwrap();
            })
            .await,
        ),
    ];
    println!("etcd operations against 3 etcd 3.4 members on loopback (median / max):");
    for (name, (median, max)) in rows {
        println!("  {name:<22} {median:>10.2?} / {max:>10.2?}");
    }
    println!(
        "  snapshot size          {} bytes",
        std::fs::metadata(&path).unwrap().len()
    );
}

async fn time<F, Fut>(runs: usize, mut op: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        op().await;
        took.push(started.elapsed());
    }
    took.sort();
    (took[runs / 2], took[runs - 1])
}
