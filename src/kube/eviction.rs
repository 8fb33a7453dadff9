//! Evicting pods through the Eviction API, so PodDisruptionBudgets are respected.
//!
//! Three layers, each usable on its own by the effects boundary:
//! - [`Kube::evict`]: ONE eviction request (optionally a server-side dry run), its answer
//!   classified: accepted, pod already gone, blocked by a budget, overlapping budgets,
//!   throttled, or failed.
//! - [`Kube::evict_until_gone`]: krun's own retry loop for one pod. A budget refusal is
//!   retried with backoff, or sooner when a covering budget's status changes and allows a
//!   disruption; the pod is re-checked before every attempt (gone, or a new UID under the
//!   same name, means done); why it waits is reported every `report_every`, not on every
//!   retry; then it waits for the pod to be gone, by watch.
//! - [`bounded`]: run per-pod work N at a time.
//!
//! kube's `Api::<Pod>::evict` is not used: it posts a body without `apiVersion`/`kind` and
//! with snake_case `delete_options`, which strict servers reject; a real `policy/v1`
//! `Eviction` is posted to the `eviction` subresource instead.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::OnceCell;

use super::Kube;
use super::error::{EvictionTimedOut, KubeError, KubeResult};
use super::pdb::{self, PdbStatus, PolicyVersion, ServedPdb};
use super::pod::{self, PodRef};
use super::watch::{Mirror, WaitError};

/// The Eviction API version the server offers (policy/v1 since Kubernetes 1.22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum EvictionApi {
    #[serde(rename = "policy/v1")]
    V1,
    #[serde(rename = "policy/v1beta1")]
    V1beta1,
}

impl EvictionApi {
    pub fn api_version(self) -> &'static str {
        match self {
            EvictionApi::V1 => "policy/v1",
            EvictionApi::V1beta1 => "policy/v1beta1",
        }
    }
}

/// Options of one eviction request.
#[derive(Debug, Clone, Default)]
pub struct EvictOptions {
    /// Seconds the pod gets to shut down; `None` keeps the pod's own
    /// `terminationGracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// Ask the API server whether it would admit the eviction now (`dryRun=All`), without
    /// evicting.
    pub dry_run: bool,
}

/// The API server's answer to one eviction request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum EvictionAnswer {
    /// Admitted: the pod is being deleted (in a dry run: would be admitted now).
    Accepted,
    /// 404: the pod is gone already.
    NotFound,
    /// 409 on the UID precondition: the name now belongs to a different pod.
    Replaced,
    /// 429 because a PodDisruptionBudget allows no disruption now.
    BlockedByBudget { message: String },
    /// 500 because more than one PodDisruptionBudget covers the pod.
    MultipleBudgets { message: String },
    /// 429 not about budgets: the API server asks clients to slow down.
    Throttled {
        message: String,
        retry_after_seconds: Option<u32>,
    },
    /// 403 because the namespace is being deleted.
    NamespaceTerminating { message: String },
    /// Anything else. `status` is absent when no HTTP answer arrived; `transient` says
    /// whether trying again can help (5xx, transport errors, conflicts).
    Failed {
        status: Option<u16>,
        message: String,
        transient: bool,
    },
}

impl EvictionAnswer {
    /// Sorts a request's result into an answer.
    pub fn classify<T>(result: Result<T, kube::Error>) -> Self {
        let status = match result {
            Ok(_) => return EvictionAnswer::Accepted,
            // Only a 2xx response reaches body parsing: the eviction was admitted, whatever
            // the body looked like.
            Err(kube::Error::SerdeError(_)) => return EvictionAnswer::Accepted,
            Err(kube::Error::Api(status)) => status,
            Err(other) => {
                return EvictionAnswer::Failed {
                    status: None,
                    message: other.to_string(),
                    transient: true,
                };
            }
        };
        let message = status.message.clone();
        let lower = message.to_lowercase();
        let causes: Vec<&str> = status
            .details
            .iter()
            .flat_map(|d| d.causes.iter())
            .map(|c| c.reason.as_str())
            .collect();
        let code = match status.code {
            0 => match status.reason.as_str() {
                "NotFound" => 404,
                "Conflict" => 409,
                "TooManyRequests" => 429,
                "Forbidden" => 403,
                "InternalError" => 500,
                _ => 0,
            },
            code => code,
        };
        match code {
            404 => EvictionAnswer::NotFound,
            409 if lower.contains("uid") => EvictionAnswer::Replaced,
            429 if causes.contains(&"DisruptionBudget") || lower.contains("disruption budget") => {
                EvictionAnswer::BlockedByBudget { message }
            }
            429 => EvictionAnswer::Throttled {
                message,
                retry_after_seconds: status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0),
            },
            500 if lower.contains("more than one poddisruptionbudget") => {
                EvictionAnswer::MultipleBudgets { message }
            }
            403 if causes.contains(&"NamespaceTerminating")
                || lower.contains("because it is being terminated") =>
            {
                EvictionAnswer::NamespaceTerminating { message }
            }
            code => EvictionAnswer::Failed {
                status: Some(code),
                message,
                transient: code == 409 || code >= 500,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            EvictionAnswer::Accepted => "accepted".to_owned(),
            EvictionAnswer::NotFound => "pod not found".to_owned(),
            EvictionAnswer::Replaced => "pod replaced by a new one".to_owned(),
            EvictionAnswer::BlockedByBudget { message }
            | EvictionAnswer::MultipleBudgets { message }
            | EvictionAnswer::Throttled { message, .. }
            | EvictionAnswer::NamespaceTerminating { message } => message.clone(),
            EvictionAnswer::Failed {
                status: Some(code),
                message,
                ..
            } => format!("{message} ({code})"),
            EvictionAnswer::Failed { message, .. } => message.clone(),
        }
    }
}

