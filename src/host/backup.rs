//! Backing a node up before a change and putting it back: the shell commands, and how their
//! answers are read.
//!
//! A backup copies the files that decide how the node runs Kubernetes into a dated directory
//! on the node itself (`/var/backups/krun/<run id>/<scope>/files/<path>`, mode 0700: it holds
//! private keys, which never leave the node) and prints a listing (see
//! [`crate::journal::backup`]): every file with its SHA-256, mode and size, the paths that did
//! not exist, the installed package versions and holds. The journal keeps the listing, so a
//! restore knows what to put back and can check the copies have not changed since.

use std::collections::BTreeMap;

use serde::Serialize;

use super::packages::PackageManager;
use crate::journal::backup::{HEADER, NodeState, Scope};
use crate::quote::quote;

/// Where backups go on a node.
pub const BACKUP_ROOT: &str = "/var/backups/krun";

/// kubelet's and the runtimes' configuration: what a kubelet or runtime change rewrites.
pub const NODE_PATHS: &[&str] = &[
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/kubeadm-flags.env",
    "/var/lib/kubelet/instance-config.yaml",
    "/etc/default/kubelet",
    "/etc/sysconfig/kubelet",
    "/etc/kubernetes/kubelet.env",
    "/etc/kubernetes/kubelet.conf",
    "/etc/systemd/system/kubelet.service.d",
    "/usr/lib/systemd/system/kubelet.service.d",
    "/etc/containerd",
    "/etc/crio",
    "/etc/docker/daemon.json",
    "/etc/crictl.yaml",
];

/// The packages whose versions a backup records, when installed.
pub const PACKAGES: &[&str] = &[
    "kubeadm",
    "kubelet",
    "kubectl",
    "kubernetes",
    "kubernetes-cni",
    "cri-tools",
    "containerd",
    "containerd.io",
    "docker-ce",
    "docker.io",
    "cri-o",
    "runc",
];

/// The backup directory of a run on a node.
pub fn backup_dir(run_id: &str, scope: Scope) -> String {
    format!("{BACKUP_ROOT}/{run_id}/{}", scope.name())
}

/// Prints `package NAME VERSION` for each installed package of [`PACKAGES`], and `held NAME`
/// for each package apt holds.
fn package_listing(manager: PackageManager) -> String {
    let names = PACKAGES.join(" ");
    match manager {
        PackageManager::Apt => format!(
            "for p in {names}; do s=$(dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}' \"$p\" 2>/dev/null) || continue; \
             case \"$s\" in ii*|hi*) echo \"package $p ${{s#*|}}\";; esac; done; \
             apt-mark showhold 2>/dev/null | sed 's/^/held /'"
        ),
        PackageManager::Dnf | PackageManager::Yum => format!(
            "for p in {names}; do if v=$(rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' \"$p\" 2>/dev/null); then echo \"package $p $v\"; fi; done"
        ),
        PackageManager::Pacman => format!(
            "for p in {names}; do if v=$(pacman -Q \"$p\" 2>/dev/null); then echo \"package $p ${{v#* }}\"; fi; done"
        ),
    }
}

/// The command that backs a node up into `dir` and prints the listing. `scope` control-plane
/// adds the node's `/etc/kubernetes` (without kubeadm's own backups under `tmp/`) when the node
/// is one (kubeadm's test: it has a kube-apiserver manifest).
pub fn backup_command(dir: &str, scope: Scope, manager: PackageManager) -> String {
    let paths: Vec<String> = NODE_PATHS.iter().map(|p| quote(p)).collect();
    let mut paths = paths.join(" ");
    if manager == PackageManager::Pacman {
        paths.push_str(" /etc/pacman.conf");
    }
    let control_plane = if scope == Scope::ControlPlane {
        "echo 'control-plane yes'; mkdir -p \"$dir/files/etc/kubernetes\" || exit 1; \
         for e in /etc/kubernetes/* /etc/kubernetes/.[!.]*; do [ -e \"$e\" ] || continue; \
         [ \"$e\" = /etc/kubernetes/tmp ] && continue; cp -a \"$e\" \"$dir/files/etc/kubernetes/\" || exit 1; done"
    } else {
        "echo 'control-plane yes'"
    };
    format!(
        "set -u; dir={dir}; umask 077; mkdir -p \"$dir/files\" || exit 1; \
         echo '{HEADER}'; echo 'scope {scope}'; echo \"dir $dir\"; \
         copy() {{ if [ -e \"$1\" ] || [ -L \"$1\" ]; then d=\"$dir/files$(dirname \"$1\")\"; \
         mkdir -p \"$d\" && cp -a \"$1\" \"$d/\" || exit 1; else echo \"absent $1\"; fi; }}; \
         for p in {paths}; do copy \"$p\"; done; \
         for f in /etc/apt/sources.list.d/* /etc/yum.repos.d/*; do [ -f \"$f\" ] || continue; \
         grep -qsE 'pkgs\\.k8s\\.io|kubernetes' \"$f\" && copy \"$f\"; done; \
         if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then {control_plane}; else echo 'control-plane no'; fi; \
         cd \"$dir/files\" || exit 1; \
         find . -type f | LC_ALL=C sort | while IFS= read -r f; do \
         h=$(sha256sum < \"$f\" | cut -c1-64); echo \"file $h $(stat -c '%a %s' \"$f\") ${{f#.}}\"; done; \
         {packages}",
        dir = quote(dir),
        scope = scope.name(),
        packages = package_listing(manager),
    )
}

