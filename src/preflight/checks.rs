//! The checks that need nothing but the cluster's objects: nodes, workloads and budgets, and
//! the 1.21 bound service-account token change.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Version;
use super::workload::Index;
use super::{ClusterView, Finding, PreflightOptions, Severity};
use crate::kube::NodeInfo;

/// Every pure check, in a stable order.
pub fn all(view: &ClusterView, options: &PreflightOptions) -> Vec<Finding> {
    let index = Index::build(view, &options.critical);
    let mut found = nodes(view, options);
    found.extend(workloads(view, &index, options));
    found.extend(bound_tokens(view, &index, options));
    found
}

/// Nodes: all Ready, none cordoned without a reason, kubelet and kube-proxy within the skew
/// the target allows.
pub fn nodes(view: &ClusterView, options: &PreflightOptions) -> Vec<Finding> {
    let mut found = Vec::new();
    let current = view.current_version();
    for node in &view.nodes {
        let info = NodeInfo::of(node);
        let object = format!("node/{}", info.name);
        if !info.ready {
            found.push(Finding::new(
                "node-not-ready",
                &info.name,
                Severity::Block,
                &object,
                format!("node {} is not Ready ({})", info.name, info.readiness()),
                "bring the node back (kubelet, runtime, network) or remove it from the cluster \
                 before upgrading: an upgrade that starts one node short has no margin",
            ));
        }
        if info.unschedulable {
            let annotations = node.metadata.annotations.clone().unwrap_or_default();
            let reason = annotations
                .iter()
                .find(|(k, _)| k.contains("cordon") || k.ends_with("/reason"))
                .map(|(k, v)| format!("{k}={v}"));
            match reason {
                Some(reason) => found.push(Finding::new(
                    "node-cordoned",
                    &info.name,
                    Severity::Info,
                    &object,
                    format!("node {} is cordoned ({reason})", info.name),
                    "nothing to do if that work is still going on",
                )),
                None => found.push(Finding::new(
                    "node-cordoned",
                    &info.name,
                    Severity::Warn,
                    &object,
                    format!(
                        "node {} is already cordoned and no annotation says why",
                        info.name
                    ),
                    format!(
                        "find out who cordoned it; `kubectl uncordon {}` if nobody needs it so, \
                         or annotate the reason",
                        info.name
                    ),
                )),
            }
        }
        let Some(target) = options.target else {
            continue;
        };
        for (component, reported) in [
            ("kubelet", &info.kubelet_version),
            ("kube-proxy", &info.kube_proxy_version),
        ] {
            let Some(version) = Version::parse(reported) else {
                continue;
            };
            let behind = version.minors_behind(target);
            let allowed = crate::versions::skew::max_kubelet_lag(target);
            if behind > allowed {
                found.push(Finding::new(
                    &format!("{component}-skew"),
                    &info.name,
                    Severity::Block,
                    &object,
                    format!(
                        "{component} on {} is {version}, {behind} minor releases behind the target \
                         {target}; the skew policy allows {allowed}",
                        info.name
                    ),
                    format!(
                        "upgrade {component} on {} through the releases in between first, one minor \
                         at a time, while the control plane still serves it",
                        info.name
                    ),
                ));
            } else if behind < 0 {
                found.push(Finding::new(
                    &format!("{component}-skew"),
                    &info.name,
                    Severity::Block,
                    &object,
                    format!(
                        "{component} on {} is {version}, newer than the target {target}",
                        info.name
                    ),
                    "a kubelet must never be newer than the API server: choose a target at least \
                     as new as every node",
                ));
            }
        }
    }
    if let Some(target) = options.target {
        found.extend(dockershim(view, target));
        if let Some(current) = current {
            found.extend(kubeadm_kubelet_rule(view, current, target));
        }
    }
    if let (Some(current), Some(target)) = (current, options.target) {
        let steps = current.minors_behind(target);
        if steps > 1 {
            found.push(Finding::new(
                "minor-steps",
                &target.to_string(),
                Severity::Info,
                "cluster",
                format!(
                    "the control plane goes from {current} to {target}: {steps} minor releases, \
                     upgraded one at a time (kubeadm allows no skipping)"
                ),
                "plan one control-plane pass per minor release; nodes may follow in one step \
                 within the skew policy",
            ));
        } else if steps < 0 {
            found.push(Finding::new(
                "target-older",
                &target.to_string(),
                Severity::Block,
                "cluster",
                format!("the target {target} is older than the control plane's {current}"),
                "Kubernetes does not support downgrades; restore from an etcd snapshot instead",
            ));
        }
    }
    found
}