/// Explicit permission to delete pods without the Eviction API, bypassing every
/// PodDisruptionBudget. Only [`EvictionBypass::acknowledged`] makes one, so no code path can
/// bypass budgets by default; the reason is logged with every delete.
#[derive(Debug, Clone)]
pub struct EvictionBypass {
    reason: String,
}

impl EvictionBypass {
    /// `reason` says who asked and why (`--set disable_eviction=true by operator`).
    pub fn acknowledged(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// How one pod's eviction is retried and waited for.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub grace_period: Option<i64>,
    /// Give up at this instant; `None` waits as long as it takes (kubectl's default).
    pub deadline: Option<Instant>,
    /// How often a waiting eviction says why it waits.
    pub report_every: Duration,
    /// The longest pause between two attempts (kubectl always waits 5 s).
    pub max_backoff: Duration,
    /// Consider a pod terminating for longer than this as gone
    /// (`skip_wait_for_delete_timeout`).
    pub skip_wait_for_delete_timeout: Option<Duration>,
    /// Give up after this many transient failures (5xx, connection errors) in a row.
    pub max_transient_failures: u32,
    /// Shared by the evictions of one drain: at most this many requests in flight at once.
    /// Waiting (for a budget, for termination) holds no permit.
    pub request_limit: Option<Arc<tokio::sync::Semaphore>>,
    /// Shared by the evictions of one drain: how many of their requests the server answered
    /// with something other than a server error. One answered since a pod's last server error
    /// breaks that pod's row: the server is up, and the pod was unlucky in a burst.
    pub answered: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            grace_period: None,
            deadline: None,
            report_every: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
            skip_wait_for_delete_timeout: None,
            max_transient_failures: 5,
            request_limit: None,
            answered: Arc::default(),
        }
    }
}

/// How a pod left (or was let go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvictionOutcome {
    /// Evicted and gone.
    Evicted,
    /// Deleted without the Eviction API (an [`EvictionBypass`]) and gone.
    Deleted,
    /// Gone before krun evicted it.
    AlreadyGone,
    /// Its name now belongs to a new pod (a StatefulSet replica): the old one is gone.
    Replaced,
    /// Still terminating, but for longer than `skip_wait_for_delete_timeout`: not waited for.
    StillTerminating,
}

/// What happened to one pod, for the drain report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvictionReport {
    pub pod: PodRef,
    pub outcome: EvictionOutcome,
    /// Eviction requests sent.
    pub attempts: u32,
    /// The budgets that refused it at least once, with their latest numbers.
    pub blocked_by: Vec<PdbStatus>,
    /// How long budgets held it, in milliseconds.
    pub blocked_ms: u64,
    pub took_ms: u64,
}

/// What a running eviction tells its observer.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// An eviction (or delete) was admitted; the pod is terminating.
    Accepted { pod: PodRef, attempts: u32 },
    /// Refused by budgets, and still trying; sent every `report_every`.
    Waiting {
        pod: PodRef,
        budgets: Vec<PdbStatus>,
        waited_ms: u64,
    },
    /// Done with this pod.
    Finished(EvictionReport),
}

/// The watches an eviction loop looks at instead of re-reading the API: the pods concerned
/// and the PodDisruptionBudgets that may cover them.
pub struct EvictionWatches {
    pub pods: Mirror<Pod>,
    pub budgets: Mirror<ServedPdb>,
}

