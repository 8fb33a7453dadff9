//! The Kubernetes version-skew policy (kubernetes.io/releases/version-skew-policy), as guards.
//!
//! - kube-apiserver: in an HA cluster the newest and oldest instance are at most 1 minor apart.
//! - kubelet: never newer than kube-apiserver; at most 3 minors older from 1.28 on (2 before).
//! - kubeadm upgrades one minor at a time (`kubeadm upgrade apply` refuses to skip a minor).
//!
//! Every comparison is by minor: patches never break the policy.

use std::collections::BTreeMap;

use crate::versions::KubeVersion;

/// How many minors a kubelet may lag behind an apiserver of version `apiserver`.
pub fn max_kubelet_lag(apiserver: KubeVersion) -> i64 {
    if (apiserver.major, apiserver.minor) >= (1, 28) {
        3
    } else {
        2
    }
}

/// Whether a set of kube-apiserver instances may run side by side.
pub fn apiservers_compatible(versions: &[KubeVersion]) -> bool {
    let minors = versions.iter().map(|v| (v.major, v.minor));
    match (minors.clone().min(), minors.max()) {
        (Some(low), Some(high)) => low.0 == high.0 && high.1 - low.1 <= 1,
        _ => true,
    }
}

/// A kubelet outside the supported skew of an apiserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletSkew {
    /// Newer than the apiserver: never supported.
    Newer {
        kubelet: KubeVersion,
        apiserver: KubeVersion,
    },
    /// More minors behind than the policy allows.
    TooOld {
        kubelet: KubeVersion,
        apiserver: KubeVersion,
        allowed: i64,
    },
}

impl std::fmt::Display for KubeletSkew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Newer { kubelet, apiserver } => write!(
                f,
                "kubelet {kubelet} would be newer than kube-apiserver {}; a kubelet must not be newer than the apiserver",
                apiserver.minor_text()
            ),
            Self::TooOld {
                kubelet,
                apiserver,
                allowed,
            } => write!(
                f,
                "kubelet {kubelet} would be {} minors behind kube-apiserver {}; {} allows at most {allowed}",
                apiserver.minors_ahead_of(*kubelet),
                apiserver.minor_text(),
                apiserver.minor_text()
            ),
        }
    }
}

/// Whether a kubelet at `kubelet` is supported with an apiserver at `apiserver`.
pub fn kubelet_skew(kubelet: KubeVersion, apiserver: KubeVersion) -> Option<KubeletSkew> {
    if kubelet.minor_only() > apiserver.minor_only() {
        return Some(KubeletSkew::Newer { kubelet, apiserver });
    }
    let allowed = max_kubelet_lag(apiserver);
    let lag = if kubelet.major == apiserver.major {
        apiserver.minors_ahead_of(kubelet)
    } else {
        i64::MAX
    };
    (lag > allowed).then_some(KubeletSkew::TooOld {
        kubelet,
        apiserver,
        allowed,
    })
}

/// Why `kubeadm upgrade apply` from the current control plane to a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyRefusal {
    #[error(
        "refusing kubeadm upgrade apply {current} -> {target}: one minor at a time; go through {}",
        through.join(", ")
    )]
    SkipsMinors {
        current: KubeVersion,
        target: KubeVersion,
        /// The minors in between ("1.21", "1.22").
        through: Vec<String>,
    },
    #[error("refusing kubeadm upgrade apply {current} -> {target}: that is a downgrade")]
    Downgrade {
        current: KubeVersion,
        target: KubeVersion,
    },
    #[error("refusing kubeadm upgrade apply {current} -> {target}: the major version changes")]
    MajorChange {
        current: KubeVersion,
        target: KubeVersion,
    },
}

impl ApplyRefusal {
    /// Whether `allow_skew` may override it (a downgrade or a major change never).
    pub fn overridable(&self) -> bool {
        matches!(self, Self::SkipsMinors { .. })
    }
}

