//! Which pods a drain evicts, skips or refuses: a pure function of the pods on the node.
//!
//! The rules are those of `kubectl drain` (k8s.io/kubectl/pkg/drain, filters applied in
//! kubectl's order: long-terminating, DaemonSet, mirror, local storage, unreplicated), so a
//! team moving from kubectl gets the same answer for the same cluster. One deliberate
//! difference in the *message*, not the decision: kubectl stops at the first objection per
//! pod, so an operator may need three attempts to learn every flag a node needs; the plan
//! lists every option that would let each refused pod go.
//!
//! Keeping this free of I/O lets dry-run show the same plan a live drain acts on, and lets
//! the rules be tested case by case without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::pod::{self, PodRef};
use super::selector::Selector;

/// The options of `kubectl drain` that decide which pods may go.
#[derive(Debug, Clone, Default)]
pub struct DrainFilters {
    /// Leave DaemonSet pods in place instead of refusing (`--ignore-daemonsets`).
    pub ignore_daemonsets: bool,
    /// Allow evicting pods with emptyDir volumes, whose data is lost (`--delete-emptydir-data`).
    pub delete_emptydir_data: bool,
    /// Allow evicting pods without a controller (never recreated) and pods whose DaemonSet
    /// is gone (`--force`).
    pub force: bool,
    /// Only pods matching this selector are considered (`--pod-selector`).
    pub pod_selector: Selector,
    /// Skip pods that have been terminating for longer than this
    /// (`--skip-wait-for-delete-timeout`).
    pub skip_wait_for_delete_timeout: Option<Duration>,
}

/// What the API server said about a DaemonSet that controls a pod on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonSetLookup {
    Exists,
    Missing,
    /// The lookup failed for another reason (forbidden, server error): the message.
    Failed(String),
}

/// The DaemonSets the plan needs looked up, by `(namespace, name)`.
pub type DaemonSets = BTreeMap<(String, String), DaemonSetLookup>;

/// Why a pod stays on the node without being a problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// Managed by a DaemonSet, which would recreate it on the node anyway.
    DaemonSet { daemonset: String },
    /// The API copy of a static pod; the kubelet owns it and the API server cannot delete it.
    MirrorPod,
    /// Already terminating for longer than `skip_wait_for_delete_timeout`.
    Terminating { for_seconds: u64 },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::DaemonSet { daemonset } => write!(f, "DaemonSet {daemonset}"),
            SkipReason::MirrorPod => f.write_str("mirror pod (static pod of the kubelet)"),
            SkipReason::Terminating { for_seconds } => {
                write!(f, "terminating for {for_seconds}s")
            }
        }
    }
}

/// Why a pod may not be evicted with the options given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// A DaemonSet pod, and `ignore_daemonsets` is not set.
    DaemonSet { daemonset: String },
    /// The pod's DaemonSet no longer exists; only `force` removes it.
    DaemonSetMissing { daemonset: String },
    /// The pod's DaemonSet could not be looked up; no option helps until the API answers.
    DaemonSetUnknown { daemonset: String, error: String },
    /// Uses emptyDir, whose data is lost.
    LocalStorage,
    /// No controller: nothing recreates it.
    Unmanaged,
}

impl Refusal {
    /// The drain option that overrides this objection, if any.
    pub fn option(&self) -> Option<&'static str> {
        match self {
            Refusal::DaemonSet { .. } => Some("ignore_daemonsets"),
            Refusal::DaemonSetMissing { .. } | Refusal::Unmanaged => Some("force"),
            Refusal::LocalStorage => Some("delete_emptydir_data"),
            Refusal::DaemonSetUnknown { .. } => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DaemonSet { daemonset } => write!(f, "managed by DaemonSet {daemonset}"),
            Refusal::DaemonSetMissing { daemonset } => {
                write!(f, "its DaemonSet {daemonset} no longer exists")
            }
            Refusal::DaemonSetUnknown { daemonset, error } => {
                write!(f, "cannot look up its DaemonSet {daemonset}: {error}")
            }
            Refusal::LocalStorage => f.write_str("uses emptyDir (local data would be lost)"),
            Refusal::Unmanaged => f.write_str("has no controller (it would not be recreated)"),
        }
    }
}

