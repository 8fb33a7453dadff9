//! What the simulated apiserver serves, by the Kubernetes version it plays (1.14 to 1.33):
//! which group versions exist, which Eviction version `pods/eviction` announces, and which
//! behaviours a feature gate turns on by default. A tool tested against the simulator then
//! takes the code paths it would take against that version.
//!
//! Sources, for every row below:
//! - API removals: the Kubernetes deprecation guide
//!   (kubernetes.io/docs/reference/using-api/deprecation-guide/) and each release's CHANGELOG
//!   ("policy/v1beta1 PodDisruptionBudget … no longer served as of v1.25", "batch/v1beta1
//!   CronJob … v1.25", "autoscaling/v2beta2 … v1.26", "discovery.k8s.io/v1beta1 … v1.25",
//!   "networking.k8s.io/v1beta1 Ingress and IngressClass … v1.22",
//!   "apiextensions.k8s.io/v1beta1 … v1.22");
//! - additions: CHANGELOG-1.21 ("PodDisruptionBudget … policy/v1", "CronJob … batch/v1",
//!   "EndpointSlice … discovery.k8s.io/v1"), CHANGELOG-1.22 ("Eviction … policy/v1"),
//!   CHANGELOG-1.23 ("HorizontalPodAutoscaler … autoscaling/v2"), CHANGELOG-1.19 (Ingress and
//!   IngressClass in networking.k8s.io/v1), CHANGELOG-1.16 (CustomResourceDefinition in
//!   apiextensions.k8s.io/v1), CHANGELOG-1.17 (EndpointSlice discovery.k8s.io/v1beta1);
//! - feature gates (kubernetes.io/docs/reference/command-line-tools-reference/feature-gates/):
//!   `PDBUnhealthyPodEvictionPolicy` beta and on from 1.27, `PodDisruptionConditions` beta and
//!   on from 1.26, `PodIndexLabel` beta and on from 1.28;
//! - policy/v1 changed an empty PDB selector from "no pods" to "every pod of the namespace"
//!   (CHANGELOG-1.21; `pkg/controller/disruption/disruption.go` `getPodsForPdb` before 1.21
//!   returns no pods for an empty selector).

/// The oldest and newest minor versions the simulator can play.
pub(crate) const OLDEST_MINOR: u32 = 14;
pub(crate) const NEWEST_MINOR: u32 = 33;

/// One group's versions of a kind: `(version, first minor served, first minor no longer
/// served)`, newest first.
type Versions = &'static [(&'static str, u32, u32)];

const STILL: u32 = u32::MAX;

/// Kinds whose group version depends on the cluster's version. Kinds not listed are served
/// under the one version the registry names (all stable since before 1.14).
#[rustfmt::skip]
const VERSIONED: &[(&str, &str, Versions)] = &[
    ("policy", "PodDisruptionBudget", &[("v1", 21, STILL), ("v1beta1", 0, 25)]),
    ("batch", "CronJob", &[("v1", 21, STILL), ("v1beta1", 0, 25)]),
    ("autoscaling", "HorizontalPodAutoscaler", &[("v2", 23, STILL), ("v2beta2", 12, 26)]),
    ("discovery.k8s.io", "EndpointSlice", &[("v1", 21, STILL), ("v1beta1", 17, 25)]),
    ("networking.k8s.io", "Ingress", &[("v1", 19, STILL), ("v1beta1", 14, 22)]),
    ("networking.k8s.io", "IngressClass", &[("v1", 19, STILL), ("v1beta1", 18, 22)]),
    ("apiextensions.k8s.io", "CustomResourceDefinition", &[("v1", 16, STILL), ("v1beta1", 0, 22)]),
];

/// The Kubernetes version the simulator plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub minor: u32,
}

impl Version {
    /// `v1.20.15` → 1.20; `None` for anything that is not a 1.x version.
    pub fn of(git_version: &str) -> Option<Version> {
        let mut parts = git_version.trim_start_matches('v').split(['.', '-', '+']);
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        (major == 1).then_some(Version { minor })
    }

    /// Versions outside what the table covers are played as the nearest covered one.
    pub fn clamped(self) -> Version {
        Version {
            minor: self.minor.clamp(OLDEST_MINOR, NEWEST_MINOR),
        }
    }

    pub fn newest() -> Version {
        Version {
            minor: NEWEST_MINOR,
        }
    }

    /// The versions of `group`'s `kind` served, newest (the preferred) first; `None` when the
    /// kind's version does not depend on the cluster's.
    pub fn served_versions(&self, group: &str, kind: &str) -> Option<Vec<&'static str>> {
        let (_, _, versions) = VERSIONED
            .iter()
            .find(|(g, k, _)| *g == group && *k == kind)?;
        Some(
            versions
                .iter()
                .filter(|(_, since, until)| *since <= self.minor && self.minor < *until)
                .map(|(v, _, _)| *v)
                .collect(),
        )
    }

    /// Every version of `group`'s `kind` that some release served: what a snapshot may carry.
    pub fn any_version_of(group: &str, kind: &str, version: &str) -> bool {
        VERSIONED
            .iter()
            .filter(|(g, k, _)| *g == group && *k == kind)
            .any(|(_, _, versions)| versions.iter().any(|(v, _, _)| *v == version))
    }

    /// The version `pods/eviction` announces (`policy/v1` from 1.22).
    pub fn eviction_version(&self) -> &'static str {
        if self.minor >= 22 { "v1" } else { "v1beta1" }
    }

    /// Whether an empty PDB selector selects every pod of the namespace (policy/v1, 1.21+)
    /// rather than none.
    pub fn empty_pdb_selector_selects_all(&self) -> bool {
        self.minor >= 21
    }

    /// Whether `unhealthyPodEvictionPolicy` is kept and honoured.
    pub fn honours_unhealthy_pod_eviction_policy(&self) -> bool {
        self.minor >= 27
    }

    /// Whether an evicted pod gets the `DisruptionTarget` condition.
    pub fn disruption_target_condition(&self) -> bool {
        self.minor >= 26
    }

    /// Whether StatefulSet pods carry `apps.kubernetes.io/pod-index`.
    pub fn pod_index_label(&self) -> bool {
        self.minor >= 28
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u32) -> Version {
        Version { minor }
    }

    #[test]
    fn budgets_move_from_v1beta1_to_v1_over_four_releases() {
        let pdb = |minor| v(minor).served_versions("policy", "PodDisruptionBudget");
        assert_eq!(pdb(20), Some(vec!["v1beta1"]));
        assert_eq!(pdb(21), Some(vec!["v1", "v1beta1"]));
        assert_eq!(pdb(24), Some(vec!["v1", "v1beta1"]));
        assert_eq!(pdb(25), Some(vec!["v1"]));
        assert_eq!(v(21).eviction_version(), "v1beta1");
        assert_eq!(v(22).eviction_version(), "v1");
        assert_eq!(v(33).served_versions("apps", "Deployment"), None);
        assert_eq!(
            v(16).served_versions("discovery.k8s.io", "EndpointSlice"),
            Some(vec![])
        );
    }

    #[test]
    fn versions_parse_and_clamp() {
        assert_eq!(Version::of("v1.20.15"), Some(v(20)));
        assert_eq!(Version::of("1.33.0-rc.1"), Some(v(33)));
        assert_eq!(Version::of("v2.0.0"), None);
        assert_eq!(v(12).clamped(), v(14));
        assert_eq!(v(40).clamped(), v(33));
    }
}