/// How a backup step shows in a plan that could not see the node's package manager.
pub fn backup_shown_unobserved(dir: &str, scope: Scope) -> String {
    format!(
        "back up kubelet and runtime configuration{}, package versions to {dir} (package manager not observed)",
        if scope == Scope::ControlPlane {
            ", /etc/kubernetes"
        } else {
            ""
        }
    )
}

/// The command that compares the node now with what `state` recorded: for each backed-up file
/// the hash of its copy and of the live file, whether each path that did not exist does now,
/// the static pod manifests present now, and the installed package versions.
pub fn check_command(state: &NodeState, manager: Option<PackageManager>) -> String {
    let mut script = String::from(
        "hash() { if [ -f \"$1\" ]; then sha256sum < \"$1\" | cut -c1-64; else echo none; fi; }; ",
    );
    for file in state.files.values() {
        script.push_str(&format!(
            "echo \"check $(hash {copy}) $(hash {path}) \"{path}; ",
            copy = quote(&file.copy()),
            path = quote(&file.path),
        ));
    }
    for path in &state.absent {
        script.push_str(&format!(
            "[ -e {path} ] && echo \"present \"{path}; ",
            path = quote(path)
        ));
    }
    if state.control_plane {
        script.push_str(
            "for f in /etc/kubernetes/manifests/*; do [ -f \"$f\" ] && echo \"manifest $f\"; done; ",
        );
    }
    if let Some(manager) = manager {
        script.push_str(&package_listing(manager));
    }
    script.push_str("; true");
    script
}

/// A file a restore puts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    /// `changed` (differs from the backup) or `missing` (gone since).
    pub why: &'static str,
    pub sha256: String,
    pub copy: String,
}

/// A package a restore moves back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    pub name: String,
    /// Installed now ("" when removed since).
    pub now: String,
    pub before: String,
}

/// What a restore will do on a node, worked out from the backup and the node as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestorePlan {
    pub node: String,
    pub files: Vec<FileChange>,
    /// Files that are as the backup recorded them.
    pub unchanged: Vec<String>,
    /// Paths that did not exist before the run and do now: moved aside, not deleted.
    pub appeared: Vec<String>,
    /// Static pod manifests present now that the backup did not hold.
    pub extra_manifests: Vec<String>,
    pub packages: Vec<PackageChange>,
    /// Packages installed since the backup (name, version): left installed.
    pub added: Vec<(String, String)>,
    /// Backup copies that are gone or differ from the recorded hash: nothing can be restored
    /// from them, so the restore refuses.
    pub damaged: Vec<String>,
}

