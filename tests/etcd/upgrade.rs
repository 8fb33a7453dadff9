//! A real in-place rolling upgrade from etcd 3.4 to 3.5, driven by krun's operations, while a
//! writer keeps writing: every acknowledged key must be there afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{HEALTHY_WITHIN, healthy_cluster};
use crate::support::etcd::etcd35;
use crate::support::etcd_kv::Kv;

pub(crate) const PREFIX: &str = "/upgrade-writer/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_from_3_4_to_3_5_loses_no_acknowledged_write() {
    let Some(etcd35) = etcd35() else { return };
    let Some((mut cluster, client)) = healthy_cluster(3).await else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    client
        .snapshot(&dir.path().join("before-upgrade.db"))
        .await
        .unwrap();

    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until_stopped(
        cluster.client_urls(),
        acked.clone(),
        stop.clone(),
    ));

    for name in ["m0", "m1", "m2"] {
        client.wait_healthy(HEALTHY_WITHIN).await.unwrap();
        let members = client.members().await.unwrap();
        let id = members.iter().find(|m| m.name == name).unwrap().id;
        let status = client.status().await;
        let leader = status
            .iter()
            .find_map(|s| s.result.as_ref().ok())
            .unwrap()
            .leader;
        if leader == id {
            // Hand leadership away first, so stopping the member costs no election.
            let other = members.iter().find(|m| m.id != id).unwrap();
            client.move_leader(&other.name).await.unwrap();
        }

        cluster.stop(name);
        // With one member down the other two keep quorum: writes must still be acknowledged.
        let before = acked.load(Ordering::SeqCst);
        wait_until(&format!("writes continue with {name} down"), || {
            acked.load(Ordering::SeqCst) >= before + 20
        })
        .await;

        cluster.restart_with(name, &etcd35);
        client.wait_healthy(HEALTHY_WITHIN).await.unwrap();
        let upgraded = client
            .status()
            .await
            .into_iter()
            .find(|s| s.endpoint == cluster.member(name).client_url);
        let version = upgraded.unwrap().result.unwrap().version;
        assert!(version.starts_with("3.5."), "{name} runs {version}");
    }

    let before = acked.load(Ordering::SeqCst);
    wait_until("writes continue after the upgrade", || {
        acked.load(Ordering::SeqCst) >= before + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert_eq!(written, acked.load(Ordering::SeqCst));

    for status in client.status().await {
        let status = status.result.unwrap();
        assert!(status.version.starts_with("3.5."), "{status:?}");
    }
    // Every acknowledged key is present, read linearizably from the upgraded cluster.
    let keys = crate::support::etcd_kv::keys_with_prefix(&cluster.client_urls(), PREFIX).await;
    let missing: Vec<u64> = (0..written).filter(|i| !keys.contains(&key(*i))).collect();
    assert!(
        missing.is_empty(),
        "{} of {written} acknowledged writes lost: {missing:?}",
        missing.len()
    );
    eprintln!("rolling upgrade: {written} writes acknowledged during the upgrade, none lost");
}

pub(crate) fn key(i: u64) -> String {
    format!("{PREFIX}{i:08}")
}

/// Writes key after key, each retried (on the next endpoint) until acknowledged, and counts
/// acknowledgements. Returns how many keys were acknowledged.
pub(crate) async fn write_until_stopped(
    endpoints: Vec<String>,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut clients: Vec<Kv> = endpoints
        .iter()
        .map(|endpoint| Kv::connect(endpoint, Duration::from_secs(2)))
        .collect();
    let mut next = 0;
    let mut turn = 0;
    while !stop.load(Ordering::SeqCst) {
        let count = clients.len();
        let client = &mut clients[turn % count];
        let name = key(next);
        let put = client.put(&name, "v");
        match tokio::time::timeout(Duration::from_secs(3), put).await {
            Ok(Ok(_)) => {
                next += 1;
                acked.store(next, Ordering::SeqCst);
            }
            _ => {
                turn += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    next
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
