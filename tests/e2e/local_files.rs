//! A playbook reads local files only from its own directory and its --lib directories, and a
//! dry-run shows a local file's content only when the playbook marks it showable.

use super::Setup;
use crate::support::Fleet;

const SECRET: &str = "TOPSECRET-KEY-MATERIAL\n";

/// A playbook directory, and beside it a directory holding a file it must not read.
fn setup(fleet: &Fleet, playbook: &str) -> (Setup, tempfile::TempDir) {
    let setup = Setup::new(fleet, playbook);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("id_ed25519"), SECRET).unwrap();
    std::fs::write(outside.path().join("mod.rhai"), "fn f() { 1 }\n").unwrap();
    (setup, outside)
}

fn relative_to(setup: &Setup, outside: &tempfile::TempDir, file: &str) -> String {
    let name = outside.path().file_name().unwrap().to_str().unwrap();
    let depth = setup.dir.path().components().count()
        - outside.path().parent().unwrap().components().count();
    format!("{}{name}/{file}", "../".repeat(depth))
}

#[track_caller]
fn assert_not_shown(out: &crate::cli::Output) {
    assert!(
        !out.stdout.contains("TOPSECRET") && !out.stderr.contains("TOPSECRET"),
        "a local file's content was shown:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn render_and_upload_refuse_files_out_of_the_playbooks_directory() {
    let Some(fleet) = Fleet::shared() else { return };
    let (setup, outside) = setup(fleet, "");
    let escape = relative_to(&setup, &outside, "id_ed25519");
    let absolute = outside.path().join("id_ed25519").display().to_string();
    for (call, why) in [
        (
            format!("render(node, {escape:?}, #{{}}, \"/etc/kubernetes/krun-local\", 0o600);"),
            "leads out of the playbook's directory",
        ),
        (
            format!("render(node, {absolute:?}, #{{}}, \"/etc/kubernetes/krun-local\", 0o600);"),
            "is an absolute path",
        ),
        (
            format!("upload(node, {escape:?}, \"/etc/kubernetes/krun-local\", 0o600);"),
            "leads out of the playbook's directory",
        ),
        (
            format!("upload(node, {absolute:?}, \"/etc/kubernetes/krun-local\", 0o600);"),
            "is an absolute path",
        ),
    ] {
        std::fs::write(&setup.playbook, format!("log(\"start\");\n{call}\n")).unwrap();
        let out = setup.krun(&["--node", "n1", "--dry-run"]).run();
        out.code(2)
            .stderr_has(why)
            .stderr_has("--allow-local")
            .stderr_has("play.rhai:2");
        assert_not_shown(&out);
    }

    // Allowed by the operator: read, and still not shown in the plan.
    std::fs::write(
        &setup.playbook,
        format!("upload(node, {absolute:?}, \"/etc/kubernetes/krun-local\", 0o600);\n"),
    )
    .unwrap();
    let dir = outside.path().display().to_string();
    let out = setup
        .krun(&[
            "--node",
            "n1",
            "--dry-run",
            "--allow-local",
            &dir,
            "--output",
            "json",
        ])
        .run();
    out.code(0);
    assert_not_shown(&out);
    let json = out.json();
    let diff = json["nodes"][0]["steps"][0]["diff"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        diff.contains("content not shown") && diff.contains("23 bytes"),
        "{diff}"
    );
}

#[test]
fn a_symbolic_link_out_of_the_playbooks_directory_is_refused() {
    let Some(fleet) = Fleet::shared() else { return };
    let (setup, outside) = setup(
        fleet,
        "render(node, \"key.j2\", #{}, \"/etc/kubernetes/krun-local\", 0o600);\n",
    );
    std::os::unix::fs::symlink(
        outside.path().join("id_ed25519"),
        setup.dir.path().join("key.j2"),
    )
    .unwrap();
    let out = setup.krun(&["--node", "n1", "--dry-run"]).run();
    out.code(2).stderr_has("is a symbolic link to");
    assert_not_shown(&out);
}

#[test]
fn import_refuses_absolute_paths_and_escapes() {
    let Some(fleet) = Fleet::shared() else { return };
    let (setup, outside) = setup(fleet, "");
    let absolute = outside.path().join("mod").display().to_string();
    let escape = relative_to(&setup, &outside, "mod");
    for import in [absolute.as_str(), escape.as_str()] {
        std::fs::write(
            &setup.playbook,
            format!("import {import:?} as m;\nlog(`${{m::f()}}`);\n"),
        )
        .unwrap();
        let out = setup.krun(&["--node", "n1", "--dry-run"]).run();
        out.code(2).stderr_has("--allow-local");
        crate::cli::Krun::new()
            .args(["check", setup.playbook.to_str().unwrap()])
            .run()
            .code(2)
            .stderr_has("--allow-local");
    }
    let dir = outside.path().display().to_string();
    std::fs::write(
        &setup.playbook,
        format!("import {absolute:?} as m;\nlog(`got ${{m::f()}}`);\n"),
    )
    .unwrap();
    setup
        .krun(&["--node", "n1", "--dry-run", "--allow-local", &dir])
        .run()
        .code(0)
        .stderr_has("got 1");
}

#[test]
fn a_dry_run_shows_a_local_files_content_only_when_marked_showable() {
    let Some(fleet) = Fleet::shared() else { return };
    fleet
        .node("n1")
        .write_file("/etc/kubernetes/krun-local", "old\n");
    let (setup, _outside) = setup(
        fleet,
        r#"upload(node, "certs/ca.key", "/etc/kubernetes/krun-local", 0o600);
render(node, "certs/ca.key", #{}, "/etc/kubernetes/krun-local", 0o600);
upload(node, "public.txt", "/etc/kubernetes/krun-local", 0o644, #{ show: true });
"#,
    );
    setup.file("certs/ca.key", SECRET);
    setup.file("public.txt", "a public note\n");
    let out = setup
        .krun(&["--node", "n1", "--dry-run", "--output", "json"])
        .run();
    out.code(0);
    assert_not_shown(&out);
    let json = out.json();
    let diffs: Vec<&str> = json["nodes"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["diff"].as_str().unwrap())
        .collect();
    assert!(
        diffs[0].contains("content not shown") && diffs[1].contains("content not shown"),
        "{diffs:?}"
    );
    assert!(
        diffs[2].contains("-old") && diffs[2].contains("+a public note"),
        "{diffs:?}"
    );
    let text = setup.krun(&["--node", "n1", "--dry-run"]).run();
    text.code(0).stdout_has("+a public note");
    assert_not_shown(&text);
}
