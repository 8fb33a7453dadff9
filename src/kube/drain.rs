//! Draining a node, composed from the operations of this module: cordon, plan, evict every
//! pod the plan allows (N requests at a time, all waits by watch), and on failure leave the
//! node as the options say, with every pod still present and the budgets holding it named.
//!
//! [`Kube::drain`] reports each API write to its observer as it happens (cordon, every
//! eviction admitted, uncordon), so the effects boundary can record them as plan steps.
//! [`Kube::preview_drain`] is the dry-run counterpart: live reads, the same plan, and a
//! server-side dry-run eviction per pod to say whether the API server would admit it now.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::Kube;
use super::drain_plan::{self, DaemonSetLookup, DaemonSets, DrainFilters, DrainPlan};
use super::error::{DrainCause, DrainFailed, KubeError, KubeResult, NodeLeft, PendingPod};
pub use super::eviction::EvictionBypass;
use super::eviction::{
    self, EvictOptions, EvictionAnswer, EvictionApi, EvictionReport, EvictionWatches, PodState,
    Progress, RetryPolicy,
};
use super::pdb::{self, PdbStatus};
use super::pod::{self, PodRef};
use super::selector::Selector;

/// The options of a drain, named as in the `drain(node, opts)` primitive.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    pub filters: DrainFilters,
    /// Seconds each pod gets to shut down; `None` keeps each pod's own setting.
    pub grace_period: Option<i64>,
    /// The whole drain's time limit; `None` waits as long as it takes (kubectl's default).
    pub timeout: Option<Duration>,
    /// Delete pods instead of evicting them, bypassing PodDisruptionBudgets.
    pub disable_eviction: Option<EvictionBypass>,
    /// On failure, make the node schedulable again (only if this drain cordoned it).
    pub uncordon_on_failure: bool,
    /// At most this many eviction requests in flight at once.
    pub parallelism: usize,
    /// How often a waiting eviction says why.
    pub report_every: Duration,
    /// The longest pause between two eviction attempts of one pod.
    pub max_backoff: Duration,
    /// Keep a ready replica of every controller-managed workload without a budget: evict its
    /// pods one at a time, each once the one before has a Ready replacement (see
    /// [`super::kept`]).
    pub keep_replica: bool,
}

impl DrainOptions {
    /// Sets `pod_selector` from the text a user typed (`app=web,tier notin (db)`).
    pub fn with_pod_selector(mut self, text: &str) -> KubeResult<Self> {
        self.filters.pod_selector = Selector::parse(text).map_err(|e| KubeError::Selector {
            selector: text.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(self)
    }
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            filters: DrainFilters::default(),
            grace_period: None,
            timeout: None,
            disable_eviction: None,
            uncordon_on_failure: false,
            parallelism: 32,
            report_every: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
            keep_replica: true,
        }
    }
}

/// What a drain tells its observer, as it happens.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DrainEvent {
    /// The cordon step: `changed` is false when the node already was unschedulable.
    Cordoned {
        node: String,
        changed: bool,
    },
    /// The decision for every pod, before anything is evicted.
    Planned {
        plan: DrainPlan,
    },
    Eviction {
        progress: Progress,
    },
    /// The node was uncordoned after a failure (`uncordon_on_failure`).
    Uncordoned {
        node: String,
    },
}

/// What a finished drain did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrainReport {
    pub node: String,
    /// False when the node was already cordoned before the drain.
    pub cordoned: bool,
    pub plan: DrainPlan,
    /// One entry per pod that had to leave, in plan order.
    pub evicted: Vec<EvictionReport>,
    /// `policy/v1` or `policy/v1beta1`; absent when pods were deleted instead.
    pub eviction_api: Option<EvictionApi>,
    /// Set when PodDisruptionBudgets were bypassed: the reason given for it.
    pub bypassed_budgets: Option<String>,
    pub took_ms: u64,
    /// How many times a watch had to be re-established during the drain.
    pub watch_restarts: u64,
}