/// Nodes on Docker whose kubelet the target would leave without dockershim (removed in 1.24):
/// kubelet cannot start on them.
fn dockershim(view: &ClusterView, target: Version) -> Vec<Finding> {
    let (major, minor) = crate::versions::DOCKERSHIM_REMOVED;
    if target.minor_line() < (major, minor) {
        return Vec::new();
    }
    view.nodes
        .iter()
        .map(NodeInfo::of)
        .filter(|info| info.container_runtime == "docker")
        .filter(|info| {
            // A kubelet already past 1.23 on docker:// talks to cri-dockerd, not dockershim.
            Version::parse(&info.kubelet_version).is_none_or(|v| v.minor_line() < (major, minor))
        })
        .map(|info| {
            Finding::new(
                "dockershim-removed",
                &info.name,
                Severity::Block,
                format!("node/{}", info.name),
                format!(
                    "node {} runs its pods with Docker ({}) through kubelet's dockershim, which \
                     Kubernetes 1.24 removed: kubelet {target} cannot start there",
                    info.name, info.container_runtime_version
                ),
                format!(
                    "switch {} to containerd before the 1.24 hop: krun playbooks/runtime-switch.rhai \
                     --node {} (or worker.rhai --set runtime=containerd), or run cri-dockerd",
                    info.name, info.name
                ),
            )
        })
        .collect()
}

/// kubeadm's own rule for `upgrade apply`: it refuses while any kubelet is more than one
/// minor behind the target (up to kubeadm 1.28; three from 1.29), bypassed only by `--force`.
/// It matters while the control plane still has to move there.
fn kubeadm_kubelet_rule(view: &ClusterView, current: Version, target: Version) -> Vec<Finding> {
    if current.minor_line() >= target.minor_line() {
        return Vec::new();
    }
    let kubelets: std::collections::BTreeMap<String, Version> = view
        .nodes
        .iter()
        .map(NodeInfo::of)
        .filter_map(|info| Some((info.name.clone(), Version::parse(&info.kubelet_version)?)))
        .collect();
    let refused = crate::versions::skew::kubelets_kubeadm_refuses(&kubelets, target);
    if refused.is_empty() {
        return Vec::new();
    }
    let lag = crate::versions::skew::kubeadm_kubelet_lag(target);
    let shown: Vec<String> = refused
        .iter()
        .take(5)
        .map(|(node, version)| format!("{node} ({version})"))
        .collect();
    let more = refused.len().saturating_sub(shown.len());
    let nodes = if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    };
    let oldest = refused[0].1;
    vec![Finding::new(
        "kubeadm-kubelet-rule",
        &target.minor_text(),
        Severity::Block,
        "cluster",
        format!(
            "kubeadm upgrade apply v{target} refuses while kubelets are more than {lag} minor \
             release(s) behind it (\"There are kubelets in this cluster that are too old\"): {nodes}"
        ),
        format!(
            "upgrade those nodes' kubelets to at least {}.{} first (worker.rhai between the \
             control-plane hops), or let cluster.rhai pass kubeadm --force (--set force=true), \
             which it logs",
            oldest.major,
            target.minor - lag
        ),
    )]
}

