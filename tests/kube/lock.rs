//! The cluster lock through the `krun` binary against the simulator: one upgrade at a time,
//! the holder named in the refusal, stale locks taken over only after expiry or with
//! `krun unlock --force`, and kured's reboot lock respected.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::support::*;
use crate::cli::{Krun, Output};

/// Waits for worker-1 to be Ready: holds the lock for as long as the test keeps it NotReady.
const WAIT_PLAYBOOK: &str = r#"
wait_ready(node, "10m");
log("worker-1 is Ready");
"#;

struct Setup {
    sim: Sim,
    playbook: std::path::PathBuf,
    inventory: std::path::PathBuf,
}

async fn setup() -> Setup {
    let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
    let playbook = sim.dir.path().join("wait.rhai");
    std::fs::write(&playbook, WAIT_PLAYBOOK).unwrap();
    let inventory = sim.dir.path().join("inventory.toml");
    std::fs::write(&inventory, "[nodes.worker-1]\nhost = \"127.0.0.1\"\n").unwrap();
    Setup {
        sim,
        playbook,
        inventory,
    }
}

impl Setup {
    fn run_args(&self) -> Vec<String> {
        vec![
            self.playbook.display().to_string(),
            "--inventory".into(),
            self.inventory.display().to_string(),
            "--kubeconfig".into(),
            self.sim.kubeconfig.display().to_string(),
            "--node".into(),
            "worker-1".into(),
        ]
    }

    fn kubeconfig_args(&self) -> Vec<String> {
        vec![
            "--kubeconfig".into(),
            self.sim.kubeconfig.display().to_string(),
        ]
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.sim.kube().client().clone(), "kube-system")
    }

    async fn lease(&self) -> Option<Lease> {
        self.leases().get_opt("krun-upgrade").await.unwrap()
    }

    async fn holder(&self) -> Option<String> {
        self.lease()
            .await
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    }

    /// Writes the Lease as another operator's krun would have left it.
    async fn plant_lease(&self, identity: &str, renewed: Timestamp) {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some("krun-upgrade".into()),
                namespace: Some("kube-system".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.into()),
                lease_duration_seconds: Some(60),
                acquire_time: Some(MicroTime(renewed)),
                renew_time: Some(MicroTime(renewed)),
                ..LeaseSpec::default()
            }),
        };
        self.leases()
            .create(&PostParams::default(), &lease)
            .await
            .unwrap();
    }
}

async fn krun(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Krun::new().args(args).run())
        .await
        .unwrap()
}