impl RestorePlan {
    /// Reads [`check_command`]'s answer against `state`.
    pub fn from_check(state: &NodeState, output: &str) -> Self {
        let mut plan = RestorePlan {
            node: state.node.clone(),
            ..RestorePlan::default()
        };
        let mut now: BTreeMap<String, String> = BTreeMap::new();
        for line in output.lines() {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "check" => {
                    let mut fields = rest.splitn(3, ' ');
                    let (Some(copy), Some(live), Some(path)) =
                        (fields.next(), fields.next(), fields.next())
                    else {
                        continue;
                    };
                    let Some(file) = state.files.get(path) else {
                        continue;
                    };
                    if copy != file.sha256 {
                        plan.damaged.push(if copy == "none" {
                            format!("{} (its copy {} is gone)", file.path, file.copy())
                        } else {
                            format!(
                                "{} (its copy {} has sha256 {copy}, the backup recorded {})",
                                file.path,
                                file.copy(),
                                file.sha256
                            )
                        });
                    } else if live == file.sha256 {
                        plan.unchanged.push(file.path.clone());
                    } else {
                        plan.files.push(FileChange {
                            path: file.path.clone(),
                            why: if live == "none" { "missing" } else { "changed" },
                            sha256: file.sha256.clone(),
                            copy: file.copy(),
                        });
                    }
                }
                "present" => plan.appeared.push(rest.to_owned()),
                "manifest" if !state.files.contains_key(rest) => {
                    plan.extra_manifests.push(rest.to_owned());
                }
                "package" => {
                    if let Some((name, version)) = rest.split_once(' ') {
                        now.insert(name.to_owned(), version.to_owned());
                    }
                }
                _ => {}
            }
        }
        for (name, version) in &now {
            if !state.packages.contains_key(name) {
                plan.added.push((name.clone(), version.clone()));
            }
        }
        for (name, before) in &state.packages {
            let current = now.get(name).cloned().unwrap_or_default();
            if &current != before {
                plan.packages.push(PackageChange {
                    name: name.clone(),
                    now: current,
                    before: before.clone(),
                });
            }
        }
        plan
    }

    /// Whether the node is already as the backup recorded it.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.appeared.is_empty() && self.packages.is_empty()
    }

    /// What the restore will put back, line by line, for the operator to read before it starts.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for package in &self.packages {
            out.push_str(&format!(
                "  package {}: {} -> {}\n",
                package.name,
                if package.now.is_empty() {
                    "(not installed)"
                } else {
                    &package.now
                },
                package.before
            ));
        }
        for file in &self.files {
            out.push_str(&format!(
                "  file {} ({} since the backup) <- {} (sha256 {})\n",
                file.path,
                file.why,
                file.copy,
                &file.sha256[..file.sha256.len().min(16)]
            ));
        }
        for path in &self.appeared {
            out.push_str(&format!(
                "  file {path} did not exist before the run: moved aside to {path}.krun-moved\n"
            ));
        }
        for (name, version) in &self.added {
            out.push_str(&format!(
                "  package {name} {version} was installed after the backup: left installed\n"
            ));
        }
        for path in &self.extra_manifests {
            out.push_str(&format!(
                "  static pod manifest {path} is not in the backup: left in place\n"
            ));
        }
        if out.is_empty() {
            out.push_str("  nothing: the node is as the backup recorded it\n");
        }
        out.push_str(&format!(
            "  ({} backed-up files unchanged)\n",
            self.unchanged.len()
        ));
        out
    }
}

