//! Membership, status, health and snapshots of a real three-member cluster.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use krun::etcd::{EtcdError, Health, MemberId};

use super::{HEALTHY_WITHIN, healthy_cluster};
use crate::support::etcd::{etcd34, etcdctl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_status_and_health_match_the_cluster() {
    let Some((cluster, client)) = healthy_cluster(3).await else {
        return;
    };

    let members = client.members().await.unwrap();
    let mut listed: Vec<(String, String, bool)> = members
        .iter()
        .map(|m| (m.id.to_string(), m.name.clone(), m.is_learner))
        .collect();
    listed.sort_by(|a, b| a.1.cmp(&b.1));
    // etcdctl prints ids in decimal; krun's hex ids must be the same numbers.
    assert_eq!(listed, cluster.etcdctl_members());
    for m in &members {
        let spawned = cluster.member(&m.name);
        assert_eq!(m.client_urls, std::slice::from_ref(&spawned.client_url));
        assert_eq!(m.peer_urls, std::slice::from_ref(&spawned.peer_url));
    }
    let ids: BTreeSet<MemberId> = members.iter().map(|m| m.id).collect();

    let statuses = client.status().await;
    assert_eq!(
        statuses
            .iter()
            .map(|s| s.endpoint.clone())
            .collect::<Vec<_>>(),
        cluster.client_urls()
    );
    let statuses: Vec<_> = statuses
        .iter()
        .map(|s| s.result.as_ref().expect("every member answers"))
        .collect();
    let answered: BTreeSet<MemberId> = statuses.iter().map(|s| s.member_id).collect();
    assert_eq!(answered, ids, "each endpoint is a different member");
    let leader = statuses[0].leader;
    assert!(ids.contains(&leader), "leader {leader} is a member");
    assert_eq!(statuses.iter().filter(|s| s.is_leader()).count(), 1);
    for s in &statuses {
        assert!(s.version.starts_with("3.4."), "{}", s.version);
        assert_eq!(s.leader, leader, "all members follow the same leader");
        assert!(s.raft_term >= 1 && s.raft_index > 0, "{s:?}");
        assert!(
            s.db_size > 0 && !s.is_learner && s.errors.is_empty(),
            "{s:?}"
        );
    }
    let json = serde_json::to_value(client.status().await).unwrap();
    assert_eq!(
        json[0]["status"]["leader"],
        leader.to_string(),
        "ids serialize as hex"
    );
    assert!(json[0]["error"].is_null());

    let health = client.health().await;
    assert_eq!(health.len(), 3);
    for h in &health {
        assert!(h.is_healthy(), "{h:?}");
        assert!(h.member_id.is_some_and(|id| ids.contains(&id)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_is_reported_as_that_member() {
    let Some((mut cluster, client)) = healthy_cluster(3).await else {
        return;
    };
    let m0 = cluster.member("m0").client_url.clone();
    let m0_id = client
        .members()
        .await
        .unwrap()
        .iter()
        .find(|m| m.name == "m0")
        .unwrap()
        .id;
    cluster.stop("m0");

    // m0 is the first endpoint: the member list comes from the next one.
    assert_eq!(client.members().await.unwrap().len(), 3);

    let statuses = client.status().await;
    let err = statuses[0].result.as_ref().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("etcd endpoint {m0}: status failed: "))
            && err.contains("Connection refused")
            && !err.contains("transport error"),
        "{err}"
    );
    assert!(statuses[1].result.is_ok() && statuses[2].result.is_ok());
    let json = serde_json::to_value(&statuses).unwrap();
    assert!(json[0]["status"].is_null() && json[0]["error"].as_str().unwrap().contains(&m0));

    let health = client.health().await;
    assert_eq!(
        health.iter().map(|h| h.is_healthy()).collect::<Vec<_>>(),
        [false, true, true]
    );

    let view = client.cluster_view().await.unwrap();
    for state in &view.members {
        match (&state.member.name[..], &state.health) {
            ("m0", Health::Unhealthy(why)) => assert!(why.contains(&m0), "{why}"),
            ("m0", Health::Healthy) => panic!("stopped m0 reported healthy"),
            (_, health) => assert_eq!(health, &Health::Healthy, "{}", state.member.name),
        }
    }

    let err = client
        .wait_healthy(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, EtcdError::NotHealthy { .. }), "{err}");
    assert!(err.to_string().contains(&format!("m0 ({m0_id})")), "{err}");

    cluster.restart_with("m0", &etcd34().unwrap());
    client.wait_healthy(HEALTHY_WITHIN).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_verified_atomic_and_restorable() {
    let Some((cluster, client)) = healthy_cluster(3).await else {
        return;
    };
    for i in 0..20 {
        cluster.etcdctl(&["put", &format!("/snapshot-test/{i}"), "value"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd-before-upgrade.db");
    std::fs::write(&path, b"an older snapshot that gets replaced").unwrap();

    let info = client.snapshot(&path).await.unwrap();
    assert_eq!(info.path.as_deref(), Some(path.as_path()));
    assert_eq!(info.endpoint, cluster.member("m0").client_url);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), info.size);
    assert_eq!(info.sha256.len(), 64);
    let m0 = client
        .members()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "m0")
        .unwrap();
    assert_eq!(info.member_id, Some(m0.id));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["etcd-before-upgrade.db"],
        "no partial files left behind"
    );

    // etcdctl accepts the file as a snapshot and sees the keys...
    let status = cluster.etcdctl(&["snapshot", "status", path.to_str().unwrap(), "-w", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(status["totalKey"].as_u64().unwrap() >= 20, "{status}");
    assert!(status["revision"].as_i64().unwrap() >= 21, "{status}");
    // ...and restores it, which checks etcd's trailing checksum.
    let restored = dir.path().join("restored");
    let output = Command::new(etcdctl().unwrap())
        .env("ETCDCTL_API", "3")
        .args([
            "snapshot",
            "restore",
            path.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(restored.join("member/snap/db").is_file());

    let missing = dir.path().join("no-such-dir/etcd.db");
    let err = client.snapshot(&missing).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "etcd snapshot to {} failed: cannot create a file in ",
            missing.display()
        )),
        "{err}"
    );
}
