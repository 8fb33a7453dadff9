//! The Kubernetes service behind the boundary: performs [`crate::kube::Call`]s, or previews
//! them for a dry-run.
//!
//! Reads run in a dry-run too. A drain in a dry-run is the drain's preview: the same plan
//! (evict / skip with the reason / refuse with the option that would allow it) from the live
//! pods, and a server-side dry-run eviction (`dryRun=All`) per pod saying whether the API server
//! would admit it now. Cordon, uncordon and evictions are recorded, never sent.

use std::any::Any;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::{Call, Detail, EffectError, Recheck, Reply, Service};
use crate::kube::{
    Call as KubeCall, ClientOptions, ClusterView, EvictOptions, Kube, KubeError, RetryPolicy,
    Survey,
};

/// The name Kubernetes calls give as their service, and steps as their target.
pub const SERVICE: &str = "kubernetes";

impl super::Precondition for crate::kube::lock::LockGuard {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.confirm())
    }
}

impl Call for KubeCall {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn describe(&self) -> String {
        KubeCall::describe(self)
    }

    fn recheck(&self) -> Recheck {
        if self.converges() {
            Recheck::Rerun
        } else {
            Recheck::Ask
        }
    }

    fn replayable(&self) -> bool {
        !self.reads_the_present()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The cluster, connected on first use as kubectl would (`--kubeconfig`, `--context`,
/// `KUBECONFIG`, in-cluster).
pub struct KubeService {
    options: ClientOptions,
    client: OnceCell<Kube>,
    /// See [`KubeService::on_cluster_time`].
    time_scale: f64,
    /// The cluster is the rehearsal's simulator (see [`KubeService::rehearsal`]).
    simulator: bool,
}

impl KubeService {
    pub fn new(options: ClientOptions) -> Self {
        Self {
            options,
            client: OnceCell::new(),
            time_scale: 1.0,
            simulator: false,
        }
    }

    /// A service bound to the rehearsal's in-process simulator. The node commands a rehearsal
    /// records instead of running would have upgraded kubelets, so a wait for a node's new
    /// kubelet version first tells the simulator that the node runs it.
    pub fn rehearsal(kube: Kube) -> Self {
        Self {
            options: ClientOptions::default(),
            client: OnceCell::new_with(Some(kube)),
            time_scale: 1.0,
            simulator: true,
        }
    }

    /// The cluster's clock runs `scale` times faster than real time (the rehearsal
    /// simulator): a playbook's timeouts, written in cluster time ("10m" for a drain), are
    /// waited that much shorter, so a rehearsal of a drain a budget blocks ends in seconds.
    pub fn on_cluster_time(mut self, scale: f64) -> Self {
        if scale.is_finite() && scale > 0.0 {
            self.time_scale = scale;
        }
        self
    }

    fn real(&self, cluster_time: Duration) -> Duration {
        cluster_time.div_f64(self.time_scale)
    }

    pub async fn client(&self) -> Result<&Kube, EffectError> {
        self.client
            .get_or_try_init(|| Kube::connect(&self.options))
            .await
            .map_err(kube_error)
    }

    /// Rehearsal only: the simulator's node `node` now runs kubelet `version`, as the node
    /// commands the rehearsal recorded (instead of running) would have made it. Without this, a
    /// rehearsed wait for the new kubelet version could never end.
    async fn rehearse_kubelet(&self, node: &str, version: &str) -> Result<(), EffectError> {
        let kube = self.client().await?;
        let version = if version.starts_with('v') {
            version.to_owned()
        } else {
            format!("v{version}")
        };
        let body = json!({ "kubeletVersion": version, "ready": true }).to_string();
        let request = http::Request::put(format!("/sim/nodes/{node}"))
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .map_err(|e| EffectError::Other(e.to_string()))?;
        kube.client()
            .request_text(request)
            .await
            .map(|_| ())
            .map_err(|e| {
                EffectError::Other(format!(
                    "the rehearsal simulator did not take node {node}'s new kubelet version: {e}"
                ))
            })
    }

    /// Executes a call against the cluster.
    async fn live(&self, call: &KubeCall) -> Result<Reply, EffectError> {
        let kube = self.client().await?;
        if let (
            true,
            KubeCall::WaitReady {
                node,
                version: Some(version),
                ..
            },
        ) = (self.simulator, call)
        {
            self.rehearse_kubelet(node, version).await?;
        }
        let value = match call {
            KubeCall::ServerVersion => to_json(&kube.server_version().await.map_err(kube_error)?),
            KubeCall::Nodes => to_json(&kube.node_infos().await.map_err(kube_error)?),
            KubeCall::ApiserverVersions => {
                let versions = kube.apiserver_versions().await.map_err(kube_error)?;
                Value::Array(
                    versions
                        .into_iter()
                        .map(|(node, version)| json!({ "node": node, "version": version }))
                        .collect(),
                )
            }
            KubeCall::ControlPlanes => {
                let nodes =
                    kube::Api::<k8s_openapi::api::core::v1::Node>::all(kube.client().clone())
                        .list(&kube::api::ListParams::default())
                        .await
                        .map_err(|e| kube_error(KubeError::api("LIST nodes", e)))?;
                to_json(&crate::kube::node::control_planes(&nodes.items))
            }
            KubeCall::NodeInfo { node } => {
                to_json(&kube.node_info(node).await.map_err(kube_error)?)
            }
            KubeCall::PodsOn { node } => {
                let pods = kube.pods_on(node).await.map_err(kube_error)?;
                Value::Array(pods.iter().map(pod_summary).collect())
            }
            KubeCall::Pdbs => {
                let pdbs = kube.pdbs().await.map_err(kube_error)?;
                Value::Array(
                    pdbs.iter()
                        .map(|p| to_json(&crate::kube::PdbStatus::of(p)))
                        .collect(),
                )
            }
            KubeCall::Cordon { node } => {
                json!({ "node": node, "changed": kube.cordon(node).await.map_err(kube_error)? })
            }
            KubeCall::Uncordon { node } => {
                json!({ "node": node, "changed": kube.uncordon(node).await.map_err(kube_error)? })
            }
            KubeCall::Drain { node, options } => {
                if let Some(bypass) = &options.disable_eviction {
                    tracing::warn!(
                        "DRAIN OF {node} BYPASSES PodDisruptionBudgets (disable_eviction): {}",
                        bypass.reason()
                    );
                }
                let progress = DrainProgress::new(node, options.timeout, self.time_scale);
                let observer = |event: crate::kube::DrainEvent| {
                    log_drain_event(&event);
                    progress.update(&event);
                };
                let mut options = options.as_ref().clone();
                options.timeout = options.timeout.map(|t| self.real(t));
                to_json(
                    &kube
                        .drain(node, &options, &observer)
                        .await
                        .map_err(drain_error)?,
                )
            }
            KubeCall::Evict {
                namespace,
                pod,
                grace_period,
                timeout,
            } => {
                let policy = RetryPolicy {
                    grace_period: *grace_period,
                    deadline: timeout.map(|t| std::time::Instant::now() + self.real(t)),
                    ..RetryPolicy::default()
                };
                let observer = |progress: crate::kube::eviction::Progress| log_progress(&progress);
                to_json(
                    &kube
                        .evict_pod(namespace, pod, &policy, None, &observer)
                        .await
                        .map_err(kube_error)?,
                )
            }
            KubeCall::WaitReady {
                node,
                timeout,
                version,
            } => to_json(
                &kube
                    .wait_ready(node, self.real(*timeout), version.as_deref())
                    .await
                    .map_err(kube_error)?,
            ),
            KubeCall::ClusterView => {
                let view = ClusterView::read(kube).await.map_err(kube_error)?;
                return Ok(Reply {
                    data: view.summary(),
                    detail: Some(Detail::new(view)),
                });
            }
            KubeCall::Survey(request) => {
                let survey = Survey::read(kube, request).await.map_err(kube_error)?;
                return Ok(Reply {
                    data: survey.summary(),
                    detail: Some(Detail::new(survey)),
                });
            }
            KubeCall::Baseline => {
                let view = ClusterView::read(kube).await.map_err(kube_error)?;
                to_json(&crate::kube::health::Baseline::of(&view))
            }
            KubeCall::Verify(request) => to_json(&self.verify(kube, request).await?),
            KubeCall::Apply { objects, .. } => {
                to_json(&kube.apply(objects, false).await.map_err(kube_error)?)
            }
            KubeCall::WaitRollout { workloads, timeout } => {
                let states = kube
                    .wait_rollout(workloads, self.real(*timeout), Duration::from_secs(1))
                    .await
                    .map_err(kube_error)?;
                rollout_report(&states)?
            }
            KubeCall::Lock {
                name,
                holder,
                on_lost,
            } => {
                let refused = |e: crate::kube::lock::LockError| EffectError::Refused(e.to_string());
                crate::kube::lock::check_kured(kube)
                    .await
                    .map_err(refused)?;
                let lock = crate::kube::lock::acquire(kube, name, holder, on_lost.clone())
                    .await
                    .map_err(refused)?;
                return Ok(Reply {
                    data: json!({ "lock": name.to_string(), "holder": holder.identity() }),
                    detail: Some(Detail::new(std::sync::Mutex::new(Some(lock)))),
                });
            }
        };
        Ok(Reply::data(value))
    }

    /// Reads the cluster until the hop's verification passes or the timeout (in cluster time)
    /// is up, and answers the last verification.
    async fn verify(
        &self,
        kube: &crate::kube::Kube,
        request: &crate::kube::call::VerifyRequest,
    ) -> Result<crate::kube::health::Verification, EffectError> {
        let deadline = std::time::Instant::now() + self.real(request.timeout);
        let survey_request = crate::kube::survey::SurveyRequest {
            apiservers: request.apiservers.clone(),
            ..crate::kube::survey::SurveyRequest::default()
        };
        loop {
            let survey = Survey::read(kube, &survey_request)
                .await
                .map_err(kube_error)?;
            let verdict = crate::kube::health::judge(
                &survey.view,
                &survey.readyz,
                survey.in_use.as_deref(),
                &request.etcd,
                &request.expect,
                request.baseline.as_ref(),
            );
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if verdict.ok || left.is_zero() {
                return Ok(verdict);
            }
            tokio::time::sleep(Duration::from_secs(2).min(left)).await;
        }
    }

    /// What a dry-run does: reads, the drain preview, server-side dry-run evictions; `None`
    /// for calls that are only recorded.
    async fn preview(&self, call: &KubeCall) -> Result<Option<Reply>, EffectError> {
        match call {
            KubeCall::ServerVersion
            | KubeCall::Nodes
            | KubeCall::ApiserverVersions
            | KubeCall::ControlPlanes
            | KubeCall::NodeInfo { .. }
            | KubeCall::PodsOn { .. }
            | KubeCall::Pdbs
            | KubeCall::ClusterView
            | KubeCall::Baseline
            | KubeCall::Survey(_) => self.live(call).await.map(Some),
            KubeCall::Apply { objects, .. } => {
                let kube = self.client().await?;
                // The server's own judgement of each object, in the shape a real apply answers.
                let judged = kube.apply(objects, true).await.map_err(kube_error)?;
                Ok(Some(Reply::data(to_json(&judged))))
            }
            KubeCall::Drain { node, options } => {
                let kube = self.client().await?;
                let preview = kube
                    .preview_drain(node, options)
                    .await
                    .map_err(kube_error)?;
                let mut data = to_json(&preview);
                data["notes"] = json!(preview.notes());
                // The drain a real run would refuse is refused here too, with what it found.
                if let Err(refused) = preview.check() {
                    return Err(EffectError::WithData {
                        kind: crate::error::Kind::Refused,
                        message: refused.to_string(),
                        data,
                    });
                }
                Ok(Some(Reply::data(data)))
            }
            KubeCall::Evict {
                namespace,
                pod,
                grace_period,
                ..
            } => {
                let kube = self.client().await?;
                let pod_ref = crate::kube::PodRef {
                    namespace: namespace.clone(),
                    name: pod.clone(),
                    uid: String::new(),
                };
                let answer = kube
                    .evict(
                        &pod_ref,
                        &EvictOptions {
                            grace_period: *grace_period,
                            dry_run: true,
                        },
                    )
                    .await
                    .map_err(kube_error)?;
                Ok(Some(Reply::data(
                    json!({ "server_dry_run": to_json(&answer) }),
                )))
            }
            KubeCall::Cordon { .. }
            | KubeCall::Uncordon { .. }
            | KubeCall::WaitReady { .. }
            | KubeCall::Verify(_)
            | KubeCall::WaitRollout { .. }
            | KubeCall::Lock { .. } => Ok(None),
        }
    }
}

impl Service for KubeService {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn perform<'a>(&'a self, call: &'a dyn Call) -> BoxFuture<'a, Result<Reply, EffectError>> {
        Box::pin(async move { self.live(kube_call(call)?).await })
    }

    fn preview<'a>(
        &'a self,
        call: &'a dyn Call,
    ) -> BoxFuture<'a, Result<Option<Reply>, EffectError>> {
        Box::pin(async move { self.preview(kube_call(call)?).await })
    }
}

fn kube_call(call: &dyn Call) -> Result<&KubeCall, EffectError> {
    call.as_any().downcast_ref::<KubeCall>().ok_or_else(|| {
        EffectError::Other(format!("`{}` is not a Kubernetes call", call.describe()))
    })
}

/// How far a drain has come, for the live display and the log: pods evicted of those to
/// evict, and the longest a budget has held one against the drain's time limit. Each change
/// is a `krun::progress` event (the log shows the counts with each eviction).
struct DrainProgress {
    node: String,
    /// The drain's limit as the playbook gave it (cluster time).
    limit: Option<std::time::Duration>,
    /// Cluster seconds per real second (the rehearsal's simulator runs faster).
    scale: f64,
    counts: std::sync::Mutex<(usize, usize, u64)>,
}

impl DrainProgress {
    fn new(node: &str, limit: Option<std::time::Duration>, scale: f64) -> Self {
        Self {
            node: node.to_owned(),
            limit,
            scale,
            counts: std::sync::Mutex::new((0, 0, 0)),
        }
    }

