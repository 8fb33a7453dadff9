//! Seed 000's load balancer: every apiserver answers, but the VIP's configuration lists only some
//! of them. Real sshd nodes hold haproxy's and keepalived's configuration in their private
//! /etc/haproxy and /etc/keepalived; the cluster (three control-plane nodes) is the simulator's.

use std::path::Path;

use crate::cli::{Krun, Output};
use crate::support::fleet::{Fleet, NodeSpec, Os};

use super::snapshot;

/// haproxy in front of the apiservers at 192.168.0.121-123, `cp-3`'s line as given.
fn haproxy(cp3: &str) -> String {
    format!(
        "global\n    log /dev/log local0\n    stats socket /run/haproxy/admin.sock mode 660\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n\n\
         frontend kube-apiserver\n    bind *:6443\n    default_backend kube-apiserver\n\n\
         backend kube-apiserver\n    balance roundrobin\n    option tcp-check\n\
         \x20   server cp-1 192.168.0.121:6443 check\n\
         \x20   server cp-2 192.168.0.122:6443 check\n\
         {cp3}\n\n\
         listen stats\n    bind *:8404\n    stats enable\n    stats auth admin:s3cret\n"
    )
}

/// keepalived in LVS mode, with the same three real servers.
const KEEPALIVED: &str = "! keepalived on lb2\n\
vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n\
    authentication {\n        auth_type PASS\n        auth_pass hunter22\n    }\n\
    virtual_ipaddress {\n        192.168.0.100/24 dev eth0\n    }\n}\n\
virtual_server 192.168.0.100 6443 {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\
    real_server 192.168.0.121 6443 {\n        weight 1\n    }\n\
    real_server 192.168.0.122 6443 {\n        weight 1\n    }\n\
    real_server 192.168.0.123 6443 {\n        weight 1\n    }\n}\n";

fn preflight(inventory: &Path, extra: &[&str]) -> Output {
    let inventory = inventory.display().to_string();
    let mut args = vec![
        "--skip-etcd",
        "--skip-certs",
        "--inventory",
        &inventory,
        "--connect-timeout",
        "5",
    ];
    args.extend(extra);
    super::preflight_cli("three-control-planes", &args)
}

fn lb_findings(out: &Output) -> Vec<serde_json::Value> {
    super::findings(out)
        .into_iter()
        .filter(|f| f["id"].as_str().unwrap().starts_with("lb-"))
        .collect()
}

fn ids(found: &[serde_json::Value]) -> Vec<&str> {
    found.iter().map(|f| f["id"].as_str().unwrap()).collect()
}

#[test]
fn a_master_missing_from_the_haproxy_backend_blocks_and_a_complete_list_passes() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("lb1", Os::Debian12))
        .node(NodeSpec::new("lb2", Os::Debian12))
        .start()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (lb1, lb2) = (fleet.node("lb1"), fleet.node("lb2"));
    // cp-3 was commented out by hand, as in the seed.
    lb1.write_file(
        "/etc/haproxy/haproxy.cfg",
        &haproxy("#    server cp-3 192.168.0.123:6443 check"),
    );
    lb2.write_file("/etc/keepalived/keepalived.conf", KEEPALIVED);
    let inventory = fleet.inventory_toml() + "\n[apiserver_lb]\nnodes = [\"lb1\"]\n";
    let inventory_path = dir.path().join("inventory.toml");
    std::fs::write(&inventory_path, inventory).unwrap();

    let out = preflight(&inventory_path, &["--output", "json"]);
    out.code(3);
    let found = lb_findings(&out);
    assert_eq!(
        ids(&found),
        ["lb-backend-missing/lb1:kube-apiserver:cp-3"],
        "{found:#?}"
    );
    assert_eq!(found[0]["severity"], "block");
    assert_eq!(found[0]["object"], "node/lb1");
    assert!(
        found[0]["message"].as_str().unwrap().starts_with(
            "the VIP reaches only 2 of 3 apiservers: cp-3 (192.168.0.123) is not a backend of \
             lb1's haproxy backend kube-apiserver"
        ),
        "{found:#?}"
    );
    assert!(
        found[0]["fix"]
            .as_str()
            .unwrap()
            .contains("server cp-3 192.168.0.123:6443 check"),
        "{found:#?}"
    );
    assert!(!out.stdout.contains("s3cret"), "a password left the node");

    // The text output names the missing master; --accept lets the run go on.
    preflight(&inventory_path, &["--accept", "lb-backend-missing"])
        .code(0)
        .stdout_has("cp-3 (192.168.0.123) is not a backend of lb1's haproxy backend")
        .stderr_has("accepted block finding lb-backend-missing/lb1:kube-apiserver:cp-3");

    // Disabled is no better than missing.
    lb1.write_file(
        "/etc/haproxy/haproxy.cfg",
        &haproxy("    server cp-3 192.168.0.123:6443 check disabled"),
    );
    let out = preflight(&inventory_path, &["--output", "json"]);
    out.code(3);
    assert_eq!(
        ids(&lb_findings(&out)),
        ["lb-backend-disabled/lb1:kube-apiserver:cp-3"]
    );

    // The complete list: nothing from this check.
    lb1.write_file(
        "/etc/haproxy/haproxy.cfg",
        &haproxy("    server cp-3 192.168.0.123:6443 check"),
    );
    let out = preflight(&inventory_path, &["--output", "json"]);
    out.code(0);
    assert!(lb_findings(&out).is_empty(), "{:#?}", lb_findings(&out));

    // --lb replaces the inventory's list: lb2's keepalived sends to the same three apiservers
    // (its VIP is information, its auth_pass stays on the node).
    let out = preflight(
        &inventory_path,
        &["--lb", "lb1", "--lb", "lb2", "--output", "json"],
    );
    out.code(0);
    assert_eq!(ids(&lb_findings(&out)), ["lb-vip/lb2"]);
    assert!(!out.stdout.contains("hunter22"), "a password left the node");
}

