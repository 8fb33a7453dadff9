//! Verifying a hop against the simulator through the `krun` binary: a baseline taken at the
//! start of a run, then the cluster judged after it. It catches an addon that did not roll out
//! (the stdlib's `addons::apply` and `verify` both name it), a workload that lost ready
//! replicas and a pod newly crash-looping compared with the start, and writes the before/after
//! report as JSON and as an HTML page; a dry-run judges nothing.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::support::*;
use crate::cli::Krun;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// An addon whose pods can run nowhere: no node has the label its selector asks for.
const STUCK_ADDON: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: metrics-agent
  namespace: kube-system
spec:
  replicas: 2
  selector:
    matchLabels: {app: metrics-agent}
  template:
    metadata:
      labels: {app: metrics-agent}
    spec:
      nodeSelector: {example.com/no-such-pool: \"true\"}
      containers:
      - name: agent
        image: registry.example.com/metrics-agent:2.1.0
";

/// An addon that schedules anywhere.
const GOOD_ADDON: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cni-node
  namespace: kube-system
spec:
  selector:
    matchLabels: {app: cni-node}
  template:
    metadata:
      labels: {app: cni-node}
    spec:
      tolerations: [{operator: Exists}]
      containers:
      - name: cni
        image: registry.example.com/cni-node:3.26.1
";

struct Setup {
    sim: Sim,
    state: PathBuf,
}

impl Setup {
    async fn start() -> Self {
        let sim = Sim::start(DRAIN_CLUSTER, 100.0).await;
        let state = sim.dir.path().join("state");
        Setup { sim, state }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.sim.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn krun(&self, playbook: &Path, extra: &[&str]) -> crate::cli::Output {
        let mut args: Vec<String> = vec![
            playbook.display().to_string(),
            "--kubeconfig".into(),
            self.sim.kubeconfig.display().to_string(),
            "--state-dir".into(),
            self.state.display().to_string(),
            "--no-lock".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        tokio::task::spawn_blocking(move || Krun::new().args(args).run())
            .await
            .unwrap()
    }

    /// Makes pods of `selector` in `namespace` not ready, as their kubelet would report it.
    async fn break_pods(
        &self,
        namespace: &str,
        selector: &str,
        count: usize,
        waiting: Option<&str>,
    ) {
        let pods: Api<Pod> = Api::namespaced(self.sim.client(), namespace);
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        assert!(
            list.items.len() >= count,
            "{selector}: {} pods",
            list.items.len()
        );
        for pod in list.items.iter().take(count) {
            let name = pod.metadata.name.clone().unwrap();
            let container = pod.spec.as_ref().unwrap().containers[0].name.clone();
            let state = match waiting {
                Some(reason) => json!({"waiting": {"reason": reason}}),
                None => json!({"running": {}}),
            };
            let status = json!({"status": {
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                    {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"}
                ],
                "containerStatuses": [{"name": container, "ready": false, "restartCount": 4,
                    "image": "", "imageID": "", "state": state}]
            }});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    }
}

fn unwrapped(text: &str) -> String {
    text.lines()
        .map(|l| l.trim_start().trim_start_matches(['│', '×']).trim())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_addon_that_does_not_roll_out_fails_its_step_and_the_verification() {
    let setup = Setup::start().await;
    setup.file("addon-1.28.yaml", STUCK_ADDON);
    setup.file("cni.yaml", GOOD_ADDON);

    // The stdlib step: applied, waited for, and the one that cannot schedule named.
    let playbook = setup.file(
        "addons.rhai",
        "import \"addons\" as addons;\nverify_baseline();\naddons::apply([\"cni.yaml\", \"addon-{minor}.yaml\"], \"1.28.9\", #{ timeout: \"10s\" });\n",
    );
    let out = setup.krun(&playbook, &["--output", "json"]).await;
    out.code(1);
    let report = out.json();
    let steps = report["nodes"][0]["steps"].as_array().unwrap();
    let apply = steps.iter().find(|s| s["action"] == "kube_apply").unwrap();
    assert_eq!(
        apply["command"],
        "kubectl apply --server-side --field-manager=krun --force-conflicts -f cni.yaml,addon-1.28.yaml (DaemonSet kube-system/cni-node, Deployment kube-system/metrics-agent)"
    );
    let wait = steps
        .iter()
        .find(|s| s["action"] == "wait_rollout")
        .unwrap();
    assert_eq!(
        wait["error"],
        "not rolled out in time: kube-system/Deployment/metrics-agent: 0 of 2 available, 2 updated",
        "{wait}"
    );
    assert_eq!(
        wait["data"][0]["workload"],
        "kube-system/DaemonSet/cni-node"
    );
    assert_eq!(wait["data"][0]["done"], true, "{wait}");

    // The verification of the hop names it too, and only it among the addons.
    let playbook = setup.file(
        "verify.rhai",
        "verify_baseline();\nkube_apply([\"cni.yaml\", \"addon-1.28.yaml\"]);\nverify(#{ version: \"1.28\", timeout: \"10s\", etcd: false });\n",
    );
    let out = setup.krun(&playbook, &["--output", "json"]).await;
    out.code(1);
    let said = unwrapped(&out.stderr);
    assert!(said.contains("verification at 1.28: FAILED"), "{said}");
    assert!(
        said.contains("FAIL  addons        kube-system/Deployment/metrics-agent: not rolled out: 0 of 2 available"),
        "{said}"
    );
    let report = out.json();
    let verify = report["nodes"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "verify")
        .expect("a verify step")
        .clone();
    let checks = verify["data"]["checks"].as_array().unwrap();
    let status = |subject: &str| {
        checks
            .iter()
            .find(|c| c["subject"] == subject)
            .unwrap_or_else(|| panic!("no check of {subject}: {checks:?}"))["status"]
            .clone()
    };
    assert_eq!(status("kube-system/Deployment/metrics-agent"), "fail");
    assert_eq!(status("kube-system/DaemonSet/cni-node"), "pass");
    assert_eq!(status("kube-system/DaemonSet/kube-proxy"), "pass");
    assert_eq!(status("cp-1"), "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_that_lost_replicas_since_the_start_fails_the_verification() {
    let setup = Setup::start().await;
    // The run that takes the baseline, as an SOP does at its start.
    let baseline = setup.file("baseline.rhai", "verify_baseline();\n");
    let out = setup.krun(&baseline, &["--output", "json"]).await;
    out.code(0);
    let run = out.json()["run_id"].as_str().unwrap().to_owned();

    // Healthy: the verification against that baseline passes, and says so.
    let verify = PathBuf::from(ROOT).join("playbooks/verify.rhai");
    let base = format!("baseline={run}");
    let args = [
        "--set",
        "version=1.28.9",
        "--set",
        &base,
        "--set",
        "etcd=false",
        "--set",
        "timeout=10s",
    ];
    let out = setup.krun(&verify, &args).await;
    out.code(0)
        .stderr_has("verification at 1.28.9: ok")
        .stderr_has("(compared with the cluster as the run found it)");

    // Two of web's three replicas stop being ready; one of db's pods crash-loops.
    setup.break_pods("shop", "app=web", 2, None).await;
    setup
        .break_pods("shop", "app=db", 1, Some("CrashLoopBackOff"))
        .await;
    let html = setup.sim.dir.path().join("verify.html");
    let html_arg = format!("report={}", html.display());
    let mut failing: Vec<&str> = args.to_vec();
    failing.extend(["--set", &html_arg]);
    let out = setup.krun(&verify, &failing).await;
    out.code(1);
    let said = unwrapped(&out.stderr);
    for expected in [
        "verification at 1.28.9: FAILED",
        "FAIL  workloads     shop/Deployment/web: 1 of 3 ready (before: 3 of 3 ready)",
        "FAIL  pods          shop/StatefulSet/db: newly in CrashLoopBackOff (before: running)",
    ] {
        assert!(said.contains(expected), "{expected}\n{said}");
    }
    let page = std::fs::read_to_string(&html).expect("the HTML report");
    assert!(page.contains("<h2>Verification at 1.28.9</h2>"), "{page}");
    assert!(
        page.contains("<td>shop/Deployment/web</td><td>3 of 3 ready</td><td>1 of 3 ready</td>"),
        "{page}"
    );

    // A dry-run judges nothing: what it verifies after was not done.
    let out = setup
        .krun(&verify, &[&args[..], &["--dry-run"]].concat())
        .await;
    out.code(0).stderr_has("not judged");
}
