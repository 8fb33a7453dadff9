//! Stopping a run at the worst moments: a drain that a budget holds, a `--timeout`, a second
//! Ctrl-C, a command on a root login that sshd will not signal. Each run must stop promptly,
//! start nothing new, and say what it left behind.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Setup;
use crate::support::Fleet;
use crate::support::sim::{DRAIN_CLUSTER, Sim};

/// A drain that can never finish: the budget over the web pods allows no disruption.
const STUCK_DRAIN: &str = r#"
cordon("worker-1");
drain("worker-1", #{ ignore_daemonsets: true, delete_emptydir_data: true, force: true, timeout: "2h" });
uncordon("worker-1");
"#;

fn stuck_cluster() -> String {
    let cluster = DRAIN_CLUSTER.replace("minAvailable: 2", "minAvailable: 3");
    assert_ne!(cluster, DRAIN_CLUSTER);
    cluster
}

fn spawn(sim: &Sim, setup: &Setup, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_krun"))
        .args(setup.krun_args(&["--kubeconfig", sim.kubeconfig.to_str().unwrap()]))
        .args(["--output", "json", "--state-dir"])
        .arg(setup.dir.path().join("state"))
        .args(extra)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("krun starts")
}

/// Waits until the simulator has refused an eviction at least once: the drain is waiting on
/// the budget.
async fn until_the_budget_holds_the_drain(sim: &Sim) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim
        .requests()
        .get("create pods/eviction")
        .copied()
        .unwrap_or(0)
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the drain never reached the budget"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `signal` and waits for krun to exit; returns its output and how long it took. A krun
/// that does not stop within a minute is killed and the test fails.
async fn stop(child: Child, signal: i32) -> (std::process::Output, Duration) {
    let sent = Instant::now();
    let pid = child.id() as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, signal) };
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    match tokio::time::timeout(Duration::from_secs(60), waiting).await {
        Ok(output) => (output.unwrap(), sent.elapsed()),
        Err(_) => {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("krun was still running a minute after the signal");
        }
    }
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// What a drain interrupted while a budget held it leaves: exit 130, the drain step recorded
/// as interrupted, no uncordon started, the node named as left cordoned.
fn assert_interrupted_drain(output: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let json = json(output);
    let run = &json["nodes"][0];
    assert_eq!(run["status"], "interrupted", "{run}");
    let steps = run["steps"].as_array().unwrap();
    let actions: Vec<&str> = steps.iter().filter_map(|s| s["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["cordon", "drain"],
        "a step started after the interrupt"
    );
    assert_eq!(steps[1]["error"], "interrupted", "{}", steps[1]);
    assert_eq!(
        run["failure"]["left_cordoned"],
        serde_json::json!(["worker-1"])
    );
    assert!(stderr.contains("worker-1 is left CORDONED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_drain_that_a_budget_holds() {
    let sim = Sim::start(&stuck_cluster(), 10.0).await;
    let setup = Setup::with_inventory("", STUCK_DRAIN);
    let child = spawn(&sim, &setup, &[]);
    until_the_budget_holds_the_drain(&sim).await;
    let (output, took) = stop(child, libc::SIGINT).await;
    eprintln!("Ctrl-C during a budget-held drain: krun exited after {took:?}");
    assert_interrupted_drain(&output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_drain_that_a_budget_holds() {
    let sim = Sim::start(&stuck_cluster(), 10.0).await;
    let setup = Setup::with_inventory("", STUCK_DRAIN);
    let child = spawn(&sim, &setup, &[]);
    until_the_budget_holds_the_drain(&sim).await;
    let (output, took) = stop(child, libc::SIGTERM).await;
    eprintln!("SIGTERM during a budget-held drain: krun exited after {took:?}");
    assert_interrupted_drain(&output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overall_timeout_stops_a_drain_that_a_budget_holds() {
    let sim = Sim::start(&stuck_cluster(), 10.0).await;
    let setup = Setup::with_inventory("", STUCK_DRAIN);
    let child = spawn(&sim, &setup, &["--timeout", "3s"]);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the run exceeded --timeout"), "{stderr}");
    assert_interrupted_drain(&output);
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    // A command that ignores TERM keeps the first Ctrl-C busy (krun waits for the KILL); the
    // second one does not wait for that.
    let Some(fleet) = Fleet::start(1) else { return };
    let marker = format!(
        "{}.{}",
        3000 + std::process::id() % 1000,
        std::process::id()
    );
    let setup = Setup::new(
        &fleet,
        &format!("sh(node, \"trap '' TERM INT; sleep {marker}\");\n"),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args(setup.krun_args(&["--node", "n1", "--output", "json"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_running(&format!("sleep {marker}"));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted again: exiting at once"),
        "{stderr}"
    );
}

fn running(pattern: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn wait_until_running(pattern: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !running(pattern) {
        assert!(Instant::now() < deadline, "`{pattern}` never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_kills_the_command_even_on_a_root_login() {
    // sshd does not deliver signals to root sessions; krun kills the process group itself.
    let Some(fleet) = Fleet::start(1) else { return };
    let marker = format!(
        "{}.{}",
        3600 + std::process::id() % 1000,
        std::process::id()
    );
    let setup = Setup::new(&fleet, &format!("sh(node, \"sleep {marker}\");\n"));
    let child = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args(setup.krun_args(&["--node", "n1", "--output", "json"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pattern = format!("sleep {marker}");
    wait_until_running(&pattern);
    let sent = Instant::now();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    eprintln!("Ctrl-C during `sh`: krun exited after {:?}", sent.elapsed());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let error = json(&output)["nodes"][0]["steps"][0]["error"].clone();
    assert!(
        error
            .as_str()
            .is_some_and(|e| e.contains("krun stopped it on the node")),
        "the step does not say the command was stopped: {error}\n{stderr}"
    );
    assert!(!running(&pattern), "`{pattern}` still runs on the node");
}
