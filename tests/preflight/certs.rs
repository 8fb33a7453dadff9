//! The certificate check against real sshd nodes holding real certificates (made with
//! `openssl`) in their private /etc/kubernetes and /var/lib/kubelet: one expired, one expiring
//! in ten days, the rest fine; and a node that cannot be reached.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

use crate::cli::{Krun, Output};
use crate::support::fleet::{Fleet, NodeSpec, Os};

use super::snapshot;

/// A self-signed certificate valid for `days` from now (`-1`: it expired a day ago) and its
/// key, both PEM.
fn certificate(dir: &Path, name: &str, days: i32) -> (String, String) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &path(&key),
        "-subj",
        &format!("/CN={name}"),
        "-out",
        &path(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &path(&csr),
        "-signkey",
        &path(&key),
        "-days",
        &days.to_string(),
        "-out",
        &path(&crt),
    ]);
    (
        std::fs::read_to_string(crt).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

fn kubeconfig(cert: &str, key: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    \
         client-certificate-data: {}\n    client-key-data: {}\n",
        b64(cert),
        b64(key)
    )
}

fn preflight(inventory: &Path, extra: &[&str]) -> Output {
    let inventory = inventory.display().to_string();
    let mut args = vec![
        "--accept",
        "critical-without-pdb",
        "--skip-etcd",
        "--inventory",
        &inventory,
        "--connect-timeout",
        "5",
    ];
    args.extend(extra);
    super::preflight_cli("prometheus-without-pdb", &args)
}

use super::findings;

#[test]
fn an_expired_certificate_blocks_and_one_expiring_soon_warns() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("cp-1", Os::Debian12))
        .node(NodeSpec::new("worker-1", Os::Debian12))
        .start()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cp, worker) = (fleet.node("cp-1"), fleet.node("worker-1"));
    let (ca, _) = certificate(dir.path(), "ca", 3650);
    let (apiserver, _) = certificate(dir.path(), "apiserver", -1);
    let (etcd_server, _) = certificate(dir.path(), "etcd-server", 10);
    let (admin, admin_key) = certificate(dir.path(), "kubernetes-admin", 365);
    cp.write_file("/etc/kubernetes/pki/ca.crt", &ca);
    cp.write_file("/etc/kubernetes/pki/apiserver.crt", &apiserver);
    cp.write_file("/etc/kubernetes/pki/etcd/server.crt", &etcd_server);
    cp.write_file(
        "/etc/kubernetes/admin.conf",
        &kubeconfig(&admin, &admin_key),
    );
    let (client, client_key) = certificate(dir.path(), "system:node:worker-1", 365);
    let (serving, _) = certificate(dir.path(), "worker-1", 365);
    worker.write_file(
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        &format!("{client}{client_key}"),
    );
    worker.write_file("/var/lib/kubelet/pki/kubelet.crt", &serving);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let inventory = fleet.inventory_toml().replace(
        "[nodes.cp-1]\n",
        "[nodes.cp-1]\nroles = [\"control-plane\"]\n",
    ) + format!("\n[nodes.gone]\nhost = \"127.0.0.1\"\nport = {closed_port}\n")
        .as_str();
    let inventory_path = dir.path().join("inventory.toml");
    std::fs::write(&inventory_path, inventory).unwrap();

    let out = preflight(&inventory_path, &["--output", "json"]);
    out.code(3);
    let found = findings(&out);
    let by_id = |id: &str| {
        found
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {found:#?}"))
    };
    let expired = by_id("cert-expired/cp-1:/etc/kubernetes/pki/apiserver.crt");
    assert_eq!(expired["severity"], "block");
    assert!(
        expired["message"]
            .as_str()
            .unwrap()
            .starts_with("/etc/kubernetes/pki/apiserver.crt on cp-1 expired on "),
        "{expired}"
    );
    assert!(
        expired["fix"]
            .as_str()
            .unwrap()
            .contains("kubeadm certs renew apiserver`"),
        "{expired}"
    );
    let soon = by_id("cert-expiring/cp-1:/etc/kubernetes/pki/etcd/server.crt");
    assert_eq!(soon["severity"], "warn");
    // Ten days from when it was made, less however long this test took since.
    let message = soon["message"].as_str().unwrap();
    assert!(
        message.ends_with(", in 9 days (within 30 days)")
            || message.ends_with(", in 10 days (within 30 days)"),
        "{soon}"
    );
    assert!(
        soon["fix"]
            .as_str()
            .unwrap()
            .contains("kubeadm certs renew etcd-server`")
    );
    // The rest is fine: the CA and admin.conf's client certificate on cp-1, the kubelet's two on worker-1.
    let certs: Vec<&str> = found
        .iter()
        .filter_map(|f| f["id"].as_str())
        .filter(|id| id.starts_with("cert-expired/") || id.starts_with("cert-expiring/"))
        .collect();
    assert_eq!(certs.len(), 2, "{certs:?}");
    assert!(
        by_id("certs/cp-1")["message"]
            .as_str()
            .unwrap()
            .starts_with("2 certificates on cp-1 valid for more than 30 days"),
        "{found:#?}"
    );
    assert!(
        by_id("certs/worker-1")["message"]
            .as_str()
            .unwrap()
            .starts_with("2 certificates on worker-1 valid for more than 30 days"),
        "{found:#?}"
    );
    // The node that cannot be reached is a warning naming it and the error.
    let gone = by_id("certs-unreadable/gone");
    assert_eq!(gone["severity"], "warn");
    assert!(
        gone["message"]
            .as_str()
            .unwrap()
            .starts_with("the certificates on gone could not be read: "),
        "{gone}"
    );

    // A wider window turns the year-long certificates into warnings; the text output shows
    // the fix for the kubelet's.
    let out = preflight(
        &inventory_path,
        &[
            "--cert-days",
            "400",
            "--node",
            "worker-1",
            "--accept",
            "cert-expired",
        ],
    );
    out.code(0)
        .stdout_has("cert-expiring/worker-1:/var/lib/kubelet/pki/kubelet-client-current.pem")
        .stdout_has("kubelet rotates its client certificate itself")
        .stderr_has("accepted block finding cert-expired/cp-1:/etc/kubernetes/pki/apiserver.crt");
    assert!(
        !out.stdout.contains("gone"),
        "only the --node and the control plane are read:\n{}",
        out.stdout
    );
}