    fn update(&self, event: &crate::kube::DrainEvent) {
        use crate::kube::DrainEvent;
        use crate::kube::eviction::Progress;
        let mut counts = self.counts.lock().expect("drain progress lock");
        let (evicted, total, longest_ms) = &mut *counts;
        let said = match event {
            DrainEvent::Planned { plan } => {
                *total = plan.to_evict().count();
                Some(format!("drain plan for {}: {total} to evict", plan.node))
            }
            DrainEvent::Eviction {
                progress: Progress::Finished(report),
            } => {
                *evicted += 1;
                *longest_ms = (*longest_ms).max(report.blocked_ms);
                Some(format!("{} ({evicted}/{total})", finished(report)))
            }
            DrainEvent::Eviction {
                progress: Progress::Waiting { waited_ms, .. },
            } => {
                *longest_ms = (*longest_ms).max(*waited_ms);
                None
            }
            _ => return,
        };
        let (evicted, total) = (*evicted, *total);
        let waited_s = *longest_ms as f64 / 1000.0 * self.scale;
        let limit_s = self.limit.map_or(0.0, |l| l.as_secs_f64());
        let node = self.node.as_str();
        // What the log says at info; a budget wait only moves the live display (the eviction
        // loop logs waits itself, at a steady pace).
        match said {
            Some(message) => tracing::info!(
                target: "krun::progress",
                node, evicted, total, waited_s, limit_s,
                "{message}"
            ),
            None => tracing::debug!(
                target: "krun::progress",
                node, evicted, total, waited_s, limit_s,
                "drain of {node}: {evicted}/{total} evicted"
            ),
        }
    }
}

/// A drain's progress, as the operator reads it in the log (the JSON report has the details).
fn log_drain_event(event: &crate::kube::DrainEvent) {
    use crate::kube::DrainEvent;
    match event {
        DrainEvent::Cordoned {
            node,
            changed: true,
        } => {
            tracing::info!(target: "krun::kube", "cordoned {node}");
        }
        DrainEvent::Cordoned {
            node,
            changed: false,
        } => tracing::debug!(target: "krun::kube", "{node} was already cordoned"),
        // The plan and each finished eviction are told by the drain's progress.
        DrainEvent::Planned { .. }
        | DrainEvent::Eviction {
            progress: crate::kube::eviction::Progress::Finished(_),
        } => {}
        DrainEvent::Eviction { progress } => log_progress(progress),
        DrainEvent::Uncordoned { node } => {
            tracing::warn!(target: "krun::kube", "uncordoned {node} after the failed drain");
        }
    }
}

/// One pod's eviction. Budget waits are reported by the eviction loop itself, at a steady pace.
fn log_progress(progress: &crate::kube::eviction::Progress) {
    use crate::kube::eviction::Progress;
    match progress {
        Progress::Accepted { pod, attempts: 1 } => {
            tracing::debug!(target: "krun::kube", "evicting {pod}");
        }
        Progress::Accepted { pod, attempts } => {
            tracing::info!(target: "krun::kube", "evicting {pod} (admitted after {attempts} attempts)");
        }
        Progress::Waiting { .. } => {}
        Progress::Finished(report) => tracing::info!(target: "krun::kube", "{}", finished(report)),
    }
}

/// `ns/pod: Evicted in 0.3 s, held 0.1 s by budgets`.
fn finished(report: &crate::kube::eviction::EvictionReport) -> String {
    format!(
        "{}: {:?} in {:.1} s{}",
        report.pod,
        report.outcome,
        report.took_ms as f64 / 1000.0,
        if report.blocked_ms > 0 {
            format!(
                ", held {:.1} s by budgets",
                report.blocked_ms as f64 / 1000.0
            )
        } else {
            String::new()
        }
    )
}

fn pod_summary(pod: &k8s_openapi::api::core::v1::Pod) -> Value {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|r| r.controller == Some(true)))
        .map(|r| format!("{}/{}", r.kind, r.name));
    json!({
        "namespace": pod.metadata.namespace,
        "name": pod.metadata.name,
        "phase": pod.status.as_ref().and_then(|s| s.phase.clone()),
        "owner": owner,
        "labels": pod.metadata.labels,
        "images": crate::kube::pod::images(pod),
    })
}

