//! Logging in: key files of every type, the ssh agent, encrypted keys, refusals, sudo.

use std::process::Command;
use std::time::Duration;

use krun::ssh::{Endpoint, SshConfig, SshError, SshPool};

use super::{pool, run, stdout_of, try_run};
use crate::support::{Fleet, KeyKind, NodeSpec, Os, SshAgent, client_key, sudo_user};

fn fingerprint_of(public_key_file: &std::path::Path) -> String {
    let output = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key_file)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn agent_pool(agent: &SshAgent) -> SshPool {
    SshPool::with_agent(
        SshConfig {
            connect_timeout: Duration::from_secs(10),
            accept_new_host_keys: false,
        },
        Some(agent.socket().to_path_buf()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_key_type_logs_in() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("keys", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("keys");
    for kind in KeyKind::ALL {
        let endpoint = Endpoint {
            identity: Some(client_key(kind).to_path_buf()),
            ..node.endpoint()
        };
        // A fresh pool per key: each must log in on its own.
        assert_eq!(
            stdout_of(&pool(), &endpoint, "id -un").await,
            "root",
            "{kind:?}"
        );
        let fingerprint = fingerprint_of(&client_key(kind).with_extension("pub"));
        assert!(
            node.sshd_log().contains(&fingerprint),
            "sshd did not log a login with the {kind:?} key"
        );
    }
    // OpenSSH 9 refuses SHA-1 RSA signatures, so the RSA login above proves rsa-sha2.
    assert!(
        node.sshd_log()
            .contains("Accepted publickey for root from 127.0.0.1")
    );
    assert!(node.sshd_log().contains(": RSA SHA256:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssh_agent_logs_in_when_no_identity_is_configured() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::bare("agent", Os::Debian12))
        .start()
    else {
        return;
    };
    let Some(agent) = SshAgent::start() else {
        return;
    };
    agent.add(client_key(KeyKind::Rsa), None);
    let node = fleet.node("agent");
    let endpoint = Endpoint {
        identity: None,
        ..node.endpoint()
    };
    assert_eq!(
        stdout_of(&agent_pool(&agent), &endpoint, "echo via agent").await,
        "via agent"
    );
    let fingerprint = fingerprint_of(&client_key(KeyKind::Rsa).with_extension("pub"));
    assert!(
        node.sshd_log().contains(&format!("RSA {fingerprint}")),
        "the login did not use the agent's RSA key:\n{}",
        node.sshd_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_key_needs_the_agent() {
    let Some(fleet) = Fleet::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_encrypted");
    std::fs::copy(client_key(KeyKind::Ecdsa), &key).unwrap();
    let output = Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "sesame", "-P", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "could not encrypt the key: {output:?}"
    );
    let endpoint = Endpoint {
        identity: Some(key.clone()),
        ..fleet.node("n3").endpoint()
    };

    let error = try_run(&pool(), &endpoint, "true").await.unwrap_err();
    assert!(
        matches!(
            error,
            SshError::EncryptedKey {
                agent_reachable: false,
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.starts_with("n3: identity "), "{message}");
    assert!(
        message.contains(&format!("ssh-add {}", key.display())),
        "{message}"
    );

    let Some(agent) = SshAgent::start() else {
        return;
    };
    let error = try_run(&agent_pool(&agent), &endpoint, "true")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SshError::EncryptedKey {
                agent_reachable: true,
                ..
            }
        ),
        "{error}"
    );

    agent.add(&key, Some("sesame"));
    assert_eq!(
        stdout_of(&agent_pool(&agent), &endpoint, "echo unlocked").await,
        "unlocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_names_the_user_and_every_key_tried() {
    let Some(fleet) = Fleet::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("id_stranger");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(status.success());
    let node = fleet.node("n1");
    let endpoint = Endpoint {
        identity: Some(stranger.clone()),
        ..node.endpoint()
    };
    let error = try_run(&pool(), &endpoint, "true").await.unwrap_err();
    let SshError::AuthFailed { user, tried, .. } = &error else {
        panic!("expected a refused login, got {error}");
    };
    assert_eq!(user, "root");
    assert_eq!(tried.len(), 1, "{tried:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "n1: root@127.0.0.1:{} refused every key krun tried: key file {}",
            node.port(),
            stranger.display()
        )),
        "{message}"
    );
    assert!(
        message.contains(&fingerprint_of(&stranger.with_extension("pub"))),
        "{message}"
    );

    // Without an identity, the agent's keys are offered and listed.
    let Some(agent) = SshAgent::start() else {
        return;
    };
    agent.add(&stranger, None);
    let endpoint = Endpoint {
        identity: None,
        user: "nobody-here".to_string(),
        ..node.endpoint()
    };
    let error = try_run(&agent_pool(&agent), &endpoint, "true")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("nobody-here@127.0.0.1"), "{message}");
    assert!(
        message.contains("agent key ssh-ed25519 SHA256:"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_identity_is_named() {
    let Some(fleet) = Fleet::shared() else { return };
    let endpoint = Endpoint {
        identity: Some("/nonexistent/id_ed25519".into()),
        ..fleet.node("n1").endpoint()
    };
    let error = try_run(&pool(), &endpoint, "true").await.unwrap_err();
    assert!(matches!(error, SshError::Identity { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("n1: cannot use identity /nonexistent/id_ed25519: ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_user_changes_the_node_only_through_sudo() {
    let Some(user) = sudo_user() else { return };
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("sudo", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("sudo");
    let endpoint = Endpoint {
        user: user.to_string(),
        ..node.endpoint()
    };
    let pool = pool();
    assert_eq!(stdout_of(&pool, &endpoint, "id -un").await, user);

    let denied = run(&pool, &endpoint, "systemctl stop kubelet").await;
    assert_eq!(denied.exit_code, Some(1));
    assert!(
        denied.stderr_lossy().contains("Access denied"),
        "{}",
        denied.stderr_lossy()
    );
    assert_eq!(node.unit_state("kubelet").unwrap().0, "active");

    let output = run(&pool, &endpoint, "sudo -n systemctl stop kubelet").await;
    assert_eq!(output.exit_code, Some(0), "{}", output.stderr_lossy());
    assert_eq!(node.unit_state("kubelet").unwrap().0, "inactive");
    assert_eq!(node.changes(), ["systemctl stop kubelet.service"]);
}