/// Workloads and budgets: critical workloads without a budget, single replicas, budgets that
/// allow no disruption now, budgets that overlap.
/// The workload's own pod selector in kubectl's syntax (`app=web,tier in (a,b)`), so that a
/// fix can be pasted as it is.
fn selector_of(view: &ClusterView, id: &super::workload::WorkloadId) -> Option<String> {
    let named = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(id.namespace.as_str())
            && meta.name.as_deref() == Some(id.name.as_str())
    };
    let selector = match id.kind.as_str() {
        "Deployment" => view
            .deployments
            .iter()
            .find(|d| named(&d.metadata))
            .and_then(|d| d.spec.as_ref())
            .map(|s| &s.selector),
        "StatefulSet" => view
            .statefulsets
            .iter()
            .find(|d| named(&d.metadata))
            .and_then(|d| d.spec.as_ref())
            .map(|s| &s.selector),
        "DaemonSet" => view
            .daemonsets
            .iter()
            .find(|d| named(&d.metadata))
            .and_then(|d| d.spec.as_ref())
            .map(|s| &s.selector),
        "ReplicaSet" => view
            .replicasets
            .iter()
            .find(|d| named(&d.metadata))
            .and_then(|d| d.spec.as_ref())
            .map(|s| &s.selector),
        _ => None,
    }?;
    crate::kube::selector::Selector::from_api(selector)
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
}

pub fn workloads(view: &ClusterView, index: &Index, options: &PreflightOptions) -> Vec<Finding> {
    let mut found = Vec::new();
    let upgraded = |pod: usize| {
        let node = view.pods[pod]
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        options.nodes.is_empty() || options.nodes.contains(&node)
    };
    for (w, workload) in index.workloads.iter().enumerate() {
        let id = &workload.id;
        let key = format!("{}/{}", id.namespace, id.name);
        let object = id.to_string();
        let budgets = index.budgets_of_workload(w);
        // A workload with no pod on the nodes being upgraded is not touched by their drains.
        let touched = workload.pods.iter().any(|&pod| upgraded(pod));
        if workload.critical && budgets.is_empty() {
            let what = if workload.ingress {
                "an ingress controller"
            } else {
                "a critical workload"
            };
            let daemonset = id.kind == "DaemonSet";
            found.push(Finding::new(
                "critical-without-pdb",
                &key,
                if touched {
                    Severity::Block
                } else {
                    Severity::Warn
                },
                &object,
                format!(
                    "{object} is {what} with {} replica{} and no PodDisruptionBudget: a batch that \
                     upgrades its nodes together takes it down{}",
                    workload.replicas,
                    if workload.replicas == 1 { "" } else { "s" },
                    if touched {
                        ""
                    } else {
                        " (none of its pods is on the nodes being upgraded)"
                    }
                ),
                if daemonset {
                    "a DaemonSet is not evicted but stops with its node: keep its nodes in \
                     different batches (--batch auto does) and add a PodDisruptionBudget \
                     (maxUnavailable: 1) selecting its pods"
                        .to_owned()
                } else {
                    format!(
                        "add a PodDisruptionBudget: kubectl create pdb {} -n {} --selector={} \
                         --max-unavailable=1",
                        crate::quote::quote(&id.name),
                        crate::quote::quote(&id.namespace),
                        selector_of(view, id).map_or_else(
                            || "LABELS-OF-ITS-PODS".to_owned(),
                            |s| crate::quote::quote(&s)
                        )
                    )
                },
            ));
        }
        if matches!(id.kind.as_str(), "Deployment" | "StatefulSet") && workload.replicas == 1 {
            found.push(Finding::new(
                "single-replica",
                &key,
                if workload.critical && touched {
                    Severity::Block
                } else {
                    Severity::Warn
                },
                &object,
                format!("{object} runs a single replica: draining its node interrupts it"),
                format!(
                    "scale it to 2 or more (kubectl scale {} {} -n {} --replicas=2) or accept \
                     the interruption",
                    id.kind.to_lowercase(),
                    id.name,
                    id.namespace
                ),
            ));
        }
    }
    let mut overlapping: BTreeSet<Vec<usize>> = BTreeSet::new();
    let mut overlap_on_upgraded: BTreeSet<Vec<usize>> = BTreeSet::new();
    for (&pod, budgets) in &index.budgets_of {
        if budgets.len() > 1 && !crate::kube::pod::is_finished(&view.pods[pod]) {
            overlapping.insert(budgets.clone());
            if upgraded(pod) {
                overlap_on_upgraded.insert(budgets.clone());
            }
        }
    }
    for budgets in &overlapping {
        let names: Vec<String> = budgets.iter().map(|&b| pdb_name(view, b)).collect();
        found.push(Finding::new(
            "pdb-overlap",
            &names.join("+"),
            if overlap_on_upgraded.contains(budgets) {
                Severity::Block
            } else {
                Severity::Warn
            },
            format!("PodDisruptionBudgets {}", names.join(", ")),
            format!(
                "pods are covered by more than one PodDisruptionBudget ({}): the eviction API \
                 answers 500 for them and their drain cannot finish",
                names.join(", ")
            ),
            "narrow the selectors so that each pod has at most one budget",
        ));
    }
    for (b, pdb) in view.pdbs.iter().enumerate() {
        let status = pdb.status.clone().unwrap_or_default();
        if status.disruptions_allowed > 0 {
            continue;
        }
        let name = pdb_name(view, b);
        let pods = &index.pods_of_budget[b];
        if pods.is_empty() {
            continue;
        }
        let on_upgraded = pods.iter().any(|&p| upgraded(p));
        let spec = pdb.spec.clone().unwrap_or_default();
        let show = |v: &IntOrString| match v {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => s.clone(),
        };
        let budget = match (&spec.min_available, &spec.max_unavailable) {
            (Some(min), _) => format!("minAvailable: {}", show(min)),
            (None, Some(max)) => format!("maxUnavailable: {}", show(max)),
            _ => "no budget".into(),
        };
        found.push(Finding::new(
            "pdb-zero-disruptions",
            &name,
            if on_upgraded {
                Severity::Block
            } else {
                Severity::Warn
            },
            format!("PodDisruptionBudget {name}"),
            format!(
                "PodDisruptionBudget {name} ({budget}) allows no disruption now ({} healthy, {} \
                 needed): a drain of a node with its pods waits until it times out",
                status.current_healthy, status.desired_healthy
            ),
            "scale the workload up, fix its unready pods, or relax the budget for the upgrade",
        ));
    }
    found
}

