//! PodDisruptionBudget arithmetic, as the disruption controller
//! (`pkg/controller/disruption/disruption.go`) and the eviction subresource
//! (`pkg/registry/core/pod/storage/eviction.go`) of a real cluster do it.
//!
//! Drains are only as safe as this arithmetic is faithful, so it is kept free of any storage
//! concern and tested against the cases of the Kubernetes documentation:
//! - expected pods: the number of matching pods for an integer `minAvailable`, otherwise the
//!   summed scale of the pods' controllers (a Deployment counts through its ReplicaSet);
//! - desired healthy: `minAvailable`, or expected − `maxUnavailable`, percentages rounded up;
//! - current healthy: ready pods that are not being deleted and not recently evicted;
//! - disruptions allowed: current − desired, never negative, and zero while nothing is expected.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// A controller owner reference (`ownerReferences[?(@.controller)]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// How long an evicted pod stays out of the healthy count while it has not started
/// terminating (the controller's `DeletionTimeout`).
pub const DELETION_TIMEOUT_SECONDS: i64 = 120;

/// An `IntOrString` of a PDB: a count or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

impl IntOrPercent {
    pub fn parse(value: &Value) -> Result<Self, String> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(IntOrPercent::Int)
                .ok_or_else(|| format!("invalid value for IntOrString: {n} is not a 32-bit integer")),
            Value::String(s) => s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .map(IntOrPercent::Percent)
                .ok_or_else(|| format!("invalid value for IntOrString: invalid type: string is not a percentage: {s:?}")),
            other => Err(format!("invalid value for IntOrString: {other}")),
        }
    }

    /// Parses a typed `IntOrString`.
    pub fn from_api(value: &IntOrString) -> Result<Self, String> {
        match value {
            IntOrString::Int(n) => Ok(IntOrPercent::Int(*n)),
            IntOrString::String(s) => IntOrPercent::parse(&Value::String(s.clone())),
        }
    }

    /// The value scaled against `total`, a percentage rounded up or down
    /// (`intstr.GetScaledValueFromIntOrPercent`): a Deployment rounds `maxSurge` up and
    /// `maxUnavailable` down.
    pub fn scaled(self, total: i32, round_up: bool) -> i32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(_) if round_up => self.scaled_round_up(total),
            IntOrPercent::Percent(p) => ((i64::from(p) * i64::from(total)) / 100) as i32,
        }
    }

    /// The value scaled against `total`, rounding a percentage up (what the controller does
    /// for both `minAvailable` and `maxUnavailable`).
    pub fn scaled_round_up(self, total: i32) -> i32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => ((i64::from(p) * i64::from(total) + 99) / 100) as i32,
        }
    }
}

/// What the arithmetic needs from a PDB's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub min_available: Option<IntOrPercent>,
    pub max_unavailable: Option<IntOrPercent>,
    /// `unhealthyPodEvictionPolicy: AlwaysAllow`.
    pub always_allow_unhealthy: bool,
}

impl Budget {
    pub fn from_spec(spec: Option<&Value>) -> Result<Self, String> {
        let field = |name: &str| spec.and_then(|s| s.get(name)).filter(|v| !v.is_null());
        Ok(Budget {
            min_available: field("minAvailable").map(IntOrPercent::parse).transpose()?,
            max_unavailable: field("maxUnavailable")
                .map(IntOrPercent::parse)
                .transpose()?,
            always_allow_unhealthy: field("unhealthyPodEvictionPolicy").and_then(Value::as_str)
                == Some("AlwaysAllow"),
        })
    }
}

impl Budget {
    /// `(expectedPods, desiredHealthy)`: for an integer `minAvailable` the matching pods and
    /// the number itself; otherwise the summed scale of the pods' controllers (`scale`, asked
    /// only then) and `minAvailable` or scale − `maxUnavailable`, percentages rounded up.
    pub fn expected_and_desired<E>(
        &self,
        matching_pods: i32,
        scale: impl FnOnce() -> Result<i32, E>,
    ) -> Result<(i32, i32), E> {
        Ok(match (self.max_unavailable, self.min_available) {
            (Some(max_unavailable), _) => {
                let expected = scale()?;
                let desired = (expected - max_unavailable.scaled_round_up(expected)).max(0);
                (expected, desired)
            }
            (None, Some(IntOrPercent::Int(min))) => (matching_pods, min),
            (None, Some(min @ IntOrPercent::Percent(_))) => {
                let expected = scale()?;
                (expected, min.scaled_round_up(expected))
            }
            (None, None) => (0, 0),
        })
    }
}

