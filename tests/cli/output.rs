//! What krun prints, as text (plain and coloured), JSON and YAML; its conventions on the command
//! line (`-o`, `-q`, did you mean, help on a bare `krun`); and fixes that paste.

use std::process::{Command, Stdio};

use super::Krun;

/// A playbook that reads, changes, waits, destroys (`mkfs`) and cannot plan everything offline.
const PLAYBOOK: &str = r#"let fs = probe(node, "lsblk -no FSTYPE /dev/vdb").stdout;
if fs == "" {
    unplanned(node, "keeping /dev/vdb's data: its filesystem was not read");
}
systemctl(node, "stop", "kubelet");
sh(node, ["mkfs.ext4", "-F", "-L", "runtime", "/dev/vdb"]);
systemctl(node, "start", "kubelet");
wait_active(node, "kubelet", "2m");
"#;

/// Its offline plan, with `extra` arguments and `coloured` or not; the temporary directory the
/// playbook lives in shows as `DIR`.
fn plan(extra: &[&str], coloured: bool) -> super::Output {
    let mut krun = Krun::new()
        .playbook(PLAYBOOK)
        .inventory("[nodes.n1]\nhost = \"10.0.0.11\"\n")
        .args(["--node", "n1", "--dry-run", "--offline"])
        .args(extra);
    if coloured {
        krun = krun.colored();
    }
    let dir = krun.dir().display().to_string();
    let mut out = krun.run();
    out.stdout = out.stdout.replace(&dir, "DIR");
    out.stderr = out.stderr.replace(&dir, "DIR");
    out
}

/// The lab judged for 1.21 with a batch plan: findings of every severity and a forecast.
fn lab_preflight() -> Krun {
    Krun::new().args([
        "preflight",
        "--rehearse",
        "examples/lab/cluster.yaml",
        "--target",
        "1.21.14",
        "--batch",
        "auto",
    ])
}