#[test]
fn load_balancers_that_disagree_or_cannot_be_read_warn_and_unknown_names_are_invalid() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("lb1", Os::Debian12))
        .node(NodeSpec::new("lb2", Os::Debian12))
        .start()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (lb1, lb2) = (fleet.node("lb1"), fleet.node("lb2"));
    lb1.write_file(
        "/etc/haproxy/haproxy.cfg",
        &haproxy("    server cp-3 192.168.0.123:6443 check"),
    );
    // lb2 still sends to a retired master as well.
    lb2.write_file(
        "/etc/haproxy/haproxy.cfg",
        &haproxy(
            "    server cp-3 192.168.0.123:6443 check\n    server cp-old 192.168.0.120:6443 check",
        ),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let inventory = fleet.inventory_toml()
        + format!(
            "\n[nodes.lb3]\nhost = \"127.0.0.1\"\nport = {closed_port}\n\n\
             [apiserver_lb]\nnodes = [\"lb1\", \"lb2\", \"lb3\"]\n"
        )
        .as_str();
    let inventory_path = dir.path().join("inventory.toml");
    std::fs::write(&inventory_path, inventory).unwrap();

    let out = preflight(&inventory_path, &["--output", "json"]);
    out.code(0);
    let found = lb_findings(&out);
    assert_eq!(
        ids(&found),
        [
            "lb-backend-unknown/lb2:kube-apiserver:192.168.0.120",
            "lb-backends-differ/lb1:lb2",
            "lb-unreadable/lb3",
        ],
        "{found:#?}"
    );
    assert!(found.iter().all(|f| f["severity"] == "warn"), "{found:#?}");
    assert!(
        found[1]["message"]
            .as_str()
            .unwrap()
            .contains("only lb2 has 192.168.0.120:6443"),
        "{found:#?}"
    );
    assert!(
        found[2]["message"]
            .as_str()
            .unwrap()
            .starts_with("the load balancer configuration on lb3 could not be read"),
        "{found:#?}"
    );

    // A name that is not an inventory node is invalid input.
    preflight(&inventory_path, &["--lb", "lb4"])
        .code(2)
        .stderr_has("--lb lb4: unknown node `lb4`");
}

#[test]
fn a_playbook_reads_the_load_balancer_and_offline_says_it_did_not() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("lb1", Os::Debian12))
        .start()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    fleet
        .node("lb1")
        .write_file("/etc/haproxy/haproxy.cfg", &haproxy(""));
    let inventory_path = dir.path().join("inventory.toml");
    std::fs::write(&inventory_path, fleet.inventory_toml()).unwrap();
    let playbook = dir.path().join("check.rhai");
    std::fs::write(
        &playbook,
        r#"
let found = [];
for f in preflight(#{ etcd: false, certs: false, lb: ["lb1"] }) {
    if f.id.starts_with("lb-") { found.push(`${f.severity} ${f.id}`); }
}
log(`lb: ${found}`);
"#,
    )
    .unwrap();
    let run = |offline: bool| {
        let mut args = vec![
            playbook.display().to_string(),
            "--inventory".to_owned(),
            inventory_path.display().to_string(),
            "--rehearse".to_owned(),
            snapshot("three-control-planes").display().to_string(),
        ];
        if offline {
            args.push("--offline".to_owned());
        }
        Krun::new().args(args).run()
    };
    run(false)
        .code(0)
        .stderr_has("lb: [\"block lb-backend-missing/lb1:kube-apiserver:cp-3\"]");
    run(true)
        .code(0)
        .stderr_has("lb: [\"info lb-not-checked/unobserved\"]");

    // An unknown node in the option is the playbook's mistake, with its line.
    std::fs::write(&playbook, "preflight(#{ lb: [\"lb9\"] });\n").unwrap();
    run(false)
        .code(2)
        .stderr_has("preflight: option `lb`: unknown node `lb9`");
}

