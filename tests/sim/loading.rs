//! Snapshots: what `kubectl get … -o yaml` prints of the simulator equals what it was loaded
//! from, apart from fields the server sets; malformed files are refused with their place named.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use krun::sim::{GenOptions, ServeArgs, SimCommand, generate};
use serde_json::Value;

use super::support::*;

const SNAPSHOT_KINDS: &str =
    "nodes,pods,pdb,deployments,replicasets,statefulsets,daemonsets,namespaces";

fn items_by_key(list: &Value) -> BTreeMap<String, Value> {
    list["items"]
        .as_array()
        .expect("a List")
        .iter()
        .map(|item| {
            let key = format!(
                "{} {}/{}",
                item["kind"].as_str().unwrap(),
                item["metadata"]["namespace"].as_str().unwrap_or(""),
                item["metadata"]["name"].as_str().unwrap()
            );
            (key, item.clone())
        })
        .collect()
}

/// The defaults `pkg/apis/apps/v1/defaults.go` gives workloads that a trimmed snapshot lacks:
/// the apiserver applies them when it reads an object from storage.
fn with_apiserver_defaults(object: &mut Value) {
    let defaults = match object["kind"].as_str() {
        Some("Deployment") => {
            serde_json::json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}})
        }
        Some("StatefulSet") => {
            serde_json::json!({"podManagementPolicy": "OrderedReady", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}})
        }
        Some("DaemonSet") => {
            serde_json::json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}})
        }
        _ => return,
    };
    for (field, value) in defaults.as_object().unwrap() {
        if object["spec"].get(field).is_none() {
            object["spec"][field] = value.clone();
        }
    }
}

fn forget_heartbeats(object: &mut Value) {
    if object["kind"] == "Node" {
        for condition in object["status"]["conditions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            forget(condition, "/lastHeartbeatTime");
        }
    }
}

fn forget(value: &mut Value, pointer: &str) {
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(field);
    }
}

/// What kubectl prints of the simulator, less the heartbeat times the kubelets advance.
async fn kubectl_snapshot(sim: &Sim, version: &str) -> Option<Value> {
    let kubectl = sim.kubectl(version)?;
    let out = kubectl
        .run(&["get", SNAPSHOT_KINDS, "-A", "-o", "yaml"])
        .await
        .ok()
        .stdout;
    let mut snapshot: Value = serde_yaml_ng::from_str(&out).expect("kubectl prints YAML");
    let items = snapshot["items"].as_array_mut().expect("a List");
    for item in items.iter_mut().filter(|item| item["kind"] == "Node") {
        for condition in item["status"]["conditions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            forget(condition, "/lastHeartbeatTime");
        }
    }
    Some(snapshot)
}

async fn generated_round_trip(version: &str) {
    let text = generate(&GenOptions {
        nodes: 8,
        pods: 200,
        seed: 3,
        ..GenOptions::default()
    });
    let input: Value = serde_yaml_ng::from_str(&text).unwrap();
    let sim = Sim::start(&text, 100.0).await;
    let Some(output) = kubectl_snapshot(&sim, version).await else {
        return;
    };
    let (mut input, mut output) = (items_by_key(&input), items_by_key(&output));
    // The namespace the kubelets keep their leases in exists on every running cluster.
    output.retain(|key, _| key != "Namespace /kube-node-lease" || input.contains_key(key));
    assert_eq!(
        input.keys().collect::<Vec<_>>(),
        output.keys().collect::<Vec<_>>()
    );
    for (key, expected) in &mut input {
        let actual = output.get_mut(key).unwrap();
        // resourceVersion is the server's; everything else, statuses included, must survive.
        forget_heartbeats(expected);
        with_apiserver_defaults(expected);
        forget(expected, "/metadata/resourceVersion");
        forget(actual, "/metadata/resourceVersion");
        assert_eq!(actual, expected, "{key} changed");
    }
}

