//! API semantics a client sees whatever it is: list and watch error codes, pagination
//! snapshots, server-side apply, the scale subresource, access reviews, protobuf bodies,
//! leases and heartbeats, and the opt-in "still being processed" window. Each expected
//! answer names its upstream source.

use std::time::Duration;

use serde_json::{Value, json};

use super::support::*;

async fn get(sim: &Sim, path: &str) -> (u16, Value) {
    let (code, body) = http(sim, "GET", path, "").await;
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_errors_follow_the_apiserver() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let (code, page) = get(&sim, "/api/v1/pods?limit=2").await;
    assert_eq!(code, 200);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    // No selector: the apiserver tells how many items are left (ListMeta.remainingItemCount).
    assert!(page["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
    // k8s.io/apiserver/pkg/storage/etcd3/store.go GetList.
    let (code, status) = get(
        &sim,
        &format!("/api/v1/pods?limit=2&continue={token}&resourceVersion=5"),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "specifying resource version is not allowed when using continue"
    );
    let (code, status) = get(&sim, "/api/v1/pods?continue=not-a-token").await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    // storage.NewTooLargeResourceVersionError: 504 with a retry hint.
    let (code, status) = get(&sim, "/api/v1/pods?resourceVersion=999999999").await;
    assert_eq!(code, 504);
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);

    // Loaded objects have resourceVersions of their own, so a watch from an old one is 410.
    let (_, pods) = get(&sim, "/api/v1/pods").await;
    let versions: std::collections::BTreeSet<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["resourceVersion"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), pods["items"].as_array().unwrap().len());
    let (code, body) = http(&sim, "GET", "/api/v1/pods?watch=true&resourceVersion=1", "").await;
    assert_eq!(code, 200);
    // The body is chunked: the event is the line that is JSON.
    let line = body
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("one event");
    let event: Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_pages_show_the_cluster_as_the_first_did() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let (_, first) = get(&sim, "/api/v1/namespaces/shop/pods?limit=2").await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = get(&sim, "/api/v1/namespaces/shop/pods").await;
    let expected = names(&all);
    // A pod on a later page goes away between the pages: the next page still has it.
    let last = expected.last().unwrap().clone();
    let (code, _) = http(
        &sim,
        "DELETE",
        &format!("/api/v1/namespaces/shop/pods/{last}"),
        r#"{"gracePeriodSeconds": 0}"#,
    )
    .await;
    assert_eq!(code, 200);
    let mut seen = names(&first);
    let mut token = Some(token);
    while let Some(t) = token {
        let (code, page) = get(
            &sim,
            &format!("/api/v1/namespaces/shop/pods?limit=2&continue={t}"),
        )
        .await;
        assert_eq!(code, 200, "{page}");
        seen.extend(names(&page));
        token = page["metadata"]["continue"].as_str().map(str::to_string);
    }
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_owns_and_conflicts() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(kubectl) = sim.kubectl("1.33") else {
        return;
    };
    let dir = sim.dir.path();
    let manifest = |replicas: u32| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  replicas: \"{replicas}\"\n"
        )
    };
    std::fs::write(dir.join("a.yaml"), manifest(3)).unwrap();
    // Applying a new object creates it (the apply patch on a missing object).
    let out = kubectl
        .run(&[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            dir.join("a.yaml").to_str().unwrap(),
        ])
        .await
        .ok()
        .stdout;
    assert_eq!(out.trim(), "configmap/settings serverside-applied");
    let object = sim
        .handle()
        .object("v1", "ConfigMap", "shop", "settings")
        .unwrap();
    assert_eq!(object["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(object["metadata"]["managedFields"][0]["operation"], "Apply");
    // Another manager applying a different value conflicts
    // (k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go).
    std::fs::write(dir.join("b.yaml"), manifest(5)).unwrap();
    let run = kubectl
        .run(&[
            "apply",
            "--server-side",
            "--validate=false",
            "--field-manager=helm",
            "-f",
            dir.join("b.yaml").to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.replicas"),
        "{}",
        run.stderr
    );
    kubectl
        .run(&[
            "apply",
            "--server-side",
            "--validate=false",
            "--field-manager=helm",
            "--force-conflicts",
            "-f",
            dir.join("b.yaml").to_str().unwrap(),
        ])
        .await
        .ok();
    let object = sim
        .handle()
        .object("v1", "ConfigMap", "shop", "settings")
        .unwrap();
    assert_eq!(object["data"]["replicas"], "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_and_access_reviews() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let (code, scale) = get(&sim, "/apis/apps/v1/namespaces/shop/deployments/web/scale").await;
    assert_eq!(code, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, _) = http(
        &sim,
        "PUT",
        "/apis/apps/v1/namespaces/shop/statefulsets/db/scale",
        r#"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"db","namespace":"shop"},"spec":{"replicas":3}}"#,
    )
    .await;
    assert_eq!(code, 200);
    let db = sim
        .handle()
        .object("apps/v1", "StatefulSet", "shop", "db")
        .unwrap();
    assert_eq!(db["spec"]["replicas"], 3);
    let (code, body) = http(
        &sim,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"create","resource":"pods","subresource":"eviction"}}}"#,
    )
    .await;
    assert_eq!(code, 201);
    let review: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(review["status"]["allowed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_kubelet_stops_renewing_and_the_node_goes_unknown() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let handle = sim.handle();
    let lease =
        |node: &str| handle.object("coordination.k8s.io/v1", "Lease", "kube-node-lease", node);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let renewed =
        lease("worker-2").expect("the kubelet holds a lease")["spec"]["renewTime"].clone();
    handle.advance_clock(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(lease("worker-2").unwrap()["spec"]["renewTime"], renewed);

    let (code, _) = http(
        &sim,
        "PUT",
        "/sim/nodes/worker-2",
        r#"{"kubelet": "stopped"}"#,
    )
    .await;
    assert_eq!(code, 200);
    let stopped_at = lease("worker-2").unwrap()["spec"]["renewTime"].clone();
    handle.advance_clock(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lease("worker-2").unwrap()["spec"]["renewTime"], stopped_at);
    // pkg/controller/nodelifecycle: a node whose lease expired is Unknown.
    let node = handle.object("v1", "Node", "", "worker-2").unwrap();
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (ready["status"].as_str(), ready["message"].as_str()),
        (
            Some("Unknown"),
            Some("Kubelet stopped posting node status.")
        )
    );
    http(
        &sim,
        "PUT",
        "/sim/nodes/worker-2",
        r#"{"kubelet": "running"}"#,
    )
    .await;
    let node = handle.object("v1", "Node", "", "worker-2").unwrap();
    assert!(
        node["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    );
}

/// The Ready condition's `lastHeartbeatTime` of `node`.
fn heartbeat(handle: &krun::sim::SimHandle, node: &str) -> Value {
    let node = handle.object("v1", "Node", "", node).unwrap();
    node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["lastHeartbeatTime"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_status_is_posted_every_five_minutes_and_at_once_by_a_restarted_kubelet() {
    // pkg/kubelet/apis/config/v1beta1/defaults.go: nodeStatusReportFrequency is 5 min; the
    // kubelet posts an unchanged status only when that much time has passed since its last
    // report (kubelet_node_status.go, tryUpdateNodeStatus).
    let sim = Sim::start(DRAIN_CLUSTER, 10.0).await;
    let handle = sim.handle();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = heartbeat(&handle, "worker-2");
    handle.advance_clock(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        heartbeat(&handle, "worker-2"),
        first,
        "a minute later no report is due"
    );
    handle.advance_clock(Duration::from_secs(5 * 60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = heartbeat(&handle, "worker-2");
    assert_ne!(second, first, "five minutes later the kubelet reports");

    // A kubelet that comes back after its node went Unknown reports at once.
    handle.stop_kubelet("worker-2").unwrap();
    handle.advance_clock(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(heartbeat(&handle, "worker-2"), second);
    handle.start_kubelet("worker-2").unwrap();
    assert_ne!(heartbeat(&handle, "worker-2"), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_being_processed_refuses_evictions_with_retry_after() {
    let sim = Sim::start(DRAIN_CLUSTER, 1.0).await;
    let (code, _) = http(
        &sim,
        "PUT",
        "/sim/budget-processing",
        r#"{"delaySeconds": 600}"#,
    )
    .await;
    assert_eq!(code, 200);
    let patch = r#"{"spec":{"minAvailable":1}}"#;
    let response = raw_request(
        &sim,
        &format!(
            "PATCH /apis/policy/v1/namespaces/shop/poddisruptionbudgets/web HTTP/1.1\r\nHost: x\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{patch}",
            patch.len()
        ),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let pod = "web-5d8f7c9b4-k2x7p";
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "shop"}}).to_string();
    let response = raw_request(
        &sim,
        &format!(
            "POST /api/v1/namespaces/shop/pods/{pod}/eviction HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{eviction}",
            eviction.len()
        ),
    )
    .await;
    // pkg/registry/core/pod/storage/eviction.go: 429, retry after 10 s.
    assert!(response.starts_with("HTTP/1.1 429"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 10"),
        "{response}"
    );
    assert!(
        response.contains("The disruption budget web is still being processed by the server."),
        "{response}"
    );
}

/// One raw HTTP/1.1 exchange; returns the whole response.
async fn raw_request(sim: &Sim, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(sim.server.address())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pyyaml_snapshot_with_shared_anchors_loads_like_the_plain_list() {
    let plain = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    creationTimestamp: '2024-03-01T08:00:00Z'\n    labels:\n      app: web\n    name: a\n    namespace: shop\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    creationTimestamp: '2024-03-01T08:00:00Z'\n    labels:\n      app: web\n    name: b\n    namespace: shop\nkind: List\n";
    // What PyYAML's yaml.dump writes for a list whose items share the labels dict.
    let anchored = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    creationTimestamp: '2024-03-01T08:00:00Z'\n    labels: &id001\n      app: web\n    name: a\n    namespace: shop\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    creationTimestamp: '2024-03-01T08:00:00Z'\n    labels: *id001\n    name: b\n    namespace: shop\nkind: List\n";
    let a = Sim::start(plain, 1.0).await.handle().snapshot();
    let b = Sim::start(anchored, 1.0).await.handle().snapshot();
    let config_maps = |snapshot: &Value| -> Vec<Value> {
        snapshot["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["kind"] == "ConfigMap")
            .cloned()
            .collect()
    };
    assert_eq!(config_maps(&a), config_maps(&b));
    assert_eq!(config_maps(&b).len(), 2);
}
