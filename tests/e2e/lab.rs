//! The lab: sshd nodes that behave like kubeadm nodes, reporting to the simulator they belong to,
//! and the bundled lab's cluster snapshot.

use std::collections::BTreeSet;
use std::time::Duration;

use krun::sim::{Cluster, Server, SimOptions};
use serde_json::Value;

use crate::support::Os;
use crate::support::lab::{Lab, LabSpec, Runtime, bundled_lab_cluster};

#[test]
fn restarting_kubelet_reports_the_installed_version_and_kubectl_shows_it() {
    let Some(lab) = Lab::start(LabSpec::new()) else {
        return;
    };
    let before = lab.cluster_node("w1");
    assert_eq!(before.kubelet_version, "v1.20.15");
    assert_eq!(before.runtime_version, "containerd://1.6.20");
    assert!(before.ready);

    let playbook = lab.dir().join("kubelet.rhai");
    std::fs::write(
        &playbook,
        r#"pkg_install(node, "kubelet", "1.21.14-00", #{ allow_skew: true });
systemctl(node, "restart", "kubelet");
wait_ready(node, "1m", "1.21.14");
"#,
    )
    .unwrap();
    lab.krun(&playbook).args(["--node", "w1"]).run().code(0);

    let after = lab.cluster_node("w1");
    assert_eq!(after.kubelet_version, "v1.21.14");
    assert!(after.ready);
    assert_eq!(lab.cluster_node("w2").kubelet_version, "v1.20.15");
    let nodes = lab.kubectl(&["get", "nodes", "--no-headers"]);
    let w1 = nodes
        .lines()
        .find(|l| l.starts_with("w1 "))
        .unwrap_or_else(|| panic!("kubectl lists no w1:\n{nodes}"));
    assert!(w1.contains(" Ready ") && w1.ends_with("v1.21.14"), "{w1}");
    let m1 = nodes.lines().find(|l| l.starts_with("m1 ")).unwrap();
    assert!(m1.contains("control-plane,master"), "{m1}");
    assert!(
        lab.pdb_violations().is_empty(),
        "{:?}",
        lab.pdb_violations()
    );
}

#[test]
fn a_sudo_user_restarts_kubelet_through_sudo() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(1).sudo_user()) else {
        return;
    };
    let playbook = lab.dir().join("kubelet.rhai");
    std::fs::write(
        &playbook,
        r#"pkg_install(node, "kubelet", "1.21.14-00", #{ allow_skew: true });
systemctl(node, "restart", "kubelet");
wait_ready(node, "1m", "1.21.14");
"#,
    )
    .unwrap();
    lab.krun(&playbook).args(["--node", "w1"]).run().code(0);
    assert_eq!(lab.cluster_node("w1").kubelet_version, "v1.21.14");
}

#[test]
fn kubelet_stays_not_ready_while_its_runtime_is_down() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(1)) else {
        return;
    };
    lab.sh("w1", "systemctl stop containerd");
    assert!(!lab.cluster_node("w1").ready);
    lab.sh("w1", "systemctl restart kubelet");
    assert!(
        !lab.cluster_node("w1").ready,
        "kubelet's runtime is stopped"
    );
    lab.sh("w1", "systemctl start containerd");
    assert!(lab.cluster_node("w1").ready);
    lab.sh("w1", "systemctl stop kubelet");
    assert!(!lab.cluster_node("w1").ready);
    lab.sh("w1", "systemctl start kubelet");
    assert!(lab.cluster_node("w1").ready);

    // A kubelet pointed at CRI-O, which this node does not run.
    let flags = "/var/lib/kubelet/kubeadm-flags.env";
    let original = lab.node("w1").read_file(flags).unwrap();
    lab.node("w1").write_file(
        flags,
        &original.replace("/run/containerd/containerd.sock", "/var/run/crio/crio.sock"),
    );
    lab.sh("w1", "systemctl restart kubelet");
    assert!(!lab.cluster_node("w1").ready);
    let crictl = lab.exec("w1", "crictl version");
    assert_eq!(crictl.exit_code, Some(1));
    assert!(
        crictl.stderr_lossy().contains("crio.sock"),
        "{}",
        crictl.stderr_lossy()
    );
    assert!(
        lab.node("w1")
            .sim_reports()
            .iter()
            .all(|r| !r.starts_with("FAILED")),
        "{:?}",
        lab.node("w1").sim_reports()
    );
}

