//! `krun preflight` and `krun PLAYBOOK --rehearse … --batch` as an operator runs them.

use crate::cli::Krun;

use super::snapshot;

use super::preflight_cli as preflight;

#[test]
fn preflight_prints_findings_with_fixes_and_refuses_on_a_block() {
    let out = preflight("prometheus-without-pdb", &[]);
    out.code(3)
        .stdout_has("BLOCK (1):")
        .stdout_has("critical-without-pdb/monitoring/prometheus-k8s")
        .stdout_has("fix: add a PodDisruptionBudget")
        .stdout_has("--accept");
}

#[test]
fn an_accepted_block_is_logged_and_no_longer_refuses() {
    let out = preflight(
        "prometheus-without-pdb",
        &["--accept", "critical-without-pdb/monitoring/prometheus-k8s"],
    );
    out.code(0)
        .stdout_has("[accepted]")
        .stderr_has("accepted block finding critical-without-pdb/monitoring/prometheus-k8s");
}

#[test]
fn the_forecast_table_shows_each_batch_and_json_carries_it() {
    let out = preflight(
        "service-in-one-batch",
        &[
            "--node",
            "worker-1",
            "--node",
            "worker-2",
            "--node",
            "worker-3",
            "--node",
            "worker-4",
            "--batch",
            "2",
            "--no-keep-replica",
        ],
    );
    out.code(3)
        .stdout_has("disruption forecast (--batch 2): 2 batches")
        .stdout_has("ZERO READY: Deployment shop/checkout ready 2 → 0")
        .stdout_has("verdict: block: batch 1");

    let out = preflight(
        "service-in-one-batch",
        &["--batch", "auto", "--output", "json"],
    );
    out.code(0);
    let json = out.json();
    assert_eq!(json["forecast"]["plan"], "auto");
    assert_eq!(json["forecast"]["verdict"]["outcome"], "ok");
    assert_eq!(json["forecast"]["violations"], 0);
    let batches = json["forecast"]["batches"].as_array().unwrap();
    assert!(batches.iter().all(|b| b["explanation"].is_string()));
    let planned: usize = batches
        .iter()
        .map(|b| b["nodes"].as_array().unwrap().len())
        .sum();
    assert_eq!(planned, 4, "every worker, no control plane");
}

#[test]
fn the_html_report_is_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("plan.html");
    preflight(
        "service-in-one-batch",
        &[
            "--batch",
            "2",
            "--no-keep-replica",
            "--report",
            page.to_str().unwrap(),
        ],
    )
    .code(3);
    let html = std::fs::read_to_string(&page).unwrap();
    for needle in [
        "<!DOCTYPE html>",
        "<svg",
        "Plan: --batch 2",
        "Workloads through the upgrade",
        "Deployment shop/checkout",
        "class=\"zero\"",
    ] {
        assert!(html.contains(needle), "{needle:?} not in the page");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
}

#[test]
fn bad_batch_plans_and_targets_are_input_errors() {
    preflight("service-in-one-batch", &["--batch", "0%"])
        .code(2)
        .stderr_has("between 1% and 100%");
    preflight("service-in-one-batch", &["--target", "next"])
        .code(2)
        .stderr_has("--target next");
    preflight("service-in-one-batch", &["--node", "nope", "--batch", "1"])
        .code(2)
        .stderr_has("--node nope");
}

const PLAYBOOK: &str = r#"
cordon(node);
drain(node, #{ ignore_daemonsets: true, delete_emptydir_data: true, timeout: "5m", keep_replica: param("keep_replica", true) });
uncordon(node);
"#;

fn rehearse(batch: &str, extra: &[&str]) -> crate::cli::Output {
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("worker.rhai");
    std::fs::write(&playbook, PLAYBOOK).unwrap();
    let mut args = vec![
        playbook.display().to_string(),
        "--rehearse".to_owned(),
        snapshot("service-in-one-batch").display().to_string(),
        "--offline".to_owned(),
        "--batch".to_owned(),
        batch.to_owned(),
    ];
    for node in ["worker-1", "worker-2", "worker-3", "worker-4"] {
        args.push("--node".to_owned());
        args.push(node.to_owned());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Krun::new().args(args).run()
}

#[test]
fn a_rehearsed_run_prints_the_forecast_first_and_refuses_a_blocking_plan() {
    // Drains that evict shop/checkout (no budget) all at once: two of its nodes in one batch
    // take it to zero.
    let all_at_once = ["--set", "keep_replica=false"];
    let out = rehearse("2", &all_at_once);
    out.code(3)
        .stdout_has("disruption forecast (--batch 2)")
        .stderr_has("refused before anything changed")
        .stderr_has("the disruption forecast of --batch 2: block");
    assert!(!out.stdout.contains("worker-1: ok"), "{}", out.stdout);

    let mut accepted = all_at_once.to_vec();
    accepted.extend(["--accept", "forecast", "--output", "json"]);
    let out = rehearse("2", &accepted);
    out.code(0).stderr_has("--accept forecast");
    assert_eq!(out.json()["forecast"]["accepted"], true);

    // Drains that keep a ready replica (the default): the same plan is safe.
    let out = rehearse("2", &["--output", "json"]);
    out.code(0);
    assert_eq!(out.json()["forecast"]["verdict"]["outcome"], "ok");
}

#[test]
fn batch_auto_runs_the_chosen_batches_one_after_another() {
    let out = rehearse("auto", &["--output", "json"]);
    out.code(0);
    let json = out.json();
    assert_eq!(json["forecast"]["verdict"]["outcome"], "ok");
    let order: Vec<String> = json["forecast"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["nodes"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    let ran: Vec<String> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ran, order, "nodes run in the planned order");
    assert!(
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "ok"),
        "{json:#}"
    );
}

#[test]
fn playbooks_get_the_findings_from_the_preflight_primitive() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("check.rhai");
    std::fs::write(
        &playbook,
        r#"
let findings = preflight(#{ target: "1.29.4", critical: ["shop/checkout"] });
let blocks = [];
for f in findings {
    if f.severity == "block" { blocks.push(f.id); }
}
if blocks != ["critical-without-pdb/shop/checkout"] {
    throw `unexpected findings: ${findings}`;
}
log(`${findings.len()} findings, ${blocks.len()} blocking`);
"#,
    )
    .unwrap();
    Krun::new()
        .args([
            playbook.display().to_string(),
            "--rehearse".to_owned(),
            snapshot("service-in-one-batch").display().to_string(),
            "--offline".to_owned(),
        ])
        .run()
        .code(0);
    Krun::new()
        .args([
            playbook.display().to_string(),
            "--rehearse".to_owned(),
            snapshot("service-in-one-batch").display().to_string(),
            "--offline".to_owned(),
            "--output".to_owned(),
            "json".to_owned(),
        ])
        .run()
        .code(0)
        .stdout_has("preflight checks for target 1.29.4");
}
