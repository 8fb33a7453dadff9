//! The commands krun builds around a value that looks like an option, run through the real
//! tools of this machine: each must take the value as an operand (a package, a unit, an image)
//! and not as its `--version`/`--help`, which would print a banner and exit 0 as if the
//! package were installed or the unit active.

use std::process::Command;

use krun::host::images::Client;
use krun::host::packages::PackageManager;

use crate::support::require;

/// The first line a tool prints for `flag`: what must not appear when the value is an operand.
fn banner(tool: &str, flag: &str) -> String {
    let out = Command::new(tool)
        .arg(flag)
        .output()
        .expect("the tool runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[track_caller]
fn runs_as_operand(tool: &str, flag: &str, command: &str) {
    assert!(
        command.contains(&format!(" -- {flag}")),
        "no `--` before the value: {command}"
    );
    let banner = banner(tool, flag);
    assert!(!banner.is_empty(), "{tool} {flag} printed nothing");
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("sh runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // apt-cache madison exits 0 for a package it does not know: the banner is what tells.
    assert!(
        !printed.contains(&banner),
        "`{command}` took {flag} as an option (exit {:?}):\n{printed}",
        out.status.code()
    );
}

#[test]
fn package_managers_take_option_like_names_as_packages() {
    if !require(
        &["apt-get", "apt-cache", "dpkg-query", "dnf", "rpm", "pacman"],
        true,
    ) {
        return;
    }
    let v = "--version";
    for manager in [
        PackageManager::Apt,
        PackageManager::Dnf,
        PackageManager::Pacman,
    ] {
        let tool = match manager {
            PackageManager::Apt => "apt-get",
            PackageManager::Dnf | PackageManager::Yum => "dnf",
            PackageManager::Pacman => "pacman",
        };
        runs_as_operand(tool, v, &manager.install_command(v, ""));
        let query = match manager {
            PackageManager::Apt => "dpkg-query",
            PackageManager::Dnf | PackageManager::Yum => "rpm",
            PackageManager::Pacman => "pacman",
        };
        runs_as_operand(query, v, &manager.version_command(v));
        let list = match manager {
            PackageManager::Apt => "apt-cache",
            _ => tool,
        };
        runs_as_operand(list, v, &manager.available_command(v));
    }
    // A local package file (pacman -U) whose name starts with a dash.
    let local = PackageManager::Pacman.install_command("--version.pkg.tar.zst", "");
    assert!(local.contains(" -- --version.pkg.tar.zst"), "{local}");
}

#[test]
fn systemctl_takes_an_option_like_unit_as_a_unit() {
    if !require(&["systemctl"], false) {
        return;
    }
    runs_as_operand(
        "systemctl",
        "--version",
        &krun::host::systemd::command("restart", "--version"),
    );
    runs_as_operand(
        "systemctl",
        "--version",
        &krun::host::systemd::is_active_command("--version"),
    );
}

#[test]
fn ctr_takes_an_option_like_image_as_an_image() {
    if !require(&["ctr"], false) {
        return;
    }
    // Without containerd running, ctr then fails to dial (after its 10 s connect timeout).
    runs_as_operand("ctr", "--help", &Client::Ctr.pull_command("--help"));
}