#[test]
fn kubeadm_moves_the_control_plane_one_minor_at_a_time() {
    let Some(lab) = Lab::start(LabSpec::new().workers(1)) else {
        return;
    };
    assert_eq!(lab.server_version(), "v1.20.15");
    let plan = lab.sh("m1", "kubeadm upgrade plan");
    assert!(
        plan.contains("[upgrade/versions] Cluster version: v1.20.15"),
        "{plan}"
    );
    assert!(plan.contains("kubeadm upgrade apply v1.21.14"), "{plan}");
    assert!(
        plan.contains("you have to update kubeadm to v1.21.14"),
        "{plan}"
    );

    let old_kubeadm = lab.exec("m1", "kubeadm upgrade apply -y v1.21.14");
    assert_eq!(old_kubeadm.exit_code, Some(1));
    assert!(
        old_kubeadm.stderr_lossy().contains(
            "Specified version to upgrade to \"v1.21.14\" is higher than the kubeadm version \"v1.20.15\""
        ),
        "{}",
        old_kubeadm.stderr_lossy()
    );
    let two_minors = lab.exec("m1", "kubeadm upgrade apply -y v1.22.17");
    assert!(
        two_minors
            .stderr_lossy()
            .contains("kubeadm can upgrade only 1 minor version at a time"),
        "{}",
        two_minors.stderr_lossy()
    );
    assert_eq!(lab.server_version(), "v1.20.15");

    lab.sh("m1", "apt-get install -y kubeadm=1.21.14-00");
    let applied = lab.sh("m1", "kubeadm upgrade apply -y v1.21.14");
    assert!(
        applied.contains("SUCCESS! Your cluster was upgraded to \"v1.21.14\""),
        "{applied}"
    );
    assert_eq!(lab.server_version(), "v1.21.14");
    assert_eq!(
        lab.static_pod_image("m1", "kube-apiserver").as_deref(),
        Some("k8s.gcr.io/kube-apiserver:v1.21.14")
    );
    assert_eq!(
        lab.static_pod_image("m2", "kube-apiserver").as_deref(),
        Some("k8s.gcr.io/kube-apiserver:v1.20.15")
    );
    let manifest = lab
        .node("m1")
        .read_file("/etc/kubernetes/manifests/kube-scheduler.yaml")
        .unwrap();
    assert!(
        manifest.contains("image: k8s.gcr.io/kube-scheduler:v1.21.14"),
        "{manifest}"
    );
    let proxy = lab.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "daemonset",
        "kube-proxy",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(proxy, "k8s.gcr.io/kube-proxy:v1.21.14");
    let version = lab.kubectl(&["version", "-o", "json"]);
    assert!(
        version.contains("\"gitVersion\": \"v1.21.14\""),
        "{version}"
    );

    // Another control-plane node follows with `upgrade node`, once its kubeadm is new enough.
    let refused = lab.exec("m2", "kubeadm upgrade node");
    assert_eq!(refused.exit_code, Some(1));
    lab.sh(
        "m2",
        "apt-get download kubeadm=1.21.14-00 && dpkg -i kubeadm_1.21.14-00_*.deb",
    );
    lab.sh("m2", "kubeadm upgrade node");
    assert_eq!(
        lab.static_pod_image("m2", "kube-controller-manager")
            .as_deref(),
        Some("k8s.gcr.io/kube-controller-manager:v1.21.14")
    );
    // A worker only gets its kubelet configuration.
    lab.sh("w1", "apt-get install -y kubeadm=1.21.14-00");
    let worker = lab.sh("w1", "kubeadm upgrade node");
    assert!(
        worker.contains("Skipping phase. Not a control plane node."),
        "{worker}"
    );
    assert_eq!(
        lab.node("m1").kubeadm_calls(),
        ["kubeadm upgrade apply v1.21.14"]
    );
    let next = lab.sh("m1", "kubeadm upgrade plan");
    assert!(next.contains("kubeadm upgrade apply v1.22.17"), "{next}");
    let worker_apply = lab.exec("w1", "kubeadm upgrade apply -y v1.22.17");
    assert!(
        worker_apply
            .stderr_lossy()
            .contains("/etc/kubernetes/admin.conf"),
        "{}",
        worker_apply.stderr_lossy()
    );
}

