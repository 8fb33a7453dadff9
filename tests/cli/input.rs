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
