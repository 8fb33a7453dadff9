//! The calls krun makes on the Kubernetes API, as data: what the effects boundary records,
//! shows in the plan and hands to the Kubernetes service.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::DrainOptions;
use super::health::{Applied, Baseline, EtcdState, Expectations};
use super::lock::{Holder, LockName};
pub use super::survey::SurveyRequest;

/// One call on the Kubernetes API.
#[derive(Debug, Clone)]
pub enum Call {
    ServerVersion,
    /// Every node's info (`kubectl get nodes`).
    Nodes,
    /// The kube-apiserver static pods' versions by node.
    ApiserverVersions,
    /// The control-plane nodes (role label) and their InternalIP.
    ControlPlanes,
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
    /// Everything the forecast reads: nodes, pods, budgets and workloads (list calls only).
    ClusterView,
    /// Everything preflight reads: the cluster view, `/readyz` of each apiserver and of the
    /// address in use, and the objects stored in the API versions asked about.
    Survey(Box<SurveyRequest>),
    /// The cluster as the run finds it: what each hop's verification compares with.
    Baseline,
    /// Reads the cluster until the hop's verification passes, or at most `timeout`; answers
    /// the verification.
    Verify(Box<VerifyRequest>),
    /// Server-side apply of manifest objects, in order (`source` names where they came from).
    Apply {
        objects: Vec<serde_json::Value>,
        source: String,
    },
    /// Waits until the workloads have rolled out with their images, for at most `timeout`.
    WaitRollout {
        workloads: Vec<Applied>,
        timeout: Duration,
    },
    /// Take the cluster lock (after checking kured's): a Lease renewed in the background until
    /// the run releases it; `on_lost` is cancelled if another holder takes it.
    Lock {
        name: LockName,
        holder: Box<Holder>,
        on_lost: CancellationToken,
    },
}

/// What a hop's verification needs besides the cluster.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub expect: Expectations,
    pub baseline: Option<Baseline>,
    pub etcd: EtcdState,
    /// Each kube-apiserver's own address; empty: from kubeadm's annotation.
    pub apiservers: Vec<String>,
    pub timeout: Duration,
}

impl Call {
    /// Whether the call is about the cluster as it is now, and its result cannot be handed
    /// back from a journal: the cluster as a whole (too large to record), or the lock.
    pub fn reads_the_present(&self) -> bool {
        matches!(
            self,
            Call::ClusterView | Call::Survey(_) | Call::Lock { .. }
        )
    }

    /// Whether doing the call again reaches the same state: what a resumed run needs to know
    /// about a call that was interrupted. A second cordon or uncordon changes nothing, a drain
    /// plans again from the pods still there, an eviction of a pod that is gone answers "gone",
    /// and reads and waits change nothing at all.
    pub fn converges(&self) -> bool {
        match self {
            Call::ServerVersion
            | Call::Nodes
            | Call::ApiserverVersions
            | Call::ControlPlanes
            | Call::NodeInfo { .. }
            | Call::PodsOn { .. }
            | Call::Pdbs
            | Call::Cordon { .. }
            | Call::Uncordon { .. }
            | Call::Drain { .. }
            | Call::Evict { .. }
            | Call::WaitReady { .. }
            | Call::ClusterView
            | Call::Survey(_)
            | Call::Lock { .. }
            | Call::Baseline
            | Call::Verify(_)
            | Call::Apply { .. }
            | Call::WaitRollout { .. } => true,
        }
    }

    /// How the plan shows the call (close to the kubectl command a person would type).
    pub fn describe(&self) -> String {
        match self {
            Self::ServerVersion => "kubectl version (server)".into(),
            Self::Nodes => "kubectl get nodes".into(),
            Self::ApiserverVersions => {
                "kubectl get pods -n kube-system -l component=kube-apiserver".into()
            }
            Self::ControlPlanes => {
                "kubectl get nodes -l node-role.kubernetes.io/control-plane (and master)".into()
            }
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
                } else if !options.keep_replica {
                    flags.push("(workloads without a budget: no kept replica)".to_owned());
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
            Self::ClusterView => {
                "kubectl get nodes,pods,pdb,deployments,replicasets,statefulsets,daemonsets -A"
                    .into()
            }
            Self::Baseline => "kubectl get nodes,pods,pdb,deployments,statefulsets,daemonsets -A \
                 (each workload's ready replicas, failing pods, budgets: the baseline each hop is \
                 verified against)"
                .into(),
            Self::Verify(request) => format!(
                "verify the cluster at {}: {}Ready, kube-system rolled out{}, every apiserver's \
                 /readyz, etcd, workloads, pods and budgets {} (until it passes, at most {})",
                request.expect.version,
                if request.expect.nodes.is_empty() {
                    "every node at the version and ".to_owned()
                } else {
                    format!(
                        "{} at the version, every node ",
                        request.expect.nodes.join(", ")
                    )
                },
                if request.expect.addons {
                    ", CoreDNS and kube-proxy as kubeadm deploys them"
                } else {
                    ""
                },
                if request.baseline.is_some() {
                    "against the start of the run"
                } else {
                    "(no baseline)"
                },
                humantime::format_duration(request.timeout)
            ),
            Self::Apply { objects, source } => {
                let names: Vec<String> = objects
                    .iter()
                    .map(|o| {
                        let ns = o["metadata"]["namespace"]
                            .as_str()
                            .map(|ns| format!("{ns}/"))
                            .unwrap_or_default();
                        format!(
                            "{} {ns}{}",
                            o["kind"].as_str().unwrap_or("?"),
                            o["metadata"]["name"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                format!(
                    "kubectl apply --server-side --field-manager=krun --force-conflicts -f {source} ({})",
                    names.join(", ")
                )
            }
            Self::WaitRollout { workloads, timeout } => {
                let names: Vec<String> = workloads
                    .iter()
                    .map(|w| format!("{}/{} -n {}", w.kind.to_lowercase(), w.name, w.namespace))
                    .collect();
                format!(
                    "kubectl rollout status {} (at most {})",
                    names.join(", "),
                    humantime::format_duration(*timeout)
                )
            }
            Self::Lock { name, holder, .. } => format!(
                "take the cluster lock {name} (a Lease) as {}",
                holder.identity()
            ),
            Self::Survey(request) => format!(
                "preflight checks{} (reads nodes, pods, workloads, budgets, served APIs)",
                request
                    .target
                    .as_deref()
                    .map(|t| format!(" for target {t}"))
                    .unwrap_or_default()
            ),
        }
    }
}
