//! The bundled `playbooks/etcd-rolling.rhai`: a dry-run of a replacement that changes nothing
//! and plans the membership after each step, and a real in-place 3.4 -> 3.5 upgrade whose hook
//! restarts each member through a real sshd node while a writer keeps writing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Files, etcd_section, steps, three_members};
use crate::etcd::HEALTHY_WITHIN;
use crate::etcd::upgrade::{PREFIX, key, write_until_stopped};
use crate::support::Fleet;
use crate::support::etcd::{EtcdCluster, etcd35};

const PLAYBOOK: &str = "playbooks/etcd-rolling.rhai";

/// Inventory nodes for members m0..m2: role `etcd`, label `etcd_member`. `fleet` gives real
/// sshd nodes; without it the nodes are unreachable placeholders (a dry-run never dials them).
fn inventory(cluster: &EtcdCluster, fleet: Option<&Fleet>) -> String {
    let mut text = match fleet {
        Some(fleet) => fleet.inventory_toml(),
        None => (1..=3)
            .map(|i| format!("[nodes.n{i}]\nhost = \"127.0.0.1\"\nport = 1\n"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    for i in 1..=3 {
        text = text.replace(
            &format!("[nodes.n{i}]\n"),
            &format!(
                "[nodes.n{i}]\nroles = [\"etcd\"]\nlabels = {{ etcd_member = \"m{}\" }}\n",
                i - 1
            ),
        );
    }
    text + etcd_section(cluster).as_str()
}

/// Hands leadership to `name` and waits until every member follows it, so that the
/// playbook's order (the leader last) is the same on every run.
async fn lead(cluster: &EtcdCluster, name: &str) {
    let client = krun::etcd::Client::connect(cluster.config()).await.unwrap();
    client.move_leader(name).await.unwrap();
    let id = cluster
        .etcdctl_members()
        .into_iter()
        .find(|m| m.1 == name)
        .unwrap()
        .0;
    let deadline = Instant::now() + HEALTHY_WITHIN;
    loop {
        let leaders: Vec<String> = client
            .status()
            .await
            .iter()
            .map(|s| {
                s.result
                    .as_ref()
                    .map_or_else(|e| e.to_string(), |s| s.leader.to_string())
            })
            .collect();
        if leaders.iter().all(|l| *l == id) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never led everyone: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_of_a_replacement_changes_nothing_and_plans_each_membership() {
    let Some(cluster) = three_members().await else {
        return;
    };
    lead(&cluster, "m2").await;
    let before = cluster.etcdctl_members();
    let files = Files::new(&inventory(&cluster, None));
    let snapshot = files.dir.path().join("before.db");
    let out = files.krun(
        Path::new(PLAYBOOK),
        &[
            "--dry-run",
            "--output",
            "json",
            "--set",
            "mode=replace",
            "--set",
            "replace_cmd=/usr/local/sbin/replace-etcd {member} {node}",
            "--set",
            &format!("snapshot={}", snapshot.display()),
        ],
    );
    out.code(0);
    assert_eq!(
        cluster.etcdctl_members(),
        before,
        "the dry-run changed etcd"
    );
    assert!(!snapshot.exists(), "the dry-run took a snapshot");

    let report = out.json();
    let changes: Vec<Value> = steps(&report)
        .into_iter()
        .filter(|s| {
            ["etcd_remove_member", "etcd_add_member", "etcd_promote"]
                .contains(&s["action"].as_str().unwrap())
        })
        .collect();
    assert_eq!(changes.len(), 9, "remove, add, promote for each member");
    for change in &changes {
        assert_eq!(change["executed"], false, "{change}");
        let names: Vec<&str> = change["data"]["members_after"]
            .as_array()
            .unwrap_or_else(|| panic!("no membership after {change}"))
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let expected = if change["action"] == "etcd_remove_member" {
            2
        } else {
            3
        };
        assert_eq!(names.len(), expected, "{change}");
    }

    let ids: BTreeMap<String, String> = before.into_iter().map(|m| (m.0, m.1)).collect();
    let text = stable(&report, &cluster, &ids, files.dir.path());
    insta::with_settings!({
        // Ids the dry-run makes up for re-added members.
        filters => vec![(r"\b[0-9a-f]{12,16}\b", "[new id]")],
    }, {
        insta::assert_snapshot!(text);
    });
}

/// The report with what differs between runs masked: run id, durations, raft counters, sizes,
/// member ids (named after their member), URLs (ports), and the temporary directory. Lists of
/// members are sorted by name, since etcd lists them by random id.
fn stable(
    report: &Value,
    cluster: &EtcdCluster,
    ids: &BTreeMap<String, String>,
    dir: &Path,
) -> String {
    fn mask(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    match key.as_str() {
                        "run_id" | "duration_ms" | "took_ms" | "raft_index" | "raft_term"
                        | "raft_applied_index" | "db_size" | "db_size_in_use" => {
                            *field = "[masked]".into();
                        }
                        "initial_cluster" => {
                            let mut parts: Vec<&str> =
                                field.as_str().unwrap_or_default().split(',').collect();
                            parts.sort_unstable();
                            *field = parts.join(",").into();
                        }
                        _ => mask(field),
                    }
                }
            }
            Value::Array(items) => {
                items.iter_mut().for_each(mask);
                if items.iter().all(|i| i.get("name").is_some()) {
                    items.sort_by_key(|i| i["name"].as_str().unwrap_or_default().to_owned());
                }
            }
            _ => {}
        }
    }
    let mut report = report.clone();
    mask(&mut report);
    let mut text = serde_json::to_string_pretty(&report).unwrap();
    for (id, name) in ids {
        text = text.replace(&format!("\"{id}\""), &format!("\"[id {name}]\""));
        text = text.replace(&format!(" {id}"), &format!(" [id {name}]"));
    }
    for member in &cluster.members {
        text = text.replace(&member.client_url, &format!("[{} client url]", member.name));
        text = text.replace(&member.peer_url, &format!("[{} peer url]", member.name));
    }
    text.replace(dir.to_str().unwrap(), "[dir]")
}

/// Stops the member named by `$1` (its pid is in `$1.pid`) and starts it again with `$ETCD` on
/// the same data dir, detached, recording the new pid. Runs on an sshd node as root.
const UPGRADE_HOOK: &str = r#"#!/bin/sh
set -eu
here=$(dirname "$0")
member=$1
. "$here/$member.env"
pid=$(cat "$here/$member.pid")
kill -TERM "$pid"
# The old process may be the test's child: gone, or a zombie, either way it has let go.
tries=0
while [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "etcd member $member (pid $pid) did not stop" >&2; exit 1; fi
    sleep 0.1
done
setsid "$ETCD" --name "$member" --data-dir "$DATA" \
    --listen-client-urls "$CLIENT" --advertise-client-urls "$CLIENT" \
    --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" \
    --initial-cluster "$INITIAL" --initial-cluster-state existing \
    --logger zap --log-outputs stderr >>"$here/$member.upgraded.log" 2>&1 </dev/null &
echo $! >"$here/$member.pid"
echo $! >>"$PIDS"
echo "restarted $member with $("$ETCD" --version | head -n 1)"
"#;

/// Kills the members the hook started (they are not children of the test) when dropped. The
/// pid list lives outside the test's temporary directory, which may be gone by then.
pub(super) struct HookProcesses(pub(super) PathBuf);

impl HookProcesses {
    pub(super) fn new() -> Self {
        let file = tempfile::Builder::new()
            .prefix("etcd-hook-pids-")
            .tempfile_in(crate::support::work_dir())
            .expect("pid list");
        let (_, path) = file.keep().expect("keep the pid list");
        Self(path)
    }
}

impl Drop for HookProcesses {
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(&self.0).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) on a pid the hook recorded; a vanished pid only yields ESRCH.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_rolling_upgrade_to_3_5_through_the_playbook_loses_no_write() {
    let Some(etcd35) = etcd35() else { return };
    let Some(fleet) = Fleet::start(3) else { return };
    let Some(cluster) = three_members().await else {
        return;
    };
    let files = Files::new(&inventory(&cluster, Some(&fleet)));
    let hook = files.write("upgrade-member.sh", UPGRADE_HOOK);
    let started = HookProcesses::new();
    for member in &cluster.members {
        let env = format!(
            "ETCD='{}'\nDATA='{}'\nCLIENT='{}'\nPEER='{}'\nINITIAL='{}'\nPIDS='{}'\n",
            etcd35.display(),
            member.data_dir.display(),
            member.client_url,
            member.peer_url,
            cluster.initial_cluster(),
            started.0.display()
        );
        files.write(&format!("{}.env", member.name), &env);
        let pid = member.pid().expect("the harness runs every member");
        files.write(&format!("{}.pid", member.name), &format!("{pid}\n"));
    }

    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until_stopped(
        cluster.client_urls(),
        acked.clone(),
        stop.clone(),
    ));

    let snapshot = files.dir.path().join("before.db");
    let args = [
        "--set".to_owned(),
        format!("upgrade_cmd=sh {} {{member}}", hook.display()),
        "--set".to_owned(),
        "version=3.5.1".to_owned(),
        "--set".to_owned(),
        format!("snapshot={}", snapshot.display()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = files.krun(Path::new(PLAYBOOK), &args);
        (files, out)
    })
    .await
    .unwrap();
    let (files, out) = out;
    out.code(0).stderr_has("etcd: done, 3 members upgraded");
    for name in ["m0", "m1", "m2"] {
        out.stderr_has(&format!("restarted {name} with etcd Version: 3.5.1"));
    }
    assert!(snapshot.exists(), "no snapshot before the upgrade");

    // Writes go on after the upgrade, then every acknowledged key must be there.
    let after_upgrade = acked.load(Ordering::SeqCst);
    let deadline = Instant::now() + HEALTHY_WITHIN;
    while acked.load(Ordering::SeqCst) < after_upgrade + 20 {
        assert!(
            Instant::now() < deadline,
            "writes stopped after the upgrade"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(written > 0);

    let client = krun::etcd::Client::connect(cluster.config()).await.unwrap();
    for status in client.status().await {
        let endpoint = status.endpoint.clone();
        let status = status.result.unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        assert_eq!(status.version, "3.5.1", "{endpoint}");
    }
    let keys = crate::support::etcd_kv::keys_with_prefix(&cluster.client_urls(), PREFIX).await;
    let missing: Vec<u64> = (0..written).filter(|i| !keys.contains(&key(*i))).collect();
    assert!(
        missing.is_empty(),
        "{} of {written} acknowledged writes lost: {missing:?}",
        missing.len()
    );
    eprintln!(
        "etcd-rolling: {written} writes acknowledged ({after_upgrade} while the playbook ran), none lost"
    );
    drop((started, files));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_stops_the_playbook_at_that_member() {
    let Some(fleet) = Fleet::start(3) else { return };
    let Some(cluster) = three_members().await else {
        return;
    };
    lead(&cluster, "m2").await;
    let files = Files::new(&inventory(&cluster, Some(&fleet)));
    let snapshot = files.dir.path().join("before.db");
    let out = files.krun(
        Path::new(PLAYBOOK),
        &[
            "--set",
            "upgrade_cmd=echo no package for {member} >&2; exit 7",
            "--set",
            &format!("snapshot={}", snapshot.display()),
        ],
    );
    out.code(1)
        .stderr_has(
            "stopped at member m0 on node n1 (1 of 3): upgrade_cmd exited 7: no package for m0",
        )
        // (The diagnostic wraps long messages, so the tail is checked on its own.)
        .stderr_has("not touched: m1, m2");
    assert!(snapshot.exists(), "the snapshot comes first");
    // Nothing else was tried: the cluster is as it was, healthy, still on 3.4.
    let client = krun::etcd::Client::connect(cluster.config()).await.unwrap();
    client.wait_healthy(HEALTHY_WITHIN).await.unwrap();
    assert!(fleet.node("n1").sessions() >= 1, "the hook never ran on n1");
    for node in ["n2", "n3"] {
        assert_eq!(fleet.node(node).sessions(), 0, "the hook ran on {node}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_dying_mid_upgrade_stops_the_playbook_before_the_next_member() {
    let Some(fleet) = Fleet::start(3) else { return };
    let Some(cluster) = three_members().await else {
        return;
    };
    lead(&cluster, "m1").await;
    let files = Files::new(&inventory(&cluster, Some(&fleet)));
    let victim = cluster.member("m2").pid().expect("m2 runs");
    let snapshot = files.dir.path().join("before.db");
    // While "upgrading" m0, another member (m2) dies, as a disk or an OOM kill would have it.
    let out = files.krun(
        Path::new(PLAYBOOK),
        &[
            "--set",
            &format!("upgrade_cmd=test {{member}} != m0 || kill -9 {victim}"),
            "--set",
            &format!("snapshot={}", snapshot.display()),
            "--set",
            "timeout=5s",
        ],
    );
    out.code(1)
        .stderr_has("stopped at member m0 on node n1 (1 of 3): the cluster did not become healthy within 5s")
        .stderr_has("not touched: m2, m1");
    // Only n1 ran a command; quorum is intact (two of three answer) and nothing was removed.
    for node in ["n2", "n3"] {
        assert_eq!(
            fleet.node(node).sessions(),
            0,
            "the playbook went on to {node}"
        );
    }
    let client = krun::etcd::Client::connect(cluster.config()).await.unwrap();
    let members = client.members().await.unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    let answering = client
        .status()
        .await
        .into_iter()
        .filter(|s| s.result.is_ok())
        .count();
    assert_eq!(answering, 2);
}