/// `disruptionsAllowed`: current − desired, never negative, and zero while nothing is
/// expected.
pub fn disruptions_allowed(expected_pods: i32, current_healthy: i32, desired_healthy: i32) -> i32 {
    if expected_pods <= 0 {
        0
    } else {
        (current_healthy - desired_healthy).max(0)
    }
}

/// What the arithmetic needs from a pod matched by a PDB.
#[derive(Debug, Clone)]
pub struct PodView {
    pub name: String,
    pub ready: bool,
    pub deleting: bool,
    pub controller: Option<OwnerRef>,
}

/// The scale of a pod's controller: `(identity, replicas)`. The identity lets pods of one
/// Deployment spread over several ReplicaSets count once. `None`: no such controller, or a
/// controller without a scale (a DaemonSet), which makes the PDB fail safe.
pub type ScaleOf<'a> = dyn Fn(&OwnerRef) -> Option<(String, i32)> + 'a;

/// The status the disruption controller computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    pub expected_pods: i32,
    pub desired_healthy: i32,
    pub current_healthy: i32,
    pub disruptions_allowed: i32,
    pub disrupted_pods: BTreeMap<String, DateTime<Utc>>,
    /// Pods without a controller; ignored for percentages and `maxUnavailable`.
    pub unmanaged_pods: Vec<String>,
}

/// The controller's sync. `Err` is a reason to fail safe (zero disruptions allowed).
pub fn compute(
    budget: &Budget,
    pods: &[PodView],
    scale_of: &ScaleOf<'_>,
    disrupted: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Computed, String> {
    let mut unmanaged_pods = Vec::new();
    let (expected_pods, desired_healthy) = budget
        .expected_and_desired(pods.len() as i32, || {
            expected_scale(pods, scale_of, &mut unmanaged_pods)
        })?;

    let disrupted_pods: BTreeMap<String, DateTime<Utc>> = pods
        .iter()
        .filter(|pod| !pod.deleting)
        .filter_map(|pod| {
            let at = disrupted.get(&pod.name)?;
            (*at + chrono::Duration::seconds(DELETION_TIMEOUT_SECONDS) > now)
                .then(|| (pod.name.clone(), *at))
        })
        .collect();
    let current_healthy = pods
        .iter()
        .filter(|pod| pod.ready && !pod.deleting && !disrupted_pods.contains_key(&pod.name))
        .count() as i32;

    let disruptions_allowed = disruptions_allowed(expected_pods, current_healthy, desired_healthy);
    Ok(Computed {
        expected_pods,
        desired_healthy,
        current_healthy,
        disruptions_allowed,
        disrupted_pods,
        unmanaged_pods,
    })
}

fn expected_scale(
    pods: &[PodView],
    scale_of: &ScaleOf<'_>,
    unmanaged: &mut Vec<String>,
) -> Result<i32, String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut known: std::collections::BTreeSet<(&str, &str, &str)> =
        std::collections::BTreeSet::new();
    for pod in pods {
        let Some(controller) = &pod.controller else {
            unmanaged.push(pod.name.clone());
            continue;
        };
        // Pods of one controller share its scale; look it up once.
        if !known.insert((&controller.kind, &controller.name, &controller.uid)) {
            continue;
        }
        match scale_of(controller) {
            Some((identity, scale)) => {
                scales.insert(identity, scale);
            }
            None => return Err(format!("found no controllers for pod {:?}", pod.name)),
        }
    }
    Ok(scales.values().sum())
}

/// The PDB status fields the eviction subresource reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub observed_generation: i64,
    pub generation: i64,
}