/// Where a pod is now, as the pod watch sees it.
#[derive(Debug, Clone)]
pub enum PodState {
    Gone,
    Replaced,
    Present(Arc<Pod>),
}

impl EvictionWatches {
    /// Watches every pod on `node` and every budget in the cluster: one LIST and one WATCH
    /// each, however many pods are evicted.
    pub async fn for_node(kube: &Kube, node: &str) -> Self {
        let budgets = kube.pdb_api(None).await;
        Self {
            pods: Mirror::start(
                Api::all(kube.client.clone()),
                watcher::Config::default().fields(&format!("spec.nodeName={node}")),
                format!("pods on node {node}"),
            ),
            budgets: Mirror::start(
                budgets,
                watcher::Config::default(),
                "PodDisruptionBudgets".to_owned(),
            ),
        }
    }

    /// Watches one pod and the budgets of its namespace.
    pub async fn for_pod(kube: &Kube, namespace: &str, name: &str) -> Self {
        let budgets = kube.pdb_api(Some(namespace)).await;
        Self {
            pods: Mirror::start(
                Api::namespaced(kube.client.clone(), namespace),
                watcher::Config::default().fields(&format!("metadata.name={name}")),
                format!("pod {namespace}/{name}"),
            ),
            budgets: Mirror::start(
                budgets,
                watcher::Config::default(),
                format!("PodDisruptionBudgets in {namespace}"),
            ),
        }
    }

    /// Waits for both first lists. Budgets that cannot be read (no permission: kubectl's
    /// drain needs none) are not an error: evictions still respect them, the API server
    /// enforces them, but waits cannot name them.
    pub async fn ready(&self, deadline: Option<Instant>) -> KubeResult<()> {
        let failed = |what: &str, message: String| KubeError::Watch {
            what: what.to_owned(),
            message,
        };
        match self.pods.ready(deadline).await {
            Ok(()) => {}
            Err(
                WaitError::Watch(message)
                | WaitError::TimedOut {
                    last_error: Some(message),
                },
            ) => {
                return Err(failed(self.pods.what(), message));
            }
            Err(WaitError::TimedOut { last_error: None }) => {
                return Err(failed(
                    self.pods.what(),
                    "no answer before the deadline".to_owned(),
                ));
            }
        }
        match self.budgets.ready(deadline).await {
            Ok(()) => Ok(()),
            Err(WaitError::Watch(message)) => {
                tracing::warn!(
                    "cannot read PodDisruptionBudgets ({message}); evictions still respect them, but waits will not say which one holds a pod"
                );
                Ok(())
            }
            Err(WaitError::TimedOut { last_error }) => Err(failed(
                self.budgets.what(),
                last_error.unwrap_or_else(|| "no answer before the deadline".to_owned()),
            )),
        }
    }

    pub fn pod_state(&self, pod: &PodRef) -> PodState {
        state_in(&self.pods, pod)
    }

    /// The budgets covering `pod`, with their current numbers.
    pub fn covering(&self, pod: &Pod) -> Vec<PdbStatus> {
        let all = self.budgets.all();
        pdb::covering(all.iter().map(|b| &b.0), pod)
            .into_iter()
            .map(PdbStatus::of)
            .collect()
    }
}

fn state_in(pods: &Mirror<Pod>, pod: &PodRef) -> PodState {
    match pods.get(Some(&pod.namespace), &pod.name) {
        None => PodState::Gone,
        Some(p) if p.metadata.uid.as_deref().unwrap_or_default() != pod.uid => PodState::Replaced,
        Some(p) => PodState::Present(p),
    }
}

/// The Eviction API version discovery offers, as kubectl decides it: the policy group's
/// policy/v1 if served, else policy/v1beta1, and only if the core group lists `pods/eviction`.
pub fn choose_eviction_api(groups: &APIGroupList, core: &APIResourceList) -> Option<EvictionApi> {
    let served = |version: &str| {
        groups
            .groups
            .iter()
            .filter(|g| g.name == "policy")
            .flat_map(|g| &g.versions)
            .any(|v| v.group_version == version)
    };
    let api = if served("policy/v1") {
        EvictionApi::V1
    } else if served("policy/v1beta1") {
        EvictionApi::V1beta1
    } else {
        return None;
    };
    core.resources
        .iter()
        .any(|r| r.name == "pods/eviction")
        .then_some(api)
}