async fn hand_written_round_trip(version: &str) {
    let input: Value = serde_yaml_ng::from_str(DRAIN_CLUSTER).unwrap();
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let Some(output) = kubectl_snapshot(&sim, version).await else {
        return;
    };
    let (mut input, mut output) = (items_by_key(&input), items_by_key(&output));
    // The namespace the kubelets keep their leases in exists on every running cluster.
    output.retain(|key, _| key != "Namespace /kube-node-lease" || input.contains_key(key));
    input.retain(|key, _| !key.starts_with("Certificate "));
    assert_eq!(
        input.keys().collect::<Vec<_>>(),
        output.keys().collect::<Vec<_>>()
    );
    for (key, expected) in &mut input {
        let actual = output.get_mut(key).unwrap();
        forget_heartbeats(expected);
        with_apiserver_defaults(expected);
        forget(expected, "/metadata/resourceVersion");
        forget(actual, "/metadata/resourceVersion");
        // Set by the server when the snapshot omits them.
        for field in ["creationTimestamp", "generation"] {
            if expected["metadata"].get(field).is_none() {
                forget(actual, &format!("/metadata/{field}"));
            }
        }
        // Workload and PDB statuses are the controllers' to write.
        if [
            "PodDisruptionBudget",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
        ]
        .contains(&expected["kind"].as_str().unwrap())
        {
            forget(actual, "/status");
        }
        assert_eq!(actual, expected, "{key} changed");
    }
    // The custom resource is served as loaded.
    let kubectl = sim.kubectl(version).unwrap();
    let out = kubectl
        .run(&["get", "certificates.cert-manager.io", "-A", "-o", "yaml"])
        .await
        .ok()
        .stdout;
    let certificates: Value = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(
        certificates["items"][0]["spec"]["dnsNames"][0],
        "shop.example.com"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_cluster_round_trips_through_kubectl_1_33() {
    generated_round_trip("1.33").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_cluster_round_trips_through_kubectl_1_27() {
    generated_round_trip("1.27").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_snapshot_round_trips_through_kubectl_1_33() {
    hand_written_round_trip("1.33").await;
}

fn serve_args(path: &std::path::Path) -> ServeArgs {
    ServeArgs {
        cluster: path.to_path_buf(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        kubeconfig_out: None,
        time_scale: 1.0,
        startup_delay: 10.0,
        seed: 0,
        version: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_snapshot_is_invalid_input_naming_document_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    let broken = DRAIN_CLUSTER.replacen(
        "      name: web\n      resources:",
        "      nam: web\n      resources:",
        1,
    );
    std::fs::write(&path, broken).unwrap();
    let error = krun::sim::run(SimCommand::Serve(serve_args(&path)))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert_eq!(
        error.message,
        format!(
            "cannot load the cluster file {}: items[9] (Pod shop/web-5d8f7c9b4-k2x7p): field `spec.containers[0].name`: must be a string",
            path.display()
        )
    );

    let error = krun::sim::run(SimCommand::Serve(serve_args(
        &dir.path().join("absent.yaml"),
    )))
    .await
    .unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(
        error.message.starts_with("cannot read the cluster file"),
        "{}",
        error.message
    );
}

/// Deep flow nesting is refused before the general YAML parser spends quadratic time on it.
#[test]
fn deeply_nested_brackets_are_refused_before_parsing() {
    let snapshot = format!(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: x\n    namespace: default\n  data:\n    a: {}\n",
        "[".repeat(100_000)
    );
    let error = krun::sim::Cluster::load(&snapshot).unwrap_err().to_string();
    assert!(error.contains("nested more than 1000 deep"), "{error}");
    assert!(error.contains("items[0]"), "{error}");
    let plain = format!("{}\n", "[".repeat(100_000));
    let error = krun::sim::Cluster::load(&plain).unwrap_err().to_string();
    assert!(error.contains("nested more than 1000 deep"), "{error}");
}