/// Checks one `kubeadm upgrade apply` hop: at most one minor up (a patch upgrade, or re-applying
/// the same version, is fine), never down.
pub fn check_apply(current: KubeVersion, target: KubeVersion) -> Result<(), ApplyRefusal> {
    if current.major != target.major {
        return Err(ApplyRefusal::MajorChange { current, target });
    }
    let downgrade = target.minor < current.minor
        || (target.minor == current.minor
            && target.patch.is_some()
            && current.patch.is_some()
            && target < current);
    if downgrade {
        return Err(ApplyRefusal::Downgrade { current, target });
    }
    if target.minor > current.minor + 1 {
        let through = (current.minor + 1..target.minor)
            .map(|m| format!("{}.{m}", current.major))
            .collect();
        return Err(ApplyRefusal::SkipsMinors {
            current,
            target,
            through,
        });
    }
    Ok(())
}

/// Every kubelet that would be outside the supported skew once the apiserver is at `apiserver`.
pub fn kubelets_outside_skew(
    kubelets: &BTreeMap<String, KubeVersion>,
    apiserver: KubeVersion,
) -> Vec<(String, KubeletSkew)> {
    kubelets
        .iter()
        .filter_map(|(node, version)| kubelet_skew(*version, apiserver).map(|s| (node.clone(), s)))
        .collect()
}

/// How many minors behind its own version kubeadm lets kubelets be before `kubeadm upgrade
/// apply` refuses ("There are kubelets in this cluster that are too old", bypassed only by
/// `--force`): one up to kubeadm 1.28, three from 1.29 (kubernetes/kubernetes#120825). Stricter
/// than the skew the project supports, which already allowed three minors from 1.28.
pub fn kubeadm_kubelet_lag(kubeadm: KubeVersion) -> u64 {
    if kubeadm.major == 1 && kubeadm.minor >= 29 {
        3
    } else {
        1
    }
}

/// The kubelets `kubeadm upgrade apply v<target>` (kubeadm at `target`) refuses, oldest first.
pub fn kubelets_kubeadm_refuses(
    kubelets: &BTreeMap<String, KubeVersion>,
    target: KubeVersion,
) -> Vec<(String, KubeVersion)> {
    let lag = kubeadm_kubelet_lag(target);
    let mut old: Vec<(String, KubeVersion)> = kubelets
        .iter()
        .filter(|(_, v)| v.major == target.major && v.minor + lag < target.minor)
        .map(|(node, v)| (node.clone(), *v))
        .collect();
    old.sort_by_key(|(node, v)| (*v, node.clone()));
    old
}

/// The kube-apiservers that would be more than one minor behind `target` once one of them
/// runs it (HA instances must stay within one minor of each other).
pub fn apiservers_left_behind(
    apiservers: &BTreeMap<String, KubeVersion>,
    target: KubeVersion,
) -> Vec<(String, KubeVersion)> {
    apiservers
        .iter()
        .filter(|(_, v)| !apiservers_compatible(&[**v, target]))
        .map(|(node, v)| (node.clone(), *v))
        .collect()
}

/// What the command knows about versions while it runs: the control plane and kubelets as
/// observed, advanced by the changes the command made (or, in a dry-run, recorded). Later guards
/// in the same command judge against it, so a dry-run of two hops checks the second against
/// the first.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub control_plane: Option<KubeVersion>,
    pub kubelets: BTreeMap<String, KubeVersion>,
    /// kube-apiserver versions by node, as this command left them.
    pub apiservers: BTreeMap<String, KubeVersion>,
    /// Nodes seen running a kube-apiserver.
    pub apiserver_nodes: std::collections::BTreeSet<String>,
}

