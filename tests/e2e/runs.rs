//! Playbooks run for real, and dry-runs that touch nothing.

use super::{Setup, stable};
use crate::support::{Fleet, Os, sudo_user};

/// Installs kubelet with the node's package manager, renders a drop-in under the node's
/// directory, restarts kubelet and checks the result.
const UPGRADE: &str = r#"
let root = probe(node, "printf %s \"$KRUN_NODE_DIR\"").stdout;
let facts = os_facts(node);
let version = param("version");
let pkg = if facts.id == "debian" { version + "-00" } else if facts.id == "rocky" { version } else { version };
pkg_install(node, "kubelet", pkg);
render(node, "dropin.j2", #{ version: version, node: node.name }, root + "/files/kubelet.conf", 0o640, #{ show: true });
systemctl(node, "daemon-reload", "");
systemctl(node, "restart", "kubelet");
wait_active(node, "kubelet", "30s");
let now = pkg_version(node, "kubelet");
if !now.starts_with(version) { fail(`kubelet is ${now}, expected ${version}`); }
log(`kubelet ${now} on ${node.name} (${facts.id})`);
"#;

const DROPIN: &str =
    "# kubelet {{ version }} on {{ node }}\n[Service]\nEnvironment=KRUN={{ version }}\n";

fn fleet() -> Option<Fleet> {
    Fleet::builder()
        .node(
            crate::support::NodeSpec::new("deb", Os::Debian12)
                .available("kubelet", &["1.21.14-00", "1.22.17-00"])
                .package("kubelet", "1.20.15-00"),
        )
        .node(
            crate::support::NodeSpec::new("rocky", Os::Rocky9)
                .available("kubelet", &["1.21.14", "1.22.17"])
                .package("kubelet", "1.20.15"),
        )
        .node(
            crate::support::NodeSpec::new("arch", Os::ArchArm)
                .available("kubelet", &["1.21.14-1"])
                .package("kubelet", "1.20.15-1"),
        )
        .start()
}

#[test]
fn upgrade_three_distributions_in_one_batch() {
    let Some(fleet) = fleet() else { return };
    let setup = Setup::new(&fleet, UPGRADE);
    setup.file("dropin.j2", DROPIN);
    let out = setup
        .krun(&[
            "--node",
            "deb",
            "--node",
            "rocky",
            "--node",
            "arch",
            "--batch",
            "3",
            "--set",
            "version=1.21.14",
            "--output",
            "json",
        ])
        .run();
    out.code(0);
    let json = out.json();
    for node in json["nodes"].as_array().unwrap() {
        assert_eq!(node["status"], "ok", "{node:#}");
        assert!(
            node["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["executed"] == true && s["duration_ms"].is_u64())
        );
    }
    assert_eq!(
        fleet.node("deb").installed_version("kubelet").as_deref(),
        Some("1.21.14-00")
    );
    assert_eq!(
        fleet.node("rocky").installed_version("kubelet").as_deref(),
        Some("1.21.14")
    );
    assert_eq!(
        fleet.node("arch").installed_version("kubelet").as_deref(),
        Some("1.21.14-1")
    );
    for node in fleet.nodes() {
        assert_eq!(node.unit_state("kubelet").unwrap().0, "active");
        let dropin = std::fs::read_to_string(node.dir().join("files/kubelet.conf")).unwrap();
        assert_eq!(
            dropin,
            format!(
                "# kubelet 1.21.14 on {}\n[Service]\nEnvironment=KRUN=1.21.14\n",
                node.name
            )
        );
        // One connection per node for the whole run.
        assert_eq!(node.logins(), 1, "{} logged in more than once", node.name);
    }
    // The three distributions got their own package manager.
    let commands: Vec<String> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["action"] == "pkg_install")
                .unwrap()["command"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        commands[0].contains("apt-get install") && commands[0].contains(" kubelet=1.21.14-00;"),
        "{commands:?}"
    );
    assert_eq!(
        commands[1],
        "dnf install -y --disableexcludes=kubernetes kubelet-1.21.14"
    );
    assert_eq!(commands[2], "pacman -S --noconfirm --needed kubelet");
}

#[test]
fn dry_run_touches_nothing_and_plans_from_real_state() {
    let Some(fleet) = fleet() else { return };
    let setup = Setup::new(&fleet, UPGRADE);
    setup.file("dropin.j2", DROPIN);
    std::fs::create_dir_all(fleet.node("deb").dir().join("files")).unwrap();
    std::fs::write(
        fleet.node("deb").dir().join("files/kubelet.conf"),
        "# kubelet 1.20.15 on deb\n[Service]\nEnvironment=KRUN=1.20.15\n",
    )
    .unwrap();
    let before: Vec<_> = fleet.nodes().iter().map(|n| n.state_snapshot()).collect();
    let out = setup
        .krun(&[
            "--node",
            "deb",
            "--node",
            "rocky",
            "--node",
            "arch",
            "--batch",
            "3",
            "--set",
            "version=1.21.14",
            "--dry-run",
            "--output",
            "json",
        ])
        .run();
    // The plan's final check fails: nothing was installed, and the real state says 1.20.15.
    out.code(1)
        .stderr_has("kubelet is 1.20.15-00, expected 1.21.14");
    let after: Vec<_> = fleet.nodes().iter().map(|n| n.state_snapshot()).collect();
    assert_eq!(before, after, "a dry-run changed a node");
    for node in fleet.nodes() {
        assert!(
            node.changes().is_empty(),
            "{}: {:?}",
            node.name,
            node.changes()
        );
        assert!(!node.dir().join("files/kubelet.conf").exists() || node.name == "deb");
    }
    let json = out.json();
    let deb = &json["nodes"][0]["steps"];
    let render = deb
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "render")
        .unwrap();
    assert_eq!(render["executed"], false);
    let diff = render["diff"].as_str().unwrap();
    assert!(
        diff.contains("-# kubelet 1.20.15 on deb") && diff.contains("+# kubelet 1.21.14 on deb"),
        "{diff}"
    );
    insta::assert_snapshot!(stable(&out.stdout, &fleet, setup.dir.path()));
}

