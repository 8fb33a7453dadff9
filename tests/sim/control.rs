//! The `/sim/` control API: node emulation, version reporting, faults, counters and time.

use std::time::Duration;

use krun::sim::Cluster;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn eviction(name: &str) -> String {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "shop"}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_ready_node_takes_its_pods_out_of_the_budget() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let handle = sim.server.handle();
    let (code, _) = http(&sim, "PUT", "/sim/nodes/worker-2", r#"{"ready": false}"#).await;
    assert_eq!(code, 200);

    let node = handle.object("v1", "Node", "", "worker-2").unwrap();
    let taints: Vec<String> = node["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        taints,
        [
            "node.kubernetes.io/not-ready:NoSchedule",
            "node.kubernetes.io/not-ready:NoExecute"
        ]
    );
    assert!(!ready(
        &handle
            .object("v1", "Pod", "shop", "web-5d8f7c9b4-r8w2n")
            .unwrap()
    ));
    assert!(!ready(&handle.object("v1", "Pod", "shop", "db-0").unwrap()));
    let pdb = handle
        .object("policy/v1", "PodDisruptionBudget", "shop", "web")
        .unwrap();
    assert_eq!(
        (
            pdb["status"]["currentHealthy"].as_i64(),
            pdb["status"]["disruptionsAllowed"].as_i64()
        ),
        (Some(2), Some(0))
    );

    // A ready web pod is now protected…
    let (code, body) = http(
        &sim,
        "POST",
        "/api/v1/namespaces/shop/pods/web-5d8f7c9b4-k2x7p/eviction",
        &eviction("web-5d8f7c9b4-k2x7p"),
    )
    .await;
    assert_eq!(code, 429, "{body}");
    // …while the unready db-0 may go: the rest of its budget is healthy.
    let (code, body) = http(
        &sim,
        "POST",
        "/api/v1/namespaces/shop/pods/db-0/eviction",
        &eviction("db-0"),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    // Its kubelet is down, so it stays Terminating past its grace period…
    handle.advance_clock(Duration::from_secs(120));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        handle.object("v1", "Pod", "shop", "db-0").unwrap()["metadata"]["deletionTimestamp"]
            .is_string()
    );

    // …until the node comes back; then the old db-0 goes, a new one starts, and pods are ready.
    let (code, _) = http(&sim, "PUT", "/sim/nodes/worker-2", r#"{"ready": true}"#).await;
    assert_eq!(code, 200);
    assert!(ready(
        &handle
            .object("v1", "Pod", "shop", "web-5d8f7c9b4-r8w2n")
            .unwrap()
    ));
    let node = handle.object("v1", "Node", "", "worker-2").unwrap();
    assert!(node["spec"].get("taints").is_none(), "{node}");
    let recreated = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(db0) = handle.object("v1", "Pod", "shop", "db-0")
                && db0["metadata"]["uid"] != "00000000-0000-4000-b000-000000000021"
                && ready(&db0)
            {
                return db0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the StatefulSet recreates db-0");
    assert_eq!(recreated["status"]["phase"], "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_control_plane_report_new_versions() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let handle = sim.server.handle();
    let (code, _) = http(
        &sim,
        "PUT",
        "/sim/nodes/worker-1",
        r#"{"kubeletVersion": "v1.29.4", "containerRuntimeVersion": "containerd://1.7.20"}"#,
    )
    .await;
    assert_eq!(code, 200);
    let node = handle.object("v1", "Node", "", "worker-1").unwrap();
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.29.4");
    assert_eq!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"],
        "containerd://1.7.20"
    );

    let (code, body) = http(
        &sim,
        "PUT",
        "/sim/nodes/worker-1",
        r#"{"kubeletVersion": "1.29"}"#,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = http(&sim, "PUT", "/sim/nodes/worker-9", r#"{"ready": true}"#).await;
    assert_eq!(
        (code, body.contains(r#"no node named \"worker-9\""#)),
        (404, true),
        "{body}"
    );

    let (_, version) = http(&sim, "GET", "/version", "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&version).unwrap()["gitVersion"],
        "v1.28.9"
    );
    let (code, _) = http(
        &sim,
        "PUT",
        "/sim/control-plane",
        r#"{"version": "v1.29.4", "node": "cp-1"}"#,
    )
    .await;
    assert_eq!(code, 200);
    let (_, version) = http(&sim, "GET", "/version", "").await;
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(
        (version["gitVersion"].as_str(), version["minor"].as_str()),
        (Some("v1.29.4"), Some("29"))
    );
    let apiserver = handle
        .object("v1", "Pod", "kube-system", "kube-apiserver-cp-1")
        .unwrap();
    assert_eq!(
        apiserver["spec"]["containers"][0]["image"],
        "registry.k8s.io/kube-apiserver:v1.29.4"
    );

    if let Some(kubectl) = sim.kubectl("1.33") {
        let out = kubectl.run(&["get", "node", "worker-1"]).await.ok().stdout;
        assert!(out.contains("v1.29.4"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_fail_the_next_requests_and_are_counted() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let (code, _) = http(
        &sim,
        "POST",
        "/sim/faults",
        r#"{"verb": "list", "resource": "pods", "count": 2, "code": 503}"#,
    )
    .await;
    assert_eq!(code, 200);
    http(&sim, "DELETE", "/sim/requests", "").await;
    for _ in 0..2 {
        let (code, body) = http(&sim, "GET", "/api/v1/pods", "").await;
        assert_eq!(code, 503);
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str()),
            (Some("Status"), Some("ServiceUnavailable"))
        );
    }
    let (code, _) = http(&sim, "GET", "/api/v1/pods", "").await;
    assert_eq!(code, 200);
    // Other requests were never affected.
    let (code, _) = http(&sim, "GET", "/api/v1/nodes", "").await;
    assert_eq!(code, 200);
    let (_, counts) = http(&sim, "GET", "/sim/requests", "").await;
    let counts: Value = serde_json::from_str(&counts).unwrap();
    assert_eq!(counts["requests"]["list pods"], 3);
    assert_eq!(counts["requests"]["list nodes"], 1);
    assert_eq!(counts["total"], 4);

    // Latency rules are accepted and removed; they delay, never fail, requests.
    let (code, _) = http(
        &sim,
        "POST",
        "/sim/latency",
        r#"{"resource": "nodes", "milliseconds": 20}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(http(&sim, "GET", "/api/v1/nodes", "").await.0, 200);
    assert_eq!(http(&sim, "DELETE", "/sim/faults", "").await.0, 200);
    assert_eq!(
        http(&sim, "POST", "/sim/faults", r#"{"count": "two"}"#)
            .await
            .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_watches_ends_open_streams() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let mut stream = tokio::net::TcpStream::connect(sim.server.address())
        .await
        .unwrap();
    stream
        .write_all(b"GET /api/v1/nodes?watch=true HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let (code, _) = http(&sim, "POST", "/sim/watches/drop", "").await;
    assert_eq!(code, 200);
    // The response ends with its last chunk; the client would now watch again.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buffer = [0u8; 4096];
        while !rest.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch stream stayed open");
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_advances_and_snapshots_reload() {
    let sim = Sim::start(DRAIN_CLUSTER, 1.0).await;
    let (_, before) = http(&sim, "GET", "/sim/time", "").await;
    let before: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(before["timeScale"], 1.0);
    let (code, after) = http(&sim, "POST", "/sim/time/advance", r#"{"seconds": 3600}"#).await;
    assert_eq!(code, 200);
    let after: Value = serde_json::from_str(&after).unwrap();
    let parse =
        |v: &Value| chrono::DateTime::parse_from_rfc3339(v["now"].as_str().unwrap()).unwrap();
    assert!((parse(&after) - parse(&before)).num_seconds() >= 3600);

    let (code, yaml) = http(&sim, "GET", "/sim/snapshot", "").await;
    assert_eq!(code, 200);
    let reloaded = Cluster::load(&yaml).expect("a snapshot of the simulator loads again");
    // What the cluster added while running: the kubelets' leases and their namespace.
    let nodes = 4;
    assert_eq!(
        reloaded.len(),
        Cluster::load(DRAIN_CLUSTER).unwrap().len() + 1 + nodes
    );
}