fn unlock(setup: &Setup, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["unlock".to_string()];
    args.extend(setup.kubeconfig_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_while_the_first_holds_the_lock() {
    let setup = setup().await;
    setup
        .sim
        .handle()
        .set_node_ready("worker-1", false)
        .unwrap();
    let first = tokio::spawn(krun(setup.run_args()));

    // The first run takes the lock, then waits for worker-1.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let holder = loop {
        if let Some(holder) = setup.holder().await {
            break holder;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(holder.contains(&format!("@{}", hostname())), "{holder}");
    assert!(holder.contains("wait.rhai"), "{holder}");

    let second = krun(setup.run_args()).await;
    second
        .code(3)
        .stderr_has("the cluster is locked by another upgrade")
        .stderr_has(&holder)
        .stderr_has("krun unlock --force");
    // A dry-run needs no lock.
    let mut dry = setup.run_args();
    dry.push("--dry-run".into());
    krun(dry).await.code(0);
    // Plain unlock leaves a live holder alone.
    krun(unlock(&setup, &[]))
        .await
        .code(3)
        .stderr_has("a live run renews it every 20 s, so its run may be alive");

    setup.sim.handle().set_node_ready("worker-1", true).unwrap();
    first.await.unwrap().code(0);
    assert_eq!(setup.holder().await, None, "the first run left its lock");
    let lease = setup.lease().await.unwrap();
    assert!(
        lease.spec.unwrap().lease_transitions.unwrap_or(0) == 0,
        "a release is not a transition"
    );

    // Now the second can run.
    krun(setup.run_args()).await.code(0);
    assert_eq!(setup.holder().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lock_is_taken_over_only_after_expiry_or_by_force() {
    let setup = setup().await;
    // Another operator's run, renewed a moment ago: refused, by name.
    setup
        .plant_lease(
            "bob@jumphost run 20261122T010203Z-abcdef (worker.rhai)",
            Timestamp::now(),
        )
        .await;
    krun(setup.run_args())
        .await
        .code(3)
        .stderr_has("bob@jumphost run 20261122T010203Z-abcdef (worker.rhai)")
        .stderr_has("expires in");
    assert!(setup.holder().await.unwrap().starts_with("bob@"));

    // Breaking it needs --force, and the Lease records who broke it.
    krun(unlock(&setup, &["--force"]))
        .await
        .code(0)
        .stdout_has("broke the lock kube-system/krun-upgrade, held by bob@jumphost");
    let lease = setup.lease().await.unwrap();
    assert_eq!(lease.spec.as_ref().unwrap().holder_identity, None);
    let broken = &lease.metadata.annotations.unwrap()["krun.io/broken"];
    assert!(broken.contains("was held by bob@jumphost"), "{broken}");
    krun(setup.run_args()).await.code(0);

    // A lease whose holder stopped renewing two minutes ago is taken over, with a warning.
    setup
        .leases()
        .delete("krun-upgrade", &Default::default())
        .await
        .unwrap();
    let stale = Timestamp::now()
        .checked_sub(SignedDuration::from_secs(120))
        .unwrap();
    setup
        .plant_lease(
            "carol@laptop run 20261121T230000Z-123456 (worker.rhai)",
            stale,
        )
        .await;
    krun(setup.run_args())
        .await
        .code(0)
        .stderr_has("taking over the cluster lock kube-system/krun-upgrade from carol@laptop");
    let lease = setup.lease().await.unwrap();
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(1));

    // An expired lock is cleared by a plain unlock too; a free one is reported as such.
    setup
        .leases()
        .delete("krun-upgrade", &Default::default())
        .await
        .unwrap();
    setup
        .plant_lease("dave@laptop run x (worker.rhai)", stale)
        .await;
    krun(unlock(&setup, &[]))
        .await
        .code(0)
        .stdout_has("cleared the lock kube-system/krun-upgrade (expired; was held by dave@laptop");
    krun(unlock(&setup, &[]))
        .await
        .code(0)
        .stdout_has("the lock kube-system/krun-upgrade is not held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kured_rebooting_a_node_stops_krun_before_anything_runs() {
    let setup = setup().await;
    let daemonsets: Api<k8s_openapi::api::apps::v1::DaemonSet> =
        Api::namespaced(setup.sim.kube().client().clone(), "kube-system");
    let name = daemonsets
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|d| d.metadata.name)
        .expect("the cluster has a DaemonSet in kube-system");
    let annotate = |value: serde_json::Value| serde_json::json!({ "metadata": { "annotations": { "weave.works/kured-node-lock": value } } });
    daemonsets
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(annotate(
                r#"{"nodeID":"worker-2","metadata":{"unschedulable":false},"created":"2026-11-22T01:02:03Z","TTL":0}"#.into(),
            )),
        )
        .await
        .unwrap();
    krun(setup.run_args())
        .await
        .code(3)
        .stderr_has("kured is rebooting nodes")
        .stderr_has("node worker-2 (since 2026-11-22T01:02:03Z)")
        .stderr_has(&format!("DaemonSet kube-system/{name}"));
    assert_eq!(
        setup.holder().await,
        None,
        "refused, yet the lock was taken"
    );

    // Released by kured (empty nodeID): krun runs.
    daemonsets
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(annotate(r#"{"nodeID":""}"#.into())),
        )
        .await
        .unwrap();
    krun(setup.run_args()).await.code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_refuses_unless_told_to_run_without_the_lock() {
    let setup = setup().await;
    setup.sim.handle().inject_fault(krun::sim::Fault {
        verb: "get".into(),
        resource: "leases".into(),
        namespace: None,
        // A single 503 is asked again; one that lasts is an unreachable lock.
        count: 1000,
        code: 503,
        message: None,
    });
    krun(setup.run_args())
        .await
        .code(3)
        .stderr_has("cannot take the cluster lock kube-system/krun-upgrade")
        .stderr_has("--no-lock");
    let mut args = setup.run_args();
    args.push("--no-lock".into());
    krun(args)
        .await
        .code(0)
        .stderr_has("running WITHOUT the cluster lock");
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lock_is_broken_makes_no_further_change() {
    let setup = setup().await;
    // Waits for worker-1, then cordons worker-2: a change the broken lock must stop.
    let playbook = setup.sim.dir.path().join("then-cordon.rhai");
    std::fs::write(
        &playbook,
        "wait_ready(\"worker-1\", \"10m\");\ncordon(\"worker-2\");\n",
    )
    .unwrap();
    setup
        .sim
        .handle()
        .set_node_ready("worker-1", false)
        .unwrap();
    let mut args = vec![
        playbook.display().to_string(),
        "--output".into(),
        "json".into(),
    ];
    args.extend(setup.kubeconfig_args());
    let run = tokio::spawn(krun(args));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while setup.holder().await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A colleague breaks the lock while the run waits; then the wait ends at once.
    krun(unlock(&setup, &["--force"])).await.code(0);
    setup.sim.handle().set_node_ready("worker-1", true).unwrap();
    let out = run.await.unwrap();
    out.code(3)
        .stderr_has("lost the cluster lock kube-system/krun-upgrade");
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    assert_eq!(steps[1]["action"], "cordon");
    assert!(
        steps[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("was not run: lost the cluster lock")),
        "{}",
        steps[1]
    );
    let worker_2 = setup.sim.kube().node_info("worker-2").await.unwrap();
    assert!(
        !worker_2.unschedulable,
        "worker-2 was cordoned after the lock was lost"
    );
}