#[test]
fn a_failure_stops_new_nodes_from_starting() {
    let Some(fleet) = Fleet::start(3) else { return };
    let setup = Setup::new(
        &fleet,
        "sh(node, \"true\");\nif node.name == \"n2\" { sh(node, \"echo broken disk >&2; exit 7\"); }\n",
    );
    let out = setup
        .krun(&[
            "--node", "n1", "--node", "n2", "--node", "n3", "--output", "json",
        ])
        .run();
    out.code(1)
        .stderr_has("exited with code 7 on n2")
        .stderr_has("broken disk");
    let json = out.json();
    let statuses: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "failed", "not_started"]);
    assert_eq!(json["nodes"][1]["failure"]["step"], 2);
    assert_eq!(json["nodes"][1]["failure"]["line"], 2);
    assert_eq!(fleet.node("n3").logins(), 0);
}

#[test]
fn injected_values_stay_one_argument() {
    let Some(fleet) = Fleet::shared() else { return };
    let marker = tempfile::tempdir().unwrap().path().join("pwned");
    let setup = Setup::new(
        fleet,
        r#"let r = sh(node, ["printf", "%s", param("v")]);
if r.stdout != param("v") { fail(`got ${r.stdout}`); }
pkg_install(node, "kubelet", param("v"));
"#,
    );
    let evil = format!("1.21; touch {}", marker.display());
    let out = setup
        .krun(&[
            "--node",
            "n1",
            "--set",
            &format!("v={evil}"),
            "--output",
            "json",
        ])
        .run();
    // apt-get (the shim) refuses the odd version; what matters is that it got it as one word.
    out.code(1);
    assert!(!marker.exists(), "the injected command ran");
    let steps = &out.json()["nodes"][0]["steps"];
    let install = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "pkg_install")
        .unwrap();
    assert!(
        install["command"]
            .as_str()
            .unwrap()
            .contains(&format!(" 'kubelet={evil}';")),
        "{install}"
    );
}

/// A value that starts with `-` is an operand, never an option, on every package manager:
/// `systemctl is-active --version` would print systemd's version and `apt-get install …
/// --version` apt's, both exiting 0 as if the unit were active and the package installed.
#[test]
fn option_like_values_stay_operands() {
    let Some(fleet) = Fleet::shared() else { return };
    let setup = Setup::new(
        fleet,
        r#"let r = systemctl(node, "is-active", param("v"));
if r.code == 0 { fail(`systemctl took the unit for an option: ${r.stdout}`); }
pkg_install(node, param("v"), "");
"#,
    );
    let out = setup
        .krun(&[
            "--node",
            "n1",
            "--node",
            "n2",
            "--node",
            "n3",
            "--batch",
            "3",
            "--set",
            "v=--version",
            "--output",
            "json",
        ])
        .run();
    out.code(1)
        .stderr_has("E: Unable to locate package --version")
        .stderr_has("No match for argument: --version")
        .stderr_has("error: target not found: --version");
    let json = out.json();
    for node in json["nodes"].as_array().unwrap() {
        let steps = node["steps"].as_array().unwrap();
        assert_eq!(
            steps[0]["command"], "systemctl is-active -- --version",
            "{node:#}"
        );
        let install = steps.iter().find(|s| s["action"] == "pkg_install").unwrap();
        assert!(
            install["command"]
                .as_str()
                .unwrap()
                .contains(" -- --version"),
            "{install}"
        );
        assert_eq!(
            node["failure"]["message"]
                .as_str()
                .map(|m| m.contains("exited with code")),
            Some(true),
            "{node:#}"
        );
    }
}

#[test]
fn sudo_for_a_non_root_user() {
    let Some(fleet) = Fleet::shared() else { return };
    let Some(user) = sudo_user() else { return };
    let inventory = fleet.inventory_toml().replace(
        "user = \"root\"",
        &format!("user = \"{user}\"\nsudo = true"),
    );
    let setup = Setup::with_inventory(
        &inventory,
        "let id = sh(node, \"id -un\").stdout;\nid.trim();\nif id != \"root\" { fail(`ran as ${id}`); }\nsystemctl(node, \"restart\", \"containerd\");\n",
    );
    setup.krun(&["--node", "n2"]).run().code(0);
    assert!(
        fleet
            .node("n2")
            .changes()
            .iter()
            .any(|c| c == "systemctl restart containerd.service"
                || c == "systemctl restart containerd"),
        "{:?}",
        fleet.node("n2").changes()
    );
}

#[test]
fn through_a_jump_host() {
    let Some(fleet) = Fleet::shared() else { return };
    let inventory = fleet
        .inventory_toml()
        .replace("[nodes.n3]", "[nodes.n3]\nproxy_jump = \"bastion\"");
    let setup = Setup::with_inventory(
        &inventory,
        "let r = probe(node, \"printf %s $KRUN_NODE\");\nif r.stdout != \"n3\" { fail(r.stdout); }\n",
    );
    let bastion_logins = fleet.node("bastion").logins();
    setup.krun(&["--node", "n3"]).run().code(0);
    assert_eq!(
        fleet.node("bastion").logins(),
        bastion_logins + 1,
        "the jump host was not used"
    );
}