/// The command that puts `plan`'s files back: every copy's hash is checked first (nothing is
/// written if one has changed), then each file is copied next to its place and moved over it,
/// keeping the copy's mode and owner; paths that did not exist before are moved aside.
pub fn restore_command(plan: &RestorePlan) -> String {
    let mut script = String::from(
        "set -u; verify() { h=$(sha256sum < \"$1\" | cut -c1-64) || exit 1; [ \"$h\" = \"$2\" ] || \
         { echo \"the backup copy $1 has sha256 $h, the backup recorded $2: not restoring\" >&2; exit 1; }; }; ",
    );
    for file in &plan.files {
        script.push_str(&format!(
            "verify {} {}; ",
            quote(&file.copy),
            quote(&file.sha256)
        ));
    }
    for file in &plan.files {
        script.push_str(&format!(
            "mkdir -p \"$(dirname {path})\" && cp -a {copy} {path}.krun-restore && mv -f {path}.krun-restore {path} || exit 1; echo \"restored \"{path}; ",
            path = quote(&file.path),
            copy = quote(&file.copy),
        ));
    }
    for path in &plan.appeared {
        script.push_str(&format!(
            "mv -f {path} {path}.krun-moved || exit 1; echo \"moved aside \"{path}; ",
            path = quote(path)
        ));
    }
    script.push_str("true");
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::backup::BackupRecord;

    /// A package the node does not have (the last one listed, say) is left out of the listing,
    /// and the listing still succeeds: a backup is not failed by an absent `runc`.
    #[test]
    fn absent_packages_leave_the_listing_successful() {
        let bin = tempfile::tempdir().unwrap();
        for tool in ["dpkg-query", "apt-mark", "rpm", "pacman"] {
            let path = bin.path().join(tool);
            std::fs::write(&path, "#!/bin/sh\nexit 1\n").unwrap();
            let mut permissions = std::fs::metadata(&path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
            std::fs::set_permissions(&path, permissions).unwrap();
        }
        for manager in [
            PackageManager::Apt,
            PackageManager::Dnf,
            PackageManager::Yum,
            PackageManager::Pacman,
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(package_listing(manager))
                .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
                .output()
                .unwrap();
            assert!(out.status.success(), "{manager:?}: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{manager:?}");
        }
    }

    fn state() -> NodeState {
        let record = BackupRecord::parse(
            "m1",
            "krun-backup 1\nscope control-plane\ndir /b/cp\ncontrol-plane yes\n\
             file aaaa 600 10 /etc/kubernetes/manifests/kube-apiserver.yaml\n\
             file bbbb 644 10 /var/lib/kubelet/config.yaml\n\
             file cccc 644 10 /etc/kubernetes/admin.conf\n\
             absent /etc/default/kubelet\n\
             package kubeadm 1.20.15-00\npackage kubelet 1.20.15-00\n",
        )
        .unwrap();
        NodeState::merge("m1", [&record])
    }

    #[test]
    fn a_check_says_what_changed_what_is_gone_and_which_copies_are_damaged() {
        let output = "check aaaa ffff /etc/kubernetes/manifests/kube-apiserver.yaml\n\
                      check bbbb bbbb /var/lib/kubelet/config.yaml\n\
                      check dddd cccc /etc/kubernetes/admin.conf\n\
                      present /etc/default/kubelet\n\
                      manifest /etc/kubernetes/manifests/kube-apiserver.yaml\n\
                      manifest /etc/kubernetes/manifests/extra.yaml\n\
                      package kubeadm 1.21.14-00\npackage kubelet 1.20.15-00\n";
        let plan = RestorePlan::from_check(&state(), output);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].why, "changed");
        assert_eq!(plan.unchanged, ["/var/lib/kubelet/config.yaml"]);
        assert_eq!(plan.damaged.len(), 1, "{plan:?}");
        assert!(plan.damaged[0].contains("has sha256 dddd"), "{plan:?}");
        assert_eq!(plan.appeared, ["/etc/default/kubelet"]);
        assert_eq!(
            plan.extra_manifests,
            ["/etc/kubernetes/manifests/extra.yaml"]
        );
        assert_eq!(
            plan.packages,
            [PackageChange {
                name: "kubeadm".into(),
                now: "1.21.14-00".into(),
                before: "1.20.15-00".into()
            }]
        );
        let text = plan.describe();
        assert!(
            text.contains("package kubeadm: 1.21.14-00 -> 1.20.15-00"),
            "{text}"
        );
        assert!(
            text.contains("file /etc/kubernetes/manifests/kube-apiserver.yaml (changed since the backup) <- /b/cp/files/etc/kubernetes/manifests/kube-apiserver.yaml"),
            "{text}"
        );
    }

    #[test]
    fn a_restore_checks_every_copy_before_writing_any() {
        let plan = RestorePlan::from_check(
            &state(),
            "check aaaa none /etc/kubernetes/manifests/kube-apiserver.yaml\n",
        );
        assert_eq!(plan.files[0].why, "missing");
        let command = restore_command(&plan);
        let verify = command.find("verify /b/cp/files").unwrap();
        let copy = command.find("cp -a").unwrap();
        assert!(verify < copy, "{command}");
    }

    #[test]
    fn the_backup_command_lists_what_it_copied() {
        let command = backup_command("/var/backups/krun/x/node", Scope::Node, PackageManager::Apt);
        assert!(
            command.contains("dir=/var/backups/krun/x/node"),
            "{command}"
        );
        assert!(command.contains("echo 'krun-backup 1'"), "{command}");
        assert!(!command.contains("cp -a \"$e\""), "{command}");
        let cp = backup_command("/b", Scope::ControlPlane, PackageManager::Dnf);
        assert!(cp.contains("/etc/kubernetes/tmp ] && continue"), "{cp}");
        assert!(cp.contains("rpm -q"), "{cp}");
    }
}