/// Something an operator should know about a pod that will be evicted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "warning", rename_all = "snake_case")]
pub enum Warning {
    /// Its emptyDir data is deleted with it.
    LocalStorageDeleted,
    /// No controller: once evicted, it is gone for good.
    Unmanaged,
    /// A DaemonSet pod whose DaemonSet is gone.
    OrphanedDaemonSetPod { daemonset: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::LocalStorageDeleted => f.write_str("its emptyDir data will be deleted"),
            Warning::Unmanaged => f.write_str("no controller will recreate it"),
            Warning::OrphanedDaemonSetPod { daemonset } => {
                write!(f, "its DaemonSet {daemonset} no longer exists")
            }
        }
    }
}

/// The decision for one pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PodAction {
    Evict { warnings: Vec<Warning> },
    Skip(SkipReason),
    Refuse { refusals: Vec<Refusal> },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodDecision {
    pub pod: PodRef,
    #[serde(flatten)]
    pub action: PodAction,
}

/// The drain plan for a node: one decision per pod (pods outside `pod_selector` are left out,
/// as kubectl never lists them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DrainPlan {
    pub node: String,
    pub pods: Vec<PodDecision>,
}

impl DrainPlan {
    pub fn to_evict(&self) -> impl Iterator<Item = &PodRef> {
        self.pods
            .iter()
            .filter(|d| matches!(d.action, PodAction::Evict { .. }))
            .map(|d| &d.pod)
    }

    pub fn skipped(&self) -> impl Iterator<Item = (&PodRef, &SkipReason)> {
        self.pods.iter().filter_map(|d| match &d.action {
            PodAction::Skip(reason) => Some((&d.pod, reason)),
            _ => None,
        })
    }

    pub fn refused(&self) -> impl Iterator<Item = (&PodRef, &[Refusal])> {
        self.pods.iter().filter_map(|d| match &d.action {
            PodAction::Refuse { refusals } => Some((&d.pod, refusals.as_slice())),
            _ => None,
        })
    }

    /// `Ok` when no pod is refused; otherwise every refused pod with what would allow it.
    pub fn check(&self) -> Result<(), RefusedDrain> {
        let pods: Vec<(PodRef, Vec<Refusal>)> = self
            .refused()
            .map(|(pod, refusals)| (pod.clone(), refusals.to_vec()))
            .collect();
        if pods.is_empty() {
            Ok(())
        } else {
            Err(RefusedDrain {
                node: self.node.clone(),
                pods,
            })
        }
    }
}

/// A drain that may not start: every refused pod, and the options that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDrain {
    pub node: String,
    pub pods: Vec<(PodRef, Vec<Refusal>)>,
}

impl RefusedDrain {
    /// The options that, together, would let every refused pod go (empty when some refusal
    /// has no option, such as a DaemonSet that could not be looked up).
    pub fn options_needed(&self) -> BTreeSet<&'static str> {
        self.pods
            .iter()
            .flat_map(|(_, refusals)| refusals.iter().filter_map(Refusal::option))
            .collect()
    }
}