impl Planned {
    /// The control-plane version to judge against: the newer of what the apiserver reports and
    /// what this command already applied.
    pub fn control_plane(&self, observed: Option<KubeVersion>) -> Option<KubeVersion> {
        match (observed, self.control_plane) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// kube-apiserver versions as reported, each raised to what this command applied.
    pub fn apiservers(
        &self,
        observed: BTreeMap<String, KubeVersion>,
    ) -> BTreeMap<String, KubeVersion> {
        let mut all = observed;
        for (node, version) in &self.apiservers {
            let entry = all.entry(node.clone()).or_insert(*version);
            *entry = (*entry).max(*version);
        }
        all
    }

    /// Kubelet versions as reported, with those this command installed on top.
    pub fn kubelets(
        &self,
        observed: BTreeMap<String, KubeVersion>,
    ) -> BTreeMap<String, KubeVersion> {
        let mut all = observed;
        for (node, version) in &self.kubelets {
            all.insert(node.clone(), *version);
        }
        all
    }
}

/// The kubelet version a package install names: package `kubelet` at `version`, or a package
/// file `kubelet-1.12.1-1-aarch64.pkg.tar.zst` / `kubelet_1.21.14-00_amd64.deb`.
pub fn kubelet_package_version(name: &str, version: &str) -> Option<KubeVersion> {
    // Arch Linux's single `kubernetes` package (and the team-built one of the ARM report,
    // `kubernetes-1.12.1-1-aarch64.pkg.tar.xz`) carries kubelet too; AUR's is `kubelet-bin`.
    if matches!(name, "kubelet" | "kubelet-bin" | "kubernetes") {
        return KubeVersion::parse(version).filter(|v| v.patch.is_some());
    }
    let file = name.rsplit('/').next()?;
    let rest = ["kubelet-bin-", "kubelet-", "kubelet_", "kubernetes-"]
        .iter()
        .find_map(|prefix| file.strip_prefix(prefix))
        // kubernetes-cni-1.2.0 is the CNI plugins, not Kubernetes.
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))?;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    KubeVersion::parse(version.trim_end_matches('.')).filter(|v| v.patch.is_some())
}

