//! Kubernetes calls as effects: what the boundary executes live, and what a dry-run does instead.
//!
//! Reads run in a dry-run too. A drain in a dry-run is the drain's preview: the same plan
//! (evict / skip with the reason / refuse with the option that would allow it) from the live
//! pods, and a server-side dry-run eviction (`dryRun=All`) per pod saying whether the API server
//! would admit it now. Cordon, uncordon and evictions are recorded, never sent.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::effects::EffectError;
use crate::error::Kind;
use crate::kube::{ClientOptions, DrainOptions, EvictOptions, Kube, KubeError, RetryPolicy};

/// One call on the Kubernetes API.
#[derive(Debug, Clone)]
pub enum KubeCall {
    ServerVersion,
    NodeInfo {
        node: String,
    },
    PodsOn {
        node: String,
    },
    Pdbs,
    Cordon {
        node: String,
    },
    Uncordon {
        node: String,
    },
    Drain {
        node: String,
        options: Box<DrainOptions>,
    },
    Evict {
        namespace: String,
        pod: String,
        grace_period: Option<i64>,
        timeout: Option<Duration>,
    },
    WaitReady {
        node: String,
        timeout: Duration,
        version: Option<String>,
    },
    /// The preflight checks: findings with severity and fix (read-only).
    Preflight {
        options: Box<crate::preflight::PreflightOptions>,
    },
}

impl KubeCall {
    /// Whether doing the call again reaches the same state: what a resumed run needs to know
    /// about a call that was interrupted. A second cordon or uncordon changes nothing, a drain
    /// plans again from the pods still there, an eviction of a pod that is gone answers "gone",
    /// and reads and waits change nothing at all.
    pub fn converges(&self) -> bool {
        match self {
            KubeCall::ServerVersion
            | KubeCall::NodeInfo { .. }
            | KubeCall::PodsOn { .. }
            | KubeCall::Pdbs
            | KubeCall::Cordon { .. }
            | KubeCall::Uncordon { .. }
            | KubeCall::Drain { .. }
            | KubeCall::Evict { .. }
            | KubeCall::WaitReady { .. }
            | KubeCall::Preflight { .. } => true,
        }
    }

