//! The kubeadm stand-in, one test per row of kubeadm-facts.md it implements, run on the test
//! machine against the simulator (no booted machine needed: the rows are about kubeadm).

use super::{NodeRoot, TestCluster, standin, text};
use crate::support::require;

fn ready() -> bool {
    require(&["/usr/bin/python3", "curl"], false)
}

/// `kubeadm upgrade apply` as `m1` with kubeadm `kubeadm`, kubelet running.
fn apply(root: &NodeRoot, kubeadm: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["upgrade", "apply"];
    all.extend(args);
    standin("kubeadm", kubeadm, root, "m1", "kubelet", &all)
}

// §1 kubelet skew: N=1 up to kubeadm 1.28, skippable with --force only.
#[test]
fn apply_refuses_kubelets_more_than_one_minor_behind_up_to_1_28() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.21.14", &[("w1", "v1.20.15")]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.21.14");
    let out = apply(&root, "1.22.17", &["v1.22.17", "-y"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("[upgrade/version] FATAL: the --version argument is invalid due to these errors:")
            && said.contains("\t- There are kubelets in this cluster that are too old that have these versions [v1.20.15]")
            && said.contains("Can be bypassed if you pass the --force flag"),
        "{said}"
    );
    assert_eq!(
        cluster.version(),
        "v1.21.14",
        "the control plane moved anyway"
    );
    assert!(
        root.list("etc/kubernetes/tmp").is_empty(),
        "{:?}",
        root.list("etc/kubernetes/tmp")
    );
}

#[test]
fn apply_with_force_goes_past_old_kubelets_and_says_so() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.21.14", &[("w1", "v1.20.15")]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.21.14");
    let out = apply(&root, "1.22.17", &["v1.22.17", "--force"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("[upgrade/version] Found 1 potential version compatibility errors but skipping since the --force flag is set:"),
        "{said}"
    );
    assert!(
        said.contains(
            "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.22.17\". Enjoy!"
        ),
        "{said}"
    );
    assert_eq!(cluster.version(), "v1.22.17");
}

