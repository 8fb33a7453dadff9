//! Nodes that die, restart, refuse or never answer: clean errors, no hangs.

use std::time::Duration;

use krun::ssh::{Endpoint, ExecRequest, SshConfig, SshError, SshPool};

use super::{pool, stdout_of, try_run};
use crate::support::{Fleet, NodeSpec, Os};

/// Guards against hangs only: a healthy run finishes far sooner.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_killed_mid_command_gives_a_clean_error() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("doomed", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("doomed");
    // A node reached before is asked again for as long as the connect timeout: keep it short.
    let pool = SshPool::with_agent(
        SshConfig {
            connect_timeout: Duration::from_secs(2),
            accept_new_host_keys: false,
        },
        None,
    );
    let endpoint = node.endpoint();
    let running = tokio::spawn({
        let pool = pool.clone();
        let endpoint = endpoint.clone();
        async move {
            pool.exec(&endpoint, ExecRequest::new("echo started; sleep 600"))
                .await
        }
    });
    for _ in 0..200 {
        if node.sessions() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(node.sessions(), 1, "the command never started");
    node.kill_sshd();

    let error = tokio::time::timeout(HANG, running)
        .await
        .expect("exec hung")
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, SshError::ConnectionLost { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "doomed: connection lost while running `echo started; sleep 600`; it may or may not have completed on the node"
    );

    // With sshd gone for good, the next command reports the refused connection (after asking
    // again until the connect timeout).
    let error = tokio::time::timeout(HANG, try_run(&pool, &endpoint, "true"))
        .await
        .expect("exec hung")
        .unwrap_err();
    assert!(matches!(error, SshError::Connect { .. }), "{error}");
    assert!(error.is_unreachable());
    assert!(
        error.to_string().starts_with(&format!(
            "doomed: cannot connect to 127.0.0.1:{}: ",
            node.port()
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_died_while_idle_is_replaced_once() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("phoenix", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("phoenix");
    let pool = pool();
    let endpoint = node.endpoint();
    assert_eq!(stdout_of(&pool, &endpoint, "echo before").await, "before");
    node.kill_sshd();
    node.start_sshd();
    assert_eq!(stdout_of(&pool, &endpoint, "echo after").await, "after");
    assert_eq!(stdout_of(&pool, &endpoint, "echo again").await, "again");
    assert_eq!(node.logins(), 2, "{}", node.sshd_log());
}

/// sshd restarted between two commands and slow to come back (a package upgrade of
/// openssh-server, a crash that systemd restarts): the next command waits for it instead of
/// failing the step, which never started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_sshd_comes_back_late_is_reached_again() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("lazarus", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("lazarus");
    let pool = pool();
    let endpoint = node.endpoint();
    assert_eq!(stdout_of(&pool, &endpoint, "echo before").await, "before");
    node.kill_sshd();
    // Refused at once (nothing listens), and for a second and a half.
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            node.start_sshd();
        });
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(tokio::time::timeout(
                HANG,
                try_run(&pool, &endpoint, "echo after"),
            ))
        })
    });
    let out = out
        .expect("exec hung")
        .expect("the command ran once sshd was back");
    assert_eq!(out.stdout_lossy().trim(), "after");
    assert_eq!(node.logins(), 2, "{}", node.sshd_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_speaks_hits_the_connect_timeout() {
    // Accepts TCP (the kernel does, via the backlog) but never sends an ssh banner.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let endpoint = Endpoint {
        name: "mute".to_string(),
        host: "127.0.0.1".to_string(),
        port,
        user: "root".to_string(),
        identity: None,
        known_hosts: "/nonexistent/known_hosts".into(),
        jump: None,
    };
    let pool = SshPool::with_agent(
        SshConfig {
            connect_timeout: Duration::from_millis(300),
            accept_new_host_keys: false,
        },
        None,
    );
    let error = tokio::time::timeout(HANG, try_run(&pool, &endpoint, "true"))
        .await
        .expect("exec hung")
        .unwrap_err();
    assert!(matches!(error, SshError::ConnectTimeout { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "mute: no ssh session with 127.0.0.1:{port} within 0.3s (connect timeout; is the host up and sshd running?)"
        )
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converting_to_the_crate_error_keeps_the_message_and_is_a_runtime_failure() {
    let Some(fleet) = Fleet::shared() else { return };
    let endpoint = Endpoint {
        known_hosts: "/nonexistent/known_hosts".into(),
        ..fleet.node("n1").endpoint()
    };
    let error = try_run(&pool(), &endpoint, "true").await.unwrap_err();
    let message = error.to_string();
    let converted: krun::Error = error.into();
    assert_eq!(converted.exit_code(), 1);
    assert_eq!(converted.to_string(), message);
}
