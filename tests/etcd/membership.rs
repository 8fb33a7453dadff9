//! Replacing a member the safe way: remove, wipe, add as learner, start, promote; then move
//! the leader onto it.

use std::time::{Duration, Instant};

use krun::etcd::{Client, GuardMode, MemberId};

use super::{HEALTHY_WITHIN, healthy_cluster};
use crate::support::etcd::etcd34;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a_member_then_move_the_leader_to_it() {
    let Some((mut cluster, client)) = healthy_cluster(3).await else {
        return;
    };
    let etcd = etcd34().unwrap();

    let removed = client
        .remove_member("m2", GuardMode::Enforce)
        .await
        .unwrap();
    assert!(!removed.approval.was_overridden());
    let a = &removed.approval.arithmetic;
    assert_eq!(
        (
            a.voters_before,
            a.voters_after,
            a.healthy_voters_after,
            a.quorum_after
        ),
        (3, 2, 2, 2)
    );
    let names: std::collections::BTreeSet<&str> = removed
        .members_after
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["m0", "m1"].into());
    assert_eq!(cluster.etcdctl_members().len(), 2);

    // The removed member shuts itself down; its data must not be reused.
    cluster.stop("m2");
    cluster.wipe("m2");
    // If m2 led, the others elect a new leader first: one step at a time, healthy in between.
    client.wait_healthy(HEALTHY_WITHIN).await.unwrap();

    let peer = cluster.member("m2").peer_url.clone();
    let added = client
        .add_member("m2", std::slice::from_ref(&peer), true, GuardMode::Enforce)
        .await
        .unwrap();
    let new = added.added.clone().expect("etcd reports the new member");
    assert!(new.is_learner && !new.is_started(), "{new:?}");
    assert_eq!(new.peer_urls, std::slice::from_ref(&peer));
    let initial = added.initial_cluster.clone().unwrap();
    for name in ["m0", "m1", "m2"] {
        let url = &cluster.member(name).peer_url;
        assert!(
            initial
                .split(',')
                .any(|entry| entry == format!("{name}={url}")),
            "{initial}"
        );
    }
    let listed = cluster.etcdctl_members();
    assert!(
        listed.contains(&(new.id.to_string(), String::new(), true)),
        "{listed:?}"
    );

    cluster.spawn("m2", &etcd, &initial, "existing");
    // By id: the name appears only once the learner has started and published it.
    let promoted = client
        .promote(&new.id.to_string(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!promoted.already_voter && !promoted.member.is_learner);
    eprintln!(
        "promotion needed {} not-in-sync retries",
        promoted.not_ready_retries
    );
    client.wait_healthy(HEALTHY_WITHIN).await.unwrap();
    let listed = cluster.etcdctl_members();
    let voters: Vec<(&str, bool)> = listed.iter().map(|m| (m.1.as_str(), m.2)).collect();
    assert_eq!(voters, [("m0", false), ("m1", false), ("m2", false)]);
    assert_eq!(listed[2].0, new.id.to_string());

    // Promoting again is a no-op, not an error.
    assert!(
        client
            .promote("m2", Duration::from_secs(5))
            .await
            .unwrap()
            .already_voter
    );

    let moved = client.move_leader("m2").await.unwrap();
    assert!(!moved.already_leader);
    assert_eq!(moved.to.id, new.id);
    wait_for_leader(&client, new.id).await;
    assert!(client.move_leader("m2").await.unwrap().already_leader);
}

/// Followers learn of a new leader with its next heartbeat; give them that moment.
async fn wait_for_leader(client: &Client, expected: MemberId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders: Vec<Option<MemberId>> = client
            .status()
            .await
            .iter()
            .map(|s| s.result.as_ref().ok().map(|s| s.leader))
            .collect();
        if leaders.iter().all(|l| *l == Some(expected)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leader never became {expected}: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
