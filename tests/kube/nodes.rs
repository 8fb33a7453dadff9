//! Reading nodes, connecting through a kubeconfig, cordoning, and waiting for Ready.

use std::time::Duration;

use krun::error::Kind;
use krun::kube::{ClientOptions, Kube, KubeError};

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_info_reports_versions_runtime_state_and_address() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let info = sim.kube().node_info("worker-1").await.unwrap();
    let node = sim.handle().object("v1", "Node", "", "worker-1").unwrap();
    let reported = |field: &str| {
        node["status"]["nodeInfo"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(info.name, "worker-1");
    assert_eq!(info.kubelet_version, reported("kubeletVersion"));
    assert_eq!(info.kube_proxy_version, reported("kubeProxyVersion"));
    assert_eq!(
        format!(
            "{}://{}",
            info.container_runtime, info.container_runtime_version
        ),
        reported("containerRuntimeVersion")
    );
    assert_eq!(info.os_image, reported("osImage"));
    assert_eq!(info.architecture, reported("architecture"));
    assert!(info.ready);
    assert!(!info.unschedulable);
    assert!(info.conditions.iter().any(|c| c.type_ == "Ready"));
    let internal_ip = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .map(|a| a["address"].as_str().unwrap().to_owned());
    assert!(internal_ip.is_some());
    assert_eq!(info.internal_ip, internal_ip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_version_follows_the_control_plane() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    sim.handle()
        .set_control_plane_version("v1.22.17", None)
        .unwrap();
    let version = sim.kube().server_version().await.unwrap();
    assert_eq!(version.git_version, "v1.22.17");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "22")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_through_a_kubeconfig_and_context_like_kubectl() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let options = ClientOptions {
        kubeconfig: Some(sim.kubeconfig.clone()),
        context: Some("krun-sim".to_owned()),
    };
    let kube = Kube::connect(&options).await.unwrap();
    assert!(kube.node_info("cp-1").await.unwrap().ready);

    let options = ClientOptions {
        kubeconfig: Some(sim.kubeconfig.clone()),
        context: Some("prod".to_owned()),
    };
    let error = Kube::connect(&options).await.unwrap_err();
    assert_eq!(error.kind(), Kind::Input);
    assert!(
        error
            .to_string()
            .contains("context \"prod\" not found; the kubeconfig has: krun-sim"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_node_is_named() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let error = sim.kube().cordon("worker-9").await.unwrap_err();
    assert!(matches!(error, KubeError::NodeNotFound { .. }), "{error:?}");
    assert_eq!(error.to_string(), "node worker-9 not found in the cluster");
}

/// The node's spec as kubectl shows it, minus the taints' timestamps.
async fn node_spec(kubectl: &Kubectl, node: &str) -> serde_json::Value {
    let run = kubectl.run(&["get", "node", node, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let node: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let mut spec = node["spec"].clone();
    // Each simulator has its own clock.
    for taint in spec["taints"].as_array_mut().into_iter().flatten() {
        taint.as_object_mut().unwrap().remove("timeAdded");
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_and_uncordon_are_idempotent_and_leave_the_node_as_kubectl_does() {
    let ours = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let theirs = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let (Some(kubectl_ours), Some(kubectl_theirs)) = (ours.kubectl("1.33"), theirs.kubectl("1.33"))
    else {
        return;
    };
    let kube = ours.kube();

    assert!(
        kube.cordon("worker-2").await.unwrap(),
        "first cordon changes"
    );
    assert!(
        !kube.cordon("worker-2").await.unwrap(),
        "second cordon does not"
    );
    assert_eq!(ours.requests().get("patch nodes"), Some(&1));
    assert_eq!(kubectl_theirs.run(&["cordon", "worker-2"]).await.code, 0);
    assert_eq!(
        node_spec(&kubectl_ours, "worker-2").await,
        node_spec(&kubectl_theirs, "worker-2").await
    );
    assert!(kube.node_info("worker-2").await.unwrap().unschedulable);

    assert!(kube.uncordon("worker-2").await.unwrap());
    assert!(!kube.uncordon("worker-2").await.unwrap());
    assert_eq!(ours.requests().get("patch nodes"), Some(&2));
    assert_eq!(kubectl_theirs.run(&["uncordon", "worker-2"]).await.code, 0);
    assert_eq!(
        node_spec(&kubectl_ours, "worker-2").await,
        node_spec(&kubectl_theirs, "worker-2").await
    );
    assert!(!kube.node_info("worker-2").await.unwrap().unschedulable);
}

/// Waits (locally, on the simulator's counters) until `counter` has been requested at least
/// `at_least` times; the simulator is in-process, so this costs no API request.
pub async fn until_requested(sim: &Sim, counter: &str, at_least: u64) {
    for _ in 0..2000 {
        if sim.requests().get(counter).copied().unwrap_or(0) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "{counter} was not requested {at_least} times: {:?}",
        sim.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_ready_watches_through_an_api_server_restart() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let handle = sim.handle();
    handle.set_node_ready("worker-3", false).unwrap();
    handle.reset_request_counts();
    let kube = sim.kube();
    let waiting = tokio::spawn(async move {
        kube.wait_ready("worker-3", Duration::from_secs(60), Some("1.29.4"))
            .await
    });
    until_requested(&sim, "watch nodes", 1).await;
    // The upgrade: the API server restarts, the kubelet comes back with a new version but
    // is not Ready at first.
    handle.drop_watches();
    handle.set_kubelet_version("worker-3", "v1.29.4").unwrap();
    until_requested(&sim, "watch nodes", 2).await;
    assert!(!waiting.is_finished(), "returned before the node was Ready");
    handle.set_node_ready("worker-3", true).unwrap();
    let info = waiting.await.unwrap().unwrap();
    assert!(info.ready);
    assert_eq!(info.kubelet_version, "v1.29.4");
    let requests = sim.requests();
    assert_eq!(requests.get("get nodes"), None, "no polling: {requests:?}");
    assert!(
        requests.get("list nodes").copied().unwrap_or(0) <= 2,
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_ready_times_out_with_what_the_node_last_said() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    sim.handle().set_node_ready("worker-3", false).unwrap();
    let error = sim
        .kube()
        .wait_ready("worker-3", Duration::from_millis(300), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), Kind::Runtime);
    let message = error.to_string();
    assert!(
        message.starts_with("node worker-3 did not become Ready within 300ms; last seen: Ready=False (KubeletNotReady"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_ready_insists_on_the_wanted_kubelet_version() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let kube = sim.kube();
    let current = kube.node_info("worker-3").await.unwrap().kubelet_version;
    let ready = kube
        .wait_ready("worker-3", Duration::from_secs(5), Some(&current))
        .await
        .unwrap();
    assert_eq!(ready.kubelet_version, current);
    let error = kube
        .wait_ready("worker-3", Duration::from_millis(300), Some("v1.99.0"))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("with kubelet v1.99.0"), "{message}");
    assert!(
        message.contains(&format!(
            "Ready=True (KubeletReady: kubelet is posting ready status), kubelet {current}"
        )) || message.contains(&format!("kubelet {current}")),
        "{message}"
    );
}

fn burst(verb: &str, resource: &str, count: u32, code: u16) -> krun::sim::Fault {
    krun::sim::Fault {
        verb: verb.into(),
        resource: resource.into(),
        namespace: None,
        count,
        code,
        message: None,
    }
}

/// An API server that answers "try again" a few times (an etcd leader election, a restart
/// behind the load balancer) does not fail a read, a cordon or an uncordon; one that keeps
/// answering so does, with its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_cordons_ride_out_a_burst_of_server_errors() {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let kube = sim.kube();
    sim.handle().inject_fault(burst("get", "nodes", 3, 503));
    assert!(kube.node_info("worker-1").await.unwrap().ready);
    sim.handle().inject_fault(burst("list", "pods", 2, 500));
    assert!(!kube.pods_on("worker-1").await.unwrap().is_empty());
    sim.handle().inject_fault(burst("patch", "nodes", 1, 500));
    assert!(kube.cordon("worker-1").await.unwrap());
    assert!(kube.node_info("worker-1").await.unwrap().unschedulable);
    sim.handle().inject_fault(burst("get", "nodes", 1, 429));
    sim.handle().inject_fault(burst("patch", "nodes", 2, 503));
    assert!(kube.uncordon("worker-1").await.unwrap());
    assert!(!kube.node_info("worker-1").await.unwrap().unschedulable);
    let requests = sim.requests();
    assert!(requests["patch nodes"] >= 5, "{requests:?}");

    // A server that keeps failing is reported with its answer, after a few seconds; a 404 is
    // an answer, not a hiccup.
    sim.handle().inject_fault(burst("get", "nodes", 100, 503));
    let error = kube.node_info("worker-1").await.unwrap_err();
    assert_eq!(error.http_status(), Some(503), "{error}");
    sim.handle().clear_faults();
    sim.handle().inject_fault(burst("get", "nodes", 1, 404));
    assert!(
        kube.node_info("worker-1").await.is_err(),
        "a 404 is not asked again"
    );
}
