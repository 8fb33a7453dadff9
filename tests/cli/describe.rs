//! Declared parameters and `krun describe`: what a playbook takes, refused before it runs when
//! the command line does not match, and read without running it.

use super::Krun;

const DECLARED: &str = r#"// upgrade.rhai — moves a node to a version.
//
// Long description.
parameters(#{
    version: #{ doc: "the version to move to", required: true },
    canary: #{ doc: "a node already on the new runtime", value: "" },
    retries: #{ doc: "how often", value: 3 },
});
log(`version ${param("version")}, canary '${param("canary")}', retries ${param("retries")}`);
"#;

#[test]
fn an_unknown_set_key_is_refused_with_a_suggestion_before_anything_runs() {
    Krun::new()
        .playbook(DECLARED)
        .args([
            "--dry-run",
            "--offline",
            "--set",
            "version=1.29.4",
            "--set",
            "canry=w2",
        ])
        .run()
        .code(2)
        .stderr_has("has no parameter `canry`; did you mean `canary`?");
}

#[test]
fn a_required_parameter_must_be_given_and_defaults_fill_the_rest() {
    Krun::new()
        .playbook(DECLARED)
        .args(["--dry-run", "--offline"])
        .run()
        .code(2)
        .stderr_has("needs --set version=VALUE: the version to move to");
    let out = Krun::new()
        .playbook(DECLARED)
        .args([
            "--dry-run",
            "--offline",
            "--set",
            "version=1.29.4",
            "--output",
            "json",
        ])
        .run();
    out.code(0)
        .stderr_has("version 1.29.4, canary '', retries 3");
    let json = out.json();
    assert_eq!(json["params"]["retries"], 3, "{json}");
    assert_eq!(json["params"]["canary"], "");
}

#[test]
fn describe_lists_parameters_and_says_whether_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upgrade.rhai");
    std::fs::write(&file, DECLARED).unwrap();
    Krun::new()
        .args(["describe", file.to_str().unwrap()])
        .run()
        .code(0)
        .stdout_has("upgrade.rhai — moves a node to a version.")
        .stdout_has("--set version  required: the version to move to")
        .stdout_has("--set retries  default 3: how often")
        .stdout_has("Runs: once, for the cluster")
        .stdout_has("Drains: no");
    let bundled = Krun::new()
        .args(["describe", "playbooks/worker.rhai", "--output", "json"])
        .run();
    bundled.code(0);
    let json = bundled.json();
    assert_eq!(json["uses_node"], true);
    assert_eq!(
        json["drains"], true,
        "worker.rhai drains through node::maintain"
    );
    let kubelet = Krun::new()
        .args(["describe", "playbooks/kubelet.rhai", "--output", "json"])
        .run()
        .json();
    assert_eq!(
        kubelet["drains"], false,
        "kubelet.rhai only restarts kubelet"
    );
}

#[test]
fn check_reports_a_param_that_is_not_declared_and_a_bad_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.rhai");
    std::fs::write(
        &file,
        "parameters(#{ version: #{ doc: \"v\", required: true } });\nlet v = param(\"verison\");\n",
    )
    .unwrap();
    Krun::new()
        .args(["check", file.to_str().unwrap()])
        .run()
        .code(2)
        .stderr_has("parameter `verison` is not declared in parameters(…)")
        .stderr_has("did you mean `version`?");
    std::fs::write(
        &file,
        "parameters(#{ version: #{ doc: \"v\", dflt: 1 } });\n",
    )
    .unwrap();
    Krun::new()
        .args(["check", file.to_str().unwrap()])
        .run()
        .code(2)
        .stderr_has("`dflt` is not one of doc (a string), value (the default)");
}

#[test]
fn a_node_playbook_without_a_node_says_so() {
    Krun::new()
        .args([
            "playbooks/kubelet.rhai",
            "--set",
            "version=1.21.14",
            "--dry-run",
            "--offline",
        ])
        .run()
        .code(2)
        .stderr_has("runs once per node (it uses `node`): pass --node NAME");
}