impl DrainReport {
    /// The evictions that had to wait for a budget, with its numbers.
    pub fn waits(&self) -> impl Iterator<Item = &EvictionReport> {
        self.evicted.iter().filter(|e| !e.blocked_by.is_empty())
    }
}

/// The dry-run answer to "what would draining this node do now?".
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrainPreview {
    pub node: String,
    /// False when the node is already cordoned.
    pub would_cordon: bool,
    pub plan: DrainPlan,
    /// For each pod the plan evicts: what the API server says to a dry-run eviction now,
    /// and the budgets covering the pod. Empty when the plan is refused.
    pub evictions: Vec<PreviewedEviction>,
    /// Set when budgets would be bypassed (pods deleted, no eviction asked).
    pub bypassed_budgets: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviewedEviction {
    pub pod: PodRef,
    pub answer: EvictionAnswer,
    pub budgets: Vec<PdbStatus>,
}

impl DrainPreview {
    /// The refusal a live drain would stop with, if any.
    pub fn check(&self) -> Result<(), drain_plan::RefusedDrain> {
        self.plan.check()
    }

    /// What the plan of a dry-run says under the drain: every pod it refuses (and the option
    /// that would allow it), every pod a budget holds now.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .plan
            .refused()
            .map(|(pod, refusals)| {
                let why: Vec<String> = refusals
                    .iter()
                    .map(|r| match r.option() {
                        Some(option) => format!("{r} ({option}: true allows it)"),
                        None => r.to_string(),
                    })
                    .collect();
                format!("refuses {pod}: {}", why.join("; "))
            })
            .collect();
        for eviction in &self.evictions {
            if let EvictionAnswer::BlockedByBudget { .. } = &eviction.answer {
                let budgets: Vec<String> = eviction
                    .budgets
                    .iter()
                    .map(|b| {
                        format!(
                            "{} ({} healthy, {} needed)",
                            b.key(),
                            b.current_healthy,
                            b.desired_healthy
                        )
                    })
                    .collect();
                notes.push(format!(
                    "waits on {}: PodDisruptionBudget {} allows no disruption now",
                    eviction.pod,
                    if budgets.is_empty() {
                        "(unnamed)".to_owned()
                    } else {
                        budgets.join(", ")
                    }
                ));
            }
        }
        notes
    }
}

