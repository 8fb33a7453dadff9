//! The bundled SOP playbooks on booted machines: real systemd, real package managers, the
//! kubeadm/kubelet stand-ins, the simulator as the cluster.

use std::path::{Path, PathBuf};

use crate::support::fleet::Os;
use crate::support::lab::Runtime;
use crate::support::machines::Layout;
use crate::support::machines::lab::{MachineLab, MachineLabSpec};
use crate::support::machines::registry::{DigestRefusingProxy, Registry};

fn playbook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
}

fn run(lab: &MachineLab, name: &str, args: &[&str]) -> crate::cli::Output {
    let mut krun = lab
        .krun(playbook(name))
        .args(args)
        .args(["--set", "ready_timeout=60s"]);
    if lab.worker_count() < 2 {
        // One worker: no other node can take its pods, so its drain evicts them all at once,
        // and the workloads' going down is accepted, as that cluster's operator must.
        krun = krun.args(["--set", "keep_replica=false"]).args([
            "--accept",
            "forecast",
            "--accept",
            "critical-without-pdb",
            "--accept",
            "single-replica",
        ]);
    }
    krun.run()
}

/// Text as krun printed it, with the report's line wrapping (`\n  │ `) undone.
fn unwrapped(text: &str) -> String {
    text.lines()
        .map(|l| l.trim_start().trim_start_matches(['│', '×']).trim())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The apt legacy repository, one control plane and one worker, 1.20 -> 1.21: the control
/// plane with cluster.rhai, the worker with worker.rhai; the packages stay held.
#[test]
fn apt_legacy_one_minor_keeps_the_holds() {
    let Some(lab) = MachineLab::start(MachineLabSpec::new(
        Os::Debian12,
        Layout::AptLegacy,
        "1.20.15",
    )) else {
        return;
    };
    run(&lab, "cluster.rhai", &["--set", "version=1.21"]).code(0);
    assert_eq!(lab.server_version(), "v1.21.14");
    run(
        &lab,
        "worker.rhai",
        &["--node", "w1", "--set", "version=1.21"],
    )
    .code(0);
    for name in ["m1", "w1"] {
        let (ready, unschedulable, version) = lab.cluster_node(name);
        assert!(ready && !unschedulable, "{name}");
        let machine = lab.machine(name);
        assert_eq!(
            machine.held(),
            ["kubeadm", "kubectl", "kubelet"],
            "{name} lost its holds"
        );
        let _ = version;
    }
    assert_eq!(lab.cluster_node("w1").2, "v1.21.14");
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// Two minors with the workers behind: kubeadm up to 1.28 refuses `upgrade apply` while any
/// kubelet is more than one minor behind the target. The 1.22 hop is refused before anything
/// changes (kubeadm not even installed), naming w1; with w1 at 1.21 it goes through.
#[test]
fn apt_legacy_two_minors_moves_the_workers_between_hops() {
    let Some(lab) = MachineLab::start(MachineLabSpec::new(
        Os::Debian12,
        Layout::AptLegacy,
        "1.20.15",
    )) else {
        return;
    };
    run(&lab, "cluster.rhai", &["--set", "version=1.21"]).code(0);
    let out = run(&lab, "cluster.rhai", &["--set", "version=1.22"]);
    out.code(3);
    let said = unwrapped(&out.stderr);
    assert!(
        said.contains("while kubelets are more than 1 minor(s) behind it: w1 at 1.20.15")
            && said.contains("upgrade those nodes to 1.21 first"),
        "{said}"
    );
    assert_eq!(lab.server_version(), "v1.21.14");
    let m1 = lab.machine("m1");
    assert_eq!(
        m1.installed_version("kubeadm").as_deref(),
        Some("1.21.14-00")
    );
    assert!(!lab.cluster_node("m1").1, "m1 left cordoned");

    run(
        &lab,
        "worker.rhai",
        &["--node", "w1", "--set", "version=1.21"],
    )
    .code(0);
    run(&lab, "cluster.rhai", &["--set", "version=1.22"]).code(0);
    assert_eq!(lab.server_version(), "v1.22.17");
    run(
        &lab,
        "worker.rhai",
        &["--node", "w1", "--set", "version=1.22"],
    )
    .code(0);
    for name in ["m1", "w1"] {
        let (ready, unschedulable, version) = lab.cluster_node(name);
        assert!(
            ready && !unschedulable && version == "v1.22.17",
            "{name}: {version}"
        );
        assert_eq!(
            lab.machine(name).held(),
            ["kubeadm", "kubectl", "kubelet"],
            "{name}"
        );
    }
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// With `force=true` the hop runs `kubeadm upgrade apply --force` past the 1.20 kubelet, and
/// the run says so.
#[test]
fn apt_legacy_force_passes_kubeadm_force_and_logs_it() {
    let Some(lab) = MachineLab::start(MachineLabSpec::new(
        Os::Debian12,
        Layout::AptLegacy,
        "1.20.15",
    )) else {
        return;
    };
    run(&lab, "cluster.rhai", &["--set", "version=1.21"]).code(0);
    let out = run(
        &lab,
        "cluster.rhai",
        &["--set", "version=1.22", "--set", "force=true"],
    );
    out.code(0)
        .stderr_has("skipping since the --force flag is set");
    let said = unwrapped(&out.stderr);
    assert!(
        said.contains("w1 at 1.20.15; passing --force as asked (force: true)"),
        "{said}"
    );
    assert_eq!(lab.server_version(), "v1.22.17");
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// dnf against pkgs.k8s.io, 1.28 -> 1.30: the repository excludes the packages (so installs
/// need --disableexcludes=kubernetes) and holds one minor (so the run switches it).
#[test]
fn dnf_pkgs_k8s_io_switches_the_repository_per_minor() {
    let Some(lab) = MachineLab::start(MachineLabSpec::new(Os::Rocky9, Layout::RpmPkgs, "1.28.15"))
    else {
        return;
    };
    // 1.30 with the worker still at 1.28: kubeadm 1.30 allows kubelets three minors behind.
    run(&lab, "cluster.rhai", &["--set", "version=1.29"]).code(0);
    assert_eq!(lab.server_version(), "v1.29.14");
    run(&lab, "cluster.rhai", &["--set", "version=1.30"]).code(0);
    assert_eq!(lab.server_version(), "v1.30.14");
    run(
        &lab,
        "worker.rhai",
        &["--node", "w1", "--set", "version=1.30"],
    )
    .code(0);
    for name in ["m1", "w1"] {
        let (ready, unschedulable, version) = lab.cluster_node(name);
        assert!(
            ready && !unschedulable && version == "v1.30.14",
            "{name}: {version}"
        );
        let source = lab
            .machine(name)
            .read_file("/etc/yum.repos.d/kubernetes.repo")
            .unwrap();
        assert!(source.contains("/v1.30/rpm/"), "{name}: {source}");
    }
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// Arch Linux ARM with CRI-O, 1.11 -> 1.12 (the report's path): the control plane upgraded by
/// hand as the report does (`pacman -U` the team's package, `kubeadm upgrade apply`), then the
/// worker with crio-arch.rhai from the team's package files on the node.
#[test]
fn pacman_crio_1_11_to_1_12_with_the_teams_package_files() {
    let Some(lab) = MachineLab::start(
        MachineLabSpec::new(Os::ArchArm, Layout::Arch, "1.11.1").runtime(Runtime::CriO),
    ) else {
        return;
    };
    let mount = crate::support::machines::repos::MOUNT;
    let single = crate::support::machines::repos::ARCH_FILE;
    let m1 = lab.machine("m1");
    m1.sh(&format!(
        "pacman -U --noconfirm {mount}/{single} && kubeadm upgrade apply v1.12.1 -y"
    ));
    assert_eq!(lab.server_version(), "v1.12.1");
    let w1 = lab.machine("w1");
    w1.sh(&format!(
        "mkdir -p /root/pkgs && cp {mount}/{single} {mount}/arch/cri-o-1.11.7-1-aarch64.pkg.tar.zst /root/pkgs/"
    ));
    let out = run(
        &lab,
        "crio-arch.rhai",
        &["--node", "w1", "--set", "version=1.12.1"],
    );
    out.code(0);
    let (ready, unschedulable, version) = lab.cluster_node("w1");
    assert!(
        ready && !unschedulable,
        "w1 Ready {ready}, cordoned {unschedulable}"
    );
    assert_eq!(version, "v1.12.1");
    assert_eq!(w1.installed_version("cri-o").as_deref(), Some("1.11.7-1"));
    assert_eq!(
        w1.installed_version("kubernetes").as_deref(),
        Some("1.12.1-1")
    );
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// The skew guard must know the report's single package: kubelet 1.12 from
/// `kubernetes-1.12.1-1-aarch64.pkg.tar.xz` while the control plane is at 1.11 is refused
/// before the drain.
#[test]
fn pacman_single_package_newer_than_the_control_plane_is_refused() {
    let Some(lab) = MachineLab::start(
        MachineLabSpec::new(Os::ArchArm, Layout::Arch, "1.11.1").runtime(Runtime::CriO),
    ) else {
        return;
    };
    let mount = crate::support::machines::repos::MOUNT;
    let single = crate::support::machines::repos::ARCH_FILE;
    lab.machine("w1").sh(&format!(
        "mkdir -p /root/pkgs && cp {mount}/{single} {mount}/arch/cri-o-1.11.7-1-aarch64.pkg.tar.zst /root/pkgs/"
    ));
    let out = run(
        &lab,
        "crio-arch.rhai",
        &["--node", "w1", "--set", "version=1.12.1"],
    );
    out.code(3);
    let (ready, unschedulable, version) = lab.cluster_node("w1");
    assert!(ready && !unschedulable, "w1 was drained before the refusal");
    assert_eq!(version, "v1.11.1");
    assert_eq!(
        lab.machine("w1").installed_version("kubernetes").as_deref(),
        Some("1.11.1-1")
    );
}

/// Docker -> containerd with runtime-switch.rhai (the report's worker path).
#[test]
fn docker_to_containerd_with_runtime_switch() {
    let spec =
        MachineLabSpec::new(Os::Debian12, Layout::AptLegacy, "1.20.15").runtime(Runtime::Docker);
    let Some(lab) = MachineLab::start(spec) else {
        return;
    };
    run(&lab, "runtime-switch.rhai", &["--node", "w1"]).code(0);
    let w1 = lab.machine("w1");
    assert_eq!(w1.unit_state("docker"), "inactive");
    assert_eq!(w1.unit_state("kubelet"), "active");
    let flags = w1.read_file("/var/lib/kubelet/kubeadm-flags.env").unwrap();
    assert!(!flags.contains("--network-plugin"), "{flags}");
    let (ready, unschedulable, _) = lab.cluster_node("w1");
    assert!(ready && !unschedulable);
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// The field report's incident: w2's images sit behind a registry that answers 404 to
/// manifests by digest (Docker pulled from it; containerd cannot). With w1 already on
/// containerd as canary, runtime-switch.rhai refuses before w2 is drained, Docker still runs.
#[test]
fn a_canary_refuses_the_digest_refusing_registry_before_the_drain() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let direct = registry.push("team/web", "1");
    let behind = registry.push("team/api", "1");
    let proxy = DigestRefusingProxy::start(&registry);
    let behind = behind.replace(&registry.host(), &proxy.host());
    let spec = MachineLabSpec::new(Os::Debian12, Layout::AptLegacy, "1.20.15")
        .workers(2)
        .runtime(Runtime::Docker)
        .pod_images("w1", &direct)
        .pod_images("w2", &behind);
    let Some(lab) = MachineLab::start(spec) else {
        return;
    };
    let w2 = lab.machine("w2");
    assert!(
        w2.sh("docker version --format '{{.Server.Version}}'")
            .starts_with("20.10.24")
    );
    // w1 switched by hand as the report did it, so it can be the canary.
    let w1 = lab.machine("w1");
    w1.write_file(
        "/etc/containerd/config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
    );
    w1.write_file(
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n",
    );
    w1.sh("systemctl stop kubelet docker.socket docker && sed -i 's/cgroupDriver: cgroupfs/cgroupDriver: systemd/' /var/lib/kubelet/config.yaml && systemctl restart containerd && systemctl start kubelet");
    lab.wait_ready("w1", "containerd://");
    let mark = lab.mark();

    let out = run(
        &lab,
        "runtime-switch.rhai",
        &["--node", "w2", "--set", "canary=w1"],
    );
    out.code(3).stderr_has(&behind);
    let (ready, unschedulable, _) = lab.cluster_node("w2");
    assert!(ready && !unschedulable, "w2 was drained before the refusal");
    assert_eq!(w2.unit_state("docker"), "active");
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    assert_eq!(lab.order_violations_since(mark), Vec::<String>::new());
}

/// The same path two years later, 1.18 -> 1.19: `kubeadm upgrade node config` is gone (1.18),
/// so crio-arch.rhai writes the kubelet configuration with `upgrade node phase kubelet-config`.
#[test]
fn pacman_crio_1_18_to_1_19_uses_the_kubeadm_command_of_the_version() {
    let Some(lab) = MachineLab::start(
        MachineLabSpec::new(Os::ArchArm, Layout::Arch, "1.18.20").runtime(Runtime::CriO),
    ) else {
        return;
    };
    let mount = crate::support::machines::repos::MOUNT;
    let package = format!("{mount}/arch/kubernetes-1.19.16-1-aarch64.pkg.tar.zst");
    lab.machine("m1").sh(&format!(
        "pacman -U --noconfirm {package} && kubeadm upgrade apply v1.19.16 -y"
    ));
    let w1 = lab.machine("w1");
    w1.sh(&format!(
        "mkdir -p /root/pkgs && cp {package} {mount}/arch/cri-o-1.11.7-1-aarch64.pkg.tar.zst /root/pkgs/"
    ));
    let out = run(
        &lab,
        "crio-arch.rhai",
        &["--node", "w1", "--set", "version=1.19.16"],
    );
    out.code(0)
        .stdout_has("kubeadm upgrade node phase kubelet-config");
    let (ready, unschedulable, version) = lab.cluster_node("w1");
    assert!(
        ready && !unschedulable && version == "v1.19.16",
        "{version}"
    );
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// kubelet 1.27 exits on `--container-runtime`, and kubeadm cleans only kubeadm-flags.env: a
/// restart at 1.27 removes the flag from /etc/default/kubelet first, so kubelet comes back.
#[test]
fn restarting_kubelet_drops_the_flags_its_version_no_longer_has() {
    let Some(lab) = MachineLab::start(MachineLabSpec::new(
        Os::Debian12,
        Layout::AptPkgs,
        "1.27.16",
    )) else {
        return;
    };
    let w1 = lab.machine("w1");
    w1.write_file(
        "/etc/default/kubelet",
        "KUBELET_EXTRA_ARGS=\"--container-runtime=remote --node-labels=team=web\"\n",
    );
    let playbook = lab.dir().join("restart.rhai");
    std::fs::write(
        &playbook,
        "import \"node\" as node_ops;\nnode_ops::restart_kubelet(node, \"1.27.16\");\n",
    )
    .unwrap();
    lab.krun(&playbook)
        .args(["--node", "w1", "--set", "ready_timeout=30s"])
        .run()
        .code(0);
    let extra = w1.read_file("/etc/default/kubelet").unwrap();
    assert!(!extra.contains("--container-runtime"), "{extra}");
    assert!(extra.contains("--node-labels=team=web"), "{extra}");
    assert_eq!(w1.unit_state("kubelet"), "active");
}

/// The field report's path, shortened: 3 control planes and 3 workers on Docker, apt's legacy
/// repository, 1.18 -> 1.21 one minor at a time, the workers switched to containerd on the
/// first hop and moved with every hop; at the end every node Ready at 1.21 and schedulable, the
/// packages held, Docker gone from the workers, no budget ever short.
#[test]
fn apt_legacy_1_18_to_1_21_three_and_three_with_docker_to_containerd() {
    let spec = MachineLabSpec::new(Os::Debian12, Layout::AptLegacy, "1.18.20")
        .masters(3)
        .workers(3)
        .runtime(Runtime::Docker);
    let Some(lab) = MachineLab::start(spec) else {
        return;
    };
    let workers = ["--node", "w1", "--node", "w2", "--node", "w3"];
    for (hop, full) in [
        ("1.19", "1.19.16"),
        ("1.20", "1.20.15"),
        ("1.21", "1.21.14"),
    ] {
        let version = format!("version={hop}");
        run(&lab, "cluster.rhai", &["--set", &version]).code(0);
        assert_eq!(lab.server_version(), format!("v{full}"));
        run(
            &lab,
            "master.rhai",
            &["--node", "m2", "--node", "m3", "--set", &version],
        )
        .code(0);
        let mut args = workers.to_vec();
        args.extend(["--set", &version]);
        if hop == "1.19" {
            args.extend(["--set", "runtime=containerd"]);
        }
        run(&lab, "worker.rhai", &args).code(0);
    }
    for name in ["m1", "m2", "m3", "w1", "w2", "w3"] {
        let (ready, unschedulable, version) = lab.cluster_node(name);
        assert!(
            ready && !unschedulable && version == "v1.21.14",
            "{name}: {version}"
        );
        assert_eq!(
            lab.machine(name).held(),
            ["kubeadm", "kubectl", "kubelet"],
            "{name}"
        );
    }
    for name in ["w1", "w2", "w3"] {
        assert_eq!(lab.machine(name).unit_state("docker"), "inactive", "{name}");
    }
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// Files under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The field report's OS replacement of a worker: drained, reinstalled from the team's image
/// by its PXE hook (on m1), kubeadm/kubelet/kubectl installed on the fresh system, joined
/// with a join command made for it on the control plane (a secret, never shown), Ready,
/// uncordoned; no budget short, no kubelet restarted undrained.
#[test]
fn os_replacement_of_a_worker_through_the_teams_reinstall_hook() {
    let spec = MachineLabSpec::new(Os::Debian12, Layout::AptLegacy, "1.20.15")
        .workers(2)
        .pxe();
    let Some(lab) = MachineLab::start(spec) else {
        return;
    };
    let w1 = lab.machine("w1");
    w1.write_file("/root/old-system", "written before the reinstall");
    let tokens_before = bootstrap_tokens(&lab);
    let state = lab.dir().join("state");
    let mark = lab.mark();
    let running = std::sync::atomic::AtomicBool::new(true);
    let (out, reinstalled) = std::thread::scope(|scope| {
        let pxe = scope.spawn(|| lab.serve_reinstalls(&running));
        let out = run(
            &lab,
            "os-replace.rhai",
            &[
                "--node",
                "w1",
                "--set",
                "version=1.20.15",
                "--set",
                "reinstall=/usr/local/sbin/reinstall {node}",
                "--set",
                "hook_node=m1",
                "--state-dir",
                state.to_str().unwrap(),
            ],
        );
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        (out, pxe.join().expect("the PXE server"))
    });
    out.code(0);
    assert_eq!(reinstalled, ["w1"]);
    assert_eq!(
        w1.read_file("/root/old-system"),
        None,
        "w1 was not reinstalled"
    );
    // The order the cluster saw: drained before the machine went down, the join's token made
    // on the fresh system, the new kubelet Ready before the node takes pods again.
    assert_eq!(
        lab.node_events("w1", mark),
        [
            "cordoned",
            "drained",
            "kubelet stopped",
            "bootstrap token made",
            "kubelet ready",
            "uncordoned"
        ]
    );
    let (ready, unschedulable, version) = lab.cluster_node("w1");
    assert!(
        ready && !unschedulable && version == "v1.20.15",
        "w1: Ready {ready}, cordoned {unschedulable}, kubelet {version}"
    );
    assert_eq!(
        w1.installed_version("kubelet").as_deref(),
        Some("1.20.15-00")
    );
    // The kubelet's own credentials from the TLS bootstrap; the bootstrap token is gone.
    let kubelet_conf = w1
        .read_file("/etc/kubernetes/kubelet.conf")
        .expect("the kubelet's kubeconfig");
    assert_eq!(w1.read_file("/etc/kubernetes/bootstrap-kubelet.conf"), None);
    assert_eq!(w1.unit_state("kubelet"), "active");
    // One token made for this join, and nothing krun wrote shows it or the join command.
    let new_tokens: Vec<(String, String)> = bootstrap_tokens(&lab)
        .into_iter()
        .filter(|t| !tokens_before.contains(t))
        .collect();
    assert_eq!(new_tokens.len(), 1, "{new_tokens:?}");
    let (id, secret) = &new_tokens[0];
    assert!(!kubelet_conf.contains(secret.as_str()), "{kubelet_conf}");
    let mut written = format!("{}{}", out.stdout, out.stderr);
    for file in walk(&state) {
        written.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    assert!(
        written.contains("***"),
        "the join command was not shown masked"
    );
    for leak in [
        secret.clone(),
        format!("{id}.{secret}"),
        "--discovery-token-ca-cert-hash".into(),
    ] {
        assert!(!written.contains(&leak), "{leak} leaked:\n{written}");
    }
    // Nor do the journals of the machines it ran on.
    for machine in ["m1", "w1"] {
        let journal = lab
            .machine(machine)
            .sh("journalctl --no-pager -o cat || true");
        assert!(
            !journal.contains(secret.as_str()),
            "the token is in {machine}'s journal"
        );
    }
    assert_eq!(lab.pdb_violations(), Vec::<String>::new());
    assert_eq!(lab.order_violations(), Vec::<String>::new());
}

/// The bootstrap tokens the cluster stores: (token id, token secret) of each
/// `bootstrap-token-ID` Secret.
fn bootstrap_tokens(lab: &MachineLab) -> Vec<(String, String)> {
    use base64::Engine;
    let decode = |value: &serde_json::Value| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    lab.handle().snapshot()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["kind"] == "Secret" && i["type"] == "bootstrap.kubernetes.io/token")
        .map(|i| {
            (
                decode(&i["data"]["token-id"]),
                decode(&i["data"]["token-secret"]),
            )
        })
        .collect()
}