fn without_run_id(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| !l.starts_with("Run ") && !l.contains("\u{1b}[1mRun "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_plan_reads_the_same_plain_and_coloured() {
    let plain = plan(&[], false);
    plain.code(0).stdout_has("[would destroy] mkfs.ext4");
    plain.stdout_has("[not planned] keeping /dev/vdb's data");
    assert!(!plain.stdout.contains('\u{1b}'), "NO_COLOR: no escapes");
    insta::assert_snapshot!("plan_plain", without_run_id(&plain.stdout));

    let coloured = plan(&[], true);
    coloured.code(0);
    // The destructive step in red, ordinary changes in yellow, positions dim.
    assert!(
        coloured
            .stdout
            .contains("\u{1b}[1m\u{1b}[31m[would destroy] \u{1b}[0m\u{1b}[1m\u{1b}[31mmkfs.ext4")
    );
    assert!(coloured.stdout.contains("\u{1b}[33m[would] \u{1b}[0m"));
    insta::assert_snapshot!("plan_coloured", without_run_id(&coloured.stdout));
    // Without escapes it is the plain text, character for character.
    assert_eq!(
        strip_escapes(&coloured.stdout),
        plain_with_other_id(&plain.stdout, &coloured.stdout)
    );
}

/// The plain stdout with the coloured run's id (each run has its own).
fn plain_with_other_id(plain: &str, coloured: &str) -> String {
    let id = |text: &str| {
        text.lines()
            .find_map(|l| strip_escapes(l).strip_prefix("Run ").map(str::to_owned))
            .expect("a run id")
    };
    plain.replace(&id(plain), &id(coloured))
}

fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn preflight_reads_the_same_plain_and_coloured() {
    let plain = lab_preflight().run();
    plain.code(3);
    assert!(!plain.stdout.contains('\u{1b}'));
    insta::assert_snapshot!("preflight_plain", plain.stdout);
    let coloured = lab_preflight().colored().run();
    coloured.code(3);
    for (tone, text) in [
        ("\u{1b}[1m\u{1b}[31m", "BLOCK"),
        ("\u{1b}[33m", "WARN"),
        ("\u{1b}[36m", "INFO"),
        ("\u{1b}[1m\u{1b}[31m", "ZERO READY"),
    ] {
        let painted = format!("{tone}{text}\u{1b}[0m");
        assert!(coloured.stdout.contains(&painted), "{text} is not painted");
    }
    insta::assert_snapshot!("preflight_coloured", coloured.stdout);
    assert_eq!(strip_escapes(&coloured.stdout), plain.stdout);
}

#[test]
fn no_color_wins_over_forcing_colours() {
    let out = Krun::new()
        .playbook(PLAYBOOK)
        .inventory("[nodes.n1]\nhost = \"10.0.0.11\"\n")
        .args(["--node", "n1", "--dry-run", "--offline"])
        .colored()
        .env("NO_COLOR", "1")
        .run();
    out.code(0);
    assert!(!out.stdout.contains('\u{1b}') && !out.stderr.contains('\u{1b}'));
}

#[test]
fn json_and_yaml_name_their_schema_first() {
    let json = plan(&["-o", "json"], false);
    json.code(0);
    assert!(
        json.stdout
            .starts_with("{\n  \"schema\": \"krun/run/v1\",\n"),
        "{}",
        &json.stdout[..80]
    );
    let yaml = plan(&["--output", "yaml"], false);
    yaml.code(0);
    assert!(
        yaml.stdout.starts_with("schema: krun/run/v1\n"),
        "{}",
        &yaml.stdout[..80]
    );
    let parsed: serde_json::Value = serde_yaml_ng::from_str(&yaml.stdout).expect("YAML parses");
    let mut from_json = json.json();
    // Each run has its own journal.
    from_json["run_id"] = parsed["run_id"].clone();
    assert_eq!(parsed, from_json, "the YAML is the JSON document");

    let preflight = lab_preflight().args(["-o", "json"]).run();
    preflight.code(3);
    let doc = preflight.json();
    assert_eq!(doc["schema"], "krun/preflight/v1");
    assert_eq!(doc["verdict"]["outcome"], "refused");
    assert_eq!(doc["verdict"]["exit_code"], 3);
    let blocking: Vec<&str> = doc["verdict"]["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    assert!(blocking.contains(&"critical-without-pdb/ingress-nginx/ingress-nginx-controller"));
    assert!(blocking.contains(&"forecast"));
    let forecast = &doc["forecast"]["verdict"];
    assert_eq!(forecast["outcome"], "block");
    assert!(forecast["blocking"][0]["batch"].is_u64());
    assert!(forecast["blocking"][0]["reasons"][0].is_string());
}

#[test]
fn forecast_json_names_no_pod_the_model_made_up() {
    let out = Krun::new()
        .args([
            "preflight",
            "--rehearse",
            "examples/lab/cluster.yaml",
            "--batch",
            "2",
        ])
        .args(["-o", "json"])
        .run();
    let json = out.json();
    let mut replacements = 0;
    for batch in json["forecast"]["batches"].as_array().unwrap() {
        for pod in batch["evicted"]
            .as_array()
            .unwrap()
            .iter()
            .chain(batch["stuck"].as_array().unwrap())
        {
            let name = pod["pod"].as_str().unwrap();
            assert!(!name.contains('~'), "{name}");
            replacements += usize::from(name.ends_with("-*****"));
        }
    }
    // With batches of two, later batches evict replacements made in earlier ones.
    assert!(
        replacements > 0,
        "no replacement was evicted: the test no longer tests anything"
    );
}

#[test]
fn quiet_prints_errors_and_the_summary_only() {
    let out = plan(&["-q"], false);
    out.code(0);
    assert!(
        !out.stdout.contains("mkfs"),
        "-q printed the plan:\n{}",
        out.stdout
    );
    assert!(out.stdout.starts_with("Summary:\n  n1 "), "{}", out.stdout);
    assert_eq!(out.stderr, "", "-q logged more than errors");
}

#[test]
fn a_mistyped_subcommand_gets_its_suggestion_and_bare_krun_its_help() {
    Krun::new().args(["preflght"]).run().code(2).stderr_has(
        "`preflght` is neither a subcommand nor a playbook file; did you mean `krun preflight`?",
    );
    let bare = Krun::new().run();
    bare.code(2).stderr_has("Usage: krun [OPTIONS] <PLAYBOOK>");
    assert!(bare.stderr.contains("Commands:") && !bare.stderr.contains("error:"));
    // A path is a playbook that is not there, not a subcommand.
    Krun::new()
        .args(["playbooks/wokrer.rhai"])
        .run()
        .code(2)
        .stderr_has("playbook playbooks/wokrer.rhai does not exist");
}

#[test]
fn the_simulators_generator_says_its_real_default() {
    let help = Krun::new().args(["sim", "gen", "--help"]).run();
    help.code(0);
    let line = help
        .stdout
        .lines()
        .skip_while(|l| !l.contains("--control-planes"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        line.contains("default: 3 from 5 nodes up, else 1"),
        "{line}"
    );
    assert!(!line.contains("[default: 0]"), "{line}");
}

/// The fix of a missing budget is a command that runs as printed: real kubectl parses it and
/// makes a budget over the workload's pods, after which preflight no longer finds it missing.
#[test]
fn the_fix_for_a_missing_budget_pastes_into_kubectl() {
    let Some(kubectl) = crate::support::sim::kubectl_binary("1.20") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_krun"));
    serve
        .args(["sim", "serve", "--cluster"])
        .arg(super::root().join("examples/lab/cluster.yaml"))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = crate::support::process::spawn_tied(serve).expect("krun sim serve starts");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("http://"), "{first}");

    let findings = |out: &super::Output| -> Vec<(String, String)> {
        out.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_owned(),
                    f["fix"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let before = Krun::new()
        .args(["preflight", "-o", "json", "--kubeconfig"])
        .arg_path(&kubeconfig)
        .run();
    let id = "critical-without-pdb/ingress-nginx/ingress-nginx-controller";
    let fix = findings(&before)
        .into_iter()
        .find(|(i, _)| i == id)
        .map(|(_, fix)| fix)
        .expect("the Ingress controller has no budget");
    let command = &fix[fix.find("kubectl ").expect("the fix is a kubectl command")..];
    assert!(!command.contains('…'), "{command}");
    // The lab claims Kubernetes 1.20, whose API serves budgets as policy/v1beta1 only: the fix is
    // pasted into the kubectl of that minor, as an operator of that cluster would.
    let pasted = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "\"$KUBECTL\" {}",
            command.strip_prefix("kubectl ").unwrap()
        ))
        .env("KUBECTL", &kubectl)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(
        pasted.status.success(),
        "`{command}` does not paste: {}",
        String::from_utf8_lossy(&pasted.stderr)
    );
    let after = Krun::new()
        .args(["preflight", "-o", "json", "--kubeconfig"])
        .arg_path(&kubeconfig)
        .run();
    assert!(
        findings(&after).iter().all(|(i, _)| i != id),
        "the budget the fix made does not cover the controller's pods"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// A rehearsed run of two batches: every log line has its RFC 3339 time and, inside a node's
/// run, the node; the drain counts its evictions; each batch says where the plan is and how
/// long the rest should take by the forecast.
#[test]
fn log_lines_have_their_time_and_node_and_the_run_its_progress() {
    let out = Krun::new()
        .args([
            "playbooks/worker.rhai",
            "--inventory",
            "examples/lab/inventory.toml",
        ])
        .args([
            "--node",
            "worker-6",
            "--node",
            "worker-1",
            "--set",
            "version=1.20.15",
        ])
        .args([
            "--rehearse",
            "examples/lab/cluster.yaml",
            "--dry-run",
            "--offline",
        ])
        .run();
    out.code(0);
    for line in out.stderr.lines() {
        let (time, _) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'),
            "no RFC 3339 time: {line:?}"
        );
    }
    let batch = |i: usize| {
        out.stderr
            .lines()
            .position(|l| l.contains(&format!(" batch {i} of 2: ")))
            .unwrap_or_else(|| panic!("no batch {i}:\n{}", out.stderr))
    };
    assert!(batch(1) < batch(2));
    assert!(
        out.stderr
            .lines()
            .nth(batch(1))
            .unwrap()
            .contains("left by the forecast")
    );
    let drain = out
        .stderr
        .lines()
        .find(|l| l.contains("drain plan for worker-6"))
        .expect("the drain's plan");
    assert!(
        drain.contains(" [worker-6] drain plan for worker-6: "),
        "{drain}"
    );
    let total: usize = drain
        .rsplit(": ")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        out.stderr.contains(&format!("({total}/{total})")),
        "the last eviction does not count {total}/{total}:\n{}",
        out.stderr
    );
}

/// On a terminal the times are since the start, and the node's live line shows the drain's
/// evictions counted.
#[test]
fn on_a_terminal_times_are_relative_and_the_drain_is_counted_live() {
    if !crate::support::require(&["script"], false) {
        return;
    }
    let command = krun::quote::join([
        env!("CARGO_BIN_EXE_krun"),
        "playbooks/worker.rhai",
        "--inventory",
        "examples/lab/inventory.toml",
        "--node",
        "worker-6",
        "--set",
        "version=1.20.15",
        "--rehearse",
        "examples/lab/cluster.yaml",
        "--dry-run",
        "--offline",
    ]);
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .current_dir(super::root())
        .env("NO_COLOR", "1")
        .env("KRUN_STATE_DIR", super::state_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("+0:00 [worker-6] drain plan for worker-6"),
        "{screen}"
    );
    assert!(screen.contains("worker-6 step "), "no live line:\n{screen}");
    assert!(
        screen.contains(" · evicted "),
        "the live line does not count evictions:\n{screen}"
    );
}