#[test]
fn a_node_is_reset_and_joins_again() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(1)) else {
        return;
    };
    let refused = lab.exec("w1", "kubeadm reset");
    assert_eq!(refused.exit_code, Some(1));
    lab.sh("w1", "kubeadm reset -f");
    assert!(!lab.cluster_node("w1").ready);
    assert_eq!(
        lab.node("w1").read_file("/etc/kubernetes/kubelet.conf"),
        None
    );
    assert_eq!(
        lab.node("w1").read_file("/var/lib/kubelet/config.yaml"),
        None
    );
    lab.sh("w1", "systemctl restart kubelet");
    assert!(
        !lab.cluster_node("w1").ready,
        "kubelet without kubelet.conf"
    );

    let join = lab.sh("m1", "kubeadm token create --print-join-command");
    assert!(join.starts_with("kubeadm join 127.0.0.1:"), "{join}");
    let forged = join.replace("--token ", "--token 000000.0000000000000000 --ignored ");
    assert_eq!(lab.exec("w1", &forged).exit_code, Some(1));
    let joined = lab.sh("w1", &join);
    assert!(
        joined.contains("This node has joined the cluster"),
        "{joined}"
    );
    assert!(lab.node("w1").joined());
    assert!(lab.cluster_node("w1").ready);
    assert!(
        lab.node("w1")
            .read_file("/var/lib/kubelet/kubeadm-flags.env")
            .unwrap()
            .contains("--container-runtime-endpoint=unix:///run/containerd/containerd.sock")
    );
    let again = lab.exec("w1", &join);
    assert!(
        again
            .stderr_lossy()
            .contains("/etc/kubernetes/kubelet.conf already exists"),
        "{}",
        again.stderr_lossy()
    );
    assert_eq!(
        lab.node("w1").kubeadm_calls(),
        ["kubeadm reset", "kubeadm join"]
    );
}

#[test]
fn docker_node_switches_to_containerd_by_hand() {
    let Some(lab) = Lab::start(
        LabSpec::new()
            .masters(1)
            .workers(1)
            .runtime(Runtime::Docker),
    ) else {
        return;
    };
    assert_eq!(lab.cluster_node("w1").runtime_version, "docker://20.10.24");
    let info = lab.sh("w1", "docker info --format '{{.CgroupDriver}}'");
    assert_eq!(info.trim(), "cgroupfs");
    assert_eq!(lab.sh("w1", "docker ps -q").lines().count(), 3);

    // kubelet 1.20 refuses a cgroup driver other than Docker's.
    let flags = "/var/lib/kubelet/kubeadm-flags.env";
    let original = lab.node("w1").read_file(flags).unwrap();
    lab.node("w1").write_file(
        flags,
        &original.replace(
            "--network-plugin",
            "--cgroup-driver=systemd --network-plugin",
        ),
    );
    lab.sh("w1", "systemctl restart kubelet");
    assert!(!lab.cluster_node("w1").ready);
    let journal = lab.sh("w1", "journalctl -u kubelet -n 1 --no-pager");
    assert!(
        journal.contains("kubelet cgroup driver: \"systemd\" is different from docker cgroup driver: \"cgroupfs\""),
        "{journal}"
    );
    lab.node("w1").write_file(flags, &original);
    lab.sh("w1", "systemctl restart kubelet");
    assert!(lab.cluster_node("w1").ready);

    // seed 000's switch-runtime, step by step
    lab.sh("w1", "systemctl stop kubelet");
    lab.sh("w1", "docker stop $(docker ps -a -q)");
    lab.sh("w1", "docker rm $(docker ps -a -q)");
    let empty = lab.exec("w1", "docker stop $(docker ps -a -q)");
    assert!(
        empty
            .stderr_lossy()
            .contains("requires at least 1 argument")
    );
    lab.sh("w1", "systemctl stop docker");
    assert_eq!(lab.exec("w1", "docker ps -q").exit_code, Some(1));
    let lvm = lab.exec("w1", "mkfs.ext4 /dev/vdb");
    assert_eq!(
        lvm.exit_code,
        Some(1),
        "mkfs.ext4 over an LVM member needs -F"
    );
    assert_eq!(lab.exec("w1", "mkfs.ext4 /dev/sdz").exit_code, Some(1));
    lab.sh("w1", "mkfs.ext4 -F /dev/vdb");
    let uuid = lab.sh("w1", "blkid -s UUID -o value /dev/vdb");
    lab.sh(
        "w1",
        &format!(
            "echo 'UUID={} /var/lib/containerd ext4 defaults 0 2' >> /etc/fstab && mount -a",
            uuid.trim()
        ),
    );
    assert_eq!(
        lab.node("w1").mounts(),
        [(
            "/dev/vdb".to_string(),
            "/var/lib/containerd".to_string(),
            "ext4".to_string()
        )]
    );
    assert_eq!(
        lab.sh("w1", "findmnt -n -o SOURCE /var/lib/containerd")
            .trim(),
        "/dev/vdb"
    );
    lab.node("w1").write_file(
        "/etc/containerd/config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
    );
    lab.sh("w1", "systemctl restart containerd");
    assert!(
        lab.sh(
            "w1",
            "crictl --runtime-endpoint unix:///run/containerd/containerd.sock info"
        )
        .contains("\"SystemdCgroup\": true")
    );
    lab.node("w1").write_file(
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=unix:///run/containerd/containerd.sock --cgroup-driver=systemd\"\n",
    );
    lab.sh("w1", "systemctl daemon-reload && systemctl restart kubelet");
    let node = lab.cluster_node("w1");
    assert!(node.ready);
    assert_eq!(node.runtime_version, "containerd://1.6.20");
    assert!(
        lab.sh("w1", "crictl version")
            .contains("RuntimeName:  containerd")
    );
    assert!(lab.sh("w1", "ctr -n k8s.io version").contains("Server:"));
}

