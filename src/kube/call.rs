//! The calls krun makes on the Kubernetes API, as data: what the effects boundary records,
//! shows in the plan and hands to the Kubernetes service.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::DrainOptions;
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
    /// Take the cluster lock (after checking kured's): a Lease renewed in the background until
    /// the run releases it; `on_lost` is cancelled if another holder takes it.
    Lock {
        name: LockName,
        holder: Box<Holder>,
        on_lost: CancellationToken,
    },
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
            | Call::Lock { .. } => true,
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
