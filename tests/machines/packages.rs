//! Booted machines installing the stand-ins with their real package managers from the local
//! repositories, in the layouts users have: what the real tools refuse is refused.

use crate::support::fleet::Os;
use crate::support::machines::{Layout, MachineSpec, Machines};

fn output(machine: &crate::support::machines::Machine, script: &str) -> (i32, String) {
    let out = machine.exec(script);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// apt against the legacy repository: a held package is not moved without
/// --allow-change-held-packages, and the hold survives only an unhold/install/hold.
#[test]
fn apt_legacy_repository_and_holds() {
    let Some(machines) = Machines::builder()
        .machine(MachineSpec::new("d1", Os::Debian12).repository(Layout::AptLegacy))
        .start()
    else {
        return;
    };
    let d1 = machines.machine("d1");
    d1.sh("apt-get update -q && apt-get install -y -q kubelet=1.20.15-00 kubeadm=1.20.15-00 kubectl=1.20.15-00 && apt-mark hold kubelet kubeadm kubectl");
    assert_eq!(
        d1.installed_version("kubeadm").as_deref(),
        Some("1.20.15-00")
    );
    assert_eq!(d1.sh("kubeadm version -o short").trim(), "v1.20.15");
    let (code, said) = output(d1, "apt-get install -y -q kubeadm=1.21.14-00");
    assert_eq!(code, 100, "{said}");
    assert!(
        said.contains(
            "E: Held packages were changed and -y was used without --allow-change-held-packages."
        ),
        "{said}"
    );
    assert_eq!(
        d1.installed_version("kubeadm").as_deref(),
        Some("1.20.15-00")
    );
    // The documented way: unhold, install, hold again.
    d1.sh("apt-mark unhold kubeadm && apt-get install -y -q kubeadm=1.21.14-00 && apt-mark hold kubeadm");
    assert_eq!(
        d1.installed_version("kubeadm").as_deref(),
        Some("1.21.14-00")
    );
    assert_eq!(d1.held(), ["kubeadm", "kubectl", "kubelet"]);
    // The legacy deb's drop-in lives in /etc/systemd/system.
    assert!(
        d1.read_file("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
            .is_some()
    );
}

/// dnf against the legacy rpm repository with the documented `exclude=`: without
/// --disableexcludes=kubernetes there is no kubelet to install.
#[test]
fn dnf_honours_the_documented_exclude() {
    let Some(machines) = Machines::builder()
        .machine(MachineSpec::new("r1", Os::Rocky9).repository(Layout::RpmLegacy))
        .start()
    else {
        return;
    };
    let r1 = machines.machine("r1");
    let (code, said) = output(r1, "dnf install -y kubelet-1.20.15");
    assert_ne!(code, 0, "{said}");
    // dnf 4.14's words; older dnf and yum say "No match for argument".
    assert!(
        said.contains(
            "All matches were filtered out by exclude filtering for argument: kubelet-1.20.15"
        ) && said.contains("Error: Unable to find a match: kubelet-1.20.15"),
        "{said}"
    );
    r1.sh("dnf install -y --disableexcludes=kubernetes kubelet-1.20.15 kubeadm-1.20.15 kubectl-1.20.15");
    assert_eq!(
        r1.installed_version("kubelet").as_deref(),
        Some("1.20.15-0")
    );
    assert!(
        r1.read_file("/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf")
            .is_some_and(|c| c.contains("/etc/sysconfig/kubelet"))
    );
}

/// pkgs.k8s.io: one repository per minor; the 1.28 repository has no 1.29.
#[test]
fn pkgs_k8s_io_has_one_repository_per_minor() {
    let Some(machines) = Machines::builder()
        .machine(MachineSpec::new("p1", Os::Debian12).pkgs_repository(Layout::AptPkgs, "1.28"))
        .machine(MachineSpec::new("p2", Os::Rocky9).pkgs_repository(Layout::RpmPkgs, "1.28"))
        .start()
    else {
        return;
    };
    let p1 = machines.machine("p1");
    p1.sh("apt-get update -q && apt-get install -y -q kubeadm=1.28.15-1.1");
    let (code, said) = output(p1, "apt-get install -y -q kubeadm=1.29.14-1.1");
    assert_eq!(code, 100, "{said}");
    assert!(
        said.contains("Version '1.29.14-1.1' for 'kubeadm' was not found"),
        "{said}"
    );
    p1.write_file(
        "/etc/apt/sources.list.d/kubernetes.list",
        &crate::support::machines::sources(Layout::AptPkgs, Some("1.29")).1,
    );
    p1.sh("apt-get update -q && apt-get install -y -q kubeadm=1.29.14-1.1");
    assert_eq!(
        p1.installed_version("kubeadm").as_deref(),
        Some("1.29.14-1.1")
    );

    let p2 = machines.machine("p2");
    p2.sh("dnf install -y --disableexcludes=kubernetes kubeadm-1.28.15");
    assert_eq!(
        p2.installed_version("kubeadm").as_deref(),
        Some("1.28.15-150500.1.1")
    );
    let (code, said) = output(
        p2,
        "dnf install -y --disableexcludes=kubernetes kubeadm-1.29.14",
    );
    assert_ne!(code, 0, "{said}");
}

/// pacman: packages makepkg built, in a repository and as the report's single file.
#[test]
fn pacman_installs_from_the_repository_and_the_single_package_file() {
    let Some(machines) = Machines::builder()
        .machine(MachineSpec::new("a1", Os::ArchArm).repository(Layout::Arch))
        .start()
    else {
        return;
    };
    let a1 = machines.machine("a1");
    a1.sh("pacman -Sy --noconfirm");
    // -Si only reads the repository.
    let info = a1.sh("pacman -Si kubernetes");
    assert!(info.contains("Version         : 1.19.16-1"), "{info}");
    assert_eq!(a1.installed_version("kubernetes"), None);
    a1.sh(&format!(
        "pacman -U --noconfirm {}/arch/kubernetes-1.11.1-1-aarch64.pkg.tar.zst",
        crate::support::machines::repos::MOUNT
    ));
    assert_eq!(a1.sh("kubeadm version -o short").trim(), "v1.11.1");
    a1.sh(&format!(
        "pacman -U --noconfirm {}/{}",
        crate::support::machines::repos::MOUNT,
        crate::support::machines::repos::ARCH_FILE
    ));
    assert_eq!(
        a1.installed_version("kubernetes").as_deref(),
        Some("1.12.1-1")
    );
    assert_eq!(a1.sh("kubelet --version").trim(), "Kubernetes v1.12.1");
    assert!(a1.read_file("/etc/kubernetes/kubelet.env").is_some());
}
