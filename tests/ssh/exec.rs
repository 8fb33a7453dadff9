//! Running commands: output, exit codes, signals, stdin, concurrency and connection reuse.

use std::time::Duration;

use krun::ssh::{Endpoint, ExecRequest, OutputStream};
use tokio_util::sync::CancellationToken;

use super::{Lines, gone, pool, processes_running, run, stdout_of, try_run};
use crate::support::{Fleet, NodeSpec, Os, sudo_user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_exit_code_stdout_and_stderr() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let output = run(
        &pool,
        &fleet.node("n1").endpoint(),
        "echo out; echo err >&2; exit 3",
    )
    .await;
    assert_eq!(output.exit_code, Some(3));
    assert_eq!(output.signal, None);
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
    assert!(!output.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_get_the_node_environment_and_shims() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let node = fleet.node("n2");
    let found = stdout_of(
        &pool,
        &node.endpoint(),
        "command -v systemctl; echo $KRUN_NODE",
    )
    .await;
    let expected = format!("{}\nn2", node.dir().join("bin/systemctl").display());
    assert_eq!(found, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_output_arrives_as_lines_per_stream() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let lines = Lines::default();
    let sink = lines.sink();
    let request = ExecRequest {
        on_output: &sink,
        ..ExecRequest::new("printf 'one\\ntwo\\n'; echo warn >&2; printf 'tail'")
    };
    let output = pool
        .exec(&fleet.node("n1").endpoint(), request)
        .await
        .unwrap();
    assert_eq!(output.exit_code, Some(0));
    let mut seen = lines.take();
    // The two streams interleave freely; order within a stream is what matters.
    seen.sort_by_key(|(stream, _)| *stream == OutputStream::Stderr);
    assert_eq!(
        seen,
        [
            (OutputStream::Stdout, "one".to_string()),
            (OutputStream::Stdout, "two".to_string()),
            (OutputStream::Stdout, "tail".to_string()),
            (OutputStream::Stderr, "warn".to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_after_the_exit_status_is_not_lost() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    // The shell exits at once; its background child still holds stdout and writes later, so
    // sshd sends the exit status before the last output.
    let output = run(
        &pool,
        &fleet.node("n1").endpoint(),
        "(sleep 0.3; echo late) & echo early",
    )
    .await;
    assert_eq!(output.exit_code, Some(0));
    assert_eq!(output.stdout_lossy(), "early\nlate\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_killed_by_a_signal_reports_the_signal() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let output = run(&pool, &fleet.node("n3").endpoint(), "kill -KILL $$").await;
    assert_eq!(output.exit_code, None);
    assert_eq!(output.signal.as_deref(), Some("KILL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_upload_of_a_binary_blob_is_byte_exact() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let node = fleet.node("n1");
    // Every byte value, in a pseudo-random order, 3 MiB: larger than a channel window.
    let mut state = 0x2545_f491_u32;
    let blob: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|i: u32| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as u8) ^ (i as u8)
        })
        .collect();
    let dir = tempfile::tempdir_in(fleet.dir()).unwrap();
    let target = dir.path().join("blob.bin");
    let command = format!("cat > '{0}.tmp' && mv '{0}.tmp' '{0}'", target.display());
    let request = ExecRequest {
        stdin: Some(&blob),
        ..ExecRequest::new(&command)
    };
    let output = pool.exec(&node.endpoint(), request).await.unwrap();
    assert_eq!(output.exit_code, Some(0), "{}", output.stderr_lossy());
    // Nodes share this machine's filesystem, so the upload can be read back directly.
    assert!(
        std::fs::read(&target).unwrap() == blob,
        "the uploaded file differs"
    );

    // And through the channel in both directions at once.
    let request = ExecRequest {
        stdin: Some(&blob),
        ..ExecRequest::new("cat")
    };
    let echoed = pool.exec(&node.endpoint(), request).await.unwrap();
    assert!(echoed.stdout == blob, "the echoed bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_ignores_stdin_still_completes() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let blob = vec![7u8; 4 * 1024 * 1024];
    let request = ExecRequest {
        stdin: Some(&blob),
        ..ExecRequest::new("exec 0<&-; echo closed")
    };
    let output = pool
        .exec(&fleet.node("n1").endpoint(), request)
        .await
        .unwrap();
    assert_eq!(output.exit_code, Some(0));
    assert_eq!(output.stdout_lossy(), "closed\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_commands_share_one_connection() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("solo", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("solo");
    let endpoint = node.endpoint();
    let pool = pool();
    // More than OpenSSH's MaxSessions (10), all started at once.
    let commands: Vec<String> = (0..30).map(|i| format!("sleep 0.2; echo {i}")).collect();
    let results = futures::future::join_all(
        commands
            .iter()
            .map(|command| try_run(&pool, &endpoint, command)),
    )
    .await;
    for (i, result) in results.into_iter().enumerate() {
        let output = result.unwrap_or_else(|e| panic!("command {i}: {e}"));
        assert_eq!(output.stdout_lossy(), format!("{i}\n"));
    }
    // And sequential ones afterwards reuse it too.
    for _ in 0..5 {
        assert_eq!(stdout_of(&pool, &endpoint, "echo again").await, "again");
    }
    assert_eq!(
        node.logins(),
        1,
        "one connection for every command:\n{}",
        node.sshd_log()
    );
    assert_eq!(node.sessions(), 35);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_fewer_sessions_than_assumed_still_runs_everything() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("hardened", Os::Debian12).sshd_option("MaxSessions 2"))
        .start()
    else {
        return;
    };
    let node = fleet.node("hardened");
    let endpoint = node.endpoint();
    let pool = pool();
    let commands: Vec<String> = (0..12).map(|i| format!("sleep 0.2; echo {i}")).collect();
    let results = futures::future::join_all(
        commands
            .iter()
            .map(|command| try_run(&pool, &endpoint, command)),
    )
    .await;
    for (i, result) in results.into_iter().enumerate() {
        let output = result.unwrap_or_else(|e| panic!("command {i}: {e}"));
        assert_eq!(output.stdout_lossy(), format!("{i}\n"));
    }
    assert_eq!(node.logins(), 1);
    assert_eq!(node.sessions(), 12);
}

/// Logs in as the non-root test user: sshd delivers signals only to privilege-separated
/// (non-root) sessions.
fn as_sudo_user(endpoint: Endpoint) -> Option<Endpoint> {
    let user = sudo_user()?;
    Some(Endpoint {
        user: user.to_string(),
        ..endpoint
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_timeout_stops_the_command_on_the_node() {
    let Some(fleet) = Fleet::shared() else { return };
    let Some(endpoint) = as_sudo_user(fleet.node("n1").endpoint()) else {
        return;
    };
    let pool = pool();
    // Unique per test process, so leftovers of other runs cannot interfere.
    let command = format!("sleep 4711.{}", std::process::id());
    let request = ExecRequest {
        timeout: Some(Duration::from_millis(500)),
        ..ExecRequest::new(&command)
    };
    let error = pool.exec(&endpoint, request).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "n1: `{command}` did not finish within 0.5s (command timeout); krun sent it SIGTERM and closed its channel"
        )
    );
    assert!(
        gone(&command).await,
        "the timed-out command still runs on the node"
    );
    // The connection survives for the next command.
    assert_eq!(
        stdout_of(&pool, &endpoint, "echo still here").await,
        "still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_command_timeout_says_the_command_may_live_on() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let endpoint = fleet.node("n3").endpoint();
    let request = ExecRequest {
        timeout: Some(Duration::from_millis(200)),
        ..ExecRequest::new("sleep 2")
    };
    let error = pool.exec(&endpoint, request).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let message = error.to_string();
    assert!(
        message.ends_with(
            "sshd does not deliver signals to root sessions, so it may still be running on the node"
        ),
        "{message}"
    );
    assert_eq!(stdout_of(&pool, &endpoint, "echo next").await, "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_the_command_and_returns_cancelled() {
    let Some(fleet) = Fleet::shared() else { return };
    let Some(endpoint) = as_sudo_user(fleet.node("n2").endpoint()) else {
        return;
    };
    let pool = pool();
    let cancel = CancellationToken::new();
    let command = format!("sleep 4712.{}", std::process::id());
    let request = ExecRequest {
        cancel: cancel.clone(),
        ..ExecRequest::new(&command)
    };
    let running = async {
        let error = pool.exec(&endpoint, request).await.unwrap_err();
        assert!(error.is_cancelled(), "{error}");
        assert_eq!(
            error.to_string(),
            format!("n2: `{command}` was cancelled; krun sent it SIGTERM and closed its channel")
        );
    };
    let cancel_once_running = async {
        for _ in 0..200 {
            if processes_running(&command) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(processes_running(&command), 1, "the command never started");
        cancel.cancel();
    };
    tokio::join!(running, cancel_once_running);
    assert!(
        gone(&command).await,
        "the cancelled command still runs on the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_cancelled_request_runs_nothing() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let marker = tempfile::NamedTempFile::new_in(fleet.dir()).unwrap();
    let command = format!("sleep 0.5; echo ran > '{}'", marker.path().display());
    let request = ExecRequest {
        cancel,
        ..ExecRequest::new(&command)
    };
    let error = pool
        .exec(&fleet.node("n1").endpoint(), request)
        .await
        .unwrap_err();
    assert!(error.is_cancelled());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(std::fs::read_to_string(marker.path()).unwrap(), "");
}
