//! Interruptions: a node dying mid-command, and the operator pressing Ctrl-C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Setup;
use crate::support::Fleet;

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_whose_sshd_dies_mid_command_fails_cleanly() {
    let Some(fleet) = Fleet::start(1) else { return };
    let setup = Setup::new(
        &fleet,
        "sh(node, \"echo started; sleep 60\");\nsh(node, \"touch never\");\n",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args([
            setup.playbook.as_os_str(),
            "--inventory".as_ref(),
            setup.inventory.as_os_str(),
            "--node".as_ref(),
            "n1".as_ref(),
            "--output".as_ref(),
            "json".as_ref(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let node = fleet.node("n1");
    wait_for("the command to start", || node.sessions() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    node.kill_sshd();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("n1") && stderr.contains("sleep 60"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["nodes"][0]["status"], "failed");
    assert_eq!(json["nodes"][0]["failure"]["step"], 1);
    assert_eq!(
        json["nodes"][0]["steps"].as_array().unwrap().len(),
        1,
        "a step started after the failure"
    );
}

#[test]
fn ctrl_c_cancels_the_command_and_starts_nothing_new() {
    let Some(fleet) = Fleet::start(2) else { return };
    let setup = Setup::new(
        &fleet,
        "sh(node, \"sleep 60\");\nsh(node, \"touch $KRUN_NODE_DIR/after\");\n",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args([
            setup.playbook.as_os_str(),
            "--inventory".as_ref(),
            setup.inventory.as_os_str(),
        ])
        .args(["--node", "n1", "--node", "n2", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command to start", || fleet.node("n1").sessions() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["nodes"][0]["status"], "interrupted");
    assert_eq!(json["nodes"][0]["failure"]["step"], 1);
    assert_eq!(json["nodes"][1]["status"], "not_started");
    assert!(
        !fleet.node("n1").dir().join("after").exists(),
        "a step ran after Ctrl-C"
    );
    assert_eq!(fleet.node("n2").logins(), 0);
}