// §1: N=3 from kubeadm 1.29 (k/k#120825); 1.28 with 1.26 kubelets needs --force.
#[test]
fn the_kubelet_skew_is_three_minors_from_kubeadm_1_29() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.27.16", &[("w1", "v1.26.15")]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.27.16");
    let out = apply(&root, "1.28.15", &["v1.28.15", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("too old that have these versions [v1.26.15]"));

    let cluster = TestCluster::start(1, 1, "1.28.15", &[("w1", "v1.26.15")]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.28.15");
    let out = apply(&root, "1.29.14", &["v1.29.14", "-y"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(cluster.version(), "v1.29.14");
}

// §1 upgrade skip: mandatory, --force does not help.
#[test]
fn apply_refuses_to_skip_a_minor_even_with_force() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 0, "1.20.15", &[]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    let out = apply(&root, "1.22.17", &["v1.22.17", "--force"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the --version argument is invalid due to these fatal errors:"),
        "{said}"
    );
    assert!(said.contains("Specified version to upgrade to \"v1.22.17\" is too high; kubeadm can upgrade only 1 minor version at a time"), "{said}");
    assert!(
        said.contains("Please fix the misalignments highlighted above and try upgrading again"),
        "{said}"
    );
    assert_eq!(cluster.version(), "v1.20.15");
}

// §1 kubeadm too old (patch) is skippable; (minor) is mandatory.
#[test]
fn apply_refuses_a_target_newer_than_kubeadm() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 0, "1.20.15", &[]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    let out = apply(&root, "1.21.0", &["v1.21.14", "-y"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("Specified version to upgrade to \"v1.21.14\" is higher than the kubeadm version \"v1.21.0\". Upgrade kubeadm first using the tool you used to install kubeadm"), "{}", text(&out));
    assert!(text(&out).contains("Can be bypassed if you pass the --force flag"));

    let out = apply(&root, "1.20.15", &["v1.21.14", "-y"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is at least one minor release higher than the kubeadm minor release (21 > 20). Such an upgrade is not supported"), "{}", text(&out));
}

// §2: without -y there is a prompt; no answer, no upgrade.
#[test]
fn apply_without_yes_asks_and_stops_on_no_answer() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 0, "1.20.15", &[]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    let out = apply(&root, "1.21.14", &["v1.21.14"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(
            "[upgrade/confirm] Are you sure you want to proceed with the upgrade? [y/N]: "
        )
    );
    assert!(
        text(&out).contains("won't proceed; the user didn't answer (Y|y) in order to continue")
    );
    assert_eq!(cluster.version(), "v1.20.15");
}

// §2 backups: old manifests under /etc/kubernetes/tmp/kubeadm-backup-manifests-<time>/.
#[test]
fn apply_backs_up_the_old_manifests_under_etc_kubernetes_tmp() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 0, "1.20.15", &[]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    let out = apply(&root, "1.21.14", &["v1.21.14", "-y"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let tmp = root.list("etc/kubernetes/tmp");
    let backup = tmp
        .iter()
        .find(|d| d.starts_with("kubeadm-backup-manifests-"))
        .unwrap_or_else(|| panic!("no backup in {tmp:?}"));
    let old = root
        .read(&format!("etc/kubernetes/tmp/{backup}/kube-apiserver.yaml"))
        .expect("the old apiserver manifest is kept");
    assert!(
        old.contains("image: k8s.gcr.io/kube-apiserver:v1.20.15"),
        "{old}"
    );
    let new = root
        .read("etc/kubernetes/manifests/kube-apiserver.yaml")
        .unwrap();
    assert!(
        new.contains("image: k8s.gcr.io/kube-apiserver:v1.21.14"),
        "{new}"
    );
    assert!(
        root.read("var/lib/kubelet/config.yaml")
            .is_some_and(|c| c.contains("KubeletConfiguration"))
    );
}

// §2: with kubelet stopped nothing restarts the static pods: the upgrade times out, rolls back.
#[test]
fn apply_fails_and_rolls_back_when_kubelet_is_not_running() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 0, "1.20.15", &[]);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    let out = standin(
        "kubeadm",
        "1.21.14",
        &root,
        "m1",
        "",
        &["upgrade", "apply", "v1.21.14", "-y"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state"), "{}", text(&out));
    assert!(
        root.read("etc/kubernetes/manifests/kube-apiserver.yaml")
            .unwrap()
            .contains(":v1.20.15")
    );
    assert_eq!(cluster.version(), "v1.20.15");
}

// §2 addons: with the apply until 1.27; from 1.28 only with the last control plane.
#[test]
fn addons_move_with_the_last_control_plane_from_1_28() {
    if !ready() {
        return;
    }
    const APPLIED: &str = "[addons] Applied essential addon: kube-proxy";
    // Kubelets already at 1.27, so the 1.28 apply meets no skew rule.
    let kubelets = [("m1", "v1.27.16"), ("m2", "v1.27.16")];
    let cluster = TestCluster::start(2, 0, "1.26.15", &kubelets);
    let m1 = NodeRoot::new(&cluster.server.url(), true, "1.26.15");
    let out = standin(
        "kubeadm",
        "1.27.16",
        &m1,
        "m1",
        "kubelet",
        &["upgrade", "apply", "v1.27.16", "-y"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(APPLIED),
        "1.27 applies the addons with the first control plane"
    );

    let out = standin(
        "kubeadm",
        "1.28.15",
        &m1,
        "m1",
        "kubelet",
        &["upgrade", "apply", "v1.28.15", "-y"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(APPLIED), "{}", text(&out));
    assert!(
        text(&out).contains("[upgrade/addons] skip upgrade addons because control plane instances [m2] have not been upgraded"),
        "{}",
        text(&out)
    );
    let m2 = NodeRoot::new(&cluster.server.url(), true, "1.27.16");
    let out = standin(
        "kubeadm",
        "1.28.15",
        &m2,
        "m2",
        "kubelet",
        &["upgrade", "node"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(APPLIED),
        "the last control plane moves the addons: {}",
        text(&out)
    );
}

// §3: `upgrade node config --kubelet-version` until 1.17, gone in 1.18 (k/k#87975).
#[test]
fn upgrade_node_config_is_gone_in_1_18() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.17.17", &[]);
    let w1 = NodeRoot::new(&cluster.server.url(), false, "1.17.17");
    let args = ["upgrade", "node", "config", "--kubelet-version", "v1.17.17"];
    let out = standin("kubeadm", "1.17.17", &w1, "w1", "kubelet", &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("[upgrade] The configuration for this node was successfully updated!")
    );

    let cluster = TestCluster::start(1, 1, "1.18.20", &[]);
    let w1 = NodeRoot::new(&cluster.server.url(), false, "1.18.20");
    let args = ["upgrade", "node", "config", "--kubelet-version", "v1.18.20"];
    let out = standin("kubeadm", "1.18.20", &w1, "w1", "kubelet", &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("unknown command \"config\" for \"kubeadm upgrade node\""),
        "{}",
        text(&out)
    );
}

// §3: `upgrade node --kubelet-version` deprecated 1.18, removed 1.20 (k/k#94869).
#[test]
fn upgrade_node_kubelet_version_flag_is_gone_in_1_20() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.19.16", &[]);
    let w1 = NodeRoot::new(&cluster.server.url(), false, "1.19.16");
    let args = ["upgrade", "node", "--kubelet-version", "v1.19.16"];
    assert_eq!(
        standin("kubeadm", "1.19.16", &w1, "w1", "kubelet", &args)
            .status
            .code(),
        Some(0)
    );
    let cluster = TestCluster::start(1, 1, "1.20.15", &[]);
    let w1 = NodeRoot::new(&cluster.server.url(), false, "1.20.15");
    let args = ["upgrade", "node", "--kubelet-version", "v1.20.15"];
    let out = standin("kubeadm", "1.20.15", &w1, "w1", "kubelet", &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("unknown flag: --kubelet-version"),
        "{}",
        text(&out)
    );
}

// §2 post-upgrade: kubelet-config-1.X until 1.23, written back to workers by `upgrade node`.
#[test]
fn upgrade_node_on_a_worker_writes_the_kubelet_config_of_the_cluster_version() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start(1, 1, "1.21.14", &[]);
    let w1 = NodeRoot::new(&cluster.server.url(), false, "1.21.14");
    let out = standin("kubeadm", "1.21.14", &w1, "w1", "", &["upgrade", "node"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("[upgrade] Skipping phase. Not a control plane node."));
    assert!(
        w1.read("var/lib/kubelet/config.yaml")
            .is_some_and(|c| c.contains("cgroupDriver: systemd"))
    );
}

// §5: 1.26 removes --container-runtime=remote from kubeadm-flags.env on upgrade.
#[test]
fn upgrade_node_strips_container_runtime_remote_from_1_26() {
    if !ready() {
        return;
    }
    let flags = "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n";
    for (version, kept) in [("1.24.17", true), ("1.26.15", false)] {
        let cluster = TestCluster::start(1, 1, version, &[]);
        let w1 = NodeRoot::new(&cluster.server.url(), false, version);
        w1.write("var/lib/kubelet/kubeadm-flags.env", flags);
        let out = standin("kubeadm", version, &w1, "w1", "", &["upgrade", "node"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let after = w1.read("var/lib/kubelet/kubeadm-flags.env").unwrap();
        assert_eq!(
            after.contains("--container-runtime=remote"),
            kept,
            "{version}: {after}"
        );
        assert!(
            after.contains("--container-runtime-endpoint=unix:///run/containerd/containerd.sock")
        );
    }
}

// §2: the ConfigMap kubeadm-config must exist.
#[test]
fn apply_needs_the_kubeadm_config_map() {
    if !ready() {
        return;
    }
    let cluster = TestCluster::start_with(1, 0, "1.20.15", &[], false);
    let root = NodeRoot::new(&cluster.server.url(), true, "1.20.15");
    let out = apply(&root, "1.21.14", &["v1.21.14", "-y"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(
            "the ConfigMap \"kubeadm-config\" in the kube-system namespace was not found"
        ),
        "{}",
        text(&out)
    );
}