/// Pods whose eviction the API server would refuse outright because more than one budget
/// covers them. Only running pods count: for pending, finished or terminating pods the
/// Eviction API does not consult budgets at all.
pub fn overlapping_budgets<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    budgets: &[PodDisruptionBudget],
) -> Vec<(PodRef, Vec<PdbStatus>)> {
    pods.into_iter()
        .filter(|p| pod::phase(p) == "Running" && pod::deletion_timestamp(p).is_none())
        .filter_map(|p| {
            let covering = pdb::covering(budgets, p);
            (covering.len() > 1).then(|| {
                (
                    PodRef::of(p),
                    covering.into_iter().map(PdbStatus::of).collect(),
                )
            })
        })
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Kube {
    /// Looks up the DaemonSets that pods on the node claim as controller.
    pub async fn look_up_daemonsets(&self, pods: &[Pod]) -> DaemonSets {
        let mut found = BTreeMap::new();
        for (namespace, name) in drain_plan::daemonsets_to_look_up(pods) {
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &namespace);
            let lookup = match api.get_opt(&name).await {
                Ok(Some(_)) => DaemonSetLookup::Exists,
                Ok(None) => DaemonSetLookup::Missing,
                Err(e) => DaemonSetLookup::Failed(e.to_string()),
            };
            found.insert((namespace, name), lookup);
        }
        found
    }

    /// Reads the node's pods and decides each one; no write.
    pub async fn plan_drain(&self, node: &str, filters: &DrainFilters) -> KubeResult<DrainPlan> {
        let pods = self.pods_on(node).await?;
        let daemonsets = self.look_up_daemonsets(&pods).await;
        Ok(drain_plan::plan(
            node,
            &pods,
            &daemonsets,
            filters,
            Timestamp::now(),
        ))
    }

    /// Dry run of [`Kube::drain`]: live reads, the plan, and a server-side dry-run eviction
    /// per pod the plan evicts. Changes nothing.
    pub async fn preview_drain(
        &self,
        node: &str,
        options: &DrainOptions,
    ) -> KubeResult<DrainPreview> {
        let info = self.node_info(node).await?;
        let pods = self.pods_on(node).await?;
        let daemonsets = self.look_up_daemonsets(&pods).await;
        let plan = drain_plan::plan(node, &pods, &daemonsets, &options.filters, Timestamp::now());
        let mut preview = DrainPreview {
            node: node.to_owned(),
            would_cordon: !info.unschedulable,
            plan,
            evictions: Vec::new(),
            bypassed_budgets: options
                .disable_eviction
                .as_ref()
                .map(|b| b.reason().to_owned()),
        };
        if preview.plan.check().is_err() || options.disable_eviction.is_some() {
            return Ok(preview);
        }
        let budgets = match self.pdbs().await {
            Ok(budgets) => budgets,
            // No permission to read budgets, or no policy/v1 (before 1.21): the dry-run
            // evictions still say whether they would be admitted.
            Err(e) if matches!(e.http_status(), Some(403 | 404)) => {
                tracing::warn!("cannot read PodDisruptionBudgets: {e}");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let by_key: BTreeMap<String, &Pod> =
            pods.iter().map(|p| (PodRef::of(p).key(), p)).collect();
        let targets: Vec<PodRef> = preview.plan.to_evict().cloned().collect();
        let dry_run = EvictOptions {
            grace_period: options.grace_period,
            dry_run: true,
        };
        let answers = eviction::bounded(targets, options.parallelism, |target| {
            let dry_run = &dry_run;
            async move {
                let answer = self.evict(&target, dry_run).await;
                (target, answer)
            }
        })
        .await;
        for (target, answer) in answers {
            let budgets = by_key
                .get(&target.key())
                .map(|p| {
                    pdb::covering(&budgets, p)
                        .into_iter()
                        .map(PdbStatus::of)
                        .collect()
                })
                .unwrap_or_default();
            preview.evictions.push(PreviewedEviction {
                pod: target,
                answer: answer?,
                budgets,
            });
        }
        Ok(preview)
    }

    /// Drains `node`: cordon, plan, evict (or, with `disable_eviction`, delete) every pod the
    /// plan allows, and wait until they are gone. If any pod is refused by the plan, nothing
    /// is evicted. On failure the node stays cordoned unless `uncordon_on_failure`.
    pub async fn drain(
        &self,
        node: &str,
        options: &DrainOptions,
        observer: &(dyn Fn(DrainEvent) + Send + Sync),
    ) -> KubeResult<DrainReport> {
        let started = Instant::now();
        let deadline = options.timeout.map(|t| started + t);
        let changed = self.cordon(node).await?;
        observer(DrainEvent::Cordoned {
            node: node.to_owned(),
            changed,
        });
        let fail = |cause: DrainCause, pending: Vec<PendingPod>, evicted: usize| async move {
            let node_left = if !changed {
                NodeLeft::CordonedBefore
            } else if !options.uncordon_on_failure {
                NodeLeft::Cordoned
            } else {
                match self.uncordon(node).await {
                    Ok(_) => {
                        observer(DrainEvent::Uncordoned {
                            node: node.to_owned(),
                        });
                        NodeLeft::Uncordoned
                    }
                    Err(e) => {
                        tracing::error!(
                            "uncordon of node {node} after the failed drain failed: {e}"
                        );
                        NodeLeft::UncordonFailed
                    }
                }
            };
            KubeError::DrainFailed(Box::new(DrainFailed {
                node: node.to_owned(),
                cause,
                pending,
                evicted,
                node_left,
            }))
        };

        let watches = EvictionWatches::for_node(self, node).await;
        if let Err(e) = watches.ready(deadline).await {
            return Err(fail(DrainCause::Failed(Box::new(e)), Vec::new(), 0).await);
        }
        let mut pods: Vec<Arc<Pod>> = watches.pods.all();
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        let owned: Vec<Pod> = pods.iter().map(|p| Pod::clone(p)).collect();
        let daemonsets = self.look_up_daemonsets(&owned).await;
        let plan = drain_plan::plan(
            node,
            &owned,
            &daemonsets,
            &options.filters,
            Timestamp::now(),
        );
        observer(DrainEvent::Planned { plan: plan.clone() });
        if let Err(refused) = plan.check() {
            return Err(fail(DrainCause::Refused(refused), Vec::new(), 0).await);
        }

        let by_key: BTreeMap<String, &Pod> =
            owned.iter().map(|p| (PodRef::of(p).key(), p)).collect();
        let to_evict: Vec<&Pod> = plan
            .to_evict()
            .filter_map(|r| by_key.get(&r.key()).copied())
            .collect();
        let budgets: Vec<PodDisruptionBudget> =
            watches.budgets.all().iter().map(|b| b.0.clone()).collect();
        let overlapping = if options.disable_eviction.is_some() {
            Vec::new()
        } else {
            overlapping_budgets(to_evict.iter().copied(), &budgets)
        };
        if !overlapping.is_empty() {
            return Err(fail(DrainCause::OverlappingBudgets(overlapping), Vec::new(), 0).await);
        }
        let eviction_api = match &options.disable_eviction {
            Some(bypass) => {
                tracing::warn!(
                    "draining node {node} with disable_eviction: pods are DELETED and PodDisruptionBudgets are NOT respected ({})",
                    bypass.reason()
                );
                None
            }
            None => match self.eviction_api().await {
                Ok(api) => Some(api),
                Err(e) => {
                    return Err(fail(DrainCause::Failed(Box::new(e)), Vec::new(), 0).await);
                }
            },
        };

        let policy = RetryPolicy {
            grace_period: options.grace_period,
            deadline,
            report_every: options.report_every,
            max_backoff: options.max_backoff,
            skip_wait_for_delete_timeout: options.filters.skip_wait_for_delete_timeout,
            request_limit: Some(Arc::new(tokio::sync::Semaphore::new(
                options.parallelism.max(1),
            ))),
            ..RetryPolicy::default()
        };
        let forward = |progress: Progress| observer(DrainEvent::Eviction { progress });
        // A pod of a workload without a budget waits for its turn and leaves only once the
        // workload is back to as many ready replicas as before (see `kept`).
        // Only when the budgets are known: without permission to read them, a pod may have one.
        let budgets_known = watches.budgets.is_ready();
        let kept = |p: &Pod| {
            (options.keep_replica
                && budgets_known
                && options.disable_eviction.is_none()
                && pdb::covering(&budgets, p).is_empty())
            .then(|| super::kept::Owner::of(p))
            .flatten()
        };
        let results = futures::future::join_all(to_evict.iter().map(|p| {
            let owner = kept(p);
            let (policy, forward, watches) = (&policy, &forward, &watches);
            async move {
                let Some(owner) = owner else {
                    return self
                        .evict_until_gone(
                            p,
                            policy,
                            options.disable_eviction.as_ref(),
                            watches,
                            forward,
                        )
                        .await;
                };
                let _turn = self.kept.turn(&owner).await;
                let (ready, _) = self.readiness(&owner).await?;
                let report = self
                    .evict_until_gone(
                        p,
                        policy,
                        options.disable_eviction.as_ref(),
                        watches,
                        forward,
                    )
                    .await?;
                if ready > 0 {
                    tracing::info!(
                        target: "krun::kube",
                        "{}: waiting for a ready replacement of {owner} (it has no PodDisruptionBudget: one pod at a time)",
                        PodRef::of(p)
                    );
                }
                self.await_replacement(&owner, ready, policy.deadline).await?;
                Ok(report)
            }
        }))
        .await;

        let mut evicted = Vec::new();
        let mut pending = Vec::new();
        let mut first_error: Option<KubeError> = None;
        for (p, result) in to_evict.iter().zip(results) {
            match result {
                Ok(report) => evicted.push(report),
                Err(error) => {
                    let target = PodRef::of(p);
                    let (state, blocked_by) = match &error {
                        KubeError::EvictionTimedOut(e) => (
                            "eviction refused until the deadline".to_owned(),
                            e.blocked_by.clone(),
                        ),
                        KubeError::DeletionTimedOut { .. } => {
                            ("terminating".to_owned(), Vec::new())
                        }
                        KubeError::MultiplePdbs { pdbs, .. } => (
                            "eviction refused: more than one budget".to_owned(),
                            pdbs.clone(),
                        ),
                        other => (other.to_string(), Vec::new()),
                    };
                    // It may have left after all while others were still failing.
                    if matches!(
                        watches.pod_state(&target),
                        PodState::Gone | PodState::Replaced
                    ) {
                        continue;
                    }
                    pending.push(PendingPod {
                        pod: target,
                        state,
                        blocked_by,
                    });
                    if !matches!(
                        error,
                        KubeError::EvictionTimedOut(_) | KubeError::DeletionTimedOut { .. }
                    ) && first_error.is_none()
                    {
                        first_error = Some(error);
                    }
                }
            }
        }
        if !pending.is_empty() {
            // Without another error, only deadlines left pods behind.
            let cause = match first_error {
                Some(error) => DrainCause::Failed(Box::new(error)),
                None => DrainCause::TimedOut(options.timeout.unwrap_or_default()),
            };
            let count = evicted.len();
            return Err(fail(cause, pending, count).await);
        }
        Ok(DrainReport {
            node: node.to_owned(),
            cordoned: changed,
            plan,
            evicted,
            eviction_api,
            bypassed_budgets: options
                .disable_eviction
                .as_ref()
                .map(|b| b.reason().to_owned()),
            took_ms: millis(started.elapsed()),
            watch_restarts: watches.pods.restarts() + watches.budgets.restarts(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

    fn pod(name: &str, phase: &str, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                labels: Some([("app".to_owned(), app.to_owned())].into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn budget(name: &str, selector: Option<&str>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector: Some(match selector {
                    Some(app) => LabelSelector {
                        match_labels: Some([("app".to_owned(), app.to_owned())].into()),
                        ..Default::default()
                    },
                    None => LabelSelector::default(),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_bad_pod_selector_is_an_input_error() {
        let error = DrainOptions::default()
            .with_pod_selector("app in (web")
            .unwrap_err();
        assert_eq!(error.kind(), crate::error::Kind::Input);
        assert!(
            error
                .to_string()
                .starts_with("invalid pod_selector \"app in (web\""),
            "{error}"
        );
        let options = DrainOptions::default()
            .with_pod_selector("app=web")
            .unwrap();
        assert_eq!(options.filters.pod_selector.to_string(), "app=web");
    }

    #[test]
    fn overlapping_budgets_are_found_for_running_pods_only() {
        let mut terminating = pod("web-3", "Running", "web");
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let pods = [
            pod("web-1", "Running", "web"),
            pod("web-2", "Pending", "web"),
            terminating,
            pod("db-1", "Running", "db"),
        ];
        // `all` has an empty selector: it covers every pod in the namespace.
        let budgets = [budget("web", Some("web")), budget("all", None)];
        let found = overlapping_budgets(&pods, &budgets);
        let names: Vec<_> = found.iter().map(|(p, _)| p.name.as_str()).collect();
        assert_eq!(names, ["web-1"]);
        let budget_names: Vec<_> = found[0].1.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(budget_names, ["all", "web"]);
        assert!(overlapping_budgets(&pods, &budgets[..1]).is_empty());
    }
}
