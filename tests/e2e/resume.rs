//! Resume: a run that stopped continues where it stopped, without redoing what was done.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Setup;
use crate::support::Fleet;

const PLAYBOOK: &str = r#"
sh(node, "echo one >> $KRUN_NODE_DIR/log");
let flag = sh(node, "cat $KRUN_NODE_DIR/flag").stdout;
sh(node, "touch $KRUN_NODE_DIR/started; [ -e $KRUN_NODE_DIR/go ] || sleep 60");
sh(node, ["sh", "-c", "echo \"$1\" >> $KRUN_NODE_DIR/log", "x", "three " + flag]);
"#;

fn run_id(stdout: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    json["run_id"].as_str().unwrap().to_owned()
}

#[test]
fn resume_after_a_failure_and_after_a_crash() {
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    let setup = Setup::new(&fleet, PLAYBOOK);
    let state = setup.dir.path().join("state");
    let state_arg = state.to_str().unwrap();

    // 1. Step 2 fails: the flag file is missing.
    let out = setup
        .krun(&["--node", "n1", "--output", "json", "--state-dir", state_arg])
        .run();
    out.code(1).stderr_has("exited with code 1 on n1");
    let first = run_id(&out.stdout);
    let shown = crate::cli::Krun::new()
        .args(["runs", "show", &first, "--state-dir", state_arg])
        .run();
    shown
        .code(0)
        .stdout_has("failed at step 2 (sh `cat $KRUN_NODE_DIR/flag`")
        .stdout_has(&format!("krun resume {first}"));

    // 2. Fixed; resume reaches step 3, where krun is killed mid-command (a crash).
    std::fs::write(node.dir().join("flag"), "ok").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args([
            "resume",
            &first,
            "--state-dir",
            state_arg,
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node.dir().join("started").exists() {
        assert!(Instant::now() < deadline, "step 3 never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let second = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|id| *id != first)
        .max()
        .unwrap();
    let shown = crate::cli::Krun::new()
        .args(["runs", "show", &second, "--state-dir", state_arg])
        .run();
    shown
        .code(0)
        .stdout_has("step 3")
        .stdout_has("outcome unknown");

    // 3. The step's outcome is unknown: resuming refuses without --retry-unknown.
    let out = crate::cli::Krun::new()
        .args([
            "resume",
            &second,
            "--state-dir",
            state_arg,
            "--output",
            "json",
        ])
        .run();
    out.code(3).stderr_has("--retry-unknown");

    // 4. The playbook changed: refused unless --allow-changed.
    let original = std::fs::read_to_string(&setup.playbook).unwrap();
    std::fs::write(&setup.playbook, format!("{original}\n// edited\n")).unwrap();
    let out = crate::cli::Krun::new()
        .args([
            "resume",
            &second,
            "--state-dir",
            state_arg,
            "--retry-unknown",
        ])
        .run();
    out.code(2)
        .stderr_has("changed since run")
        .stderr_has("--allow-changed");
    std::fs::write(&setup.playbook, original).unwrap();

    // 5. Retried: steps 1 and 2 come from the journal, 3 and 4 run.
    std::fs::write(node.dir().join("go"), "").unwrap();
    let out = crate::cli::Krun::new()
        .args([
            "resume",
            &second,
            "--state-dir",
            state_arg,
            "--retry-unknown",
            "--output",
            "json",
        ])
        .run();
    out.code(0);
    let json = out.json();
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    let replayed: Vec<bool> = steps.iter().map(|s| s["replayed"] == true).collect();
    assert_eq!(replayed, [true, true, false, false], "{steps:#?}");
    // "one" was written once: step 1 was not executed again; step 4 saw step 2's recorded output.
    assert_eq!(
        std::fs::read_to_string(node.dir().join("log")).unwrap(),
        "one\nthree ok\n"
    );

    // 6. The run is complete: resuming any run of the chain again is refused, nothing runs
    // twice, and the first run's record says how it ended.
    for id in [&first, &second] {
        crate::cli::Krun::new()
            .args(["resume", id, "--state-dir", state_arg, "--retry-unknown"])
            .run()
            .code(3)
            .stderr_has("nothing left to resume");
    }
    assert_eq!(
        std::fs::read_to_string(node.dir().join("log")).unwrap(),
        "one\nthree ok\n",
        "a second resume executed steps again"
    );
    let shown = crate::cli::Krun::new()
        .args(["runs", "show", &first, "--state-dir", state_arg])
        .run();
    shown.code(0).stdout_has("which finished");
    assert!(
        !shown.stdout.contains("resume with"),
        "a finished run is offered a resume:\n{}",
        shown.stdout
    );
}

/// Kills krun while `step` (step 1) runs, then resumes without `--retry-unknown`: the step's
/// own recheck settles it. Returns the resumed run's JSON and the resumed journal's text.
/// `TOKEN` in the playbook becomes a word unique to this call: the command krun left running
/// on the node when it was killed is killed too (by that word), so it cannot finish its change
/// behind the resumed run's back however slow the machine is.
fn crash_in_step_one_then_resume(fleet: &Fleet, playbook: &str) -> (serde_json::Value, String) {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let token = format!(
        "crashed-step-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let playbook = playbook.replace("TOKEN", &token);
    let node = fleet.node("n1");
    for file in ["started", "go", "marks"] {
        let _ = std::fs::remove_file(node.dir().join(file));
    }
    let setup = Setup::new(fleet, &playbook);
    let state = setup.dir.path().join("state");
    let state_arg = state.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args(setup.krun_args(&["--node", "n1", "--state-dir", state_arg]))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node.dir().join("started").exists() {
        assert!(Instant::now() < deadline, "step 1 never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = Command::new("pkill").args(["-KILL", "-f", &token]).status();
    let crashed = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .max()
        .unwrap();
    std::fs::write(node.dir().join("go"), "").unwrap();
    let out = crate::cli::Krun::new()
        .args([
            "resume",
            &crashed,
            "--state-dir",
            state_arg,
            "--output",
            "json",
        ])
        .run();
    out.code(0);
    let json = out.json();
    let resumed = json["run_id"].as_str().unwrap().to_owned();
    let journal =
        std::fs::read_to_string(state.join("runs").join(resumed).join("journal.jsonl")).unwrap();
    (json, journal)
}

#[test]
fn a_step_with_a_read_back_is_settled_without_asking() {
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");

    // The change (the mark) was made before the crash: the check sees it, the step is not run
    // again, the playbook goes on.
    let (json, journal) = crash_in_step_one_then_resume(
        &fleet,
        r#"
sh(node, ": TOKEN; echo mark >> $KRUN_NODE_DIR/marks; touch $KRUN_NODE_DIR/started; [ -e $KRUN_NODE_DIR/go ] || sleep 60",
   #{ check: "grep -q mark $KRUN_NODE_DIR/marks" });
sh(node, "echo after >> $KRUN_NODE_DIR/marks");
"#,
    );
    assert_eq!(
        std::fs::read_to_string(node.dir().join("marks")).unwrap(),
        "mark\nafter\n",
        "the settled step ran again, or the next one did not run"
    );
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    let resolved = steps[0]["resolved"].as_str().unwrap_or_default();
    assert!(
        resolved.contains("read back with `grep -q mark") && resolved.contains("not run again"),
        "{steps:#?}"
    );
    assert!(
        journal.contains("\"resolved\":\"read back with"),
        "the journal does not say how the step was settled:\n{journal}"
    );

    // The change had not been made: the check says so and the step runs.
    let (json, _) = crash_in_step_one_then_resume(
        &fleet,
        r#"
sh(node, ": TOKEN; touch $KRUN_NODE_DIR/started; [ -e $KRUN_NODE_DIR/go ] || sleep 60; echo mark >> $KRUN_NODE_DIR/marks",
   #{ check: "grep -q mark $KRUN_NODE_DIR/marks" });
"#,
    );
    assert_eq!(
        std::fs::read_to_string(node.dir().join("marks")).unwrap(),
        "mark\n"
    );
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["executed"], true, "{steps:#?}");
    assert!(
        steps[0]["resolved"]
            .as_str()
            .unwrap_or_default()
            .contains("it had not happened, so it runs now"),
        "{steps:#?}"
    );

    // A step that says running it twice is harmless just runs again.
    let (json, _) = crash_in_step_one_then_resume(
        &fleet,
        r#"
sh(node, ": TOKEN; touch $KRUN_NODE_DIR/started; [ -e $KRUN_NODE_DIR/go ] || sleep 60", #{ rerun: true });
"#,
    );
    let steps = json["nodes"][0]["steps"].as_array().unwrap();
    assert!(
        steps[0]["resolved"]
            .as_str()
            .unwrap_or_default()
            .contains("twice reaches the same state"),
        "{steps:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_is_refused_while_the_run_lives_and_takes_over_once_it_died() {
    let Some(fleet) = Fleet::start(1) else { return };
    let sim = crate::support::sim::Sim::start(crate::support::sim::DRAIN_CLUSTER, 1.0).await;
    let node = fleet.node("n1");
    let setup = Setup::new(
        &fleet,
        "sh(node, \"touch $KRUN_NODE_DIR/started; [ -e $KRUN_NODE_DIR/go ] || sleep 60\");\n\
         sh(node, \"echo done >> $KRUN_NODE_DIR/log\");\n",
    );
    let state = setup.dir.path().join("state");
    let state_arg = state.to_str().unwrap().to_owned();
    let kubeconfig = sim.kubeconfig.to_str().unwrap().to_owned();
    let mut first = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args(setup.krun_args(&["--node", "n1", "--kubeconfig", &kubeconfig]))
        .args(["--state-dir", &state_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node.dir().join("started").exists() {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .next()
        .unwrap();
    let resume = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || crate::cli::Krun::new().args(args).run())
    };
    let args = vec![
        "resume".to_owned(),
        id.clone(),
        "--state-dir".to_owned(),
        state_arg.clone(),
        "--retry-unknown".to_owned(),
    ];

    // The first run lives and renews the lock: a resume would make two processes work on it.
    resume(args.clone())
        .await
        .unwrap()
        .code(3)
        .stderr_has("the run this one resumes is still alive");
    assert!(
        !node.dir().join("log").exists(),
        "the refused resume ran a step"
    );

    // Killed (a crash): its process is gone on this machine, so the resume takes over at once.
    first.kill().unwrap();
    first.wait().unwrap();
    std::fs::write(node.dir().join("go"), "").unwrap();
    let out = resume(args).await.unwrap();
    out.code(0).stderr_has("whose process is gone");
    assert_eq!(
        std::fs::read_to_string(node.dir().join("log")).unwrap(),
        "done\n"
    );
}
