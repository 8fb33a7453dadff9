//! `krun check`: diagnostics a person can act on, pinned as snapshots.

use super::{Krun, playbook};

fn check(text: &str) -> String {
    let (dir, path) = playbook(text);
    let out = Krun::new()
        .args(["check", path.to_str().unwrap()])
        .current_dir(dir.path())
        .run();
    out.code(2);
    out.stderr.replace(dir.path().to_str().unwrap(), "[dir]")
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(check("let x = ;\nsh(node, \"true\");\n"));
}

#[test]
fn unknown_function_suggests_the_primitive() {
    insta::assert_snapshot!(check(
        "let r = sh(node, \"uname -r\");\npkg_instal(node, \"kubelet\", \"1.21.14-00\");\n"
    ));
}

#[test]
fn wrong_number_of_arguments() {
    insta::assert_snapshot!(check("systemctl(node, \"restart\");\n"));
}

#[test]
fn missing_import() {
    insta::assert_snapshot!(check(
        "import \"kubeadmm\" as kubeadm;\nkubeadm::plan(node);\n"
    ));
}

#[test]
fn undefined_variable() {
    insta::assert_snapshot!(check("sh(nod, \"true\");\n"));
}

#[test]
fn unknown_function_in_an_imported_module() {
    let (dir, path) =
        playbook("import \"lib\" as lib;\nlib::restart(node);\nlib::restrat(node);\n");
    std::fs::write(
        dir.path().join("lib.rhai"),
        "fn restart(n) {\n    systemctll(n, \"restart\", \"kubelet\");\n}\n",
    )
    .unwrap();
    let out = Krun::new()
        .args(["check", path.to_str().unwrap()])
        .current_dir(dir.path())
        .run();
    out.code(2);
    insta::assert_snapshot!(out.stderr.replace(dir.path().to_str().unwrap(), "[dir]"));
}

#[test]
fn library_dirs_are_searched() {
    let lib = tempfile::tempdir().unwrap();
    std::fs::write(
        lib.path().join("team.rhai"),
        "/// Restarts kubelet.\nfn restart(n) { systemctl(n, \"restart\", \"kubelet\"); }\n",
    )
    .unwrap();
    let (_dir, path) = playbook("import \"team\" as team;\nteam::restart(node);\n");
    Krun::new()
        .args(["check", path.to_str().unwrap()])
        .run()
        .code(2)
        .stderr_has("module not found: `team`");
    Krun::new()
        .args([
            "check",
            path.to_str().unwrap(),
            "--lib",
            lib.path().to_str().unwrap(),
        ])
        .run()
        .code(0);
    Krun::new()
        .args(["check", path.to_str().unwrap()])
        .env("KRUN_PATH", lib.path())
        .run()
        .code(0);
}

#[test]
fn bundled_playbooks_pass() {
    let playbooks: Vec<String> = std::fs::read_dir(super::root().join("playbooks"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(!playbooks.is_empty());
    Krun::new()
        .args(["check"])
        .args(&playbooks)
        .run()
        .code(0)
        .stdout_has("ok:");
}

#[test]
fn check_runs_nothing() {
    // A module with top-level code would run at import time; check only compiles.
    let (dir, path) = playbook("import \"side\" as side;\n");
    let marker = dir.path().join("touched");
    std::fs::write(
        dir.path().join("side.rhai"),
        format!("sh(find_node(\"x\"), \"touch {}\");\n", marker.display()),
    )
    .unwrap();
    Krun::new()
        .args(["check", path.to_str().unwrap()])
        .run()
        .code(0);
    assert!(!marker.exists());
}
