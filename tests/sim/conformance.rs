//! Conformance: the same scenarios with every kubectl minor on the machine (1.27–1.33 and
//! Debian's 1.20), each against the simulator playing the kubectl's own Kubernetes version
//! (`--version`), each asserting what a real apiserver of that version answers. The upstream
//! source of every expected answer is named beside it.

use serde_json::Value;

use super::support::*;

/// The server a kubectl of `minor` is tested against: the same release.
fn server_version(minor: u32) -> String {
    format!("v1.{minor}.0")
}

fn minor_of(version: &str) -> u32 {
    version
        .trim_start_matches("1.")
        .parse()
        .expect("a minor version")
}

async fn start(version: &str) -> Option<(Sim, Kubectl)> {
    let server = server_version(minor_of(version));
    let sim = Sim::start_as(DRAIN_CLUSTER, 100.0, Some(&server)).await;
    let kubectl = sim.kubectl(version)?;
    Some((sim, kubectl))
}

fn pods(sim: &Sim) -> Vec<Value> {
    sim.handle().snapshot()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "Pod")
        .cloned()
        .collect()
}

/// The line `kubectl drain` ends with: `node/NAME drained`. kubectl 1.20 prints the node with
/// the verb of the last pod line instead (`evicted`, or `deleted` with --disable-eviction);
/// from 1.21 it prints "drained".
fn drained(node: &str, version: &str, verb_1_20: &str) -> String {
    if minor_of(version) == 20 {
        format!("node/{node} {verb_1_20}")
    } else {
        format!("node/{node} drained")
    }
}

async fn discovery_follows_the_version(version: &str) {
    let Some((_sim, kubectl)) = start(version).await else {
        return;
    };
    let minor = minor_of(version);
    let out = kubectl.run(&["api-versions"]).await.ok().stdout;
    let served: Vec<&str> = out.lines().collect();
    // Deprecation guide: policy/v1beta1 PodDisruptionBudget is no longer served as of v1.25;
    // CHANGELOG-1.21: PodDisruptionBudget graduates to policy/v1.
    assert_eq!(served.contains(&"policy/v1beta1"), minor <= 24, "{out}");
    assert_eq!(served.contains(&"policy/v1"), minor >= 21, "{out}");
    // CHANGELOG-1.21: CronJob graduates to batch/v1; batch/v1beta1 is removed in v1.25.
    assert_eq!(served.contains(&"batch/v1beta1"), minor <= 24, "{out}");
    let out = kubectl.run(&["version", "-o", "json"]).await.ok().stdout;
    let reported: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        reported["serverVersion"]["gitVersion"],
        server_version(minor).as_str()
    );
    // The core group announces the Eviction version kubectl drain uses
    // (kubectl/pkg/drain/drain.go CheckEvictionSupport): policy/v1 from 1.22 (CHANGELOG-1.22).
    let out = kubectl.run(&["get", "--raw", "/api/v1"]).await.ok().stdout;
    let core: Value = serde_json::from_str(&out).unwrap();
    let eviction = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .unwrap();
    let expected = if minor >= 22 { "v1" } else { "v1beta1" };
    assert_eq!(eviction["version"], expected);
}

async fn budgets_block_a_drain(version: &str) {
    let Some((sim, kubectl)) = start(version).await else {
        return;
    };
    let minor = minor_of(version);
    // `kubectl get` reads the group's preferred version: policy/v1beta1 before 1.21.
    let out = kubectl
        .run(&[
            "get",
            "pdb",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.apiVersion}",
        ])
        .await
        .ok()
        .stdout;
    let expected = if minor >= 21 {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    assert_eq!(out, expected);
    let run = kubectl
        .run(&[
            "drain",
            "worker-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .await;
    // kubectl 1.20 names the flag --delete-local-data (deprecated in 1.20, kept until 1.23);
    // --delete-emptydir-data exists from 1.20 on (CHANGELOG-1.20).
    let run = run.ok();
    assert!(
        run.stdout
            .contains(&drained("worker-1", version, "evicted")),
        "{}",
        run.stdout
    );
    // pkg/registry/core/pod/storage/eviction.go: the 429 a blocked eviction answers.
    assert!(
        run.stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        run.stderr
    );
    let web: Vec<Value> = pods(&sim)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .collect();
    assert_eq!(web.len(), 3);
    assert!(web.iter().all(|p| p["spec"]["nodeName"] != "worker-1"));
    // PodDisruptionConditions (on by default from 1.26) marks evicted pods; nothing is left
    // of them here, but the events the kubelet recorded while stopping them are.
    let out = kubectl
        .run(&[
            "get",
            "events",
            "-n",
            "shop",
            "--field-selector",
            "reason=Killing",
            "-o",
            "name",
        ])
        .await
        .ok()
        .stdout;
    assert!(out.lines().count() >= 2, "{out}");
}

async fn rollouts_replace_pods(version: &str) {
    let Some((sim, kubectl)) = start(version).await else {
        return;
    };
    let before: Vec<String> = pods(&sim)
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    kubectl
        .run(&[
            "set",
            "image",
            "deployment/web",
            "web=registry.example.com/shop/web:1.5.0",
            "-n",
            "shop",
        ])
        .await
        .ok();
    // kubectl/pkg/polymorphichelpers/rollout_status.go: the message of a finished rollout.
    let out = kubectl
        .run(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "shop",
            "--timeout=120s",
        ])
        .await
        .ok()
        .stdout;
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let web: Vec<Value> = pods(&sim)
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["app"] == "web"
                && p["metadata"].get("deletionTimestamp").is_none()
        })
        .collect();
    assert_eq!(web.len(), 3);
    for pod in &web {
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            "registry.example.com/shop/web:1.5.0"
        );
        assert!(!before.contains(&pod["metadata"]["name"].as_str().unwrap().to_string()));
    }
    let out = kubectl
        .run(&[
            "get",
            "rs",
            "web-5d8f7c9b4",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await
        .ok()
        .stdout;
    assert_eq!(out, "0");

    kubectl
        .run(&[
            "rollout",
            "restart",
            "daemonset/kube-proxy",
            "-n",
            "kube-system",
        ])
        .await
        .ok();
    let out = kubectl
        .run(&[
            "rollout",
            "status",
            "daemonset/kube-proxy",
            "-n",
            "kube-system",
            "--timeout=120s",
        ])
        .await
        .ok()
        .stdout;
    assert!(
        out.contains("daemon set \"kube-proxy\" successfully rolled out"),
        "{out}"
    );

    kubectl
        .run(&[
            "set",
            "image",
            "statefulset/db",
            "postgres=docker.io/library/postgres:16.3",
            "-n",
            "shop",
        ])
        .await
        .ok();
    let out = kubectl
        .run(&[
            "rollout",
            "status",
            "statefulset/db",
            "-n",
            "shop",
            "--timeout=120s",
        ])
        .await
        .ok()
        .stdout;
    // rollout_status.go: with the defaulted `partition: 0` kubectl reports a partitioned
    // roll out, once every pod from the partition up is updated.
    assert!(
        out.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{out}"
    );
    let images: Vec<Value> = pods(&sim)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "db")
        .map(|p| p["spec"]["containers"][0]["image"].clone())
        .collect();
    assert_eq!(images, ["docker.io/library/postgres:16.3"; 2]);
}