fn pdb_name(view: &ClusterView, b: usize) -> String {
    let pdb = &view.pdbs[b];
    format!(
        "{}/{}",
        pdb.metadata.namespace.as_deref().unwrap_or_default(),
        pdb.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Crossing 1.20 → 1.21: service-account tokens become bound, projected tokens readable only
/// by their owner; a pod running as non-root without `fsGroup` can no longer read one.
pub fn bound_tokens(view: &ClusterView, index: &Index, options: &PreflightOptions) -> Vec<Finding> {
    let (Some(current), Some(target)) = (view.current_version(), options.target) else {
        return Vec::new();
    };
    let bound = Version::new(1, 21, 0);
    if !(current.minor_line() < bound.minor_line() && target.minor_line() >= bound.minor_line()) {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, p) in view.pods.iter().enumerate() {
        if !at_risk(p) {
            continue;
        }
        let object = match index.workload_of.get(&i) {
            Some(&w) => index.workloads[w].id.to_string(),
            None => format!(
                "Pod {}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            ),
        };
        if !seen.insert(object.clone()) {
            continue;
        }
        let key = object.replace(' ', "/");
        found.push(Finding::new(
            "bound-sa-token",
            &key,
            Severity::Warn,
            &object,
            format!(
                "{object} runs as non-root without fsGroup and mounts its service-account token: \
                 from 1.21 the projected token may be unreadable (permission denied on \
                 /var/run/secrets/kubernetes.io/serviceaccount/token)"
            ),
            "set spec.securityContext.fsGroup (e.g. 65534) in the pod template, or \
             automountServiceAccountToken: false if it does not talk to the API",
        ));
    }
    found
}

fn at_risk(p: &Pod) -> bool {
    let Some(spec) = &p.spec else {
        return false;
    };
    if spec.automount_service_account_token == Some(false) {
        return false;
    }
    let pod_context = spec.security_context.clone().unwrap_or_default();
    if pod_context.fs_group.is_some() {
        return false;
    }
    let pod_non_root = pod_context.run_as_non_root == Some(true)
        || pod_context.run_as_user.is_some_and(|u| u != 0);
    spec.containers.iter().any(|c| {
        let context = c.security_context.clone().unwrap_or_default();
        match context.run_as_user {
            Some(0) => false,
            Some(_) => true,
            None => context.run_as_non_root == Some(true) || pod_non_root,
        }
    })
}
