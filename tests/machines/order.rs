//! The order-of-operations oracle the SOP matrix relies on, shown to flag what it must: a
//! kubelet restarted on a node that was not drained, a budgeted pod deleted without its
//! budget's consent; and to accept a pod the Eviction API admitted, and a kubelet restarted on
//! a node krun drained.

use serde_json::{Value, json};

use crate::support::fleet::Os;
use crate::support::machines::Layout;
use crate::support::machines::lab::{MachineLab, MachineLabSpec};

/// A pod on `node` that a budget allowing a disruption covers, other than `except`:
/// (namespace, name).
fn budgeted_pod(lab: &MachineLab, node: &str, except: &str) -> (String, String) {
    let items = lab.handle().snapshot()["items"]
        .as_array()
        .cloned()
        .unwrap();
    let budgets: Vec<&Value> = items
        .iter()
        .filter(|i| i["kind"] == "PodDisruptionBudget")
        .filter(|b| b["status"]["disruptionsAllowed"].as_i64() >= Some(1))
        .collect();
    items
        .iter()
        .filter(|p| p["kind"] == "Pod" && p["spec"]["nodeName"] == node)
        .filter(|p| p["metadata"]["name"] != except)
        .find(|p| {
            budgets.iter().any(|b| {
                b["metadata"]["namespace"] == p["metadata"]["namespace"]
                    && b["spec"]["selector"]["matchLabels"]
                        .as_object()
                        .is_some_and(|m| m.iter().all(|(k, v)| p["metadata"]["labels"][k] == *v))
            })
        })
        .map(|p| {
            (
                p["metadata"]["namespace"].as_str().unwrap().to_string(),
                p["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .unwrap_or_else(|| panic!("no budgeted pod on {node}"))
}

/// Each budget's `status.disruptionsAllowed`, by namespace/name.
fn disruptions_allowed(lab: &MachineLab) -> std::collections::BTreeMap<String, i64> {
    lab.handle().snapshot()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["kind"] == "PodDisruptionBudget")
        .map(|b| {
            (
                format!(
                    "{}/{}",
                    b["metadata"]["namespace"].as_str().unwrap_or_default(),
                    b["metadata"]["name"].as_str().unwrap_or_default()
                ),
                b["status"]["disruptionsAllowed"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn curl(method: &str, url: &str, body: Option<&Value>) -> Value {
    let mut command = std::process::Command::new("curl");
    command.args(["-sS", "-X", method, url]);
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ]);
    }
    let out = command.output().expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn the_history_flags_undrained_restarts_and_evictions_without_consent() {
    let mut spec = MachineLabSpec::new(Os::Debian12, Layout::AptLegacy, "1.20.15").workers(2);
    spec.pods = 30;
    let Some(lab) = MachineLab::start(spec) else {
        return;
    };
    assert_eq!(lab.order_violations(), Vec::<String>::new());

    // A kubelet restarted on a schedulable node that runs pods.
    let mark = lab.mark();
    lab.machine("w1").sh("systemctl restart kubelet");
    lab.wait_ready("w1", "containerd://");
    let found = lab.order_violations_since(mark);
    assert!(
        found.len() == 1
            && found[0].starts_with("w1: kubelet stopped")
            && found[0].contains("while schedulable, running"),
        "{found:?}"
    );

    // A budgeted pod deleted directly, and another one evicted through the Eviction API.
    let allowed_before = disruptions_allowed(&lab);
    let mark = lab.mark();
    let (namespace, deleted) = budgeted_pod(&lab, "w1", "");
    curl(
        "DELETE",
        &format!("{}/api/v1/namespaces/{namespace}/pods/{deleted}", lab.url()),
        None,
    );
    let (namespace, evicted) = budgeted_pod(&lab, "w1", &deleted);
    let answer = curl(
        "POST",
        &format!(
            "{}/api/v1/namespaces/{namespace}/pods/{evicted}/eviction",
            lab.url()
        ),
        // The Eviction version a 1.20 apiserver accepts (policy/v1 is served from 1.22).
        Some(&json!({
            "apiVersion": "policy/v1beta1",
            "kind": "Eviction",
            "metadata": {"name": evicted, "namespace": namespace},
        })),
    );
    assert_eq!(answer["status"], "Success", "{answer}");
    let found = lab.order_violations_since(mark);
    assert!(
        found.len() == 1
            && found[0].contains(&deleted)
            && found[0].contains("without the consent of budget"),
        "{found:?}"
    );

    // Their replacements come up before krun is asked to drain (its preflight refuses a drain
    // a budget does not allow).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let now = disruptions_allowed(&lab);
        let short: Vec<&String> = allowed_before
            .iter()
            .filter(|(key, before)| now.get(*key).copied().unwrap_or(0) < **before)
            .map(|(key, _)| key)
            .collect();
        if short.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "budgets never allowed their disruptions again: {short:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // krun drains w2, then its kubelet restarts: nothing to flag.
    let mark = lab.mark();
    let playbook = lab.dir().join("drained-restart.rhai");
    std::fs::write(
        &playbook,
        "import \"node\" as node_ops;\nnode_ops::maintain(node, (), |node| {\n    systemctl(node, \"restart\", \"kubelet\");\n});\n",
    )
    .unwrap();
    lab.krun(&playbook)
        .args(["--node", "w2", "--set", "ready_timeout=60s"])
        .run()
        .code(0);
    assert_eq!(lab.order_violations_since(mark), Vec::<String>::new());
    assert!(
        lab.history()
            .changes()
            .iter()
            .filter(|c| c.rv > mark)
            .any(|c| c.object["metadata"]["name"] == "w2"
                && c.object["spec"]["unschedulable"] == true),
        "the history saw w2 cordoned"
    );
}