/// Waits (up to a minute, polling) for `condition`; false when it never held.
fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..600 {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_drained_worker_upgrade_keeps_every_budget() {
    let Some(lab) = Lab::start(LabSpec::new()) else {
        return;
    };
    let playbook = lab.dir().join("worker.rhai");
    std::fs::write(
        &playbook,
        r#"cordon(node);
drain(node, #{ ignore_daemonsets: true, delete_emptydir_data: true, force: true, timeout: "2m" });
pkg_install(node, "kubelet", "1.21.14-00", #{ allow_skew: true });
systemctl(node, "restart", "kubelet");
wait_ready(node, "1m", "1.21.14");
uncordon(node);
"#,
    )
    .unwrap();
    for worker in ["w1", "w2"] {
        lab.krun(&playbook).args(["--node", worker]).run().code(0);
        let node = lab.cluster_node(worker);
        assert_eq!(node.kubelet_version, "v1.21.14");
        assert!(node.ready && !node.unschedulable, "{worker}: {node:?}");
    }
    assert_eq!(lab.cluster_node("w3").kubelet_version, "v1.20.15");
    assert!(
        lab.pdb_violations().is_empty(),
        "{:?}",
        lab.pdb_violations()
    );
}

#[test]
fn the_budget_watch_sees_a_kubelet_stopped_under_its_pods() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).blocking_budgets()) else {
        return;
    };
    assert!(
        lab.pdb_violations().is_empty(),
        "{:?}",
        lab.pdb_violations()
    );
    for worker in lab.workers() {
        lab.sh(&worker, "systemctl stop kubelet");
    }
    assert!(
        eventually(|| !lab.pdb_violations().is_empty()),
        "no budget was seen violated with every kubelet stopped"
    );
}

#[test]
fn a_kubelet_that_does_not_come_back_keeps_its_node_not_ready() {
    let Some(lab) = Lab::start(LabSpec::new().masters(1).workers(1)) else {
        return;
    };
    lab.node("w1").break_kubelet();
    assert_eq!(
        lab.exec("w1", "systemctl restart kubelet").exit_code,
        Some(0)
    );
    let active = lab.exec("w1", "systemctl is-active kubelet");
    assert_eq!(active.exit_code, Some(3));
    assert_eq!(active.stdout_lossy(), "activating\n");
    assert!(!lab.cluster_node("w1").ready);
    lab.node("w1").repair_kubelet();
    lab.sh("w1", "systemctl restart kubelet");
    assert!(lab.cluster_node("w1").ready);

    // A unit a playbook installs is known once its file exists.
    assert_eq!(
        lab.exec("w1", "systemctl start kubelet-watchdog").exit_code,
        Some(5)
    );
    lab.node("w1").write_file(
        "/etc/systemd/system/kubelet-watchdog.service",
        "[Service]\nExecStart=/bin/true\n",
    );
    lab.sh(
        "w1",
        "systemctl daemon-reload && systemctl enable --now kubelet-watchdog",
    );
    assert_eq!(
        lab.node("w1").unit_state("kubelet-watchdog"),
        Some(("active".to_string(), "enabled".to_string()))
    );
}