/// The bundled SOPs that restart a control plane stop on the load balancer's finding before
/// anything changes: cluster.rhai before `kubeadm upgrade apply`, master.rhai before `kubeadm
/// upgrade node`, runtime-switch.rhai before it stops a control-plane node's containers. And
/// master.rhai refuses a hop cluster.rhai has not applied yet before it drains.
#[test]
fn the_control_plane_sops_stop_on_a_master_missing_from_the_load_balancer() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("lb1", Os::Debian12))
        .node(NodeSpec::new("cp-1", Os::Debian12))
        .node(NodeSpec::new("cp-2", Os::Debian12))
        .start()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lb1 = fleet.node("lb1");
    lb1.write_file(
        "/etc/haproxy/haproxy.cfg",
        &haproxy("#    server cp-3 192.168.0.123:6443 check"),
    );
    let mut inventory = fleet.inventory_toml() + "\n[apiserver_lb]\nnodes = [\"lb1\"]\n";
    for cp in ["cp-1", "cp-2"] {
        inventory = inventory.replace(
            &format!("[nodes.{cp}]\n"),
            &format!("[nodes.{cp}]\nroles = [\"control-plane\", \"etcd\"]\n"),
        );
    }
    let inventory_path = dir.path().join("inventory.toml");
    std::fs::write(&inventory_path, inventory).unwrap();
    let playbook = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("playbooks")
            .join(name)
    };
    let run = |name: &str, args: &[&str]| {
        Krun::new()
            .arg_path(&playbook(name))
            .args(["--inventory"])
            .arg_path(&inventory_path)
            .args(["--rehearse"])
            .arg_path(&snapshot("three-control-planes"))
            .args(["--connect-timeout", "5", "--state-dir"])
            .arg_path(dir.path())
            .args(args)
            .run()
    };
    let untouched = || {
        for node in fleet.nodes() {
            assert_eq!(
                node.changes(),
                Vec::<String>::new(),
                "{} was changed",
                node.name
            );
        }
    };
    let missing = "lb-backend-missing/lb1:kube-apiserver:cp-3";

    run("cluster.rhai", &["--set", "version=1.29"])
        .code(3)
        .stderr_has("not upgrading the control plane")
        .stderr_has(missing)
        .stderr_has("server cp-3 192.168.0.123:6443 check");
    untouched();

    run(
        "master.rhai",
        &["--node", "cp-2", "--set", "version=1.28.9"],
    )
    .code(3)
    .stderr_has("not upgrading cp-2's control plane")
    .stderr_has(missing);
    untouched();

    run(
        "runtime-switch.rhai",
        &["--node", "cp-2", "--set", "canary=cp-1"],
    )
    .code(3)
    .stderr_has("not switching cp-2's runtime")
    .stderr_has(missing);
    untouched();

    // A hop cluster.rhai has not applied: refused before the drain, naming the way forward.
    run(
        "master.rhai",
        &["--node", "cp-2", "--set", "version=1.29.4"],
    )
    .code(3)
    .stderr_has("the control plane is at v1.28.9; kubelet 1.29.4 would be newer")
    .stderr_has("cluster.rhai");
    untouched();

    // With cp-3 back in the backend, the same dry-run of cluster.rhai gets past the guard to
    // kubeadm's steps (the first: the node's backup).
    lb1.write_file(
        "/etc/haproxy/haproxy.cfg",
        &haproxy("    server cp-3 192.168.0.123:6443 check"),
    );
    let out = run("cluster.rhai", &["--set", "version=1.29", "--dry-run"]);
    assert!(
        !out.stderr.contains(missing),
        "the load balancer is whole again: {}",
        out.stderr
    );
    assert!(
        out.stdout.contains("backup         stdlib/kubeadm.rhai"),
        "the plan reaches kubeadm: {}\n{}",
        out.stdout,
        out.stderr
    );
    untouched();
}