/// "kubelet 1.20.15 would be 3 minors behind … (3 nodes: cp-1, n1, n2)": one entry per
/// problem, so a large cluster gives a short line.
pub fn group_by_problem(outside: &[(String, KubeletSkew)]) -> Vec<String> {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (node, skew) in outside {
        groups.entry(skew.to_string()).or_default().push(node);
    }
    groups
        .into_iter()
        .map(|(problem, nodes)| {
            let shown: Vec<&str> = nodes.iter().take(5).copied().collect();
            let more = nodes.len().saturating_sub(shown.len());
            let mut names = shown.join(", ");
            if more > 0 {
                names.push_str(&format!(" and {more} more"));
            }
            let count = if nodes.len() == 1 {
                "node".to_owned()
            } else {
                format!("{} nodes", nodes.len())
            };
            format!("{problem} ({count}: {names})")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_refuses_kubelets_one_minor_behind_until_1_28_and_three_from_1_29() {
        let v = |text: &str| KubeVersion::parse(text).unwrap();
        let kubelets: BTreeMap<String, KubeVersion> = [
            ("w1".to_owned(), v("1.20.15")),
            ("w2".to_owned(), v("1.21.14")),
            ("m1".to_owned(), v("1.22.17")),
        ]
        .into();
        assert_eq!(
            kubelets_kubeadm_refuses(&kubelets, v("1.22.17")),
            [("w1".to_owned(), v("1.20.15"))]
        );
        assert!(kubelets_kubeadm_refuses(&kubelets, v("1.21.14")).is_empty());
        let kubelets: BTreeMap<String, KubeVersion> = [
            ("w1".to_owned(), v("1.26.15")),
            ("w2".to_owned(), v("1.25.16")),
        ]
        .into();
        assert_eq!(
            kubelets_kubeadm_refuses(&kubelets, v("1.28.15")),
            [
                ("w2".to_owned(), v("1.25.16")),
                ("w1".to_owned(), v("1.26.15"))
            ]
        );
        assert_eq!(
            kubelets_kubeadm_refuses(&kubelets, v("1.29.14")),
            [("w2".to_owned(), v("1.25.16"))]
        );
    }

    fn v(text: &str) -> KubeVersion {
        KubeVersion::parse(text).unwrap()
    }

    // The examples of the version-skew policy document, one assertion each.
    #[test]
    fn kube_apiserver_ha_instances_within_one_minor() {
        // "newest kube-apiserver is at 1.33 … other instances supported at 1.33 and 1.32"
        assert!(apiservers_compatible(&[v("1.33.0"), v("1.32.4")]));
        assert!(apiservers_compatible(&[v("1.33.0"), v("1.33.1")]));
        assert!(!apiservers_compatible(&[v("1.33.0"), v("1.31.9")]));
        assert!(apiservers_compatible(&[]));
    }

    #[test]
    fn kubelet_never_newer_than_the_apiserver() {
        assert_eq!(
            kubelet_skew(v("1.22.17"), v("1.21.14")),
            Some(KubeletSkew::Newer {
                kubelet: v("1.22.17"),
                apiserver: v("1.21.14")
            })
        );
        // A newer patch of the same minor is not a newer minor.
        assert_eq!(kubelet_skew(v("1.21.14"), v("1.21.2")), None);
    }

    #[test]
    fn kubelet_lag_three_minors_from_1_28_two_before() {
        // "kube-apiserver is at 1.33: kubelet supported at 1.33, 1.32, 1.31, and 1.30"
        for kubelet in ["1.33.0", "1.32.1", "1.31.2", "1.30.3"] {
            assert_eq!(kubelet_skew(v(kubelet), v("1.33.0")), None, "{kubelet}");
        }
        assert!(matches!(
            kubelet_skew(v("1.29.9"), v("1.33.0")),
            Some(KubeletSkew::TooOld { allowed: 3, .. })
        ));
        // 1.28 is the first version with three.
        assert_eq!(kubelet_skew(v("1.25.16"), v("1.28.0")), None);
        // Before 1.28: "kube-apiserver is at 1.25, kubelet supported at 1.25, 1.24, and 1.23".
        assert_eq!(kubelet_skew(v("1.23.17"), v("1.25.16")), None);
        assert!(matches!(
            kubelet_skew(v("1.22.17"), v("1.25.16")),
            Some(KubeletSkew::TooOld { allowed: 2, .. })
        ));
        assert_eq!(
            kubelet_skew(v("1.20.15"), v("1.23.17"))
                .unwrap()
                .to_string(),
            "kubelet 1.20.15 would be 3 minors behind kube-apiserver 1.23; 1.23 allows at most 2"
        );
    }

    #[test]
    fn kubeadm_upgrade_apply_goes_one_minor_at_a_time() {
        assert_eq!(check_apply(v("1.20.15"), v("1.21.14")), Ok(()));
        assert_eq!(check_apply(v("1.21.2"), v("1.21.14")), Ok(()));
        assert_eq!(check_apply(v("1.21.14"), v("1.21.14")), Ok(()));
        let refusal = check_apply(v("1.20.15"), v("1.23.17")).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "refusing kubeadm upgrade apply 1.20.15 -> 1.23.17: one minor at a time; go through 1.21, 1.22"
        );
        assert!(refusal.overridable());
        let refusal = check_apply(v("1.22.1"), v("1.21.14")).unwrap_err();
        assert!(matches!(refusal, ApplyRefusal::Downgrade { .. }));
        assert!(!refusal.overridable());
        assert!(matches!(
            check_apply(v("1.21.14"), v("1.21.2")),
            Err(ApplyRefusal::Downgrade { .. })
        ));
        assert!(matches!(
            check_apply(v("1.33.1"), v("2.0.0")),
            Err(ApplyRefusal::MajorChange { .. })
        ));
    }

    #[test]
    fn ha_apiservers_may_not_fall_two_minors_behind() {
        let apiservers = BTreeMap::from([
            ("cp-1".to_owned(), v("1.21.14")),
            ("cp-2".to_owned(), v("1.21.14")),
            ("cp-3".to_owned(), v("1.20.15")),
        ]);
        assert!(apiservers_left_behind(&apiservers, v("1.21.14")).is_empty());
        assert_eq!(
            apiservers_left_behind(&apiservers, v("1.22.17")),
            [("cp-3".to_owned(), v("1.20.15"))]
        );
        let mut planned = Planned::default();
        planned.apiservers.insert("cp-3".into(), v("1.21.14"));
        assert!(apiservers_left_behind(&planned.apiservers(apiservers), v("1.22.17")).is_empty());
    }

    #[test]
    fn planned_versions_advance_what_was_observed() {
        let mut planned = Planned::default();
        assert_eq!(planned.control_plane(None), None);
        assert_eq!(
            planned.control_plane(Some(v("1.20.15"))),
            Some(v("1.20.15"))
        );
        planned.control_plane = Some(v("1.21.14"));
        assert_eq!(
            planned.control_plane(Some(v("1.20.15"))),
            Some(v("1.21.14"))
        );
        assert_eq!(planned.control_plane(None), Some(v("1.21.14")));
        planned.kubelets.insert("n1".into(), v("1.21.14"));
        let observed = BTreeMap::from([
            ("n1".to_owned(), v("1.20.15")),
            ("n2".to_owned(), v("1.20.15")),
        ]);
        let all = planned.kubelets(observed);
        assert_eq!(all["n1"], v("1.21.14"));
        assert_eq!(
            kubelets_outside_skew(&all, v("1.23.0"))
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["n2"]
        );
    }

    #[test]
    fn skew_problems_are_grouped_for_large_clusters() {
        let v = |t: &str| KubeVersion::parse(t).unwrap();
        let old = KubeletSkew::TooOld {
            kubelet: v("1.20.15"),
            apiserver: v("1.23.17"),
            allowed: 2,
        };
        let mut outside: Vec<(String, KubeletSkew)> =
            (1..=7).map(|i| (format!("n{i}"), old.clone())).collect();
        outside.push((
            "cp-1".into(),
            KubeletSkew::Newer {
                kubelet: v("1.24.0"),
                apiserver: v("1.23.17"),
            },
        ));
        assert_eq!(
            group_by_problem(&outside),
            [
                "kubelet 1.20.15 would be 3 minors behind kube-apiserver 1.23; 1.23 allows at most 2 (7 nodes: n1, n2, n3, n4, n5 and 2 more)",
                "kubelet 1.24.0 would be newer than kube-apiserver 1.23; a kubelet must not be newer than the apiserver (node: cp-1)"
            ]
        );
    }

    #[test]
    fn kubelet_versions_from_package_names_and_files() {
        let v = |t: &str| KubeVersion::parse(t);
        assert_eq!(
            kubelet_package_version("kubelet", "1.21.14-00"),
            v("1.21.14")
        );
        assert_eq!(kubelet_package_version("kubelet", ""), None);
        assert_eq!(kubelet_package_version("kubeadm", "1.21.14-00"), None);
        assert_eq!(
            kubelet_package_version("/tmp/kubelet-1.12.1-1-aarch64.pkg.tar.zst", ""),
            v("1.12.1")
        );
        assert_eq!(
            kubelet_package_version("./kubelet_1.21.14-00_amd64.deb", ""),
            v("1.21.14")
        );
        assert_eq!(
            kubelet_package_version("kubelet-1.21.14-0.x86_64.rpm", ""),
            v("1.21.14")
        );
        assert_eq!(
            kubelet_package_version("/tmp/kubectl-1.21.14.deb", ""),
            None
        );
        assert_eq!(
            kubelet_package_version("/root/pkgs/kubernetes-1.12.1-1-aarch64.pkg.tar.xz", ""),
            v("1.12.1")
        );
        assert_eq!(
            kubelet_package_version("kubernetes", "1.12.1-1"),
            v("1.12.1")
        );
        assert_eq!(
            kubelet_package_version("kubelet-bin-1.21.14-1-x86_64.pkg.tar.zst", ""),
            v("1.21.14")
        );
        assert_eq!(
            kubelet_package_version("/tmp/kubernetes-cni-1.2.0-0.x86_64.rpm", ""),
            None
        );
    }
}
