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
    insta::assert_snapshot!(out.stdout.replace(env!("CARGO_MANIFEST_DIR"), "[repo]"));
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
    insta::assert_snapshot!(out.stdout.replace(env!("CARGO_MANIFEST_DIR"), "[repo]"));
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
