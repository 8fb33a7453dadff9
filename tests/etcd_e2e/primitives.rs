//! The read primitives and the snapshot, checked against what etcdctl says.

use super::{Files, data_of, etcd_section, three_members};

const PLAYBOOK: &str = r#"
let members = etcd_members();
if members.len() != 3 { fail(`expected 3 members, got ${members.len()}`); }
etcd_status();
let health = etcd_health();
for h in health {
    if !h.healthy { fail(`${h.endpoint} is not healthy: ${h.error}`); }
}
let saved = etcd_snapshot(param("snapshot"));
log(`snapshot of ${saved.size} bytes`);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_status_health_and_a_snapshot_etcdctl_accepts() {
    let Some(cluster) = three_members().await else {
        return;
    };
    cluster.etcdctl(&["put", "/krun/e2e", "present"]);
    let files = Files::new(&etcd_section(&cluster));
    let playbook = files.write("reads.rhai", PLAYBOOK);
    let snapshot = files.dir.path().join("saved.db");
    let set = format!("snapshot={}", snapshot.display());
    let out = files.krun(&playbook, &["--set", &set, "--output", "json"]);
    out.code(0);
    let report = out.json();

    let listed: Vec<(String, String, bool)> = {
        let mut members: Vec<(String, String, bool)> = data_of(&report, "etcd_members")
            .as_array()
            .expect("members array")
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_owned(),
                    m["name"].as_str().unwrap().to_owned(),
                    m["is_learner"].as_bool().unwrap(),
                )
            })
            .collect();
        members.sort_by(|a, b| a.1.cmp(&b.1));
        members
    };
    assert_eq!(listed, cluster.etcdctl_members());
    let members = data_of(&report, "etcd_members");
    for member in members.as_array().unwrap() {
        let name = member["name"].as_str().unwrap();
        assert_eq!(
            member["peer_urls"],
            serde_json::json!([cluster.member(name).peer_url])
        );
        assert_eq!(
            member["client_urls"],
            serde_json::json!([cluster.member(name).client_url])
        );
    }

    let status = data_of(&report, "etcd_status");
    let status = status.as_array().unwrap();
    assert_eq!(status.len(), 3);
    let leaders: std::collections::BTreeSet<&str> = status
        .iter()
        .map(|s| {
            assert!(s["error"].is_null(), "{s}");
            assert!(
                s["status"]["version"].as_str().unwrap().starts_with("3.4."),
                "{s}"
            );
            s["status"]["leader"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        leaders.len(),
        1,
        "members disagree on the leader: {status:?}"
    );
    let leader = leaders.into_iter().next().unwrap();
    assert!(
        listed.iter().any(|m| m.0 == leader),
        "{leader} is no member"
    );

    let health = data_of(&report, "etcd_health");
    let health = health.as_array().unwrap();
    assert_eq!(health.len(), 3);
    assert!(health.iter().all(|h| h["healthy"] == true), "{health:?}");

    let saved = data_of(&report, "etcd_snapshot");
    assert_eq!(saved["path"], snapshot.display().to_string());
    let size = std::fs::metadata(&snapshot)
        .expect("snapshot written")
        .len();
    assert_eq!(saved["size"], size);
    let checked: serde_json::Value = serde_json::from_str(&cluster.etcdctl(&[
        "snapshot",
        "status",
        snapshot.to_str().unwrap(),
        "-w",
        "json",
    ]))
    .expect("etcdctl snapshot status prints JSON");
    assert!(
        checked["totalKey"].as_u64().unwrap() >= 1,
        "the snapshot holds no keys: {checked}"
    );
}
