//! `containerd_install` on real sshd nodes, its config validated by the real containerd
//! (Debian's `containerd` package, installed by .ci/run).
//!
//! crictl cannot reach a real CRI socket here, so these tests put a minimal stand-in in the
//! node's shim directory: it answers `version` while the systemctl stand-in says containerd is
//! active.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::e2e::Setup;
use crate::support::{Fleet, Node, require};

const CRICTL: &str = r#"#!/bin/sh
# Test stand-in for crictl (tests/prims/containerd.rs): `version` answers while containerd is active.
case " $* " in *" version "*) ;; *) echo "crictl stand-in: unsupported: $*" >&2; exit 1 ;; esac
case "$(cat "$KRUN_NODE_DIR/state/units/containerd.service" 2>/dev/null)" in
    active*) printf 'Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v1.6.20\nRuntimeApiVersion:  v1\n' ;;
    *) echo 'validate service connection: connection refused' >&2; exit 1 ;;
esac
"#;

fn executable(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn with_crictl(node: &Node) {
    executable(&node.dir().join("bin/crictl"), CRICTL);
}

/// A containerd "release tarball" whose `bin/containerd` is `script`.
fn tarball(dir: &Path, script: &str) -> std::path::PathBuf {
    let tree = dir.join("tree");
    executable(&tree.join("bin/containerd"), script);
    let path = dir.join("containerd-1.6.28-linux-amd64.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-czf")
        .arg(&path)
        .arg("bin")
        .status()
        .unwrap();
    assert!(status.success());
    path
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn real_containerd() -> bool {
    require(&["containerd"], false)
}

#[test]
fn from_the_package_with_mirrors_auth_and_data_root() {
    if !real_containerd() {
        return;
    }
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    with_crictl(node);
    let setup = Setup::new(
        &fleet,
        r#"let r = containerd_install(node, #{
    sandbox_image: "registry.k8s.io/pause:3.9",
    mirrors: #{ "docker.io": ["https://mirror.example.com"] },
    registry_auth: #{ "my-register2.example.com": #{ username: "robot", password: "s3cr3t-pw" } },
    root: "/var/lib/containerd-data",
});
if r.validated && r.runtime_version != "v1.6.20" { fail(`report ${r}`); }
log(`validated: ${r.validated}`);
"#,
    );
    // The plan shows the config to be installed, with the password masked.
    let plan = setup.krun(&["--node", "n1", "--dry-run"]).run();
    plan.code(0);
    assert!(
        plan.stdout.contains("+          password = \"***\""),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("validate: containerd -c /etc/containerd/config.toml.krun-check config dump")
    );
    assert!(!node.root_path("/etc/containerd/config.toml").exists());

    plan.stderr_has("validated: false");
    let out = setup.krun(&["--node", "n1", "--output", "json"]).run();
    out.code(0).stderr_has("validated: true");
    for (what, text) in [
        ("plan", &plan.stdout),
        ("plan log", &plan.stderr),
        ("report", &out.stdout),
        ("log", &out.stderr),
    ] {
        assert!(
            !text.contains("s3cr3t-pw"),
            "the registry password leaked into the {what}:\n{text}"
        );
    }
    let journals = walk(crate::cli::state_dir());
    assert!(!journals.is_empty());
    for file in journals {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !text.contains("s3cr3t-pw"),
            "the registry password leaked into {}",
            file.display()
        );
    }
    let config = node.root_path("/etc/containerd/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("SystemdCgroup = true"), "{text}");
    assert!(text.contains("password = \"s3cr3t-pw\""));
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !node
            .root_path("/etc/containerd/config.toml.krun-check")
            .exists()
    );
    // The installed file is one containerd accepts, with the options where it reads them.
    let dump = std::process::Command::new("containerd")
        .arg("-c")
        .arg(&config)
        .args(["config", "dump"])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("root = \"/var/lib/containerd-data\""),
        "{dump}"
    );
    assert!(dump.contains("sandbox_image = \"registry.k8s.io/pause:3.9\""));
    assert!(dump.contains("endpoint = [\"https://mirror.example.com\"]"));
    let changes = node.changes();
    for expected in [
        "systemctl daemon-reload",
        "systemctl enable containerd.service",
        "systemctl restart containerd.service",
    ] {
        assert!(
            changes.iter().any(|c| c == expected),
            "{expected}: {changes:?}"
        );
    }
    assert!(node.installed_version("containerd").is_some());
}

#[test]
fn a_config_containerd_rejects_is_not_installed() {
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    with_crictl(node);
    let dir = tempfile::tempdir().unwrap();
    let archive = tarball(
        dir.path(),
        "#!/bin/sh\necho \"containerd: failed to load TOML: $2: (9, 1): broken on purpose\" >&2\nexit 1\n",
    );
    let setup = Setup::new(
        &fleet,
        &format!(
            r#"containerd_install(node, #{{ source: "tarball", tarball: "{}", prefix: "/opt/krun-runtime" }});"#,
            archive.display()
        ),
    );
    let previous = "# the team's config\nversion = 2\n";
    std::fs::create_dir_all(node.root_path("/etc/containerd")).unwrap();
    std::fs::write(node.root_path("/etc/containerd/config.toml"), previous).unwrap();
    // The tarball is outside the playbook's directory: the operator allows it.
    let allowed = archive.display().to_string();
    setup
        .krun(&["--node", "n1", "--allow-local", &allowed])
        .run()
        .code(1)
        .stderr_has("containerd rejected the rendered config.toml on n1 (exit 1)")
        .stderr_has("/etc/containerd/config.toml was")
        .stderr_has("failed to load TOML: /etc/containerd/config.toml.krun-check");
    assert_eq!(
        std::fs::read_to_string(node.root_path("/etc/containerd/config.toml")).unwrap(),
        previous
    );
    assert!(
        !node
            .root_path("/etc/containerd/config.toml.krun-check")
            .exists()
    );
    // The tarball was extracted and its unit written before the config was checked.
    assert!(node.root_path("/opt/krun-runtime/bin/containerd").exists());
    let unit =
        std::fs::read_to_string(node.root_path("/etc/systemd/system/containerd.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/opt/krun-runtime/bin/containerd\n"),
        "{unit}"
    );
    assert!(
        !node
            .changes()
            .iter()
            .any(|c| c.contains("restart containerd"))
    );
}

#[test]
fn from_a_release_tarball() {
    if !real_containerd() {
        return;
    }
    let Some(fleet) = Fleet::start(1) else { return };
    let node = fleet.node("n1");
    with_crictl(node);
    let dir = tempfile::tempdir().unwrap();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v containerd"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let archive = tarball(
        dir.path(),
        &format!("#!/bin/sh\nexec {} \"$@\"\n", real.trim()),
    );
    let setup = Setup::new(
        &fleet,
        &format!(
            r#"let r = containerd_install(node, #{{ source: "tarball", tarball: "{}", prefix: "/opt/krun-runtime", systemd_cgroup: false }});
if r.source != "tarball" || !r.validated {{ fail(`${{r}}`); }}"#,
            archive.display()
        ),
    );
    let allowed = dir.path().display().to_string();
    setup
        .krun(&["--node", "n1", "--allow-local", &allowed])
        .run()
        .code(0);
    let text = std::fs::read_to_string(node.root_path("/etc/containerd/config.toml")).unwrap();
    assert!(text.contains("SystemdCgroup = false"), "{text}");
    assert!(
        node.changes()
            .iter()
            .any(|c| c == "systemctl restart containerd.service")
    );
}