fn key_of(budget: &PodDisruptionBudget) -> String {
    format!(
        "{}/{}",
        budget.metadata.namespace.as_deref().unwrap_or_default(),
        budget.metadata.name.as_deref().unwrap_or_default()
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Kube {
    /// The Eviction API version to use, found by discovery once per connection: policy/v1 when
    /// served, else policy/v1beta1; an error when neither serves `pods/eviction`.
    pub async fn eviction_api(&self) -> KubeResult<EvictionApi> {
        self.eviction_api
            .get_or_try_init(|| async {
                let groups = self
                    .client
                    .list_api_groups()
                    .await
                    .map_err(|e| KubeError::api("GET /apis (discovery)", e))?;
                let core = self
                    .client
                    .list_core_api_resources("v1")
                    .await
                    .map_err(|e| KubeError::api("GET /api/v1 (discovery)", e))?;
                choose_eviction_api(&groups, &core).ok_or_else(|| KubeError::EvictionUnsupported {
                    server: self.source.clone(),
                })
            })
            .await
            .copied()
    }

    /// Skips discovery and posts evictions as `api`, for API servers whose discovery
    /// documents are incomplete. Budgets are then read through the same policy version
    /// (every server that serves policy/v1beta1 evictions serves policy/v1beta1 budgets).
    #[must_use]
    pub fn with_eviction_api(self, api: EvictionApi) -> Self {
        let policy = match api {
            EvictionApi::V1 => PolicyVersion::V1,
            EvictionApi::V1beta1 => PolicyVersion::V1beta1,
        };
        Self {
            eviction_api: Arc::new(OnceCell::new_with(Some(api))),
            policy_version: Arc::new(OnceCell::new_with(Some(policy))),
            ..self
        }
    }

    /// Sends ONE eviction request for `pod` and says what the server answered. The request
    /// carries the pod's UID as a precondition, so a new pod that took the name is never
    /// evicted by mistake.
    pub async fn evict(&self, pod: &PodRef, options: &EvictOptions) -> KubeResult<EvictionAnswer> {
        let api_version = self.eviction_api().await?.api_version();
        let mut delete_options = serde_json::json!({});
        if let Some(grace) = options.grace_period {
            delete_options["gracePeriodSeconds"] = grace.into();
        }
        if !pod.uid.is_empty() {
            delete_options["preconditions"] = serde_json::json!({ "uid": pod.uid });
        }
        if options.dry_run {
            delete_options["dryRun"] = serde_json::json!(["All"]);
        }
        let body = serde_json::json!({
            "apiVersion": api_version,
            "kind": "Eviction",
            "metadata": { "name": pod.name, "namespace": pod.namespace },
            "deleteOptions": delete_options,
        });
        let params = PostParams {
            dry_run: options.dry_run,
            field_manager: None,
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let result = api
            .create_subresource::<_, serde_json::Value>("eviction", &pod.name, &params, &body)
            .await;
        Ok(EvictionAnswer::classify(result))
    }

    /// Deletes `pod` directly (one DELETE), bypassing PodDisruptionBudgets. Needs an explicit
    /// [`EvictionBypass`]; logged as a warning every time.
    pub async fn delete_pod(
        &self,
        pod: &PodRef,
        grace_period: Option<i64>,
        bypass: &EvictionBypass,
    ) -> KubeResult<EvictionAnswer> {
        tracing::warn!(
            "deleting pod {pod} WITHOUT the Eviction API: PodDisruptionBudgets are not checked ({})",
            bypass.reason()
        );
        let params = DeleteParams {
            grace_period_seconds: grace_period.and_then(|g| u32::try_from(g).ok()),
            preconditions: (!pod.uid.is_empty()).then(|| Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        Ok(EvictionAnswer::classify(
            api.delete(&pod.name, &params).await,
        ))
    }

    /// The `evict(namespace, pod)` primitive: evicts one pod wherever it runs and waits until
    /// it is gone, watching only that pod and the budgets of its namespace. A pod that does not
    /// exist is reported as already gone.
    pub async fn evict_pod(
        &self,
        namespace: &str,
        name: &str,
        policy: &RetryPolicy,
        bypass: Option<&EvictionBypass>,
        observer: &(dyn Fn(Progress) + Send + Sync),
    ) -> KubeResult<EvictionReport> {
        let watches = EvictionWatches::for_pod(self, namespace, name).await;
        watches.ready(policy.deadline).await?;
        let Some(pod) = watches.pods.get(Some(namespace), name) else {
            let report = EvictionReport {
                pod: PodRef {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    uid: String::new(),
                },
                outcome: EvictionOutcome::AlreadyGone,
                attempts: 0,
                blocked_by: Vec::new(),
                blocked_ms: 0,
                took_ms: 0,
            };
            observer(Progress::Finished(report.clone()));
            return Ok(report);
        };
        if bypass.is_none() {
            self.eviction_api().await?;
        }
        self.evict_until_gone(&pod, policy, bypass, &watches, observer)
            .await
    }

    /// Evicts `pod` and waits until it is gone, retrying refusals as [`RetryPolicy`] says.
    /// With a `bypass`, deletes instead (no budget is consulted).
    pub async fn evict_until_gone(
        &self,
        pod: &Pod,
        policy: &RetryPolicy,
        bypass: Option<&EvictionBypass>,
        watches: &EvictionWatches,
        observer: &(dyn Fn(Progress) + Send + Sync),
    ) -> KubeResult<EvictionReport> {
        let started = Instant::now();
        let target = PodRef::of(pod);
        // Before the first list, the watch would call every pod gone.
        watches.ready(policy.deadline).await?;
        let mut attempts = 0u32;
        let mut transient_failures = 0u32;
        let mut answered_at_last_failure =
            policy.answered.load(std::sync::atomic::Ordering::SeqCst);
        let mut backoff = Duration::from_millis(500).min(policy.max_backoff);
        let mut blocked_since: Option<Instant> = None;
        let mut blocked_total = Duration::ZERO;
        let mut blocked_by: Vec<PdbStatus> = Vec::new();
        let mut last_report: Option<Instant> = None;
        let mut last_answer = String::from("no answer yet");
        let options = EvictOptions {
            grace_period: policy.grace_period,
            dry_run: false,
        };

        let finish = |outcome, attempts, blocked_total: Duration, blocked_by: Vec<PdbStatus>| {
            let report = EvictionReport {
                pod: target.clone(),
                outcome,
                attempts,
                blocked_by,
                blocked_ms: millis(blocked_total),
                took_ms: millis(started.elapsed()),
            };
            observer(Progress::Finished(report.clone()));
            report
        };

        let accepted_how = loop {
            let current = match watches.pod_state(&target) {
                PodState::Gone => {
                    return Ok(finish(
                        EvictionOutcome::AlreadyGone,
                        attempts,
                        blocked_total,
                        blocked_by,
                    ));
                }
                PodState::Replaced => {
                    return Ok(finish(
                        EvictionOutcome::Replaced,
                        attempts,
                        blocked_total,
                        blocked_by,
                    ));
                }
                PodState::Present(p) => p,
            };
            if pod::deletion_timestamp(&current).is_some() {
                // Already terminating (evicted by someone else, or our earlier attempt whose
                // answer was lost): nothing to send, only to wait for.
                break if bypass.is_some() {
                    EvictionOutcome::Deleted
                } else {
                    EvictionOutcome::Evicted
                };
            }
            if policy.deadline.is_some_and(|d| Instant::now() >= d) {
                let blocked_now = if blocked_since.is_some() {
                    watches.covering(&current)
                } else {
                    Vec::new()
                };
                return Err(KubeError::EvictionTimedOut(Box::new(EvictionTimedOut {
                    pod: target,
                    waited: started.elapsed(),
                    blocked_by: blocked_now,
                    last_answer,
                })));
            }
            attempts += 1;
            let permit = match &policy.request_limit {
                Some(limit) => Some(limit.acquire().await.map_err(|_| KubeError::Cancelled {
                    doing: format!("evicting pod {target}"),
                })?),
                None => None,
            };
            let answer = match bypass {
                Some(bypass) => {
                    self.delete_pod(&target, policy.grace_period, bypass)
                        .await?
                }
                None => self.evict(&target, &options).await?,
            };
            drop(permit);
            last_answer = answer.describe();
            let answered = if matches!(
                answer,
                EvictionAnswer::Failed {
                    transient: true,
                    ..
                }
            ) {
                policy.answered.load(std::sync::atomic::Ordering::SeqCst)
            } else {
                policy
                    .answered
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    + 1
            };
            if answered != answered_at_last_failure {
                transient_failures = 0;
            }
            if !matches!(answer, EvictionAnswer::BlockedByBudget { .. })
                && let Some(since) = blocked_since.take()
            {
                blocked_total += since.elapsed();
            }
            let pause = match answer {
                EvictionAnswer::Accepted => {
                    break if bypass.is_some() {
                        EvictionOutcome::Deleted
                    } else {
                        EvictionOutcome::Evicted
                    };
                }
                EvictionAnswer::NotFound => {
                    return Ok(finish(
                        EvictionOutcome::AlreadyGone,
                        attempts,
                        blocked_total,
                        blocked_by,
                    ));
                }
                EvictionAnswer::Replaced => {
                    return Ok(finish(
                        EvictionOutcome::Replaced,
                        attempts,
                        blocked_total,
                        blocked_by,
                    ));
                }
                EvictionAnswer::MultipleBudgets { message } => {
                    return Err(KubeError::MultiplePdbs {
                        pod: target,
                        pdbs: watches.covering(&current),
                        message,
                    });
                }
                EvictionAnswer::BlockedByBudget { .. } => {
                    transient_failures = 0;
                    let since = *blocked_since.get_or_insert_with(Instant::now);
                    let pause = backoff;
                    backoff = (backoff * 2).min(policy.max_backoff);
                    let budgets = self
                        .wait_for_budget(watches, &current, &target, pause, policy.deadline)
                        .await;
                    for budget in &budgets {
                        match blocked_by.iter_mut().find(|b| b.key() == budget.key()) {
                            Some(known) => *known = budget.clone(),
                            None => blocked_by.push(budget.clone()),
                        }
                    }
                    let now = Instant::now();
                    if last_report.is_none_or(|at| now - at >= policy.report_every) {
                        last_report = Some(now);
                        let waited = blocked_total + (now - since);
                        let shown =
                            humantime::format_duration(Duration::from_secs(waited.as_secs()));
                        if budgets.is_empty() {
                            tracing::info!(
                                "waiting to evict pod {target} ({shown}): {last_answer}"
                            );
                        } else {
                            tracing::info!(
                                "waiting to evict pod {target} ({shown}): PodDisruptionBudget {}",
                                pdb::describe(&budgets)
                            );
                        }
                        observer(Progress::Waiting {
                            pod: target.clone(),
                            budgets,
                            waited_ms: millis(waited),
                        });
                    }
                    continue;
                }
                EvictionAnswer::Throttled {
                    retry_after_seconds,
                    ..
                } => retry_after_seconds
                    .map_or(backoff, |s| Duration::from_secs(u64::from(s)))
                    .min(policy.max_backoff.max(Duration::from_secs(1))),
                EvictionAnswer::NamespaceTerminating { .. } => policy.max_backoff,
                EvictionAnswer::Failed {
                    transient: true,
                    status,
                    ref message,
                } => {
                    transient_failures += 1;
                    answered_at_last_failure = answered;
                    if transient_failures > policy.max_transient_failures {
                        return Err(KubeError::EvictionFailed {
                            pod: target,
                            message: format!(
                                "gave up after {transient_failures} failures in a row, the last: {}",
                                match status {
                                    Some(code) => format!("{message} ({code})"),
                                    None => message.clone(),
                                }
                            ),
                        });
                    }
                    tracing::warn!("eviction of pod {target} failed, will retry: {last_answer}");
                    let pause = backoff;
                    backoff = (backoff * 2).min(policy.max_backoff);
                    pause
                }
                EvictionAnswer::Failed {
                    transient: false, ..
                } => {
                    return Err(KubeError::EvictionFailed {
                        pod: target,
                        message: format!("the API server refused it: {last_answer}"),
                    });
                }
            };
            let pause = match policy.deadline {
                Some(deadline) => pause.min(deadline.saturating_duration_since(Instant::now())),
                None => pause,
            };
            tokio::time::sleep(pause).await;
        };

        observer(Progress::Accepted {
            pod: target.clone(),
            attempts,
        });
        let outcome = self
            .wait_gone(watches, &target, policy, accepted_how)
            .await?;
        Ok(finish(outcome, attempts, blocked_total, blocked_by))
    }

    /// After a budget refusal: returns after `pause`, or earlier when a covering budget
    /// changes and now allows a disruption, or the pod goes away. Returns the covering budgets
    /// as they were when they refused: the watch may lag the server by a moment, so it first
    /// waits (briefly) for the watch to show a budget with no disruption allowed.
    async fn wait_for_budget(
        &self,
        watches: &EvictionWatches,
        pod: &Pod,
        target: &PodRef,
        pause: Duration,
        deadline: Option<Instant>,
    ) -> Vec<PdbStatus> {
        let until = Instant::now() + pause;
        let until = deadline.map_or(until, |d| d.min(until));
        let covering = |store: &Store<ServedPdb>| -> Vec<Arc<PodDisruptionBudget>> {
            let all = store.state();
            pdb::covering(all.iter().map(|b| &b.0), pod)
                .into_iter()
                .map(|b| Arc::new(b.clone()))
                .collect()
        };
        let refusing =
            |b: &PodDisruptionBudget| b.status.as_ref().is_none_or(|s| s.disruptions_allowed <= 0);
        let _ = watches
            .budgets
            .wait_until(Some(until), |store| {
                covering(store).iter().any(|b| refusing(b))
            })
            .await;
        let held: Vec<Arc<PodDisruptionBudget>> = covering(watches.budgets.store());
        let seen: Vec<(String, Option<String>)> = held
            .iter()
            .map(|b| (key_of(b), b.metadata.resource_version.clone()))
            .collect();
        let budget_opened = |store: &Store<ServedPdb>| {
            covering(store).iter().any(|b| {
                let changed = !seen
                    .iter()
                    .any(|(k, rv)| *k == key_of(b) && *rv == b.metadata.resource_version);
                changed && !refusing(b)
            })
        };
        let budget_opens = async {
            if let Err(WaitError::Watch(_)) =
                watches.budgets.wait_until(Some(until), budget_opened).await
            {
                // Budgets cannot be watched: only the pause is left.
                tokio::time::sleep_until(until.into()).await;
            }
        };
        tokio::select! {
            () = budget_opens => {}
            _ = watches.pods.wait_until(Some(until), |_| {
                !matches!(state_in(&watches.pods, target), PodState::Present(_))
            }) => {}
        }
        held.iter().map(|b| PdbStatus::of(b)).collect()
    }

    /// Waits, by watch, for an evicted pod to be gone.
    async fn wait_gone(
        &self,
        watches: &EvictionWatches,
        target: &PodRef,
        policy: &RetryPolicy,
        how: EvictionOutcome,
    ) -> KubeResult<EvictionOutcome> {
        let waited_from = Instant::now();
        let terminating_too_long = |p: &Pod| {
            policy
                .skip_wait_for_delete_timeout
                .filter(|limit| !limit.is_zero())
                .zip(pod::deletion_timestamp(p))
                .is_some_and(|(limit, since)| {
                    let now = k8s_openapi::jiff::Timestamp::now();
                    now.as_second() - since.as_second()
                        > i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)
                })
        };
        let result = watches
            .pods
            .wait_until(policy.deadline, |_| match state_in(&watches.pods, target) {
                PodState::Gone | PodState::Replaced => true,
                PodState::Present(p) => terminating_too_long(&p),
            })
            .await;
        match result {
            Ok(()) => Ok(match state_in(&watches.pods, target) {
                PodState::Gone => how,
                PodState::Replaced => {
                    if how == EvictionOutcome::Deleted {
                        how
                    } else {
                        EvictionOutcome::Evicted
                    }
                }
                PodState::Present(_) => {
                    tracing::warn!(
                        "pod {target} has been terminating for longer than skip_wait_for_delete_timeout; not waiting for it"
                    );
                    EvictionOutcome::StillTerminating
                }
            }),
            Err(WaitError::TimedOut { .. }) => Err(KubeError::DeletionTimedOut {
                pod: target.clone(),
                how: if how == EvictionOutcome::Deleted {
                    "deleted"
                } else {
                    "evicted"
                },
                waited: waited_from.elapsed(),
            }),
            Err(WaitError::Watch(message)) => Err(KubeError::Watch {
                what: watches.pods.what().to_owned(),
                message,
            }),
        }
    }
}

/// Runs `work` on every item, at most `limit` at a time; results come back in item order.
pub async fn bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, work: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R>,
{
    let mut results: Vec<(usize, R)> = futures::stream::iter(items.into_iter().enumerate())
        .map(|(i, item)| {
            let future = work(item);
            async move { (i, future.await) }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use kube::core::response::{StatusCause, StatusDetails};

    fn api_error(code: u16, reason: &str, message: &str, causes: &[&str]) -> kube::Error {
        let mut status = Status::failure(message, reason).with_code(code);
        if !causes.is_empty() {
            status = status.with_details(StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes: causes
                    .iter()
                    .map(|c| StatusCause {
                        reason: (*c).to_owned(),
                        message: String::new(),
                        field: String::new(),
                    })
                    .collect(),
                retry_after_seconds: 0,
            });
        }
        kube::Error::Api(status.boxed())
    }

    fn classify(error: kube::Error) -> EvictionAnswer {
        EvictionAnswer::classify::<()>(Err(error))
    }

    #[test]
    fn budget_refusals_are_told_apart_from_throttling() {
        let blocked = classify(api_error(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            &["DisruptionBudget"],
        ));
        assert!(
            matches!(blocked, EvictionAnswer::BlockedByBudget { .. }),
            "{blocked:?}"
        );
        // Without causes, the message alone is enough.
        let blocked = classify(api_error(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            &[],
        ));
        assert!(
            matches!(blocked, EvictionAnswer::BlockedByBudget { .. }),
            "{blocked:?}"
        );
        let throttled = classify(api_error(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            &[],
        ));
        assert!(
            matches!(throttled, EvictionAnswer::Throttled { .. }),
            "{throttled:?}"
        );
    }

    #[test]
    fn overlapping_budgets_are_not_a_transient_500() {
        let answer = classify(api_error(
            500,
            "InternalError",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            &[],
        ));
        assert!(
            matches!(answer, EvictionAnswer::MultipleBudgets { .. }),
            "{answer:?}"
        );
        let answer = classify(api_error(
            500,
            "InternalError",
            "etcdserver: request timed out",
            &[],
        ));
        assert_eq!(
            answer,
            EvictionAnswer::Failed {
                status: Some(500),
                message: "etcdserver: request timed out".to_owned(),
                transient: true
            }
        );
    }

    #[test]
    fn gone_replaced_and_forbidden() {
        assert_eq!(
            classify(api_error(404, "NotFound", "pods \"web-1\" not found", &[])),
            EvictionAnswer::NotFound
        );
        assert_eq!(
            classify(api_error(
                409,
                "Conflict",
                "Precondition failed: UID in precondition: a, UID in object meta: b",
                &[]
            )),
            EvictionAnswer::Replaced
        );
        assert!(matches!(
            classify(api_error(
                403,
                "Forbidden",
                "pods \"x\" is forbidden: unable to create new content in namespace ns because it is being terminated",
                &["NamespaceTerminating"]
            )),
            EvictionAnswer::NamespaceTerminating { .. }
        ));
        assert_eq!(
            classify(api_error(403, "Forbidden", "no RBAC", &[])),
            EvictionAnswer::Failed {
                status: Some(403),
                message: "no RBAC".to_owned(),
                transient: false
            }
        );
    }

    #[test]
    fn a_status_without_code_is_read_from_its_reason() {
        assert_eq!(
            classify(api_error(0, "NotFound", "gone", &[])),
            EvictionAnswer::NotFound
        );
    }

    #[test]
    fn success_is_accepted() {
        assert_eq!(EvictionAnswer::classify(Ok(())), EvictionAnswer::Accepted);
    }

    fn discovery(policy: &[&str], core: &[&str]) -> (APIGroupList, APIResourceList) {
        let groups = serde_json::json!({
            "groups": [{
                "name": "policy",
                "versions": policy.iter().map(|v| serde_json::json!({"groupVersion": v, "version": v.trim_start_matches("policy/")})).collect::<Vec<_>>(),
            }]
        });
        let core = serde_json::json!({
            "groupVersion": "v1",
            "resources": core.iter().map(|r| serde_json::json!({"name": r, "kind": "Pod", "namespaced": true, "singularName": "", "verbs": []})).collect::<Vec<_>>(),
        });
        (
            serde_json::from_value(groups).unwrap(),
            serde_json::from_value(core).unwrap(),
        )
    }

    #[test]
    fn discovery_prefers_policy_v1_and_falls_back_to_v1beta1() {
        let (groups, core) =
            discovery(&["policy/v1", "policy/v1beta1"], &["pods", "pods/eviction"]);
        assert_eq!(choose_eviction_api(&groups, &core), Some(EvictionApi::V1));
        // A 1.20 cluster.
        let (groups, core) = discovery(&["policy/v1beta1"], &["pods", "pods/eviction"]);
        assert_eq!(
            choose_eviction_api(&groups, &core),
            Some(EvictionApi::V1beta1)
        );
        let (groups, core) = discovery(&[], &["pods", "pods/eviction"]);
        assert_eq!(choose_eviction_api(&groups, &core), None);
        let (groups, core) = discovery(&["policy/v1"], &["pods"]);
        assert_eq!(choose_eviction_api(&groups, &core), None);
    }

    #[tokio::test]
    async fn bounded_keeps_order_and_limits_concurrency() {
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let results = bounded((0..20u64).collect(), 3, |i| {
            let running = Arc::clone(&running);
            let peak = Arc::clone(&peak);
            async move {
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                // Later items finish first, so order must be restored.
                tokio::time::sleep(Duration::from_millis(20 - i)).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(results, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
