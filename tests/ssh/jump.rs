//! Reaching a node through a jump host (direct-tcpip over the jump host's pooled connection).

use krun::ssh::{Endpoint, HostKeyError, SshError};

use super::{host_key_refusal, pool, stdout_of, try_run};
use crate::support::{Fleet, NodeSpec, Os};

fn via(target: Endpoint, jump: Endpoint) -> Endpoint {
    Endpoint {
        jump: Some(Box::new(jump)),
        ..target
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_jump_host_runs_commands() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("bastion", Os::Debian12))
        .node(NodeSpec::bare("inner", Os::Rocky9))
        .start()
    else {
        return;
    };
    let bastion = fleet.node("bastion");
    let inner = fleet.node("inner");
    let pool = pool();
    let target = via(inner.endpoint(), bastion.endpoint());

    assert_eq!(
        stdout_of(&pool, &target, ". /etc/os-release; echo $KRUN_NODE $ID").await,
        "inner rocky"
    );
    for _ in 0..3 {
        stdout_of(&pool, &target, "true").await;
    }
    // The jump host is also a node of the run: its direct commands share the same connection.
    assert_eq!(
        stdout_of(&pool, &bastion.endpoint(), "echo $KRUN_NODE").await,
        "bastion"
    );
    assert_eq!(bastion.logins(), 1, "{}", bastion.sshd_log());
    assert_eq!(bastion.sessions(), 1, "tunnels are not sessions");
    assert_eq!(inner.logins(), 1);
    assert_eq!(inner.sessions(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_host_that_forbids_forwarding_is_reported() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("strict", Os::Debian12).sshd_option("AllowTcpForwarding no"))
        .node(NodeSpec::bare("inner", Os::Debian12))
        .start()
    else {
        return;
    };
    let target = via(
        fleet.node("inner").endpoint(),
        fleet.node("strict").endpoint(),
    );
    let error = try_run(&pool(), &target, "true").await.unwrap_err();
    assert!(matches!(error, SshError::Tunnel { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "inner: jump host strict could not open a tunnel to 127.0.0.1:{}",
            fleet.node("inner").port()
        )),
        "{message}"
    );
    assert_eq!(fleet.node("inner").logins(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_are_checked_on_both_hops() {
    let Some(fleet) = Fleet::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();

    // Unknown jump host: the error is about reaching the jump host, for the target node.
    let jump = Endpoint {
        known_hosts: empty.clone(),
        ..fleet.node("bastion").endpoint()
    };
    let error = try_run(&pool(), &via(fleet.node("n2").endpoint(), jump), "true")
        .await
        .unwrap_err();
    assert!(matches!(error, SshError::JumpHost { .. }), "{error}");
    assert!(error.host_key_refused());
    assert!(
        error
            .to_string()
            .starts_with("n2: cannot reach jump host: bastion: host key of ")
    );

    // Unknown target behind a known jump host.
    let target = Endpoint {
        known_hosts: empty,
        ..fleet.node("n2").endpoint()
    };
    let error = try_run(
        &pool(),
        &via(target, fleet.node("bastion").endpoint()),
        "true",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(host_key_refusal(&error), HostKeyError::Unknown { node, .. } if node == "n2"),
        "{error}"
    );
}
