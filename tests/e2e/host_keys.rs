//! Host keys: unknown hosts refused unless accepted explicitly, changed keys always refused.

use super::Setup;
use crate::support::{Fleet, KeyKind};

#[test]
fn unknown_host_is_refused_with_its_fingerprint_then_accepted_on_request() {
    let Some(fleet) = Fleet::shared() else { return };
    let known_hosts = tempfile::NamedTempFile::new().unwrap();
    let inventory = fleet.inventory_toml().replace(
        &format!(
            "known_hosts = {:?}",
            fleet.known_hosts().display().to_string()
        ),
        &format!(
            "known_hosts = {:?}",
            known_hosts.path().display().to_string()
        ),
    );
    let setup = Setup::with_inventory(&inventory, "probe(node, \"true\");\n");
    let out = setup.krun(&["--node", "n2"]).run();
    out.code(1)
        .stderr_has("SHA256:")
        .stderr_has("--accept-new-host-keys");
    assert_eq!(
        std::fs::read_to_string(known_hosts.path()).unwrap(),
        "",
        "a refused key was recorded"
    );

    setup
        .krun(&["--node", "n2", "--accept-new-host-keys"])
        .run()
        .code(0);
    let recorded = std::fs::read_to_string(known_hosts.path()).unwrap();
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{}", fleet.node("n2").port())),
        "{recorded}"
    );
    // Now known: no flag needed.
    setup.krun(&["--node", "n2"]).run().code(0);
}

#[test]
fn changed_host_key_is_always_refused() {
    let Some(fleet) = Fleet::shared() else { return };
    // n2's address with n1's key: what a man in the middle (or a reinstalled node) looks like.
    let n1_key = fleet.node("n1").host_key(KeyKind::Ed25519).to_owned();
    let forged = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        forged.path(),
        format!("[127.0.0.1]:{} {n1_key}\n", fleet.node("n2").port()),
    )
    .unwrap();
    let inventory = fleet.inventory_toml().replace(
        &format!(
            "known_hosts = {:?}",
            fleet.known_hosts().display().to_string()
        ),
        &format!("known_hosts = {:?}", forged.path().display().to_string()),
    );
    let marker = tempfile::tempdir().unwrap();
    let setup = Setup::with_inventory(
        &inventory,
        &format!("sh(node, \"touch {}/ran\");\n", marker.path().display()),
    );
    let out = setup
        .krun(&["--node", "n2", "--accept-new-host-keys"])
        .run();
    out.code(1).stderr_has("n2");
    assert!(
        out.stderr.to_lowercase().contains("changed"),
        "{}",
        out.stderr
    );
    assert!(!marker.path().join("ran").exists());
}
