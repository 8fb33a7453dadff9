//! Operating-system facts and package managers: which one a distribution uses (from
//! `/etc/os-release`), the commands that install a package, print the installed version and
//! list what the repositories offer, and how to read their answers.

use crate::quote::{join, operands, quote};

/// What `os_facts` reports about a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsFacts {
    pub id: String,
    pub id_like: String,
    pub version: String,
    pub pretty_name: String,
    pub arch: String,
    pub kernel: String,
    pub observed: bool,
}

/// The package managers krun drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
    Pacman,
}

pub const FACTS_COMMAND: &str = "cat /etc/os-release; echo '--krun--'; uname -m; uname -r";

impl OsFacts {
    /// Parses the output of [`FACTS_COMMAND`].
    pub fn parse(output: &str) -> Self {
        let (release, uname) = output.split_once("--krun--").unwrap_or((output, ""));
        let mut facts = Self {
            observed: true,
            ..Self::default()
        };
        for line in release.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').trim_matches('\'').to_owned();
            match key.trim() {
                "ID" => facts.id = value,
                "ID_LIKE" => facts.id_like = value,
                "VERSION_ID" => facts.version = value,
                "PRETTY_NAME" => facts.pretty_name = value,
                _ => {}
            }
        }
        let mut uname = uname.lines().map(str::trim).filter(|l| !l.is_empty());
        facts.arch = uname.next().unwrap_or_default().to_owned();
        facts.kernel = uname.next().unwrap_or_default().to_owned();
        facts
    }

    /// The package manager of this distribution, if krun knows it.
    pub fn package_manager(&self) -> Option<PackageManager> {
        let ids = std::iter::once(self.id.as_str()).chain(self.id_like.split_whitespace());
        for id in ids {
            match id {
                "debian" | "ubuntu" | "raspbian" => return Some(PackageManager::Apt),
                "arch" | "archarm" | "manjaro" | "manjaro-arm" | "endeavouros" => {
                    return Some(PackageManager::Pacman);
                }
                "centos" | "rhel" | "fedora" | "rocky" | "almalinux" | "ol" | "amzn" => {
                    let major: u32 = self
                        .version
                        .split('.')
                        .next()
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(8);
                    let old = matches!(self.id.as_str(), "centos" | "rhel" | "ol") && major < 8
                        || self.id == "amzn" && major <= 2;
                    return Some(if old {
                        PackageManager::Yum
                    } else {
                        PackageManager::Dnf
                    });
                }
                _ => {}
            }
        }
        None
    }
}

/// The Kubernetes yum/dnf repository as its docs write it excludes these packages
/// (`exclude=kubelet kubeadm kubectl`, pkgs.k8s.io adds cri-tools and kubernetes-cni) so that a
/// plain `dnf upgrade` never moves them; installing or listing them needs the exclusion lifted.
fn is_excluded_kubernetes_package(name: &str) -> bool {
    matches!(
        name,
        "kubelet" | "kubeadm" | "kubectl" | "cri-tools" | "kubernetes-cni"
    )
}

/// Lifts the documented `exclude=` of the repository the docs name `kubernetes`.
const DISABLE_EXCLUDES: &str = "--disableexcludes=kubernetes";

