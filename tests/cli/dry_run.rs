//! Offline dry-runs: the plan of a playbook without contacting any node.

use super::{Krun, playbook};

#[test]
fn offline_plan_of_the_bundled_playbook() {
    let out = Krun::new()
        .args([
            "playbooks/kubelet.rhai",
            "--inventory",
            "examples/inventory.toml",
            "--node",
            "worker-1",
            "--node",
            "worker-3",
            "--set",
            "version=1.21.14",
            "--dry-run",
            "--offline",
            "--output",
            "json",
        ])
        .run();
    out.code(0);
    let json = out.json();
    assert_eq!(json["dry_run"], true);
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for node in nodes {
        assert_eq!(node["status"], "ok");
        let steps = node["steps"].as_array().unwrap();
        assert!(
            steps.iter().all(|s| s["executed"] == false),
            "offline executes nothing"
        );
        // os_facts could not be observed, so it and every later step depend on unobserved state.
        assert_eq!(steps[0]["action"], "os_facts");
        assert!(steps.iter().all(|s| s["observed"] == false));
    }
    let mut json = json;
    json["run_id"] = "[run-id]".into();
    insta::assert_snapshot!(
        serde_json::to_string_pretty(&json)
            .unwrap()
            .replace(env!("CARGO_MANIFEST_DIR"), "[repo]")
    );
}

#[test]
fn offline_text_plan_reads_at_a_glance() {
    let out = Krun::new()
        .args([
            "playbooks/kubelet.rhai",
            "--inventory",
            "examples/inventory.toml",
            "--node",
            "worker-1",
            "--set",
            "version=1.21.14",
            "--dry-run",
            "--offline",
        ])
        .run();
    out.code(0);
    let stable: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("Run "))
        .collect();
    insta::assert_snapshot!(
        stable
            .join("\n")
            .replace(env!("CARGO_MANIFEST_DIR"), "[repo]")
    );
}

#[test]
fn cluster_level_playbook_runs_once_without_a_node() {
    let (_dir, path) =
        playbook("if node != () { fail(\"node should be unit\"); }\nlog(\"cluster\");\n");
    let out = Krun::new()
        .args([
            path.to_str().unwrap(),
            "--dry-run",
            "--offline",
            "--output",
            "json",
        ])
        .run();
    out.code(0);
    assert_eq!(out.json()["nodes"][0]["name"], "cluster");
}

#[test]
fn offline_requires_dry_run() {
    Krun::new()
        .args(["playbooks/kubelet.rhai", "--offline"])
        .run()
        .code(2)
        .stderr_has("--offline only makes sense with --dry-run");
}

#[test]
fn array_commands_quote_each_word() {
    // Values injected through arrays are quoted, one argument each.
    let (_dir, path) = playbook("sh(find_node(\"n1\"), [\"echo\", param(\"v\")]);\n");
    let inventory = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(inventory.path(), "[nodes.n1]\nhost = \"127.0.0.1\"\n").unwrap();
    let out = Krun::new()
        .args([
            path.to_str().unwrap(),
            "--inventory",
            inventory.path().to_str().unwrap(),
            "--set",
            "v=1.21; rm -rf /",
            "--dry-run",
            "--offline",
            "--output",
            "json",
        ])
        .run();
    out.code(0);
    assert_eq!(
        out.json()["nodes"][0]["steps"][0]["command"],
        "echo '1.21; rm -rf /'"
    );
}

#[test]
fn secrets_never_reach_plans_logs_or_journals() {
    let (dir, path) = playbook(
        r#"let n = find_node("n1");
sh(n, "kubeadm join 10.0.0.1:6443 --token " + param("token"));
let key = secret("c3rtk3y");
log(`certificate key ${key}`);
sh(n, ["kubeadm", "join", "--certificate-key", key]);
fail("stop with " + param("token"));
"#,
    );
    let inventory = dir.path().join("inv.toml");
    std::fs::write(&inventory, "[nodes.n1]\nhost = \"127.0.0.1\"\n").unwrap();
    let state = dir.path().join("state");
    let out = Krun::new()
        .args([
            path.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--set-secret",
            "token=abcdef.0123456789abcdef",
        ])
        .args([
            "--dry-run",
            "--offline",
            "--output",
            "json",
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .run();
    out.code(1)
        .stderr_has("stop with ***")
        .stderr_has("certificate key ***");
    let json = out.json();
    assert_eq!(json["params"]["token"], "***");
    assert_eq!(
        json["nodes"][0]["steps"][0]["command"],
        "kubeadm join 10.0.0.1:6443 --token ***"
    );
    let mut everything = format!("{}{}", out.stdout, out.stderr);
    let run_dir = state.join("runs").join(json["run_id"].as_str().unwrap());
    for entry in std::fs::read_dir(&run_dir).unwrap() {
        everything.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(everything.contains("intent"), "the journal is empty");
    for secret in ["abcdef.0123456789abcdef", "c3rtk3y"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[test]
fn the_journal_records_intent_before_done() {
    let (dir, path) = playbook(
        "let n = find_node(\"n1\");\nsh(n, \"true\");\nsystemctl(n, \"restart\", \"kubelet\");\n",
    );
    let inventory = dir.path().join("inv.toml");
    std::fs::write(&inventory, "[nodes.n1]\nhost = \"127.0.0.1\"\n").unwrap();
    let state = dir.path().join("state");
    let out = Krun::new()
        .args([
            path.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--dry-run",
            "--offline",
            "--output",
            "json",
        ])
        .args(["--state-dir", state.to_str().unwrap()])
        .run();
    out.code(0);
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    let journal =
        std::fs::read_to_string(state.join("runs").join(&id).join("journal.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "header", "status", "intent", "done", "intent", "done", "status"
        ]
    );
    assert_eq!(records[0]["dry_run"], true);
    assert_eq!(records[0]["playbook_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(records[4]["command"], "systemctl restart kubelet");
    assert_eq!(records[6]["status"], "ok");
}

#[test]
fn an_unreachable_node_is_planned_as_unobserved() {
    // Nothing listens on port 1: the connection is refused at once.
    let (dir, path) =
        playbook("let v = pkg_version(node, \"kubelet\");\nsh(node, \"kubeadm upgrade node\");\n");
    let inventory = dir.path().join("inv.toml");
    std::fs::write(&inventory, "[nodes.n1]\nhost = \"127.0.0.1\"\nport = 1\n").unwrap();
    let out = Krun::new()
        .args([
            path.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--node",
            "n1",
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    out.code(0)
        .stderr_has("later steps depend on unobserved state");
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{steps:#?}");
    assert!(
        steps
            .iter()
            .all(|s| s["observed"] == false && s["executed"] == false)
    );
    assert_eq!(steps[1]["command"], "kubeadm upgrade node");

    // A real run against it fails at the first step, naming the node.
    let out = Krun::new()
        .args([
            path.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--node",
            "n1",
        ])
        .run();
    out.code(1).stderr_has("n1").stderr_has("cannot connect");
}
