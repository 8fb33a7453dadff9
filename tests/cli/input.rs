//! Invalid input ends with exit code 2 and a message that says what and where.

use super::Krun;

#[test]
fn help_teaches_and_exits_zero() {
    Krun::new()
        .args(["--help"])
        .run()
        .code(0)
        .stdout_has("Exit codes: 0 success, 1 a step failed");
}

#[test]
fn missing_playbook_is_invalid_input() {
    Krun::new()
        .args(["nope.rhai"])
        .run()
        .code(2)
        .stderr_has("playbook nope.rhai does not exist");
}

#[test]
fn unknown_flag_is_invalid_input() {
    Krun::new()
        .args(["playbooks/kubelet.rhai", "--frobnicate"])
        .run()
        .code(2);
}

#[test]
fn unknown_node_names_the_inventory_and_suggests() {
    Krun::new()
        .args([
            "playbooks/kubelet.rhai",
            "--inventory",
            "examples/inventory.toml",
            "--node",
            "worker1",
            "--dry-run",
            "--offline",
        ])
        .run()
        .code(2)
        .stderr_has("unknown node `worker1` (inventory examples/inventory.toml")
        .stderr_has("did you mean `worker-1`?");
}

#[test]
fn node_without_inventory_is_invalid_input() {
    Krun::new()
        .args([
            "playbooks/kubelet.rhai",
            "--node",
            "n1",
            "--dry-run",
            "--offline",
        ])
        .run()
        .code(2)
        .stderr_has("unknown node `n1` (no inventory given");
}

#[test]
fn malformed_inventory_names_file_and_line() {
    Krun::new()
        .playbook("log(\"hi\");")
        .inventory("[nodes.n1]\nhost = \"h\"\nport = \"twenty-two\"\n")
        .args(["--dry-run", "--offline"])
        .run()
        .code(2)
        .stderr_has("inventory.toml:3:8");
}

#[test]
fn malformed_set_is_invalid_input() {
    Krun::new()
        .playbook("log(\"hi\");")
        .args(["--set", "version"])
        .run()
        .code(2)
        .stderr_has("expected KEY=VALUE");
}

#[test]
fn missing_parameter_fails_at_its_line_with_exit_2() {
    Krun::new()
        .playbook("log(\"start\");\nlet v = param(\"version\");\n")
        .args(["--dry-run", "--offline", "--set", "verison=1.21"])
        .run()
        .code(2)
        .stderr_has("parameter `version` is not set: pass --set version=VALUE")
        .stderr_has("did you mean `verison`")
        .stderr_has("play.rhai:2:9");
}

#[test]
fn parameters_keep_versions_as_strings() {
    Krun::new()
        .playbook(
            r#"
let v = param("v");
let n = param("n");
let b = param("b");
if type_of(v) != "string" { fail(`v is ${type_of(v)}`); }
if type_of(n) != "i64" { fail(`n is ${type_of(n)}`); }
if type_of(b) != "bool" { fail(`b is ${type_of(b)}`); }
if param("missing", "dflt") != "dflt" { fail("default not used"); }
"#,
        )
        .args([
            "--dry-run",
            "--offline",
            "--set",
            "v=1.21",
            "--set",
            "n=3",
            "--set",
            "b=true",
        ])
        .run()
        .code(0);
}

#[test]
fn an_endless_loop_stops_with_a_clear_error() {
    Krun::new()
        .playbook("let i = 0;\nloop { i += 1; }\n")
        .args(["--dry-run", "--offline"])
        .run()
        .code(1)
        .stderr_has("operations without finishing")
        .stderr_has("an endless loop?");
}

#[test]
fn eval_is_not_available() {
    Krun::new()
        .playbook("eval(\"1\");\n")
        .args(["--dry-run", "--offline"])
        .run()
        .code(2);
}

#[test]
fn fail_stops_the_run_with_exit_1_and_the_line() {
    let out = Krun::new()
        .playbook("log(\"a\");\nfail(\"kubelet is not at 1.21\");\n")
        .args(["--dry-run", "--offline", "--output", "json"])
        .run();
    out.code(1).stderr_has("kubelet is not at 1.21");
    let json = out.json();
    assert_eq!(json["nodes"][0]["status"], "failed");
    assert_eq!(json["nodes"][0]["failure"]["line"], 2);
    assert_eq!(json["exit_code"], 1);
}

/// A syntax error on a long line: the right column, a clipped snippet, not the whole line.
#[test]
fn a_syntax_error_on_a_long_line_is_shown_clipped_at_its_column() {
    let playbook = format!(
        "log(\"start\");\nlet x = \"{}\"; let y = ;\n",
        "a".repeat(50_000)
    );
    let out = Krun::new()
        .playbook(&playbook)
        .args(["--dry-run", "--offline"])
        .run();
    // `let x = "` is 9 characters, then the string and `"; let y = `: the `;` is at 50,021.
    out.code(2)
        .stderr_has("play.rhai:2:50021")
        .stderr_has("shown clipped")
        .stderr_has("let y = ;");
    assert!(
        out.stderr.len() < 4096,
        "{} bytes of stderr",
        out.stderr.len()
    );
}

/// Rhai counts columns in 16 bits: a longer line is refused before parsing, at its line.
#[test]
fn a_line_longer_than_rhai_can_place_is_refused_briefly() {
    let playbook = format!(
        "log(\"start\");\nlet x = \"{}\"; let y = ;\n",
        "a".repeat(10 << 20)
    );
    let out = Krun::new()
        .playbook(&playbook)
        .args(["--dry-run", "--offline"])
        .run();
    out.code(2)
        .stderr_has(&format!("line 2 is {} characters long", (10 << 20) + 21))
        .stderr_has("play.rhai:2");
    assert!(
        out.stderr.len() < 4096,
        "{} bytes of stderr",
        out.stderr.len()
    );
}

/// An empty snapshot (what a failed `kubectl get … > file` leaves) is no cluster to rehearse on.
#[test]
fn an_empty_snapshot_is_refused_not_rehearsed() {
    let mut krun = Krun::new().playbook("log(\"start\");\n");
    let snapshot = krun.dir().join("cluster.yaml");
    std::fs::write(&snapshot, "").unwrap();
    let krun = krun.args(["--rehearse".as_ref(), snapshot.as_os_str()]);
    krun.run()
        .code(2)
        .stderr_has("holds no objects: nothing to rehearse against");
    // What `kubectl get nodes -o yaml` prints when there is nothing to get.
    let mut krun = Krun::new().playbook("log(\"start\");\n");
    let snapshot = krun.dir().join("cluster.yaml");
    std::fs::write(
        &snapshot,
        "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
    )
    .unwrap();
    krun.args(["--rehearse".as_ref(), snapshot.as_os_str()])
        .run()
        .code(2)
        .stderr_has("holds no objects");
}
