//! `krun runs`: done, refused, failed and interrupted runs told apart, as a table and as JSON,
//! with the command line shell-quoted and where each stopped.

use std::net::TcpListener;
use std::path::Path;

use super::Krun;

/// Four real runs in `dir`: one done, one refused by the playbook's guard, one failed, one
/// interrupted by `--timeout` while connecting to a node that never answers.
fn four_runs(dir: &Path) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accepts connections and says nothing: the ssh handshake waits until the run's time is up.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    std::fs::write(
        dir.join("inventory.toml"),
        format!("[nodes.n1]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    for (name, text) in [
        ("done.rhai", "log(`note: ${param(\"note\")}`);\n"),
        (
            "refused.rhai",
            "refuse(\"not today: the change window is closed\");\n",
        ),
        ("failed.rhai", "fail(\"the disk is full\");\n"),
        ("interrupted.rhai", "sh(node, \"true\");\n"),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let krun = |args: &[&str]| {
        Krun::new()
            .current_dir(dir)
            .env("KRUN_STATE_DIR", dir.join("state"))
            .env("HOME", dir)
            .env_remove("KUBECONFIG")
            .args(args)
            .run()
    };
    krun(&[
        "done.rhai",
        "--set",
        "note=two words",
        "--set-secret",
        "token=abc123",
    ])
    .code(0);
    krun(&["refused.rhai"]).code(3);
    krun(&["failed.rhai"]).code(1);
    krun(&[
        "interrupted.rhai",
        "--inventory",
        "inventory.toml",
        "--node",
        "n1",
        "--timeout",
        "1s",
        "--yes",
    ])
    .code(130);
}

#[test]
fn runs_as_json_tell_done_refused_failed_and_interrupted_apart() {
    let dir = tempfile::tempdir().unwrap();
    four_runs(dir.path());
    let out = Krun::new()
        .args(["runs", "-o", "json", "--state-dir"])
        .arg_path(&dir.path().join("state"))
        .run();
    out.code(0);
    let json = out.json();
    assert_eq!(json["schema"], "krun/runs/v1");
    let runs = json["runs"].as_array().unwrap();
    let by_playbook = |name: &str| {
        runs.iter()
            .find(|r| r["playbook"] == name)
            .unwrap_or_else(|| panic!("no run of {name}: {json:#}"))
    };

    let done = by_playbook("done.rhai");
    assert_eq!(done["state"], "done");
    assert!(done.get("stopped").is_none(), "{done}");
    let command = done["command"].as_str().unwrap();
    assert_eq!(
        command, "krun done.rhai --set 'note=two words' --set-secret 'token=***'",
        "shell-quoted, the secret masked"
    );
    // The recorded command line is one a shell splits back into the same words.
    let words = shlex::split(command).unwrap();
    assert_eq!(words[3], "note=two words");

    let refused = by_playbook("refused.rhai");
    assert_eq!(refused["state"], "refused");
    assert_eq!(refused["stopped"]["node"], "cluster");
    assert_eq!(refused["stopped"]["line"], 1);
    assert_eq!(
        refused["stopped"]["reason"],
        "not today: the change window is closed"
    );

    let failed = by_playbook("failed.rhai");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["stopped"]["reason"], "the disk is full");

    let interrupted = by_playbook("interrupted.rhai");
    assert_eq!(interrupted["state"], "interrupted");
    assert_eq!(interrupted["stopped"]["node"], "n1");
    assert_eq!(interrupted["stopped"]["step"], 1);
    assert_eq!(interrupted["stopped"]["action"], "sh");
    assert_eq!(interrupted["nodes"][0]["state"], "interrupted");

    // Nothing of it says `null` where a number or a word belongs.
    assert!(!out.stdout.contains("exit null"));
}

#[test]
fn the_runs_table_has_one_line_per_run_with_its_age_and_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    four_runs(dir.path());
    let state = dir.path().join("state");
    // Ages the table shows, in their units: the journals' start times moved into the past, each
    // half a unit from the next whole one so that a slow machine still shows the same.
    let now = chrono::Utc::now();
    let ages = [
        (
            "done.rhai",
            chrono::Duration::days(3) + chrono::Duration::hours(1),
        ),
        ("refused.rhai", chrono::Duration::minutes(150)),
        ("failed.rhai", chrono::Duration::seconds(30 * 60 + 30)),
        ("interrupted.rhai", chrono::Duration::seconds(4 * 60 + 30)),
    ];
    for entry in std::fs::read_dir(state.join("runs")).unwrap() {
        let journal = entry.unwrap().path().join("journal.jsonl");
        let text = std::fs::read_to_string(&journal).unwrap();
        let (header, rest) = text.split_once('\n').unwrap();
        let mut header: serde_json::Value = serde_json::from_str(header).unwrap();
        let age = ages
            .iter()
            .find(|(p, _)| header["playbook"] == *p)
            .map(|(_, age)| *age)
            .unwrap();
        header["started_at"] = (now - age).to_rfc3339().into();
        std::fs::write(&journal, format!("{header}\n{rest}")).unwrap();
    }
    let out = Krun::new()
        .args(["runs", "--state-dir"])
        .arg_path(&state)
        .run();
    out.code(0);
    let filters = vec![
        (r"\d{8}T\d{6}Z-[0-9a-f]{6}", "[run-id]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
    ];
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!(out.stdout);
    });
    let failed = out
        .stdout
        .lines()
        .find(|l| l.contains("failed.rhai"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let shown = Krun::new()
        .args(["runs", "show", &failed, "--state-dir"])
        .arg_path(&state)
        .run();
    // The failed run: the reason once, the resume command with the state directory it needs.
    shown
        .code(0)
        .stdout_has("cluster          failed at line 1: the disk is full");
    assert_eq!(
        shown.stdout.matches("the disk is full").count(),
        1,
        "{}",
        shown.stdout
    );
    shown.stdout_has(&format!(
        "resume with: krun resume {failed} --state-dir {}",
        state.display()
    ));
}
