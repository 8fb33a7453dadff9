//! The fleet's node stand-ins, exercised over ssh the way krun's primitives will use them.

use super::{pool, run, stdout_of};
use crate::support::{Fleet, NodeSpec, Os};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_has_its_own_os_release() {
    let Some(fleet) = Fleet::shared() else { return };
    let pool = pool();
    for (name, id) in [
        ("n1", "debian"),
        ("n2", "rocky"),
        ("n3", "archarm"),
        ("bastion", "debian"),
    ] {
        let found = stdout_of(
            &pool,
            &fleet.node(name).endpoint(),
            ". /etc/os-release; echo $ID",
        )
        .await;
        assert_eq!(found, id, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apt_install_then_query_tells_the_truth() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("deb", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("deb");
    let endpoint = node.endpoint();
    let pool = pool();
    let query = "dpkg-query -W -f='${Version}' kubelet";
    assert_eq!(stdout_of(&pool, &endpoint, query).await, "1.20.15-00");

    let no_yes = run(&pool, &endpoint, "apt-get install kubelet=1.21.14-00").await;
    assert_eq!(no_yes.exit_code, Some(1));
    assert!(
        no_yes
            .stdout_lossy()
            .contains("Do you want to continue? [Y/n] Abort.")
    );

    let missing = run(&pool, &endpoint, "apt-get install -y kubelet=9.9.9-00").await;
    assert_eq!(missing.exit_code, Some(100));
    assert_eq!(
        missing.stderr_lossy(),
        "E: Version '9.9.9-00' for 'kubelet' was not found\n"
    );

    let unknown = run(&pool, &endpoint, "apt-get install -y kubelett").await;
    assert_eq!(unknown.exit_code, Some(100));
    assert_eq!(
        unknown.stderr_lossy(),
        "E: Unable to locate package kubelett\n"
    );

    stdout_of(&pool, &endpoint, "apt-mark hold kubelet").await;
    let held = run(&pool, &endpoint, "apt-get install -y kubelet=1.21.14-00").await;
    assert_eq!(held.exit_code, Some(100));
    assert!(held.stderr_lossy().contains("--allow-change-held-packages"));

    stdout_of(
        &pool,
        &endpoint,
        "apt-get install -y --allow-change-held-packages kubelet=1.21.14-00 kubeadm=1.21.14-00",
    )
    .await;
    assert_eq!(stdout_of(&pool, &endpoint, query).await, "1.21.14-00");
    assert_eq!(
        stdout_of(&pool, &endpoint, "dpkg-query -W kubeadm").await,
        "kubeadm\t1.21.14-00"
    );
    assert_eq!(
        stdout_of(&pool, &endpoint, "kubelet --version").await,
        "Kubernetes v1.21.14"
    );
    assert_eq!(
        stdout_of(&pool, &endpoint, "kubeadm version -o short").await,
        "v1.21.14"
    );
    assert_eq!(
        node.installed_version("kubelet").as_deref(),
        Some("1.21.14-00")
    );

    let downgrade = run(&pool, &endpoint, "apt-get install -y kubeadm=1.20.15-00").await;
    assert_eq!(downgrade.exit_code, Some(100));

    let absent = run(&pool, &endpoint, "dpkg-query -W -f='${Version}' cri-o").await;
    assert_eq!(absent.exit_code, Some(1));
    assert_eq!(
        absent.stderr_lossy(),
        "dpkg-query: no packages found matching cri-o\n"
    );

    assert_eq!(
        node.changes(),
        [
            "apt-mark hold kubelet",
            "apt-get install kubelet=1.21.14-00",
            "apt-get install kubeadm=1.21.14-00",
        ]
    );
    let madison = run(&pool, &endpoint, "apt-cache madison kubelet")
        .await
        .stdout_lossy();
    assert_eq!(madison.lines().count(), 3);
    assert!(
        madison.starts_with("   kubelet | 1.22.17-00 | "),
        "{madison}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnf_and_rpm_on_a_rocky_node() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("rhel", Os::Rocky9))
        .start()
    else {
        return;
    };
    let node = fleet.node("rhel");
    let endpoint = node.endpoint();
    let pool = pool();
    let query = "rpm -q --qf '%{VERSION}-%{RELEASE}' kubelet";
    assert_eq!(stdout_of(&pool, &endpoint, query).await, "1.20.15-0");

    let apt = run(&pool, &endpoint, "apt-get update").await;
    assert_eq!(apt.exit_code, Some(127), "a Rocky node has no apt-get");

    let missing = run(&pool, &endpoint, "dnf install -y kubelet-9.9.9").await;
    assert_eq!(missing.exit_code, Some(1));
    assert!(
        missing
            .stderr_lossy()
            .contains("Error: Unable to find a match: kubelet-9.9.9")
    );

    let output = run(
        &pool,
        &endpoint,
        "dnf install -y kubelet-1.21.14 --disableexcludes=kubernetes",
    )
    .await;
    assert_eq!(output.exit_code, Some(0), "{}", output.stderr_lossy());
    assert!(output.stdout_lossy().ends_with("Complete!\n"));
    assert_eq!(stdout_of(&pool, &endpoint, query).await, "1.21.14-0");
    assert_eq!(
        stdout_of(&pool, &endpoint, "rpm -q kubelet").await,
        format!("kubelet-1.21.14-0.{}", std::env::consts::ARCH)
    );
    let absent = run(&pool, &endpoint, "rpm -q cri-o").await;
    assert_eq!(absent.exit_code, Some(1));
    assert_eq!(absent.stdout_lossy(), "package cri-o is not installed\n");

    // yum is dnf's alias on EL9.
    stdout_of(&pool, &endpoint, "yum install -y kubeadm-1.22.17-0").await;
    assert_eq!(
        node.installed_version("kubeadm").as_deref(),
        Some("1.22.17-0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacman_installs_local_package_files() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("alarm", Os::ArchArm))
        .start()
    else {
        return;
    };
    let node = fleet.node("alarm");
    let endpoint = node.endpoint();
    let pool = pool();
    assert_eq!(
        stdout_of(&pool, &endpoint, "pacman -Q kubelet").await,
        "kubelet 1.20.15-1"
    );

    let package = node.dir().join("kubelet-1.21.14-1-aarch64.pkg.tar.zst");
    let command = format!("pacman -U --noconfirm '{}'", package.display());
    let missing = run(&pool, &endpoint, &command).await;
    assert_eq!(missing.exit_code, Some(1));
    assert_eq!(
        missing.stderr_lossy(),
        format!(
            "error: '{}': could not find or read package\n",
            package.display()
        )
    );

    std::fs::write(&package, b"not really a package").unwrap();
    stdout_of(&pool, &endpoint, &command).await;
    assert_eq!(
        stdout_of(&pool, &endpoint, "pacman -Q kubelet").await,
        "kubelet 1.21.14-1"
    );

    stdout_of(&pool, &endpoint, "pacman -S --noconfirm kubeadm").await;
    assert_eq!(
        stdout_of(&pool, &endpoint, "pacman -Q kubeadm").await,
        "kubeadm 1.22.17-1"
    );

    let absent = run(&pool, &endpoint, "pacman -Q cri-o").await;
    assert_eq!(absent.exit_code, Some(1));
    assert_eq!(
        absent.stderr_lossy(),
        "error: package 'cri-o' was not found\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemctl_keeps_unit_state() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("sd", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("sd");
    let endpoint = node.endpoint();
    let pool = pool();

    let active = run(&pool, &endpoint, "systemctl is-active kubelet").await;
    assert_eq!(
        (active.exit_code, active.stdout_lossy().as_str()),
        (Some(0), "active\n")
    );

    stdout_of(&pool, &endpoint, "systemctl stop kubelet").await;
    let inactive = run(&pool, &endpoint, "systemctl is-active kubelet.service").await;
    assert_eq!(
        (inactive.exit_code, inactive.stdout_lossy().as_str()),
        (Some(3), "inactive\n")
    );
    let quiet = run(&pool, &endpoint, "systemctl is-active --quiet kubelet").await;
    assert_eq!((quiet.exit_code, quiet.stdout.len()), (Some(3), 0));

    stdout_of(&pool, &endpoint, "systemctl disable --now containerd").await;
    assert_eq!(
        node.unit_state("containerd"),
        Some(("inactive".to_string(), "disabled".to_string()))
    );
    let disabled = run(&pool, &endpoint, "systemctl is-enabled containerd").await;
    assert_eq!(
        (disabled.exit_code, disabled.stdout_lossy().as_str()),
        (Some(1), "disabled\n")
    );

    let unknown = run(&pool, &endpoint, "systemctl restart crio").await;
    assert_eq!(unknown.exit_code, Some(5));
    assert_eq!(
        unknown.stderr_lossy(),
        "Failed to restart crio.service: Unit crio.service not found.\n"
    );
    let unknown_active = run(&pool, &endpoint, "systemctl is-active crio").await;
    assert_eq!(
        (
            unknown_active.exit_code,
            unknown_active.stdout_lossy().as_str()
        ),
        (Some(3), "inactive\n")
    );

    stdout_of(
        &pool,
        &endpoint,
        "systemctl daemon-reload && systemctl restart kubelet",
    )
    .await;
    assert_eq!(
        stdout_of(
            &pool,
            &endpoint,
            "systemctl show -p ActiveState --value kubelet"
        )
        .await,
        "active"
    );
    let status = run(&pool, &endpoint, "systemctl status kubelet").await;
    assert_eq!(status.exit_code, Some(0));
    assert!(status.stdout_lossy().contains("Active: active (running)"));

    assert_eq!(
        node.changes(),
        [
            "systemctl stop kubelet.service",
            "systemctl disable --now containerd.service",
            "systemctl daemon-reload",
            "systemctl restart kubelet.service",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_leave_the_state_untouched() {
    let Some(fleet) = Fleet::builder()
        .node(NodeSpec::new("ro", Os::Debian12))
        .start()
    else {
        return;
    };
    let node = fleet.node("ro");
    let before = node.state_snapshot();
    assert!(before.contains_key("pkgs/kubelet"));
    let pool = pool();
    for query in [
        "systemctl is-active kubelet",
        "systemctl is-enabled kubelet",
        "systemctl status kubelet",
        "dpkg-query -W kubelet",
        "apt-cache policy kubelet",
        "kubelet --version",
    ] {
        run(&pool, &node.endpoint(), query).await;
    }
    assert_eq!(node.state_snapshot(), before);
}