#[test]
fn a_playbook_dry_run_reads_the_certificates_and_never_a_key() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("cp-1", Os::Debian12))
        .start()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cp = fleet.node("cp-1");
    let (apiserver, _) = certificate(dir.path(), "apiserver", -1);
    let (admin, admin_key) = certificate(dir.path(), "kubernetes-admin", 365);
    cp.write_file("/etc/kubernetes/pki/apiserver.crt", &apiserver);
    cp.write_file(
        "/etc/kubernetes/admin.conf",
        &kubeconfig(&admin, &admin_key),
    );
    let inventory = fleet.inventory_toml().replace(
        "[nodes.cp-1]\n",
        "[nodes.cp-1]\nroles = [\"control-plane\"]\n",
    );
    let inventory_path = dir.path().join("inventory.toml");
    std::fs::write(&inventory_path, inventory).unwrap();
    let playbook = dir.path().join("check.rhai");
    std::fs::write(
        &playbook,
        r#"
let blocks = [];
for f in preflight(#{ etcd: false, cert_days: 7 }) {
    if f.severity == "block" { blocks.push(f.id); }
}
log(`blocks: ${blocks}`);
"#,
    )
    .unwrap();
    let run = |offline: bool| {
        let mut args = vec![
            playbook.display().to_string(),
            "--inventory".to_owned(),
            inventory_path.display().to_string(),
            "--rehearse".to_owned(),
            snapshot("prometheus-without-pdb").display().to_string(),
            "--output".to_owned(),
            "json".to_owned(),
        ];
        if offline {
            args.push("--offline".to_owned());
        }
        Krun::new().args(args).run()
    };
    let out = run(false);
    out.code(0).stderr_has(
        "blocks: [\"cert-expired/cp-1:/etc/kubernetes/pki/apiserver.crt\", \
         \"critical-without-pdb/monitoring/prometheus-k8s\"]",
    );
    let report = out.json();
    let read = crate::etcd_e2e::steps(&report)
        .into_iter()
        .find(|s| s["node"] == "cp-1" && s["action"] == "preflight")
        .unwrap_or_else(|| panic!("no certificate read on cp-1 in {report:#}"));
    assert_eq!(read["access"], "read");
    assert_eq!(read["executed"], true);
    assert!(
        !out.stdout.contains("PRIVATE KEY") && !out.stderr.contains("PRIVATE KEY"),
        "a key left the node"
    );
    assert!(
        !out.stdout.contains("client-key-data"),
        "a kubeconfig's key left the node"
    );

    // Offline: nothing is read, and the findings say so.
    let out = run(true);
    out.code(0)
        .stderr_has("blocks: [\"critical-without-pdb/monitoring/prometheus-k8s\"]");
}

#[test]
fn the_cluster_playbook_stops_before_kubeadm_on_an_expired_certificate() {
    use crate::support::lab::{Lab, LabSpec};
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(1)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (apiserver, _) = certificate(dir.path(), "kube-apiserver", -1);
    lab.node("m1")
        .write_file("/etc/kubernetes/pki/apiserver.crt", &apiserver);
    let playbook = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/cluster.rhai");
    let out = lab.krun(&playbook).args(["--set", "version=1.21.14"]).run();
    out.code(3)
        .stderr_has("not upgrading the control plane: etcd, the certificates or the load balancer are not ready")
        .stderr_has("cert-expired/m1:/etc/kubernetes/pki/apiserver.crt")
        .stderr_has("kubeadm certs renew apiserver`")
        .stderr_has("--set preflight=false skips these checks");
    assert!(
        !lab.node("m1")
            .kubeadm_calls()
            .iter()
            .any(|c| c.starts_with("kubeadm upgrade")),
        "kubeadm ran anyway"
    );
    assert_eq!(lab.server_version(), "v1.20.15");
}