/// How each workload stands after a wait for its rollout; an error names those that did not
/// roll out (with the images they run), so the step fails saying which.
fn rollout_report(
    states: &[(
        crate::kube::health::Applied,
        Option<crate::kube::health::Rollout>,
    )],
) -> Result<Value, EffectError> {
    let mut report = Vec::new();
    let mut stuck = Vec::new();
    for (workload, state) in states {
        let key = workload.key();
        match state {
            None => {
                stuck.push(format!("{key}: not in the cluster"));
                report.push(
                    json!({ "workload": key, "done": false, "detail": "not in the cluster" }),
                );
            }
            Some((done, detail, images)) => {
                let missing: Vec<&String> = workload
                    .images
                    .iter()
                    .filter(|i| !images.contains(i))
                    .collect();
                let rolled_out = *done && missing.is_empty();
                if !rolled_out {
                    stuck.push(if missing.is_empty() {
                        format!("{key}: {detail}")
                    } else {
                        format!(
                            "{key}: runs {}, not {}",
                            images.join(", "),
                            workload.images.join(", ")
                        )
                    });
                }
                report.push(json!({ "workload": key, "done": rolled_out, "detail": detail, "images": images }));
            }
        }
    }
    if stuck.is_empty() {
        Ok(Value::Array(report))
    } else {
        Err(EffectError::WithData {
            kind: crate::error::Kind::Runtime,
            message: format!("not rolled out in time: {}", stuck.join("; ")),
            data: Value::Array(report),
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn kube_error(error: KubeError) -> EffectError {
    EffectError::from_kind(error.kind(), error.to_string())
}

/// A failed drain names its node and whether it stays cordoned, so the summary can say so
/// whether or not the playbook cordoned it itself.
fn drain_error(error: KubeError) -> EffectError {
    use crate::kube::error::NodeLeft;
    let KubeError::DrainFailed(failed) = &error else {
        return kube_error(error);
    };
    let left_cordoned = matches!(
        failed.node_left,
        NodeLeft::Cordoned | NodeLeft::CordonedBefore | NodeLeft::UncordonFailed
    );
    EffectError::WithData {
        kind: error.kind(),
        message: error.to_string(),
        data: json!({ "node": failed.node, "left_cordoned": left_cordoned }),
    }
}