#[test]
fn crio_on_arch_upgrades_with_local_packages() {
    let spec = LabSpec::new()
        .masters(1)
        .workers(1)
        .os(Os::ArchArm)
        .runtime(Runtime::CriO);
    let Some(lab) = Lab::start(spec) else {
        return;
    };
    assert_eq!(lab.cluster_node("w1").runtime_version, "cri-o://1.20.9");
    assert!(
        lab.sh("w1", "crio --version")
            .starts_with("crio version 1.20.9\n")
    );
    assert!(
        lab.sh("w1", "crictl version")
            .contains("RuntimeName:  cri-o")
    );
    // seed 003, worker steps
    let packages = lab.node("w1").dir().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    for file in [
        "cri-o-1.21.7-1-aarch64.pkg.tar.xz",
        "kubelet-1.21.14-1-aarch64.pkg.tar.xz",
    ] {
        std::fs::write(packages.join(file), "a team-built package").unwrap();
    }
    let dir = packages.display();
    lab.sh("w1", "systemctl stop kubelet && systemctl stop crio");
    lab.sh(
        "w1",
        &format!("pacman -U --noconfirm {dir}/cri-o-1.21.7-1-aarch64.pkg.tar.xz"),
    );
    lab.sh("w1", "systemctl start crio");
    lab.sh(
        "w1",
        &format!("pacman -U --noconfirm {dir}/kubelet-1.21.14-1-aarch64.pkg.tar.xz"),
    );
    lab.sh(
        "w1",
        "kubeadm upgrade node config --kubelet-version $(kubelet --version | cut -d ' ' -f 2)",
    );
    assert!(!lab.cluster_node("w1").ready);
    lab.sh("w1", "systemctl restart kubelet");
    let node = lab.cluster_node("w1");
    assert!(node.ready);
    assert_eq!(node.kubelet_version, "v1.21.14");
    assert_eq!(node.runtime_version, "cri-o://1.21.7");
    assert_eq!(
        lab.node("w1").kubeadm_calls(),
        ["kubeadm upgrade node config --kubelet-version v1.21.14"]
    );
}

fn items<'a>(list: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |i| i["kind"] == kind)
}

fn named<'a>(list: &'a Value, kind: &'a str, namespace: &str, name: &str) -> &'a Value {
    items(list, kind)
        .find(|i| i["metadata"]["namespace"] == namespace && i["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name}"))
}

