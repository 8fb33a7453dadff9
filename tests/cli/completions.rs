//! Shell completions and the manual page, generated from the command-line definition, loaded by
//! the real shells and rendered by the real man.

use std::process::Command;

use super::Krun;

fn script(shell: &str) -> tempfile::NamedTempFile {
    let out = Krun::new().args(["completions", shell]).run();
    out.code(0);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &out.stdout).unwrap();
    file
}

fn shell_output(mut command: Command) -> String {
    let out = command.output().expect("the shell runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What bash offers after `words`, with the cursor at the end of the last one.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let array: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n_krun krun \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        array.join(" "),
        words.len() - 1
    );
    let mut bash = Command::new("bash");
    bash.args(["--norc", "--noprofile", "-c", &program]);
    shell_output(bash)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_and_flags() {
    if !crate::support::require(&["bash"], false) {
        return;
    }
    let script = script("bash");
    assert_eq!(bash_complete(script.path(), &["krun", "ch"]), ["check"]);
    let runs = bash_complete(script.path(), &["krun", "runs", ""]);
    assert!(runs.iter().any(|w| w == "show"), "{runs:?}");
    let lib = bash_complete(script.path(), &["krun", "lib", ""]);
    for sub in ["add", "update", "tree", "verify", "vendor"] {
        assert!(lib.iter().any(|w| w == sub), "{sub} missing from {lib:?}");
    }
    assert!(
        bash_complete(script.path(), &["krun", "playbook.rhai", "--dry"])
            .iter()
            .any(|w| w == "--dry-run")
    );
    assert_eq!(
        bash_complete(script.path(), &["krun", "completions", "fi"]),
        ["fish"]
    );
}

#[test]
fn fish_completes_subcommands() {
    if !crate::support::require(&["fish"], false) {
        return;
    }
    let script = script("fish");
    let mut fish = Command::new("fish");
    fish.args([
        "--no-config",
        "-c",
        &format!(
            "source {}; complete -C 'krun co'; complete -C 'krun lib ve'",
            script.path().display()
        ),
    ]);
    let offered: Vec<String> = shell_output(fish)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(offered, ["completions", "vendor", "verify"]);
}

#[test]
fn zsh_loads_the_completion_function() {
    if !crate::support::require(&["zsh"], false) {
        return;
    }
    let script = script("zsh");
    let text = std::fs::read_to_string(script.path()).unwrap();
    assert!(text.starts_with("#compdef krun"), "{text}");
    let mut zsh = Command::new("zsh");
    zsh.args([
        "-f",
        "-c",
        &format!(
            "autoload -Uz compinit && compinit -u -D && source {} && whence -w _krun",
            script.path().display()
        ),
    ]);
    assert_eq!(shell_output(zsh).trim(), "_krun: function");
}

#[test]
fn man_page_renders_and_names_every_subcommand() {
    let out = Krun::new().args(["man"]).run();
    out.code(0);
    assert!(
        out.stdout.starts_with(".ie \\n(.g .ds Aq"),
        "roff: {}",
        &out.stdout[..80.min(out.stdout.len())]
    );
    out.stdout_has(".TH krun 1");
    for sub in [
        "check",
        "doc",
        "lib",
        "init",
        "completions",
        "man",
        "preflight",
    ] {
        out.stdout_has(&format!("krun\\-{sub}"));
    }
    if !crate::support::require(&["man"], false) {
        return;
    }
    let page = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(page.path(), &out.stdout).unwrap();
    let mut man = Command::new("man");
    man.args(["-l", "-P", "cat"])
        .arg(page.path())
        .env("MANWIDTH", "100")
        .env("LANG", "C.UTF-8");
    let rendered = shell_output(man);
    assert!(
        rendered.contains("Run Rhai upgrade playbooks"),
        "{rendered}"
    );

    let dir = tempfile::tempdir().unwrap();
    Krun::new()
        .args(["man", "--dir", dir.path().to_str().unwrap()])
        .run()
        .code(0);
    for page in [
        "krun.1",
        "krun-check.1",
        "krun-runs-show.1",
        "krun-lib-add.1",
        "krun-init.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} not written");
    }
}
