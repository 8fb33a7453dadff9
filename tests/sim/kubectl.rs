//! The real kubectl (oldest and newest supported) against the simulator: what an upgrade runs.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::support::*;

/// Pods as stored, by name.
fn pods(sim: &Sim) -> Vec<Value> {
    let snapshot = sim.server.handle().snapshot();
    snapshot["items"].as_array().unwrap().iter().filter(|o| o["kind"] == "Pod").cloned().collect()
}

fn pod_names_on(sim: &Sim, node: &str) -> Vec<String> {
    let mut names: Vec<String> = pods(sim)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn unschedulable(sim: &Sim, node: &str) -> bool {
    sim.server.handle().object("v1", "Node", "", node).unwrap()["spec"]["unschedulable"] == true
}

/// The row of `name` in kubectl's table output, split into cells.
fn row<'a>(output: &'a str, name: &str) -> Vec<&'a str> {
    output
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.contains(&name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{output}"))
}

async fn get_wide(version: &str) {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl(version) else { return };

    let out = kubectl.run(&["get", "pods", "-A", "-o", "wide"]).await.ok().stdout;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    );
    let web = row(&out, "web-5d8f7c9b4-r8w2n");
    assert_eq!((web[0], web[2], web[3], web[4]), ("shop", "1/1", "Running", "0"));
    assert_eq!((web[6], web[7]), ("10.244.2.11", "worker-2"));
    assert_eq!(out.lines().count(), 1 + 11, "{out}");

    let out = kubectl.run(&["get", "nodes", "-o", "wide"]).await.ok().stdout;
    let cp = row(&out, "cp-1");
    assert_eq!(&cp[1..5], ["Ready", "control-plane", cp[3], "v1.28.9"]);
    assert_eq!(cp[5], "192.168.0.10");
    assert!(out.contains("containerd://1.7.13"), "{out}");

    let out = kubectl.run(&["get", "pdb", "-n", "shop"]).await.ok().stdout;
    let web = row(&out, "web");
    assert_eq!(&web[1..4], ["2", "N/A", "1"], "{out}");

    // Unknown kinds are served read-only.
    let out = kubectl.run(&["get", "certificates", "-n", "shop", "-o", "name"]).await.ok().stdout;
    assert_eq!(out.trim(), "certificate.cert-manager.io/web-tls");
    let run = kubectl.run(&["delete", "certificate", "web-tls", "-n", "shop"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("MethodNotAllowed") || run.stderr.contains("does not allow this method"), "{}", run.stderr);

    let out = kubectl.run(&["get", "pods", "-n", "shop", "-l", "app=db", "--field-selector", "spec.nodeName=worker-3", "-o", "name"]).await.ok().stdout;
    assert_eq!(out.trim(), "pod/db-1");
}

async fn cordon_uncordon(version: &str) {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl(version) else { return };
    let out = kubectl.run(&["cordon", "worker-2"]).await.ok().stdout;
    assert_eq!(out.trim(), "node/worker-2 cordoned");
    assert!(unschedulable(&sim, "worker-2"));
    let out = kubectl.run(&["get", "node", "worker-2"]).await.ok().stdout;
    assert_eq!(row(&out, "worker-2")[1], "Ready,SchedulingDisabled");
    let node = sim.server.handle().object("v1", "Node", "", "worker-2").unwrap();
    assert_eq!(node["spec"]["taints"][0]["key"], "node.kubernetes.io/unschedulable");

    let out = kubectl.run(&["uncordon", "worker-2"]).await.ok().stdout;
    assert_eq!(out.trim(), "node/worker-2 uncordoned");
    assert!(!unschedulable(&sim, "worker-2"));
    let node = sim.server.handle().object("v1", "Node", "", "worker-2").unwrap();
    assert!(node["spec"].get("taints").is_none(), "{node}");
}

async fn drain_waits_for_replacements(version: &str) {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl(version) else { return };
    let web_before: Vec<String> = pod_names_on(&sim, "worker-1").into_iter().filter(|n| n.starts_with("web-")).collect();
    assert_eq!(web_before.len(), 2);

    let run = kubectl.run(&["drain", "worker-1", "--ignore-daemonsets", "--delete-emptydir-data"]).await.ok();
    assert!(run.stdout.contains("node/worker-1 drained"), "{}", run.stdout);
    // The second web pod was refused while the first one's replacement started.
    assert!(
        run.stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "stderr:\n{}",
        run.stderr
    );

    assert!(unschedulable(&sim, "worker-1"));
    assert_eq!(pod_names_on(&sim, "worker-1"), ["kube-proxy-bbbbb"]);
    let web: Vec<Value> = pods(&sim).into_iter().filter(|p| p["metadata"]["labels"]["app"] == "web").collect();
    assert_eq!(web.len(), 3);
    for pod in &web {
        assert!(ready(pod), "{pod}");
        assert_ne!(pod["spec"]["nodeName"], "worker-1");
        assert!(!web_before.contains(&pod["metadata"]["name"].as_str().unwrap().to_string()));
    }
    let pdb = sim.server.handle().object("policy/v1", "PodDisruptionBudget", "shop", "web").unwrap();
    assert_eq!((pdb["status"]["currentHealthy"].as_i64(), pdb["status"]["disruptionsAllowed"].as_i64()), (Some(3), Some(1)));
}