/// Nodes the pods of `app` run on.
fn nodes_of(list: &Value, namespace: &str, app: &str) -> BTreeSet<String> {
    items(list, "Pod")
        .filter(|p| {
            p["metadata"]["namespace"] == namespace
                && p["metadata"]["labels"]["app.kubernetes.io/name"] == app
        })
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn budget_covers(list: &Value, namespace: &str, app: &str) -> bool {
    items(list, "PodDisruptionBudget").any(|pdb| {
        pdb["metadata"]["namespace"] == namespace
            && pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == app
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_lab_loads_with_its_traps() {
    let path = crate::cli::root().join("examples/lab/cluster.yaml");
    let made = bundled_lab_cluster();
    if std::env::var_os("KRUN_REGENERATE_LAB").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text == made,
        "examples/lab/cluster.yaml is not what tests/support/lab.rs makes; after changing either, \
         run KRUN_REGENERATE_LAB=1 cargo test --test integration -- e2e::lab::the_bundled_lab"
    );

    let cluster = Cluster::load(&text).expect("the bundled lab loads");
    let server = Server::start(
        cluster,
        SimOptions {
            startup_delay: Duration::from_secs(10),
            ..SimOptions::default()
        },
    )
    .await
    .expect("the simulator serves the bundled lab");
    let list = server.handle().snapshot();
    let file: Value = serde_yaml_ng::from_str(&text).unwrap();

    let nodes: Vec<&Value> = items(&list, "Node").collect();
    assert_eq!(nodes.len(), 9);
    let with_label = |label: &str| -> BTreeSet<String> {
        nodes
            .iter()
            .filter(|n| n["metadata"]["labels"].get(label).is_some())
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        with_label("node-role.kubernetes.io/control-plane"),
        BTreeSet::from(["master-1", "master-2", "master-3"].map(String::from))
    );
    let ingress_nodes = with_label("node-role.kubernetes.io/ingress");
    assert_eq!(
        ingress_nodes,
        BTreeSet::from(["worker-1", "worker-2"].map(String::from))
    );
    for node in &nodes {
        let ip = node["status"]["addresses"][0]["address"].as_str().unwrap();
        assert!(
            ip.starts_with("192.0.2."),
            "{ip} is not a documentation address"
        );
        assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.20.15");
        assert_eq!(
            node["status"]["nodeInfo"]["containerRuntimeVersion"],
            "docker://20.10.24"
        );
    }

    // The Ingress controller runs only on the two Ingress nodes, without a budget: draining
    // both together takes all traffic down (seed 000).
    named(
        &list,
        "Deployment",
        "ingress-nginx",
        "ingress-nginx-controller",
    );
    assert_eq!(
        nodes_of(&list, "ingress-nginx", "ingress-nginx-controller"),
        ingress_nodes
    );
    assert!(!budget_covers(
        &list,
        "ingress-nginx",
        "ingress-nginx-controller"
    ));
    // Prometheus without a budget either.
    named(&list, "StatefulSet", "monitoring", "prometheus-k8s");
    assert!(!budget_covers(&list, "monitoring", "prometheus-k8s"));
    // A budget that allows no disruption at all, as the simulator computes it.
    let blocking = named(
        &list,
        "PodDisruptionBudget",
        "team-checkout",
        "checkout-cache-0",
    );
    assert_eq!(blocking["status"]["disruptionsAllowed"], 0);
    // A single-replica Deployment.
    assert_eq!(
        named(&list, "Deployment", "monitoring", "prometheus-operator")["spec"]["replicas"],
        1
    );
    // Every replica of one service on two workers, no budget (seed 001).
    assert_eq!(
        named(&list, "Deployment", "team-payments", "payments-api-0")["spec"]["replicas"],
        3
    );
    assert_eq!(
        nodes_of(&list, "team-payments", "payments-api-0"),
        BTreeSet::from(["worker-4", "worker-5"].map(String::from))
    );
    assert!(!budget_covers(&list, "team-payments", "payments-api-0"));
    // The statuses in the file are the ones the simulator computes.
    for pdb in items(&file, "PodDisruptionBudget") {
        let namespace = pdb["metadata"]["namespace"].as_str().unwrap();
        let name = pdb["metadata"]["name"].as_str().unwrap();
        let served = named(&list, "PodDisruptionBudget", namespace, name);
        for field in [
            "disruptionsAllowed",
            "desiredHealthy",
            "currentHealthy",
            "expectedPods",
        ] {
            assert_eq!(
                served["status"][field], pdb["status"][field],
                "{namespace}/{name} {field}"
            );
        }
    }

    // Real kubectl lists it.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    for what in [
        &["get", "nodes"][..],
        &["get", "pods", "-A"],
        &["get", "pdb", "-A"],
    ] {
        let output = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(what)
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl {what:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        if what[1] == "nodes" {
            assert_eq!(stdout.lines().count(), 10, "{stdout}");
        }
    }

    // The inventory names the same nodes at the same addresses.
    let inventory =
        krun::inventory::Inventory::load(&crate::cli::root().join("examples/lab/inventory.toml"))
            .expect("the lab inventory parses");
    let addresses: BTreeSet<(String, String)> = nodes
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["addresses"][0]["address"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let listed: BTreeSet<(String, String)> = inventory
        .nodes
        .values()
        .map(|n| (n.name.clone(), n.host.clone()))
        .collect();
    assert_eq!(listed, addresses);
    server.shutdown().await;
}