    /// How the plan shows the call (close to the kubectl command a person would type).
    pub fn describe(&self) -> String {
        match self {
            Self::ServerVersion => "kubectl version (server)".into(),
            Self::NodeInfo { node } => format!("kubectl get node {node}"),
            Self::PodsOn { node } => {
                format!("kubectl get pods -A --field-selector spec.nodeName={node}")
            }
            Self::Pdbs => "kubectl get pdb -A".into(),
            Self::Cordon { node } => format!("kubectl cordon {node}"),
            Self::Uncordon { node } => format!("kubectl uncordon {node}"),
            Self::Drain { node, options } => {
                let f = &options.filters;
                let mut flags = Vec::new();
                if f.ignore_daemonsets {
                    flags.push("--ignore-daemonsets".to_owned());
                }
                if f.delete_emptydir_data {
                    flags.push("--delete-emptydir-data".to_owned());
                }
                if f.force {
                    flags.push("--force".to_owned());
                }
                if let Some(grace) = options.grace_period {
                    flags.push(format!("--grace-period={grace}"));
                }
                if let Some(timeout) = options.timeout {
                    flags.push(format!("--timeout={}", humantime::format_duration(timeout)));
                }
                let selector = f.pod_selector.to_string();
                if !selector.is_empty() {
                    flags.push(format!("--pod-selector={selector}"));
                }
                if options.disable_eviction.is_some() {
                    flags.push("--disable-eviction (BYPASSES PodDisruptionBudgets)".to_owned());
                }
                format!("kubectl drain {node} {}", flags.join(" "))
                    .trim_end()
                    .to_owned()
            }
            Self::Evict { namespace, pod, .. } => {
                format!("evict pod {namespace}/{pod} (policy Eviction)")
            }
            Self::WaitReady {
                node,
                timeout,
                version,
            } => format!(
                "wait until node {node} is Ready{} (watch, at most {})",
                version
                    .as_deref()
                    .map(|v| format!(" with kubelet {v}"))
                    .unwrap_or_default(),
                humantime::format_duration(*timeout)
            ),
            Self::Preflight { options } => format!(
                "preflight checks{} (reads nodes, pods, workloads, budgets, served APIs)",
                options
                    .target
                    .map(|t| format!(" for target {t}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The cluster, connected on first use as kubectl would (`--kubeconfig`, `--context`,
/// `KUBECONFIG`, in-cluster).
pub struct KubeService {
    options: ClientOptions,
    client: OnceCell<Kube>,
}

impl KubeService {
    pub fn new(options: ClientOptions) -> Self {
        Self {
            options,
            client: OnceCell::new(),
        }
    }

    /// A service bound to an already connected client (the rehearsal's in-process simulator).
    pub fn with_client(kube: Kube) -> Self {
        Self {
            options: ClientOptions::default(),
            client: OnceCell::new_with(Some(kube)),
        }
    }

    pub async fn client(&self) -> Result<&Kube, EffectError> {
        self.client
            .get_or_try_init(|| Kube::connect(&self.options))
            .await
            .map_err(kube_error)
    }

    /// Executes a call against the cluster.
    pub async fn live(&self, call: &KubeCall) -> Result<Value, EffectError> {
        let kube = self.client().await?;
        let value = match call {
            KubeCall::ServerVersion => to_json(&kube.server_version().await.map_err(kube_error)?),
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
                json!({ "changed": kube.cordon(node).await.map_err(kube_error)? })
            }
            KubeCall::Uncordon { node } => {
                json!({ "changed": kube.uncordon(node).await.map_err(kube_error)? })
            }
            KubeCall::Drain { node, options } => {
                if let Some(bypass) = &options.disable_eviction {
                    tracing::warn!(
                        "DRAIN OF {node} BYPASSES PodDisruptionBudgets (disable_eviction): {}",
                        bypass.reason()
                    );
                }
                let observer = |event: crate::kube::DrainEvent| {
                    tracing::info!(target: "krun::kube", "{}", event_line(&event));
                };
                to_json(
                    &kube
                        .drain(node, options, &observer)
                        .await
                        .map_err(kube_error)?,
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
                    deadline: timeout.map(|t| std::time::Instant::now() + t),
                    ..RetryPolicy::default()
                };
                let observer = |progress: crate::kube::eviction::Progress| {
                    tracing::info!(target: "krun::kube", "{}", serde_json::to_string(&progress).unwrap_or_default());
                };
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
                    .wait_ready(node, *timeout, version.as_deref())
                    .await
                    .map_err(kube_error)?,
            ),
            KubeCall::Preflight { options } => {
                let view = crate::preflight::ClusterView::read(kube)
                    .await
                    .map_err(kube_error)?;
                let findings = crate::preflight::findings(kube, &view, options)
                    .await
                    .map_err(|e| match e.kind {
                        Kind::Input => EffectError::Input(e.message),
                        _ => EffectError::Other(e.message),
                    })?;
                to_json(&findings)
            }
        };
        Ok(value)
    }

    /// What a dry-run does: reads, the drain preview, server-side dry-run evictions; `None`
    /// for calls that are only recorded.
    pub async fn dry_run(&self, call: &KubeCall) -> Result<Option<Value>, EffectError> {
        match call {
            KubeCall::ServerVersion
            | KubeCall::NodeInfo { .. }
            | KubeCall::PodsOn { .. }
            | KubeCall::Pdbs
            | KubeCall::Preflight { .. } => self.live(call).await.map(Some),
            KubeCall::Drain { node, options } => {
                let kube = self.client().await?;
                let preview = kube
                    .preview_drain(node, options)
                    .await
                    .map_err(kube_error)?;
                Ok(Some(to_json(&preview)))
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
                Ok(Some(json!({ "server_dry_run": to_json(&answer) })))
            }
            KubeCall::Cordon { .. } | KubeCall::Uncordon { .. } | KubeCall::WaitReady { .. } => {
                Ok(None)
            }
        }
    }
}

fn event_line(event: &crate::kube::DrainEvent) -> String {
    match event {
        crate::kube::DrainEvent::Cordoned { node, changed } => {
            if *changed {
                format!("cordoned {node}")
            } else {
                format!("{node} was already cordoned")
            }
        }
        crate::kube::DrainEvent::Planned { plan } => {
            format!(
                "drain plan for {}: {} to evict",
                plan.node,
                plan.to_evict().count()
            )
        }
        other => serde_json::to_string(other).unwrap_or_default(),
    }
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
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn kube_error(error: KubeError) -> EffectError {
    let message = error.to_string();
    match error.kind() {
        Kind::Refused => EffectError::Refused(message),
        Kind::Input => EffectError::Input(message),
        Kind::Interrupted => EffectError::Cancelled,
        _ => EffectError::Other(message),
    }
}
