//! Host key verification against known_hosts, with OpenSSH's own tools producing the files.

use std::path::Path;
use std::process::Command;

use krun::ssh::{Endpoint, HostKeyError};

use super::{host_key_refusal, pool, pool_with, stdout_of, try_run};
use crate::support::{Fleet, KeyKind, Node};

/// The fingerprint as `ssh-keygen -lf` prints it, the reference format.
fn openssh_fingerprint(node: &Node, kind: KeyKind) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), node.host_key(kind)).unwrap();
    let output = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(file.path())
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

fn endpoint_with_known_hosts(node: &Node, known_hosts: &Path) -> Endpoint {
    Endpoint {
        known_hosts: known_hosts.to_path_buf(),
        ..node.endpoint()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_is_refused_with_its_fingerprint_and_the_flag() {
    let Some(fleet) = Fleet::shared() else { return };
    let node = fleet.node("n2");
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        fleet.node("n3").known_hosts_line(KeyKind::Ed25519) + "\n",
    )
    .unwrap();

    let error = try_run(
        &pool(),
        &endpoint_with_known_hosts(node, &known_hosts),
        "true",
    )
    .await
    .unwrap_err();
    assert!(error.host_key_refused(), "{error}");
    assert!(error.is_unreachable());
    let HostKeyError::Unknown {
        node: name,
        addr,
        key_type,
        fingerprint,
        ..
    } = host_key_refusal(&error)
    else {
        panic!("expected an unknown host key, got {error}");
    };
    assert_eq!(name, "n2");
    assert_eq!(addr, &format!("127.0.0.1:{}", node.port()));
    assert_eq!(key_type, "ssh-ed25519");
    assert_eq!(fingerprint, &openssh_fingerprint(node, KeyKind::Ed25519));
    let message = error.to_string();
    assert!(message.starts_with(&format!(
        "n2: host key of 127.0.0.1:{} is not in ",
        node.port()
    )));
    assert!(message.contains(&openssh_fingerprint(node, KeyKind::Ed25519)));
    assert!(message.contains("--accept-new-host-keys"), "{message}");
    // Refusing never writes.
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        fleet.node("n3").known_hosts_line(KeyKind::Ed25519) + "\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_records_the_key_like_openssh() {
    let Some(fleet) = Fleet::shared() else { return };
    let node = fleet.node("n3");
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, like a fresh ~/.ssh.
    let known_hosts = dir.path().join("ssh/known_hosts");
    let endpoint = endpoint_with_known_hosts(node, &known_hosts);

    assert_eq!(
        stdout_of(&pool_with(true), &endpoint, "echo ok").await,
        "ok"
    );
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(recorded, node.known_hosts_line(KeyKind::Ed25519) + "\n");

    // OpenSSH itself accepts the file krun wrote.
    let output = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", node.port()))
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ssh-keygen -F does not find the new entry"
    );

    // From now on the host is known without the flag.
    assert_eq!(stdout_of(&pool(), &endpoint, "echo known").await, "known");
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_key_is_refused_even_with_accept_new() {
    let Some(fleet) = Fleet::shared() else { return };
    let node = fleet.node("n1");
    let impostor = fleet.node("n2");
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    // The file says n1's port has n2's key: to krun, n1 now presents a different key.
    let stale = format!(
        "[127.0.0.1]:{} {}",
        node.port(),
        impostor.host_key(KeyKind::Ed25519)
    );
    std::fs::write(&known_hosts, format!("# managed by hand\n{stale}\n")).unwrap();
    let endpoint = endpoint_with_known_hosts(node, &known_hosts);

    for accept_new in [false, true] {
        let error = try_run(&pool_with(accept_new), &endpoint, "true")
            .await
            .unwrap_err();
        assert!(error.host_key_refused(), "{error}");
        let HostKeyError::Changed {
            old_fingerprint,
            new_fingerprint,
            line,
            entry,
            ..
        } = host_key_refusal(&error)
        else {
            panic!("expected a changed host key, got {error}");
        };
        assert_eq!(
            old_fingerprint,
            &openssh_fingerprint(impostor, KeyKind::Ed25519)
        );
        assert_eq!(
            new_fingerprint,
            &openssh_fingerprint(node, KeyKind::Ed25519)
        );
        assert_eq!(*line, 2);
        assert_eq!(entry, &stale);
        let message = error.to_string();
        assert!(message.contains("HOST KEY CHANGED"), "{message}");
        assert!(
            message.contains(&format!("{}:2", known_hosts.display())),
            "{message}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        format!("# managed by hand\n{stale}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_known_hosts_entries_match() {
    let Some(fleet) = Fleet::shared() else { return };
    let node = fleet.node("n2");
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::copy(fleet.known_hosts(), &known_hosts).unwrap();
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(status.status.success());
    let hashed = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        hashed.lines().all(|l| l.starts_with("|1|")),
        "ssh-keygen -H did not hash:\n{hashed}"
    );

    let endpoint = endpoint_with_known_hosts(node, &known_hosts);
    assert_eq!(stdout_of(&pool(), &endpoint, "echo hashed").await, "hashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_entries_match_and_negation_vetoes() {
    let Some(fleet) = Fleet::shared() else { return };
    let node = fleet.node("n3");
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let key = node.host_key(KeyKind::Ed25519);
    std::fs::write(&known_hosts, format!("[127.0.0.?]:{} {key}\n", node.port())).unwrap();
    let endpoint = endpoint_with_known_hosts(node, &known_hosts);
    assert_eq!(stdout_of(&pool(), &endpoint, "echo wild").await, "wild");

    std::fs::write(
        &known_hosts,
        format!("[127.0.0.*]:*,![127.0.0.1]:{} {key}\n", node.port()),
    )
    .unwrap();
    let error = try_run(&pool(), &endpoint, "true").await.unwrap_err();
    assert!(
        matches!(host_key_refusal(&error), HostKeyError::Unknown { .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused() {
    let Some(fleet) = Fleet::shared() else { return };
    let node = fleet.node("n1");
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "{}\n@revoked * {}\n",
            node.known_hosts_line(KeyKind::Ed25519),
            node.host_key(KeyKind::Ed25519)
        ),
    )
    .unwrap();
    let error = try_run(
        &pool_with(true),
        &endpoint_with_known_hosts(node, &known_hosts),
        "true",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            host_key_refusal(&error),
            HostKeyError::Revoked { line: 2, .. }
        ),
        "{error}"
    );
    assert!(error.host_key_refused());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_known_only_by_its_rsa_or_ecdsa_key_is_verified_with_that_key() {
    let Some(fleet) = Fleet::shared() else { return };
    // n1 offers ed25519, ecdsa and rsa host keys; krun must ask for the type it can verify.
    let node = fleet.node("n1");
    for kind in [KeyKind::Rsa, KeyKind::Ecdsa] {
        let dir = tempfile::tempdir().unwrap();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, node.known_hosts_line(kind) + "\n").unwrap();
        let endpoint = endpoint_with_known_hosts(node, &known_hosts);
        assert_eq!(
            stdout_of(&pool(), &endpoint, "echo verified").await,
            "verified",
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_known_hosts_file_means_every_host_is_unknown() {
    let Some(fleet) = Fleet::shared() else { return };
    let endpoint =
        endpoint_with_known_hosts(fleet.node("n1"), Path::new("/nonexistent/known_hosts"));
    let error = try_run(&pool(), &endpoint, "true").await.unwrap_err();
    assert!(
        matches!(host_key_refusal(&error), HostKeyError::Unknown { .. }),
        "{error}"
    );
}