impl fmt::Display for RefusedDrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drain of node {} refused, nothing was evicted: {} pod{} cannot be removed:",
            self.node,
            self.pods.len(),
            if self.pods.len() == 1 { "" } else { "s" }
        )?;
        for (pod, refusals) in &self.pods {
            write!(f, "\n  {pod}: ")?;
            for (i, refusal) in refusals.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                match refusal.option() {
                    Some(option) => write!(f, "{refusal} (allow with {option})")?,
                    None => write!(f, "{refusal}")?,
                }
            }
        }
        let options = self.options_needed();
        if !options.is_empty() {
            let options: Vec<_> = options.into_iter().collect();
            write!(f, "\nset {} to drain anyway", options.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for RefusedDrain {}

/// The DaemonSets that pods on the node claim as controller: the lookups `plan` needs.
pub fn daemonsets_to_look_up(pods: &[Pod]) -> BTreeSet<(String, String)> {
    pods.iter()
        .filter(|p| !pod::is_finished(p))
        .filter_map(|p| {
            let owner = pod::controller_of(p)?;
            (owner.kind == "DaemonSet").then(|| {
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    owner.name.clone(),
                )
            })
        })
        .collect()
}

/// Decides every pod on `node`. `daemonsets` answers the lookups of
/// [`daemonsets_to_look_up`]; a DaemonSet missing from it counts as not looked up (refused).
/// `now` is the reference for `skip_wait_for_delete_timeout`.
pub fn plan(
    node: &str,
    pods: &[Pod],
    daemonsets: &DaemonSets,
    filters: &DrainFilters,
    now: Timestamp,
) -> DrainPlan {
    let pods = pods
        .iter()
        .filter(|p| filters.pod_selector.matches(pod::labels(p)))
        .map(|p| PodDecision {
            pod: PodRef::of(p),
            action: decide(p, daemonsets, filters, now),
        })
        .collect();
    DrainPlan {
        node: node.to_owned(),
        pods,
    }
}

fn decide(p: &Pod, daemonsets: &DaemonSets, filters: &DrainFilters, now: Timestamp) -> PodAction {
    if let (Some(limit), Some(deleted)) = (
        filters.skip_wait_for_delete_timeout,
        pod::deletion_timestamp(p),
    ) {
        // kubectl compares whole seconds, and a limit of 0 disables the check.
        let for_seconds = (now.as_second() - deleted.as_second())
            .max(0)
            .unsigned_abs();
        if limit.as_secs() > 0 && for_seconds > limit.as_secs() {
            return PodAction::Skip(SkipReason::Terminating { for_seconds });
        }
    }
    let finished = pod::is_finished(p);
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();

    if let Some(owner) = pod::controller_of(p).filter(|o| o.kind == "DaemonSet")
        && !finished
    {
        let namespace = p.metadata.namespace.clone().unwrap_or_default();
        let daemonset = format!("{namespace}/{}", owner.name);
        match daemonsets.get(&(namespace, owner.name.clone())) {
            Some(DaemonSetLookup::Exists) if filters.ignore_daemonsets => {
                return PodAction::Skip(SkipReason::DaemonSet { daemonset });
            }
            // With ignore_daemonsets the pod would be skipped, so no other objection matters.
            Some(DaemonSetLookup::Exists) => {
                return PodAction::Refuse {
                    refusals: vec![Refusal::DaemonSet { daemonset }],
                };
            }
            Some(DaemonSetLookup::Missing) if filters.force => {
                warnings.push(Warning::OrphanedDaemonSetPod { daemonset });
            }
            // With force the pod would be evicted, so keep looking for other objections.
            Some(DaemonSetLookup::Missing) => {
                refusals.push(Refusal::DaemonSetMissing { daemonset });
            }
            Some(DaemonSetLookup::Failed(error)) => {
                return PodAction::Refuse {
                    refusals: vec![Refusal::DaemonSetUnknown {
                        daemonset,
                        error: error.clone(),
                    }],
                };
            }
            None => {
                return PodAction::Refuse {
                    refusals: vec![Refusal::DaemonSetUnknown {
                        daemonset,
                        error: "not looked up".to_owned(),
                    }],
                };
            }
        }
    }

    if pod::is_mirror(p) {
        return if refusals.is_empty() {
            PodAction::Skip(SkipReason::MirrorPod)
        } else {
            PodAction::Refuse { refusals }
        };
    }

    if pod::has_empty_dir(p) && !finished {
        if filters.delete_emptydir_data {
            warnings.push(Warning::LocalStorageDeleted);
        } else {
            refusals.push(Refusal::LocalStorage);
        }
    }

    if pod::controller_of(p).is_none() && !finished {
        if filters.force {
            warnings.push(Warning::Unmanaged);
        } else {
            refusals.push(Refusal::Unmanaged);
        }
    }

    if refusals.is_empty() {
        PodAction::Evict { warnings }
    } else {
        PodAction::Refuse { refusals }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    /// A running pod in `default` on node n1, built up by the methods below.
    struct PodBuilder(Pod);

    fn pod(name: &str) -> PodBuilder {
        PodBuilder(Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".to_owned()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".to_owned()),
                ..Default::default()
            }),
        })
    }

    impl PodBuilder {
        fn owned_by(mut self, kind: &str, name: &str, controller: bool) -> Self {
            self.0
                .metadata
                .owner_references
                .get_or_insert_with(Vec::new)
                .push(OwnerReference {
                    api_version: "apps/v1".to_owned(),
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    uid: format!("uid-{name}"),
                    controller: Some(controller),
                    block_owner_deletion: None,
                });
            self
        }
        fn replicaset(self) -> Self {
            self.owned_by("ReplicaSet", "web-5d8f", true)
        }
        fn daemonset(self, name: &str) -> Self {
            self.owned_by("DaemonSet", name, true)
        }
        fn mirror(mut self) -> Self {
            self.0
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(MIRROR.to_owned(), "abc".to_owned());
            self.owned_by("Node", "n1", true)
        }
        fn empty_dir(mut self) -> Self {
            self.0
                .spec
                .as_mut()
                .unwrap()
                .volumes
                .get_or_insert_with(Vec::new)
                .push(Volume {
                    name: "scratch".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                });
            self
        }
        fn phase(mut self, phase: &str) -> Self {
            self.0.status.as_mut().unwrap().phase = Some(phase.to_owned());
            self
        }
        fn label(mut self, key: &str, value: &str) -> Self {
            self.0
                .metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(key.to_owned(), value.to_owned());
            self
        }
        fn deleted_at(mut self, at: Timestamp) -> Self {
            self.0.metadata.deletion_timestamp = Some(Time(at));
            self
        }
        fn build(self) -> Pod {
            self.0
        }
    }

    const MIRROR: &str = super::super::pod::MIRROR_ANNOTATION;

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn existing(names: &[&str]) -> DaemonSets {
        names
            .iter()
            .map(|n| {
                (
                    ("default".to_owned(), (*n).to_owned()),
                    DaemonSetLookup::Exists,
                )
            })
            .collect()
    }

    fn decide_one(p: Pod, daemonsets: &DaemonSets, filters: &DrainFilters) -> PodAction {
        let plan = plan("n1", &[p], daemonsets, filters, now());
        assert_eq!(plan.pods.len(), 1);
        plan.pods.into_iter().next().unwrap().action
    }

    fn flags(ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool) -> DrainFilters {
        DrainFilters {
            ignore_daemonsets,
            delete_emptydir_data,
            force,
            ..Default::default()
        }
    }

    fn evict() -> PodAction {
        PodAction::Evict { warnings: vec![] }
    }

    fn refuse(refusals: Vec<Refusal>) -> PodAction {
        PodAction::Refuse { refusals }
    }

    fn ds(name: &str) -> String {
        format!("default/{name}")
    }

    #[test]
    fn replicated_pods_are_evicted_without_options() {
        let action = decide_one(
            pod("web-1").replicaset().build(),
            &DaemonSets::new(),
            &flags(false, false, false),
        );
        assert_eq!(action, evict());
    }

    #[test]
    fn statefulset_and_job_pods_count_as_managed() {
        for kind in [
            "StatefulSet",
            "Job",
            "ReplicationController",
            "SomeOperatorKind",
        ] {
            let action = decide_one(
                pod("p").owned_by(kind, "owner", true).build(),
                &DaemonSets::new(),
                &flags(false, false, false),
            );
            assert_eq!(action, evict(), "{kind}");
        }
    }

    #[test]
    fn an_owner_that_is_not_the_controller_does_not_count() {
        let action = decide_one(
            pod("p").owned_by("ReplicaSet", "rs", false).build(),
            &DaemonSets::new(),
            &flags(false, false, false),
        );
        assert_eq!(action, refuse(vec![Refusal::Unmanaged]));
    }

    #[test]
    fn daemonset_pods_are_refused_without_ignore_daemonsets() {
        let action = decide_one(
            pod("kube-proxy-x").daemonset("kube-proxy").build(),
            &existing(&["kube-proxy"]),
            &flags(false, true, true),
        );
        assert_eq!(
            action,
            refuse(vec![Refusal::DaemonSet {
                daemonset: ds("kube-proxy")
            }])
        );
    }

    #[test]
    fn daemonset_pods_are_skipped_with_ignore_daemonsets_even_with_empty_dir() {
        let action = decide_one(
            pod("fluentd-x").daemonset("fluentd").empty_dir().build(),
            &existing(&["fluentd"]),
            &flags(true, false, false),
        );
        assert_eq!(
            action,
            PodAction::Skip(SkipReason::DaemonSet {
                daemonset: ds("fluentd")
            })
        );
    }

    #[test]
    fn a_daemonset_pod_whose_daemonset_is_gone_needs_force() {
        let gone: DaemonSets = [(
            ("default".to_owned(), "old".to_owned()),
            DaemonSetLookup::Missing,
        )]
        .into();
        let p = || pod("old-x").daemonset("old").build();
        // ignore_daemonsets does not help: the DaemonSet will not recreate it.
        assert_eq!(
            decide_one(p(), &gone, &flags(true, true, false)),
            refuse(vec![Refusal::DaemonSetMissing {
                daemonset: ds("old")
            }])
        );
        assert_eq!(
            decide_one(p(), &gone, &flags(true, false, true)),
            PodAction::Evict {
                warnings: vec![Warning::OrphanedDaemonSetPod {
                    daemonset: ds("old")
                }]
            }
        );
    }

    #[test]
    fn an_orphaned_daemonset_pod_with_empty_dir_lists_both_options() {
        let gone: DaemonSets = [(
            ("default".to_owned(), "old".to_owned()),
            DaemonSetLookup::Missing,
        )]
        .into();
        let action = decide_one(
            pod("old-x").daemonset("old").empty_dir().build(),
            &gone,
            &flags(true, false, false),
        );
        assert_eq!(
            action,
            refuse(vec![
                Refusal::DaemonSetMissing {
                    daemonset: ds("old")
                },
                Refusal::LocalStorage
            ])
        );
    }

    #[test]
    fn a_failed_daemonset_lookup_is_refused_whatever_the_options() {
        let failed: DaemonSets = [(
            ("default".to_owned(), "ds".to_owned()),
            DaemonSetLookup::Failed("forbidden".to_owned()),
        )]
        .into();
        for flags in [flags(true, true, true), flags(false, false, false)] {
            let action = decide_one(pod("x").daemonset("ds").build(), &failed, &flags);
            let PodAction::Refuse { refusals } = action else {
                panic!("not refused: {action:?}");
            };
            assert_eq!(refusals.len(), 1);
            assert_eq!(refusals[0].option(), None);
        }
        // Not looked up at all is treated the same way: never evict on a guess.
        let action = decide_one(
            pod("x").daemonset("ds").build(),
            &DaemonSets::new(),
            &flags(true, true, true),
        );
        assert!(matches!(action, PodAction::Refuse { .. }), "{action:?}");
    }

    #[test]
    fn mirror_pods_are_always_skipped() {
        for flags in [flags(false, false, false), flags(true, true, true)] {
            let action = decide_one(
                pod("kube-apiserver-n1").mirror().empty_dir().build(),
                &DaemonSets::new(),
                &flags,
            );
            assert_eq!(action, PodAction::Skip(SkipReason::MirrorPod));
        }
    }

    #[test]
    fn empty_dir_needs_delete_emptydir_data() {
        let p = || pod("cache").replicaset().empty_dir().build();
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &flags(true, false, true)),
            refuse(vec![Refusal::LocalStorage])
        );
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &flags(false, true, false)),
            PodAction::Evict {
                warnings: vec![Warning::LocalStorageDeleted]
            }
        );
    }

    #[test]
    fn bare_pods_need_force() {
        let p = || pod("debug").build();
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &flags(true, true, false)),
            refuse(vec![Refusal::Unmanaged])
        );
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &flags(false, false, true)),
            PodAction::Evict {
                warnings: vec![Warning::Unmanaged]
            }
        );
    }

    #[test]
    fn a_bare_pod_with_empty_dir_lists_both_options() {
        let action = decide_one(
            pod("scratch").empty_dir().build(),
            &DaemonSets::new(),
            &flags(false, false, false),
        );
        assert_eq!(
            action,
            refuse(vec![Refusal::LocalStorage, Refusal::Unmanaged])
        );
        let action = decide_one(
            pod("scratch").empty_dir().build(),
            &DaemonSets::new(),
            &flags(false, true, true),
        );
        assert_eq!(
            action,
            PodAction::Evict {
                warnings: vec![Warning::LocalStorageDeleted, Warning::Unmanaged]
            }
        );
    }

    #[test]
    fn finished_pods_are_always_evicted() {
        for phase in ["Succeeded", "Failed"] {
            for p in [
                pod("job-x").phase(phase).build(),
                pod("bare-x").empty_dir().phase(phase).build(),
                pod("ds-x").daemonset("gone").phase(phase).build(),
            ] {
                let name = p.metadata.name.clone().unwrap();
                // The DaemonSet of a finished pod is not even looked up.
                assert!(daemonsets_to_look_up(std::slice::from_ref(&p)).is_empty());
                let action = decide_one(p, &DaemonSets::new(), &flags(false, false, false));
                assert_eq!(action, evict(), "{name} {phase}");
            }
        }
        // A finished mirror pod is still the kubelet's.
        let action = decide_one(
            pod("static").mirror().phase("Succeeded").build(),
            &DaemonSets::new(),
            &flags(false, false, false),
        );
        assert_eq!(action, PodAction::Skip(SkipReason::MirrorPod));
    }

    #[test]
    fn pending_and_unknown_phases_are_not_finished() {
        for phase in ["Pending", "Unknown", ""] {
            let action = decide_one(
                pod("p").phase(phase).build(),
                &DaemonSets::new(),
                &flags(false, false, false),
            );
            assert_eq!(action, refuse(vec![Refusal::Unmanaged]), "{phase:?}");
        }
    }

    #[test]
    fn pod_selector_limits_the_plan() {
        let pods = [
            pod("web-1").replicaset().label("app", "web").build(),
            pod("db-1").label("app", "db").build(),
        ];
        let filters = DrainFilters {
            pod_selector: Selector::parse("app=web").unwrap(),
            ..Default::default()
        };
        let plan = plan("n1", &pods, &DaemonSets::new(), &filters, now());
        assert_eq!(plan.pods.len(), 1);
        assert_eq!(plan.pods[0].pod.name, "web-1");
        assert!(
            plan.check().is_ok(),
            "the refused bare pod was not selected"
        );
    }

    #[test]
    fn long_terminating_pods_are_skipped_only_past_the_timeout() {
        let filters = |secs| DrainFilters {
            skip_wait_for_delete_timeout: Some(Duration::from_secs(secs)),
            ..Default::default()
        };
        let deleted = now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(120))
            .unwrap();
        // A bare pod that is already going: skipped before any objection.
        let p = || pod("stuck").deleted_at(deleted).build();
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &filters(60)),
            PodAction::Skip(SkipReason::Terminating { for_seconds: 120 })
        );
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &filters(120)),
            refuse(vec![Refusal::Unmanaged]),
            "not strictly older than the limit"
        );
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &filters(0)),
            refuse(vec![Refusal::Unmanaged]),
            "0 disables the check"
        );
        assert_eq!(
            decide_one(p(), &DaemonSets::new(), &DrainFilters::default()),
            refuse(vec![Refusal::Unmanaged])
        );
    }

    #[test]
    fn a_refused_drain_lists_every_refused_pod_and_every_option() {
        let pods = [
            pod("web-1").replicaset().build(),
            pod("kube-proxy-a").daemonset("kube-proxy").build(),
            pod("cache-1").replicaset().empty_dir().build(),
            pod("debug").build(),
            pod("etcd-n1").mirror().build(),
        ];
        let plan = plan(
            "n1",
            &pods,
            &existing(&["kube-proxy"]),
            &DrainFilters::default(),
            now(),
        );
        assert_eq!(
            plan.to_evict().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["web-1"]
        );
        assert_eq!(
            plan.skipped()
                .map(|(p, _)| p.name.as_str())
                .collect::<Vec<_>>(),
            ["etcd-n1"]
        );
        let refused = plan.check().unwrap_err();
        assert_eq!(
            refused
                .pods
                .iter()
                .map(|(p, _)| p.name.as_str())
                .collect::<Vec<_>>(),
            ["kube-proxy-a", "cache-1", "debug"]
        );
        assert_eq!(
            refused.options_needed().into_iter().collect::<Vec<_>>(),
            ["delete_emptydir_data", "force", "ignore_daemonsets"]
        );
        let message = refused.to_string();
        for needle in [
            "drain of node n1 refused, nothing was evicted: 3 pods",
            "default/kube-proxy-a: managed by DaemonSet default/kube-proxy (allow with ignore_daemonsets)",
            "default/cache-1: uses emptyDir (local data would be lost) (allow with delete_emptydir_data)",
            "default/debug: has no controller (it would not be recreated) (allow with force)",
            "set delete_emptydir_data, force, ignore_daemonsets to drain anyway",
        ] {
            assert!(message.contains(needle), "{needle:?} not in:\n{message}");
        }
    }

    #[test]
    fn the_usual_flags_drain_a_typical_worker() {
        // `kubectl drain --ignore-daemonsets --delete-emptydir-data` on a typical worker.
        let pods = [
            pod("web-1").replicaset().build(),
            pod("kube-proxy-a").daemonset("kube-proxy").build(),
            pod("calico-node-a").daemonset("calico-node").build(),
            pod("prometheus-0")
                .owned_by("StatefulSet", "prometheus", true)
                .empty_dir()
                .build(),
            pod("job-done")
                .owned_by("Job", "backup", true)
                .phase("Succeeded")
                .build(),
        ];
        let plan = plan(
            "n1",
            &pods,
            &existing(&["kube-proxy", "calico-node"]),
            &flags(true, true, false),
            now(),
        );
        assert!(plan.check().is_ok());
        assert_eq!(
            plan.to_evict().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["web-1", "prometheus-0", "job-done"]
        );
        assert_eq!(plan.skipped().count(), 2);
    }

    #[test]
    fn daemonset_lookups_are_deduplicated_per_namespace() {
        let mut other = pod("kube-proxy-c").daemonset("kube-proxy").build();
        other.metadata.namespace = Some("kube-system".to_owned());
        let pods = [
            pod("kube-proxy-a").daemonset("kube-proxy").build(),
            pod("kube-proxy-b").daemonset("kube-proxy").build(),
            other,
            pod("web").replicaset().build(),
        ];
        let wanted: Vec<_> = daemonsets_to_look_up(&pods).into_iter().collect();
        assert_eq!(
            wanted,
            [
                ("default".to_owned(), "kube-proxy".to_owned()),
                ("kube-system".to_owned(), "kube-proxy".to_owned())
            ]
        );
    }

    #[test]
    fn the_plan_serializes_for_reports() {
        let pods = [
            pod("kube-proxy-a").daemonset("kube-proxy").build(),
            pod("debug").build(),
        ];
        let plan = plan(
            "n1",
            &pods,
            &existing(&["kube-proxy"]),
            &flags(true, false, false),
            now(),
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["pods"][0]["action"], "skip");
        assert_eq!(json["pods"][0]["reason"], "daemon_set");
        assert_eq!(json["pods"][1]["action"], "refuse");
        assert_eq!(json["pods"][1]["refusals"][0]["reason"], "unmanaged");
    }
}