async fn drain_refuses_bare_pods_without_force(version: &str) {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl(version) else { return };
    let run = kubectl.run(&["drain", "worker-3", "--ignore-daemonsets"]).await;
    assert_eq!(run.code, 1, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("declare no controller (use --force to override): default/debug"), "{}", run.stderr);
    assert_eq!(pod_names_on(&sim, "worker-3"), ["db-1", "debug", "kube-proxy-ddddd"]);

    let run = kubectl.run(&["drain", "worker-3", "--ignore-daemonsets", "--force"]).await.ok();
    assert!(run.stdout.contains("node/worker-3 drained"), "{}", run.stdout);
    assert_eq!(pod_names_on(&sim, "worker-3"), ["kube-proxy-ddddd"]);
    // The bare pod is gone for good; the StatefulSet pod comes back elsewhere under its name.
    let all = pods(&sim);
    assert!(!all.iter().any(|p| p["metadata"]["name"] == "debug"));
    let db1 = all.iter().find(|p| p["metadata"]["name"] == "db-1").expect("db-1 is recreated");
    assert_ne!(db1["spec"]["nodeName"], "worker-3");
}

async fn drain_dry_run_server(version: &str) {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl(version) else { return };
    let before = pod_names_on(&sim, "worker-1");
    let run = kubectl.run(&["drain", "worker-1", "--ignore-daemonsets", "--delete-emptydir-data", "--dry-run=server"]).await.ok();
    assert!(run.stdout.contains("(server dry run)"), "{}", run.stdout);
    assert!(run.stdout.contains("evicting pod shop/web-5d8f7c9b4-k2x7p (server dry run)"), "{}", run.stdout);
    assert!(!unschedulable(&sim, "worker-1"));
    assert_eq!(pod_names_on(&sim, "worker-1"), before);
    let counts = sim.server.handle().request_counts();
    assert!(counts.get("create pods/eviction").copied().unwrap_or(0) >= 2, "{counts:?}");
}

async fn watch_sees_evictions(version: &str) {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl(version) else { return };
    let mut watch = kubectl.spawn(&["get", "pods", "-n", "shop", "-w", "--output-watch-events"]);
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // The initial list arrives first; wait for it so the evictions come through the watch.
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("db-1")) {
        seen.push(lines.next_line().await.unwrap().expect("kubectl prints the initial list"));
    }
    kubectl.run(&["drain", "worker-1", "--ignore-daemonsets", "--delete-emptydir-data"]).await.ok();
    let mut events = Vec::new();
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            events.push(line);
            let deleted = |pod: &str| events.iter().any(|l| l.starts_with("DELETED") && l.contains(pod));
            if deleted("web-5d8f7c9b4-k2x7p") && deleted("web-5d8f7c9b4-m4q9z") {
                return;
            }
        }
    })
    .await;
    assert!(finished.is_ok(), "the watch did not report both evicted pods as deleted:\n{}", events.join("\n"));
    watch.kill().await.unwrap();
    assert!(events.iter().any(|l| l.starts_with("MODIFIED") && l.contains("web-5d8f7c9b4-m4q9z") && l.contains("Terminating")), "{events:#?}");
    assert!(events.iter().any(|l| l.starts_with("ADDED") && l.contains("web-5d8f7c9b4-") && l.contains("Pending")), "{events:#?}");
}

async fn patches_and_labels(version: &str) {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl(version) else { return };
    kubectl.run(&["label", "node", "worker-2", "disk=ssd"]).await.ok();
    kubectl.run(&["annotate", "node", "worker-2", "krun/upgraded=v1.29.4"]).await.ok();
    kubectl.run(&["patch", "node", "worker-2", "--type=json", "-p", r#"[{"op":"add","path":"/metadata/labels/zone-ok","value":"yes"}]"#]).await.ok();
    kubectl.run(&["patch", "node", "worker-2", "--type=merge", "-p", r#"{"metadata":{"labels":{"disk":null}}}"#]).await.ok();
    kubectl.run(&["patch", "node", "worker-2", "-p", r#"{"spec":{"unschedulable":true}}"#]).await.ok();
    let node = sim.server.handle().object("v1", "Node", "", "worker-2").unwrap();
    assert_eq!(node["metadata"]["labels"]["zone-ok"], "yes");
    assert!(node["metadata"]["labels"].get("disk").is_none());
    assert_eq!(node["metadata"]["annotations"]["krun/upgraded"], "v1.29.4");
    assert_eq!(node["spec"]["unschedulable"], true);
    let out = kubectl.run(&["get", "nodes", "-l", "zone-ok=yes", "-o", "name"]).await.ok().stdout;
    assert_eq!(out.trim(), "node/worker-2");

    let run = kubectl.run(&["get", "pod", "nope", "-n", "shop"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains(r#"pods "nope" not found"#), "{}", run.stderr);

    let out = kubectl.run(&["version", "-o", "json"]).await.ok().stdout;
    let version: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.28.9");
}

macro_rules! for_kubectl_versions {
    ($($module:ident => $version:literal),*) => {$(
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_nodes_pods_pdbs_and_unknown_kinds() {
                super::get_wide($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cordon_and_uncordon() {
                super::cordon_uncordon($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn drain_waits_for_pdb_protected_replacements() {
                super::drain_waits_for_replacements($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn drain_is_refused_for_bare_pods_without_force() {
                super::drain_refuses_bare_pods_without_force($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_side_dry_run_drain_changes_nothing() {
                super::drain_dry_run_server($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_pods_watch_sees_evictions() {
                super::watch_sees_evictions($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn label_annotate_and_patch_nodes() {
                super::patches_and_labels($version).await;
            }
        }
    )*};
}

for_kubectl_versions!(kubectl_1_27 => "1.27", kubectl_1_33 => "1.33");
