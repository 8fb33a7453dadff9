//! The bundled `playbooks/etcd-restore.rhai` on three real etcd 3.4 members, each stopped and
//! started by the team's hooks through a real sshd node: refused without the confirmation, a
//! dry-run that lists what it would replace and changes nothing, then the real restore: the
//! keys written after the snapshot are gone, the ones before it are back, and all three
//! members are healthy with quorum.

use std::path::Path;

use super::playbook::HookProcesses;
use super::{Files, etcd_section, three_members};
use crate::support::Fleet;
use crate::support::etcd::{EtcdCluster, etcd34};

const PLAYBOOK: &str = "playbooks/etcd-restore.rhai";

/// Stops the member named by `$1` (its pid in `$1.pid`) and waits until it has let go.
const STOP_HOOK: &str = r#"#!/bin/sh
set -eu
here=$(dirname "$0")
pid=$(cat "$here/$1.pid")
kill -TERM "$pid" 2>/dev/null || true
tries=0
while [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "etcd member $1 (pid $pid) did not stop" >&2; exit 1; fi
    sleep 0.1
done
echo "stopped $1"
"#;

/// Starts the member named by `$1` on its data dir, detached, recording its pid.
const START_HOOK: &str = r#"#!/bin/sh
set -eu
here=$(dirname "$0")
member=$1
. "$here/$member.env"
setsid "$ETCD" --name "$member" --data-dir "$DATA" \
    --listen-client-urls "$CLIENT" --advertise-client-urls "$CLIENT" \
    --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" \
    --initial-cluster "$INITIAL" --initial-cluster-state new \
    --logger zap --log-outputs stderr >>"$here/$member.restored.log" 2>&1 </dev/null &
echo $! >"$here/$member.pid"
echo $! >>"$PIDS"
echo "started $member"
"#;

fn inventory(cluster: &EtcdCluster, fleet: &Fleet) -> String {
    let mut text = fleet.inventory_toml();
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

fn keys(cluster: &EtcdCluster, prefix: &str) -> Vec<String> {
    cluster
        .etcdctl(&["get", "--prefix", prefix, "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_are_restored_from_one_snapshot_with_quorum() {
    let Some(etcd) = etcd34() else { return };
    let Some(fleet) = Fleet::start(3) else { return };
    let Some(cluster) = three_members().await else {
        return;
    };
    let files = Files::new(&inventory(&cluster, &fleet));
    let stop = files.write("stop-member.sh", STOP_HOOK);
    let start = files.write("start-member.sh", START_HOOK);
    let started = HookProcesses::new();
    for member in &cluster.members {
        let env = format!(
            "ETCD='{}'\nDATA='{}'\nCLIENT='{}'\nPEER='{}'\nINITIAL='{}'\nPIDS='{}'\n",
            etcd.display(),
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

    for i in 0..5 {
        cluster.etcdctl(&["put", &format!("/before/{i}"), "kept"]);
    }
    let snapshot = files.dir.path().join("before.db");
    let client = krun::etcd::Client::connect(cluster.config()).await.unwrap();
    client.snapshot(&snapshot).await.unwrap();
    for i in 0..5 {
        cluster.etcdctl(&["put", &format!("/after/{i}"), "lost"]);
    }
    cluster.etcdctl(&["del", "/before/0"]);

    let data_dir = cluster.members[0]
        .data_dir
        .display()
        .to_string()
        .replace("/m0.etcd", "/{member}.etcd");
    let snapshot_arg = snapshot.display().to_string();
    let args = |confirm: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--set".into(),
            format!("snapshot={snapshot_arg}"),
            "--allow-local".into(),
            snapshot_arg.clone(),
            "--set".into(),
            format!("confirm={confirm}"),
            "--set".into(),
            format!("stop_cmd=sh {} {{member}}", stop.display()),
            "--set".into(),
            format!("start_cmd=sh {} {{member}}", start.display()),
            "--set".into(),
            format!("data_dir={data_dir}"),
            "--set".into(),
            "timeout=30s".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let krun = move |files: Files, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = files.krun(Path::new(PLAYBOOK), &args);
            (files, out)
        })
    };

    // Without the confirmation: refused before anything, the nodes not even contacted.
    let (files, out) = krun(files, args("yes", &[])).await.unwrap();
    out.code(3)
        .stderr_has("pass --set confirm=replace-all-etcd-data to mean it");
    for node in ["n1", "n2", "n3"] {
        assert_eq!(fleet.node(node).sessions(), 0, "{node} was contacted");
    }

    // A dry-run names every member, node, data directory and the token, and changes nothing.
    let (files, out) = krun(files, args("replace-all-etcd-data", &["--dry-run"]))
        .await
        .unwrap();
    out.code(0)
        .stderr_has("etcd: nothing was restored (dry-run)");
    let text: String = out
        .stderr
        .lines()
        .map(|l| l.trim_start().trim_start_matches('│').trim())
        .collect::<Vec<_>>()
        .join(" ");
    let sha = krun::etcd::verify_snapshot(&std::fs::read(&snapshot).unwrap()).unwrap();
    assert!(
        text.contains(&format!(
            "restoring etcd from {snapshot_arg} ({} bytes, sha256 {sha}) with the new cluster token krun-restore-{}:",
            std::fs::metadata(&snapshot).unwrap().len(),
            &sha[..12]
        )),
        "{text}"
    );
    for (i, member) in cluster.members.iter().enumerate() {
        let dir = member.data_dir.display();
        assert!(
            text.contains(&format!(
                "member {} on n{}: data directory {dir} replaced (the old one kept as {dir}.before-restore-{})",
                member.name,
                i + 1,
                &sha[..12]
            )),
            "{text}"
        );
    }
    assert_eq!(keys(&cluster, "/after/").len(), 5, "the dry-run restored");

    // For real.
    let (files, out) = krun(files, args("replace-all-etcd-data", &[]))
        .await
        .unwrap();
    out.code(0)
        .stderr_has("etcd: 3 members restored from")
        .stderr_has("stopped m0")
        .stderr_has("started m2");
    assert_eq!(keys(&cluster, "/after/"), Vec::<String>::new());
    assert_eq!(
        keys(&cluster, "/before/"),
        (0..5).map(|i| format!("/before/{i}")).collect::<Vec<_>>(),
        "the keys of the snapshot are not all back"
    );
    let members = cluster.etcdctl_members();
    assert_eq!(members.len(), 3, "{members:?}");
    client
        .wait_healthy(crate::etcd::HEALTHY_WITHIN)
        .await
        .unwrap();
    let answering = client
        .status()
        .await
        .into_iter()
        .filter(|s| s.result.is_ok())
        .count();
    assert_eq!(answering, 3);
    // A write goes through: the restored cluster has quorum.
    cluster.etcdctl(&["put", "/restored", "yes"]);
    for member in &cluster.members {
        let kept = member.data_dir.with_file_name(format!(
            "{}.etcd.before-restore-{}",
            member.name,
            &sha[..12]
        ));
        assert!(kept.is_dir(), "{} was not kept", kept.display());
    }
    drop((started, files));
}