async fn scale_can_i_and_writable_kinds(version: &str) {
    let Some((sim, kubectl)) = start(version).await else {
        return;
    };
    let out = kubectl
        .run(&["scale", "deployment/web", "--replicas=4", "-n", "shop"])
        .await
        .ok()
        .stdout;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let web = sim
        .handle()
        .object("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    assert_eq!(web["spec"]["replicas"], 4);
    // SelfSubjectAccessReview: an admin kubeconfig may do anything.
    let out = kubectl
        .run(&["auth", "can-i", "delete", "pods"])
        .await
        .ok()
        .stdout;
    assert_eq!(out.trim(), "yes");
    // kubectl 1.32+ sends these bodies as protobuf.
    kubectl.run(&["create", "namespace", "team"]).await.ok();
    kubectl
        .run(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
            "-n",
            "team",
        ])
        .await
        .ok();
    kubectl
        .run(&[
            "create",
            "secret",
            "generic",
            "token",
            "--from-literal=key=s3cret",
            "-n",
            "team",
        ])
        .await
        .ok();
    kubectl
        .run(&[
            "create",
            "deployment",
            "api",
            "--image=nginx:1.25",
            "-n",
            "team",
        ])
        .await
        .ok();
    let out = kubectl
        .run(&[
            "get",
            "configmap",
            "settings",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.mode}",
        ])
        .await
        .ok()
        .stdout;
    assert_eq!(out, "fast");
    let out = kubectl
        .run(&[
            "rollout",
            "status",
            "deployment/api",
            "-n",
            "team",
            "--timeout=120s",
        ])
        .await
        .ok()
        .stdout;
    assert!(out.contains("successfully rolled out"), "{out}");
    // kubectl 1.20 creates policy/v1beta1 budgets, later ones policy/v1: each is served.
    kubectl
        .run(&[
            "create",
            "pdb",
            "api",
            "--selector=app=api",
            "--min-available=1",
            "-n",
            "team",
        ])
        .await
        .ok();
    let pdb = kubectl
        .run(&[
            "get",
            "pdb",
            "api",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.minAvailable}",
        ])
        .await
        .ok()
        .stdout;
    assert_eq!(pdb, "1");
}

async fn drain_without_eviction_deletes(version: &str) {
    let Some((sim, kubectl)) = start(version).await else {
        return;
    };
    // kubectl/pkg/drain: --disable-eviction deletes pods directly (DeleteOptions body).
    let run = kubectl
        .run(&[
            "drain",
            "worker-3",
            "--ignore-daemonsets",
            "--force",
            "--disable-eviction",
            "--timeout=120s",
        ])
        .await
        .ok();
    assert!(
        run.stdout
            .contains(&drained("worker-3", version, "deleted")),
        "{}",
        run.stdout
    );
    let left: Vec<String> = pods(&sim)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "worker-3")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["kube-proxy-ddddd"]);
    // The kubelets hold their leases in kube-node-lease (NodeLease, GA in 1.17).
    let out = kubectl
        .run(&["get", "leases", "-n", "kube-node-lease", "-o", "name"])
        .await
        .ok()
        .stdout;
    assert_eq!(out.lines().count(), 4, "{out}");
}

macro_rules! conformance {
    ($($module:ident => $version:literal),*) => {$(
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn discovery_follows_the_served_version() {
                super::discovery_follows_the_version($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn budgets_block_a_drain_through_the_served_eviction_version() {
                super::budgets_block_a_drain($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rollouts_replace_pods_and_report_it() {
                super::rollouts_replace_pods($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scale_can_i_and_writable_kinds() {
                super::scale_can_i_and_writable_kinds($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn drain_without_eviction_deletes_pods() {
                super::drain_without_eviction_deletes($version).await;
            }
        }
    )*};
}

conformance!(
    kubectl_1_20 => "1.20",
    kubectl_1_27 => "1.27",
    kubectl_1_28 => "1.28",
    kubectl_1_29 => "1.29",
    kubectl_1_30 => "1.30",
    kubectl_1_31 => "1.31",
    kubectl_1_32 => "1.32",
    kubectl_1_33 => "1.33"
);