/// A package name that is really a local package file (`pacman -U`, `apt-get install ./x.deb`).
pub fn is_local_file(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with("./")
        || [".deb", ".rpm", ".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

impl PackageManager {
    /// The command that installs `name` at `version` (empty: the newest available).
    pub fn install_command(self, name: &str, version: &str) -> String {
        let local = is_local_file(name);
        match self {
            Self::Apt => {
                let target = match (local, version.is_empty()) {
                    (true, _) if name.starts_with('/') || name.starts_with("./") => name.to_owned(),
                    (true, _) => format!("./{name}"),
                    (false, true) => name.to_owned(),
                    (false, false) => format!("{name}={version}"),
                };
                let install = format!(
                    "DEBIAN_FRONTEND=noninteractive {} {}",
                    join([
                        "apt-get",
                        "install",
                        "-y",
                        "--allow-downgrades",
                        "-o",
                        "Dpkg::Options::=--force-confold",
                    ]),
                    operands([&target])
                );
                if local {
                    return install;
                }
                // The install docs hold kubelet, kubeadm and kubectl. apt's
                // --allow-change-held-packages would drop the hold, and the next unattended
                // upgrade could move kubelet past the control plane: unhold, install, hold again
                // (also when the install fails).
                let name = operands([name]);
                format!(
                    "held=$(apt-mark showhold {name}); if [ -n \"$held\" ]; then apt-mark unhold {name} >/dev/null || exit; fi; \
                     {install}; rc=$?; if [ -n \"$held\" ]; then apt-mark hold {name} >/dev/null || rc=1; fi; exit $rc"
                )
            }
            Self::Dnf | Self::Yum => {
                let tool = if self == Self::Dnf { "dnf" } else { "yum" };
                let target = if local || version.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name}-{version}")
                };
                if is_excluded_kubernetes_package(name) {
                    format!(
                        "{} {}",
                        join([tool, "install", "-y", DISABLE_EXCLUDES]),
                        operands([&target])
                    )
                } else {
                    format!("{} {}", join([tool, "install", "-y"]), operands([&target]))
                }
            }
            Self::Pacman if local => format!("pacman -U --noconfirm {}", operands([name])),
            Self::Pacman => format!("pacman -S --noconfirm --needed {}", operands([name])),
        }
    }

    /// The command that points the node's pkgs.k8s.io repository at Kubernetes `minor` ("1.29"):
    /// pkgs.k8s.io has one repository per minor (`…/core:/stable:/v1.29/deb/`, `…/rpm/`), so a
    /// path over several minors switches it per hop. Sources without such a path (the legacy
    /// repositories, which hold every minor) are left alone; `None` for pacman.
    pub fn repository_minor_command(self, minor: &str) -> Option<String> {
        let (dir, kind, refresh) = match self {
            Self::Apt => ("/etc/apt/sources.list.d", "deb", "apt-get update -q"),
            Self::Dnf => ("/etc/yum.repos.d", "rpm", "dnf clean expire-cache -q"),
            Self::Yum => ("/etc/yum.repos.d", "rpm", "yum clean expire-cache -q"),
            Self::Pacman => return None,
        };
        let wanted = format!("/v{minor}/{kind}/");
        Some(format!(
            "changed=; for f in $(grep -lE '/v1\\.[0-9]+/{kind}/' {dir}/* 2>/dev/null); do \
             grep -qF {quoted} \"$f\" && continue; \
             sed -i -E 's#/v1\\.[0-9]+/{kind}/#{wanted}#g' \"$f\" || exit; changed=1; done; \
             if [ -n \"$changed\" ]; then {refresh}; fi",
            quoted = quote(&wanted),
        ))
    }

    /// The command printing the installed version of `name` (exit non-zero when absent).
    pub fn version_command(self, name: &str) -> String {
        match self {
            Self::Apt => format!("dpkg-query -W -f='${{Version}}' {}", operands([name])),
            Self::Dnf | Self::Yum => {
                format!(
                    "rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {}",
                    operands([name])
                )
            }
            Self::Pacman => format!("pacman -Q {}", operands([name])),
        }
    }

    /// Extracts the version from [`Self::version_command`]'s output.
    pub fn parse_version(self, output: &str) -> String {
        let output = output.trim();
        match self {
            Self::Pacman => output
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
            _ => output.to_owned(),
        }
    }

    /// The command listing versions of `name` the repositories offer.
    pub fn available_command(self, name: &str) -> String {
        match self {
            Self::Apt => format!("apt-cache madison {}", operands([name])),
            Self::Dnf | Self::Yum => {
                let tool = if self == Self::Dnf { "dnf" } else { "yum" };
                let mut options = vec![tool, "list", "--showduplicates", "-q"];
                if is_excluded_kubernetes_package(name) {
                    options.push(DISABLE_EXCLUDES);
                }
                format!("{} {} 2>/dev/null", join(options), operands([name]))
            }
            Self::Pacman => format!("pacman -Si {}", operands([name])),
        }
    }

    /// Versions from [`Self::available_command`]'s output, as the tool printed them.
    pub fn parse_available(self, name: &str, output: &str) -> Vec<String> {
        let mut versions: Vec<String> = match self {
            // "kubeadm | 1.21.14-00 | https://… Packages"
            Self::Apt => output
                .lines()
                .filter_map(|l| l.split('|').nth(1))
                .map(|v| v.trim().to_owned())
                .collect(),
            // "kubeadm.x86_64    1.21.14-0    kubernetes"
            Self::Dnf | Self::Yum => output
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .next()
                        .is_some_and(|p| p == name || p.starts_with(&format!("{name}.")))
                })
                .filter_map(|l| l.split_whitespace().nth(1))
                .map(|v| v.split_once(':').map_or(v, |(_, rest)| rest).to_owned())
                .collect(),
            // "Version         : 1.21.14-1"
            Self::Pacman => output
                .lines()
                .filter_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.trim() == "Version")
                        .map(|(_, v)| v.trim().to_owned())
                })
                .collect(),
        };
        versions.dedup();
        versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_map_to_managers() {
        let facts = |id: &str, like: &str, version: &str| OsFacts {
            id: id.into(),
            id_like: like.into(),
            version: version.into(),
            observed: true,
            ..OsFacts::default()
        };
        assert_eq!(
            facts("debian", "", "12").package_manager(),
            Some(PackageManager::Apt)
        );
        assert_eq!(
            facts("ubuntu", "debian", "22.04").package_manager(),
            Some(PackageManager::Apt)
        );
        assert_eq!(
            facts("archarm", "arch", "").package_manager(),
            Some(PackageManager::Pacman)
        );
        assert_eq!(
            facts("rocky", "rhel centos fedora", "9.3").package_manager(),
            Some(PackageManager::Dnf)
        );
        assert_eq!(
            facts("centos", "rhel fedora", "7").package_manager(),
            Some(PackageManager::Yum)
        );
        assert_eq!(facts("gentoo", "", "").package_manager(), None);
    }

    #[test]
    fn facts_parse_os_release_and_uname() {
        let facts = OsFacts::parse(
            "ID=\"rocky\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3\"\n--krun--\naarch64\n6.1.0-13-arm64\n",
        );
        assert_eq!(
            (
                facts.id.as_str(),
                facts.version.as_str(),
                facts.arch.as_str()
            ),
            ("rocky", "9.3", "aarch64")
        );
        assert_eq!(facts.kernel, "6.1.0-13-arm64");
    }

    #[test]
    fn commands_quote_injected_values() {
        let cmd = PackageManager::Apt.install_command("kubeadm", "1.21; rm -rf /");
        assert!(cmd.contains(" 'kubeadm=1.21; rm -rf /';"), "{cmd}");
        assert_eq!(
            PackageManager::Pacman.install_command("/tmp/kubelet-1.12.1-1-aarch64.pkg.tar.zst", ""),
            "pacman -U --noconfirm /tmp/kubelet-1.12.1-1-aarch64.pkg.tar.zst"
        );
        assert_eq!(
            PackageManager::Dnf.install_command("kubelet", "1.21.14"),
            "dnf install -y --disableexcludes=kubernetes kubelet-1.21.14"
        );
        assert_eq!(
            PackageManager::Dnf.install_command("containerd.io", ""),
            "dnf install -y containerd.io"
        );
        assert_eq!(
            PackageManager::Yum.available_command("kubeadm"),
            "yum list --showduplicates -q --disableexcludes=kubernetes kubeadm 2>/dev/null"
        );
        assert_eq!(
            PackageManager::Apt.version_command("kubelet"),
            "dpkg-query -W -f='${Version}' kubelet"
        );
    }

    #[test]
    fn pkgs_k8s_io_repositories_switch_per_minor() {
        let apt = PackageManager::Apt
            .repository_minor_command("1.29")
            .unwrap();
        assert!(
            apt.contains("grep -lE '/v1\\.[0-9]+/deb/' /etc/apt/sources.list.d/*"),
            "{apt}"
        );
        assert!(apt.contains("s#/v1\\.[0-9]+/deb/#/v1.29/deb/#g"), "{apt}");
        assert!(apt.ends_with("then apt-get update -q; fi"), "{apt}");
        let dnf = PackageManager::Dnf
            .repository_minor_command("1.29")
            .unwrap();
        assert!(
            dnf.contains("/etc/yum.repos.d/*") && dnf.contains("#/v1.29/rpm/#g"),
            "{dnf}"
        );
        assert_eq!(
            PackageManager::Pacman.repository_minor_command("1.29"),
            None
        );
    }

    #[test]
    fn apt_installs_keep_the_hold() {
        let cmd = PackageManager::Apt.install_command("kubelet", "1.21.14-00");
        assert!(!cmd.contains("--allow-change-held-packages"), "{cmd}");
        let unhold = cmd.find("apt-mark unhold kubelet").expect("unholds");
        let install = cmd.find("apt-get install").expect("installs");
        let hold = cmd.rfind("apt-mark hold kubelet").expect("holds again");
        assert!(unhold < install && install < hold, "{cmd}");
        let local = PackageManager::Apt.install_command("./kubelet_1.21.14-00_amd64.deb", "");
        assert!(!local.contains("apt-mark"), "{local}");
    }

    #[test]
    fn available_versions_parse() {
        let madison = " kubeadm | 1.21.14-00 | https://apt.kubernetes.io kubernetes-xenial/main amd64 Packages\n kubeadm | 1.21.13-00 | https://apt.kubernetes.io kubernetes-xenial/main amd64 Packages\n";
        assert_eq!(
            PackageManager::Apt.parse_available("kubeadm", madison),
            ["1.21.14-00", "1.21.13-00"]
        );
        let dnf = "Available Packages\nkubeadm.x86_64   1.21.14-0   kubernetes\nkubeadm.x86_64   1.22.17-0   kubernetes\n";
        assert_eq!(
            PackageManager::Dnf.parse_available("kubeadm", dnf),
            ["1.21.14-0", "1.22.17-0"]
        );
        assert_eq!(
            PackageManager::Pacman.parse_available(
                "kubelet",
                "Name            : kubelet\nVersion         : 1.12.1-1\n"
            ),
            ["1.12.1-1"]
        );
        assert_eq!(
            PackageManager::Pacman.parse_version("kubelet 1.12.1-1\n"),
            "1.12.1-1"
        );
    }
}