impl BudgetStatus {
    pub fn from_object(pdb: &Value) -> Self {
        let int = |pointer: &str| pdb.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
        BudgetStatus {
            disruptions_allowed: int("/status/disruptionsAllowed") as i32,
            current_healthy: int("/status/currentHealthy") as i32,
            desired_healthy: int("/status/desiredHealthy") as i32,
            observed_generation: int("/status/observedGeneration"),
            generation: int("/metadata/generation"),
        }
    }
}

/// What the eviction subresource decides for a pod covered by exactly one PDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delete the pod without touching the budget (an unready pod the budget can spare).
    AllowUnhealthy,
    /// Delete the pod and take one disruption from the budget.
    AllowAndDecrement,
    /// The controller has not yet seen the PDB's current spec (429).
    NotYetProcessed,
    /// 429 with the budget's numbers.
    Blocked {
        desired_healthy: i32,
        current_healthy: i32,
    },
    /// The status is corrupt (403).
    Negative,
}

/// The eviction subresource's check for a pod that is running (pending and terminating pods
/// are deleted without consulting any budget).
pub fn check_eviction(pod_ready: bool, budget: &Budget, status: BudgetStatus) -> Verdict {
    if !pod_ready {
        if budget.always_allow_unhealthy {
            return Verdict::AllowUnhealthy;
        }
        if status.current_healthy >= status.desired_healthy && status.desired_healthy > 0 {
            return Verdict::AllowUnhealthy;
        }
    }
    if status.observed_generation < status.generation {
        return Verdict::NotYetProcessed;
    }
    if status.disruptions_allowed < 0 {
        return Verdict::Negative;
    }
    if status.disruptions_allowed == 0 {
        return Verdict::Blocked {
            desired_healthy: status.desired_healthy,
            current_healthy: status.current_healthy,
        };
    }
    Verdict::AllowAndDecrement
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owner(name: &str) -> Option<OwnerRef> {
        Some(OwnerRef {
            kind: "ReplicaSet".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        })
    }

    fn pods(ready: usize, unready: usize, controller: Option<OwnerRef>) -> Vec<PodView> {
        (0..ready + unready)
            .map(|i| PodView {
                name: format!("p{i}"),
                ready: i < ready,
                deleting: false,
                controller: controller.clone(),
            })
            .collect()
    }

    fn scale(n: i32) -> impl Fn(&OwnerRef) -> Option<(String, i32)> {
        move |o: &OwnerRef| Some((o.uid.clone(), n))
    }

    fn budget(min: Option<IntOrPercent>, max: Option<IntOrPercent>) -> Budget {
        Budget {
            min_available: min,
            max_unavailable: max,
            always_allow_unhealthy: false,
        }
    }

    fn run(b: &Budget, pods: &[PodView], replicas: i32) -> Computed {
        compute(b, pods, &scale(replicas), &BTreeMap::new(), Utc::now()).unwrap()
    }

    use IntOrPercent::{Int, Percent};

    // "Specifying a Disruption Budget for your Application": a 3-replica app with
    // minAvailable 2 tolerates one voluntary disruption.
    #[test]
    fn doc_min_available_two_of_three() {
        let c = run(&budget(Some(Int(2)), None), &pods(3, 0, owner("zk")), 3);
        assert_eq!(
            (
                c.expected_pods,
                c.desired_healthy,
                c.current_healthy,
                c.disruptions_allowed
            ),
            (3, 2, 3, 1)
        );
    }

    // Same page: maxUnavailable 1 on 3 replicas is equivalent.
    #[test]
    fn doc_max_unavailable_one_of_three() {
        let c = run(&budget(None, Some(Int(1))), &pods(3, 0, owner("zk")), 3);
        assert_eq!(
            (c.expected_pods, c.desired_healthy, c.disruptions_allowed),
            (3, 2, 1)
        );
    }

    // Rounding: with 7 pods and minAvailable "50%", 4 pods must stay available.
    #[test]
    fn doc_percentages_round_up() {
        let c = run(
            &budget(Some(Percent(50)), None),
            &pods(7, 0, owner("web")),
            7,
        );
        assert_eq!((c.desired_healthy, c.disruptions_allowed), (4, 3));
        let c = run(
            &budget(None, Some(Percent(50))),
            &pods(7, 0, owner("web")),
            7,
        );
        assert_eq!((c.desired_healthy, c.disruptions_allowed), (3, 4));
    }

    // "maxUnavailable 0 (or 0%) or minAvailable 100% (or the replica count) means no
    // voluntary evictions".
    #[test]
    fn doc_zero_disruption_budgets() {
        for b in [
            budget(None, Some(Int(0))),
            budget(None, Some(Percent(0))),
            budget(Some(Percent(100)), None),
            budget(Some(Int(5)), None),
        ] {
            assert_eq!(
                run(&b, &pods(5, 0, owner("db")), 5).disruptions_allowed,
                0,
                "{b:?}"
            );
        }
    }

    // Integer minAvailable works for arbitrary (unmanaged) pods; percentages and
    // maxUnavailable need a controller scale, so they ignore unmanaged pods.
    #[test]
    fn doc_unmanaged_pods() {
        let c = run(&budget(Some(Int(1)), None), &pods(3, 0, None), 0);
        assert_eq!((c.expected_pods, c.disruptions_allowed), (3, 2));
        let c = run(&budget(Some(Percent(50)), None), &pods(3, 0, None), 0);
        assert_eq!(
            (
                c.expected_pods,
                c.disruptions_allowed,
                c.unmanaged_pods.len()
            ),
            (0, 0, 3)
        );
    }

    // A pod whose controller has no scale (a DaemonSet) makes the PDB fail safe.
    #[test]
    fn controller_without_scale_fails_safe() {
        let no_scale = |_: &OwnerRef| None;
        let err = compute(
            &budget(None, Some(Int(1))),
            &pods(2, 0, owner("ds")),
            &no_scale,
            &BTreeMap::new(),
            Utc::now(),
        );
        assert_eq!(err.unwrap_err(), "found no controllers for pod \"p0\"");
    }

    // Pods being deleted and recently evicted pods are not healthy; an eviction older than
    // the deletion timeout no longer counts.
    #[test]
    fn deleting_and_disrupted_pods_are_not_healthy() {
        let now = Utc::now();
        let mut ps = pods(4, 0, owner("web"));
        ps[0].deleting = true;
        let disrupted = BTreeMap::from([
            ("p1".to_string(), now - chrono::Duration::seconds(10)),
            (
                "p2".to_string(),
                now - chrono::Duration::seconds(DELETION_TIMEOUT_SECONDS + 1),
            ),
        ]);
        let c = compute(&budget(Some(Int(1)), None), &ps, &scale(4), &disrupted, now).unwrap();
        assert_eq!(c.current_healthy, 2);
        assert_eq!(c.disrupted_pods.keys().collect::<Vec<_>>(), ["p1"]);
    }

    // Unhealthy pod eviction policy: IfHealthyBudget lets an unready pod go only while the
    // application is not already disrupted; AlwaysAllow always does.
    #[test]
    fn doc_unhealthy_pod_eviction_policy() {
        let status = |current, desired, allowed| BudgetStatus {
            disruptions_allowed: allowed,
            current_healthy: current,
            desired_healthy: desired,
            observed_generation: 1,
            generation: 1,
        };
        let if_healthy = budget(Some(Int(2)), None);
        let always = Budget {
            always_allow_unhealthy: true,
            ..if_healthy.clone()
        };
        assert_eq!(
            check_eviction(false, &if_healthy, status(2, 2, 0)),
            Verdict::AllowUnhealthy
        );
        assert_eq!(
            check_eviction(false, &if_healthy, status(1, 2, 0)),
            Verdict::Blocked {
                desired_healthy: 2,
                current_healthy: 1
            }
        );
        assert_eq!(
            check_eviction(false, &always, status(1, 2, 0)),
            Verdict::AllowUnhealthy
        );
        assert_eq!(
            check_eviction(true, &always, status(3, 2, 1)),
            Verdict::AllowAndDecrement
        );
        assert_eq!(
            check_eviction(
                true,
                &if_healthy,
                BudgetStatus {
                    generation: 2,
                    ..status(3, 2, 1)
                }
            ),
            Verdict::NotYetProcessed
        );
    }

    #[test]
    fn int_or_percent_parsing() {
        assert_eq!(IntOrPercent::parse(&serde_json::json!(2)), Ok(Int(2)));
        assert_eq!(
            IntOrPercent::parse(&serde_json::json!("25%")),
            Ok(Percent(25))
        );
        assert!(IntOrPercent::parse(&serde_json::json!("25")).is_err());
        assert_eq!(Percent(25).scaled_round_up(5), 2);
        assert_eq!(Percent(20).scaled_round_up(5), 1);
    }

    fn amount() -> impl Strategy<Value = IntOrPercent> {
        prop_oneof![(0..12i32).prop_map(Int), (0..=100i32).prop_map(Percent)]
    }

    proptest! {
        // Failures are reported, not persisted to a regressions file in the source tree.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn allowed_is_healthy_minus_desired_never_negative(
            min in proptest::option::of(amount()),
            max in proptest::option::of(amount()),
            ready in 0usize..15,
            unready in 0usize..5,
            replicas in 0i32..20,
        ) {
            let b = budget(min, max);
            let c = run(&b, &pods(ready, unready, owner("app")), replicas);
            // The scale is found through the pods' controller: no pods, no scale.
            let scale = if ready + unready > 0 { replicas } else { 0 };
            prop_assert!(c.disruptions_allowed >= 0);
            prop_assert!(c.disruptions_allowed <= c.current_healthy);
            prop_assert_eq!(c.current_healthy, ready as i32);
            if c.expected_pods > 0 {
                prop_assert_eq!(c.disruptions_allowed, (c.current_healthy - c.desired_healthy).max(0));
            } else {
                prop_assert_eq!(c.disruptions_allowed, 0);
            }
            match (max, min) {
                (Some(m), _) => prop_assert_eq!(c.desired_healthy, (scale - m.scaled_round_up(scale)).max(0)),
                (None, Some(Int(n))) => prop_assert_eq!((c.desired_healthy, c.expected_pods), (n, (ready + unready) as i32)),
                (None, Some(Percent(p))) => prop_assert_eq!(c.desired_healthy, (p * scale + 99) / 100),
                (None, None) => prop_assert_eq!(c.desired_healthy, 0),
            }
        }

        #[test]
        fn more_healthy_pods_never_allow_fewer_disruptions(
            min in proptest::option::of(amount()),
            max in proptest::option::of(amount()),
            ready in 0usize..15,
            replicas in 1i32..20,
        ) {
            let b = budget(min, max);
            let fewer = run(&b, &pods(ready, 1, owner("app")), replicas);
            let more = run(&b, &pods(ready + 1, 0, owner("app")), replicas);
            prop_assert!(more.disruptions_allowed >= fewer.disruptions_allowed);
        }

        // Evicting ready pods one at a time, with no replacement becoming ready, succeeds
        // exactly `disruptionsAllowed` times and is then blocked.
        #[test]
        fn sequential_evictions_stop_at_the_budget(
            min in proptest::option::of(amount()),
            max in proptest::option::of(amount()),
            replicas in 1usize..12,
        ) {
            let b = budget(min, max);
            let mut ps = pods(replicas, 0, owner("app"));
            let now = Utc::now();
            let allowed_at_start = run(&b, &ps, replicas as i32).disruptions_allowed;
            let mut evicted = 0;
            let mut disrupted = BTreeMap::new();
            for i in 0..replicas {
                let c = compute(&b, &ps, &scale(replicas as i32), &disrupted, now).unwrap();
                let status = BudgetStatus {
                    disruptions_allowed: c.disruptions_allowed,
                    current_healthy: c.current_healthy,
                    desired_healthy: c.desired_healthy,
                    observed_generation: 1,
                    generation: 1,
                };
                match check_eviction(true, &b, status) {
                    Verdict::AllowAndDecrement => {
                        evicted += 1;
                        disrupted.insert(ps[i].name.clone(), now);
                        ps[i].deleting = true;
                    }
                    Verdict::Blocked { .. } => break,
                    other => prop_assert!(false, "unexpected verdict {:?}", other),
                }
            }
            prop_assert_eq!(evicted, allowed_at_start);
        }
    }
}
