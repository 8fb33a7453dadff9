//! Whether the cluster is healthy after a hop, judged against what it was when the run began.
//!
//! A [`Baseline`] is taken before the first change: each workload's ready replicas, the pods
//! that were already failing (CrashLoopBackOff, ImagePullBackOff), the budgets already short,
//! each node's readiness and kubelet. [`judge`] then reads the cluster after the hop against
//! the [`Expectations`] of the hop: every node Ready and the upgraded ones at the version,
//! kube-system rolled out with CoreDNS and kube-proxy at what kubeadm deploys for the target
//! (from 1.28 only once the last control-plane node is upgraded), every apiserver answering
//! `/readyz` on its own address and through the address in use, etcd healthy with its whole
//! membership, no workload with fewer ready replicas than at the start, no pod newly failing,
//! no budget newly short. Pure functions over what was read: the service reads, this judges.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pdb::PdbStatus;
use super::view::ClusterView;
use crate::versions::{KubeVersion, addons};

/// Waiting reasons that mean a container cannot run.
const FAILING: &[&str] = &["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"];

/// A workload's ready replicas and how many it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    pub ready: i64,
    pub desired: i64,
}

/// A node as the baseline saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSeen {
    pub ready: bool,
    pub kubelet: String,
}

/// The cluster as a run found it, for comparing after each hop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub server_version: String,
    pub nodes: BTreeMap<String, NodeSeen>,
    /// By `namespace/Kind/name`.
    pub workloads: BTreeMap<String, Replicas>,
    /// Workloads (or bare pods) with a failing container, and the reason.
    pub failing: BTreeMap<String, String>,
    /// Budgets with fewer healthy pods than they desire (`namespace/name`).
    pub budgets_short: BTreeSet<String>,
    /// etcd's voting members, when etcd could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_members: Option<usize>,
}

impl Baseline {
    pub fn of(view: &ClusterView) -> Self {
        Baseline {
            server_version: view.server_version.clone(),
            nodes: nodes(view)
                .into_iter()
                .map(|n| {
                    (
                        n.name,
                        NodeSeen {
                            ready: n.ready,
                            kubelet: n.kubelet,
                        },
                    )
                })
                .collect(),
            workloads: workloads(view),
            failing: failing(view),
            budgets_short: view
                .pdbs
                .iter()
                .map(PdbStatus::of)
                .filter(|p| p.observed && p.current_healthy < p.desired_healthy)
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect(),
            etcd_members: None,
        }
    }
}

/// A workload a hop put in place (an addon, the CNI), to be rolled out with these images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub images: Vec<String>,
}

impl Applied {
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// What a hop should have brought about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectations {
    /// The hop's version ("1.21.14", or "1.21" for any patch).
    pub version: String,
    /// The nodes that must run kubelet at `version`; empty: every node.
    pub nodes: Vec<String>,
    /// Check CoreDNS and kube-proxy against what kubeadm deploys for `version`.
    pub addons: bool,
    /// Workloads the run applied, which must be rolled out with their images.
    pub applied: Vec<Applied>,
    /// Why versions are not judged (the run recorded its node commands instead of running
    /// them: a rehearsal); `None`: they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_unjudged: Option<String>,
}

/// etcd as read for the verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdState {
    /// (name, learner, `None` when healthy or why not).
    pub members: Vec<(String, bool, Option<String>)>,
    /// Why etcd could not be read at all.
    pub error: Option<String>,
    /// Why it was not read (not configured, a dry-run).
    pub skipped: Option<String>,
}

impl EtcdState {
    /// From an etcd view as the etcd service records it.
    pub fn from_view(data: &Value) -> Self {
        let members = data["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let health = if m["health"]["state"] == "healthy" {
                    None
                } else {
                    Some(
                        m["health"]["reason"]
                            .as_str()
                            .unwrap_or("not healthy")
                            .to_owned(),
                    )
                };
                (
                    m["member"]["name"].as_str().unwrap_or_default().to_owned(),
                    m["member"]["is_learner"] == true,
                    health,
                )
            })
            .collect();
        EtcdState {
            members,
            error: None,
            skipped: None,
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not a failure, but worth reading (not checked, and why; already so at the start).
    Note,
}

/// One thing checked, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `nodes`, `control-plane`, `kube-system`, `addons`, `apiserver`, `etcd`, `workloads`,
    /// `pods`, `budgets`.
    pub area: String,
    pub subject: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    pub after: String,
}

/// The verification of one hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub version: String,
    pub ok: bool,
    /// Whether a baseline from the start of the run was compared against.
    pub baseline: bool,
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// The report as the operator reads it: every failure and note with its before and after,
    /// then how many checks of each area passed.
    pub fn text(&self) -> String {
        let failed = self.failures().count();
        let mut out = if self.ok {
            format!(
                "verification at {}: ok, {} checks passed{}\n",
                self.version,
                self.checks
                    .iter()
                    .filter(|c| c.status == Status::Pass)
                    .count(),
                if self.baseline {
                    " (compared with the cluster as the run found it)"
                } else {
                    " (no baseline from the start of the run)"
                }
            )
        } else {
            format!(
                "verification at {}: FAILED, {failed} of {} checks\n",
                self.version,
                self.checks.len()
            )
        };
        for check in self.checks.iter().filter(|c| c.status != Status::Pass) {
            let mark = if check.status == Status::Fail {
                "FAIL"
            } else {
                "note"
            };
            let before = check
                .before
                .as_deref()
                .map(|b| format!(" (before: {b})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {mark}  {:<13} {}: {}{before}\n",
                check.area, check.subject, check.after
            ));
        }
        let mut passed: BTreeMap<&str, usize> = BTreeMap::new();
        for check in self.checks.iter().filter(|c| c.status == Status::Pass) {
            *passed.entry(check.area.as_str()).or_default() += 1;
        }
        for (area, count) in passed {
            out.push_str(&format!("  ok    {area:<13} {count} passed\n"));
        }
        out
    }
}

struct NodeNow {
    name: String,
    ready: bool,
    unschedulable: bool,
    kubelet: String,
}

fn nodes(view: &ClusterView) -> Vec<NodeNow> {
    view.nodes
        .iter()
        .map(|n| {
            let status = n.status.as_ref();
            NodeNow {
                name: n.metadata.name.clone().unwrap_or_default(),
                ready: status
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                unschedulable: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false),
                kubelet: status
                    .and_then(|s| s.node_info.as_ref())
                    .map(|i| i.kubelet_version.clone())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn workloads(view: &ClusterView) -> BTreeMap<String, Replicas> {
    let mut found = BTreeMap::new();
    let key = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, kind: &str| {
        format!(
            "{}/{kind}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    };
    for d in &view.deployments {
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        found.insert(
            key(&d.metadata, "Deployment"),
            Replicas {
                ready: ready.into(),
                desired: desired.into(),
            },
        );
    }
    for s in &view.statefulsets {
        let ready = s
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        found.insert(
            key(&s.metadata, "StatefulSet"),
            Replicas {
                ready: ready.into(),
                desired: desired.into(),
            },
        );
    }
    for d in &view.daemonsets {
        let status = d.status.as_ref();
        found.insert(
            key(&d.metadata, "DaemonSet"),
            Replicas {
                ready: status.map_or(0, |s| s.number_ready).into(),
                desired: status.map_or(0, |s| s.desired_number_scheduled).into(),
            },
        );
    }
    found
}

/// The workload a pod belongs to (its ReplicaSet's Deployment when there is one), else the
/// pod itself: a failing pod replaced by another failing pod is the same failure.
fn owner_key(view: &ClusterView, pod: &Pod) -> String {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let controller = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|r| r.controller == Some(true)));
    match controller {
        Some(owner) if owner.kind == "ReplicaSet" => {
            let deployment = view
                .replicasets
                .iter()
                .find(|rs| {
                    rs.metadata.name.as_deref() == Some(owner.name.as_str())
                        && rs.metadata.namespace.as_deref() == Some(namespace)
                })
                .and_then(|rs| rs.metadata.owner_references.as_ref())
                .and_then(|o| o.iter().find(|r| r.controller == Some(true)).cloned());
            match deployment {
                Some(d) => format!("{namespace}/{}/{}", d.kind, d.name),
                None => format!("{namespace}/ReplicaSet/{}", owner.name),
            }
        }
        Some(owner) if owner.kind != "Node" => format!("{namespace}/{}/{}", owner.kind, owner.name),
        _ => format!(
            "{namespace}/Pod/{}",
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

fn failing(view: &ClusterView) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for pod in &view.pods {
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        let reason = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .find(|r| FAILING.contains(&r.as_str()));
        if let Some(reason) = reason {
            found.insert(owner_key(view, pod), reason);
        }
    }
    found
}

/// Whether a workload has rolled out: (done, how it stands, its template's images).
pub type Rollout = (bool, String, Vec<String>);

fn template_images(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> Vec<String> {
    spec.map(|s| {
        s.containers
            .iter()
            .filter_map(|c| c.image.clone())
            .collect()
    })
    .unwrap_or_default()
}

/// A Deployment is rolled out when its controller saw the latest spec and every replica is
/// updated and available, with no old one left (`kubectl rollout status`).
pub fn deployment_rollout(d: &Deployment) -> Rollout {
    let s = d.status.clone().unwrap_or_default();
    let desired = i64::from(d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
    let observed = s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = i64::from(s.updated_replicas.unwrap_or(0));
    let available = i64::from(s.available_replicas.unwrap_or(0));
    let total = i64::from(s.replicas.unwrap_or(0));
    let done = observed && updated == desired && available == desired && total == desired;
    let detail = format!("{available} of {desired} available, {updated} updated");
    let template = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    (done, detail, template_images(template))
}

/// A DaemonSet is rolled out when every node that should run it runs the updated pod,
/// available.
pub fn daemonset_rollout(d: &DaemonSet) -> Rollout {
    let s = d.status.clone().unwrap_or_default();
    let observed = s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let desired = i64::from(s.desired_number_scheduled);
    let updated = i64::from(s.updated_number_scheduled.unwrap_or(0));
    let available = i64::from(s.number_available.unwrap_or(0));
    let done = observed && updated == desired && available == desired;
    let detail = format!("{available} of {desired} available, {updated} updated");
    let template = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    (done, detail, template_images(template))
}

/// A StatefulSet is rolled out when every replica is updated and ready.
pub fn statefulset_rollout(d: &StatefulSet) -> Rollout {
    let s = d.status.clone().unwrap_or_default();
    let observed = s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let desired = i64::from(d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
    let updated = i64::from(s.updated_replicas.unwrap_or(0));
    let ready = i64::from(s.ready_replicas.unwrap_or(0));
    let done = observed && updated == desired && ready == desired;
    let detail = format!("{ready} of {desired} ready, {updated} updated");
    let template = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    (done, detail, template_images(template))
}

fn rollout(view: &ClusterView, kind: &str, namespace: &str, name: &str) -> Option<Rollout> {
    let matches = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(namespace) && meta.name.as_deref() == Some(name)
    };
    match kind {
        "Deployment" => view
            .deployments
            .iter()
            .find(|d| matches(&d.metadata))
            .map(deployment_rollout),
        "DaemonSet" => view
            .daemonsets
            .iter()
            .find(|d| matches(&d.metadata))
            .map(daemonset_rollout),
        "StatefulSet" => view
            .statefulsets
            .iter()
            .find(|d| matches(&d.metadata))
            .map(statefulset_rollout),
        _ => None,
    }
}

fn tag(image: &str) -> &str {
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') && !repository.is_empty() => tag,
        _ => "",
    }
}

/// Whether `reported` ("v1.21.14") is `wanted` ("1.21.14", or "1.21" for any patch).
fn at_version(reported: &str, wanted: KubeVersion) -> bool {
    KubeVersion::parse(reported).is_some_and(|v| match wanted.patch {
        Some(_) => v == wanted,
        None => v.minor_only() == wanted.minor_only(),
    })
}

/// Judges the cluster after a hop.
pub fn judge(
    view: &ClusterView,
    readyz: &[(String, Result<(), String>)],
    in_use: Option<&str>,
    etcd: &EtcdState,
    expect: &Expectations,
    baseline: Option<&Baseline>,
) -> Verification {
    let mut checks = Vec::new();
    let mut check =
        |area: &str, subject: String, status: Status, before: Option<String>, after: String| {
            checks.push(Check {
                area: area.to_owned(),
                subject,
                status,
                before,
                after,
            });
        };
    let target = KubeVersion::parse(&expect.version);
    let judged = expect.versions_unjudged.is_none();
    if let Some(why) = &expect.versions_unjudged {
        check(
            "nodes",
            "versions".into(),
            Status::Note,
            None,
            format!("kubelet, control-plane and addon versions not judged: {why}"),
        );
    }

    // Nodes.
    let server = KubeVersion::parse(&view.server_version);
    for node in nodes(view) {
        let expected = expect.nodes.is_empty() || expect.nodes.contains(&node.name);
        let before = baseline.and_then(|b| b.nodes.get(&node.name)).map(|n| {
            format!(
                "{}, kubelet {}",
                if n.ready { "Ready" } else { "NotReady" },
                n.kubelet
            )
        });
        let now = format!(
            "{}{}, kubelet {}",
            if node.ready { "Ready" } else { "NotReady" },
            if node.unschedulable { ", cordoned" } else { "" },
            node.kubelet
        );
        let kubelet = KubeVersion::parse(&node.kubelet);
        let wrong_version =
            judged && expected && target.is_some_and(|t| !at_version(&node.kubelet, t));
        let newer_than_server = judged
            && matches!((kubelet, server), (Some(k), Some(s)) if k.minor_only() > s.minor_only());
        let status = if !node.ready
            || wrong_version
            || (expected && node.unschedulable)
            || newer_than_server
        {
            Status::Fail
        } else if node.unschedulable {
            Status::Note
        } else {
            Status::Pass
        };
        let after = match (status, expected, target) {
            (Status::Fail, true, Some(t))
                if judged && node.ready && !at_version(&node.kubelet, t) =>
            {
                format!("{now}; expected kubelet {t}")
            }
            _ => now,
        };
        check("nodes", node.name, status, before, after);
    }

    // The control plane's version.
    if let (true, Some(target)) = (judged, target) {
        let behind = server.is_none_or(|s| s.minor_only() < target.minor_only());
        check(
            "control-plane",
            "kube-apiserver /version".into(),
            if behind { Status::Fail } else { Status::Pass },
            baseline.map(|b| b.server_version.clone()),
            if behind {
                format!(
                    "{}; the nodes' version {target} needs it at least there",
                    view.server_version
                )
            } else {
                view.server_version.clone()
            },
        );
    }

    // kube-system rolled out, and what the run applied.
    let applied: BTreeSet<String> = expect.applied.iter().map(Applied::key).collect();
    let kube_system = view
        .deployments
        .iter()
        .filter(|d| d.metadata.namespace.as_deref() == Some("kube-system"))
        .map(|d| ("Deployment", d.metadata.name.clone().unwrap_or_default()))
        .chain(
            view.daemonsets
                .iter()
                .filter(|d| d.metadata.namespace.as_deref() == Some("kube-system"))
                .map(|d| ("DaemonSet", d.metadata.name.clone().unwrap_or_default())),
        )
        .chain(
            view.statefulsets
                .iter()
                .filter(|d| d.metadata.namespace.as_deref() == Some("kube-system"))
                .map(|d| ("StatefulSet", d.metadata.name.clone().unwrap_or_default())),
        );
    for (kind, name) in kube_system {
        let key = format!("kube-system/{kind}/{name}");
        if applied.contains(&key) {
            continue;
        }
        if let Some((done, detail, _)) = rollout(view, kind, "kube-system", &name) {
            check(
                "kube-system",
                key,
                if done { Status::Pass } else { Status::Fail },
                None,
                if done {
                    format!("rolled out: {detail}")
                } else {
                    format!("not rolled out: {detail}")
                },
            );
        }
    }
    for wanted in &expect.applied {
        match rollout(view, &wanted.kind, &wanted.namespace, &wanted.name) {
            None => check(
                "addons",
                wanted.key(),
                Status::Fail,
                None,
                "applied by this run, not in the cluster now".into(),
            ),
            Some((done, detail, images)) => {
                let missing: Vec<&String> = wanted
                    .images
                    .iter()
                    .filter(|i| !images.contains(i))
                    .collect();
                let (status, after) = if !missing.is_empty() {
                    (
                        Status::Fail,
                        format!(
                            "runs {}, this run applied {}",
                            images.join(", "),
                            wanted.images.join(", ")
                        ),
                    )
                } else if done {
                    (
                        Status::Pass,
                        format!("rolled out: {detail}, {}", images.join(", ")),
                    )
                } else {
                    (Status::Fail, format!("not rolled out: {detail}"))
                };
                check("addons", wanted.key(), status, None, after);
            }
        }
    }

    // CoreDNS and kube-proxy as kubeadm deploys them for the target.
    if let (true, true, Some(target)) = (judged, expect.addons, target) {
        let apiservers: Vec<(String, String)> = view
            .pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some("kube-system"))
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("component"))
                    .map(String::as_str)
                    == Some("kube-apiserver")
            })
            .map(|p| {
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                let image = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default();
                (node, tag(&image).to_owned())
            })
            .collect();
        let behind: Vec<String> = apiservers
            .iter()
            .filter(|(_, tag)| !at_version(tag, target))
            .map(|(node, tag)| format!("{node} at {tag}"))
            .collect();
        let due = if addons::addons_follow_last_control_plane(target) {
            behind.is_empty()
        } else {
            server.is_some_and(|s| {
                at_version(&view.server_version, target) || s.minor_only() > target.minor_only()
            })
        };
        let wanted = [
            (
                "Deployment",
                "coredns",
                addons::coredns(target).map(str::to_owned),
            ),
            ("DaemonSet", "kube-proxy", Some(addons::kube_proxy(target))),
        ];
        for (kind, name, version) in wanted {
            let Some((_, _, images)) = rollout(view, kind, "kube-system", name) else {
                check(
                    "addons",
                    format!("kube-system/{kind}/{name}"),
                    Status::Note,
                    None,
                    "not in the cluster: not checked".into(),
                );
                continue;
            };
            let running = images
                .first()
                .map(|i| tag(i).to_owned())
                .unwrap_or_default();
            let subject = format!("kube-system/{kind}/{name}");
            match version {
                _ if !due => check(
                    "addons",
                    subject,
                    Status::Note,
                    None,
                    format!(
                        "at {running}: kubeadm moves it to {target}'s version with the last control-plane node ({} not yet)",
                        behind.join(", ")
                    ),
                ),
                None => check(
                    "addons",
                    subject,
                    Status::Note,
                    None,
                    format!(
                        "at {running}: krun does not know the version kubeadm {target} deploys"
                    ),
                ),
                // kube-proxy follows the control plane: a target without a patch (`1.21`) is
                // met by any patch of its minor, as the nodes' kubelets are.
                Some(version)
                    if running == version
                        || (name == "kube-proxy" && at_version(&running, target)) =>
                {
                    check(
                        "addons",
                        subject,
                        Status::Pass,
                        None,
                        format!("at {running}, as kubeadm {target} deploys it"),
                    );
                }
                Some(version) => check(
                    "addons",
                    subject,
                    Status::Fail,
                    None,
                    format!("at {running}; kubeadm {target} deploys {version}"),
                ),
            }
        }
    }

    // The apiservers, each on its own address and through the address in use.
    if readyz.is_empty() {
        check(
            "apiserver",
            "each apiserver's /readyz".into(),
            Status::Note,
            None,
            "no apiserver announced its own address (kubeadm's advertise-address annotation); pass apiservers to probe each one".into(),
        );
    }
    for (endpoint, answer) in readyz {
        check(
            "apiserver",
            format!("{endpoint}/readyz"),
            if answer.is_ok() {
                Status::Pass
            } else {
                Status::Fail
            },
            None,
            match answer {
                Ok(()) => "ok".into(),
                Err(why) => why.clone(),
            },
        );
    }
    check(
        "apiserver",
        "/readyz through the address in use (the load balancer)".into(),
        if in_use.is_none() {
            Status::Pass
        } else {
            Status::Fail
        },
        None,
        in_use.map_or_else(|| "ok".to_owned(), str::to_owned),
    );

    // etcd.
    match (&etcd.skipped, &etcd.error) {
        (Some(why), _) => check(
            "etcd",
            "members".into(),
            Status::Note,
            None,
            format!("not checked: {why}"),
        ),
        (None, Some(why)) => check(
            "etcd",
            "members".into(),
            Status::Fail,
            None,
            format!("could not be read: {why}"),
        ),
        (None, None) => {
            let before = baseline.and_then(|b| b.etcd_members);
            let voters = etcd.members.iter().filter(|m| !m.1).count();
            for (name, learner, health) in &etcd.members {
                let (status, after) = match (learner, health) {
                    (true, _) => (Status::Fail, "a learner, not a voting member".to_owned()),
                    (false, Some(why)) => (Status::Fail, format!("not healthy: {why}")),
                    (false, None) => (Status::Pass, "healthy".to_owned()),
                };
                check("etcd", name.clone(), status, None, after);
            }
            let short = before.is_some_and(|b| voters < b) || voters == 0;
            check(
                "etcd",
                "membership".into(),
                if short { Status::Fail } else { Status::Pass },
                before.map(|b| format!("{b} voting members")),
                format!("{voters} voting members"),
            );
        }
    }

    // Workloads, pods and budgets against the start of the run.
    let now_workloads = workloads(view);
    let now_failing = failing(view);
    match baseline {
        None => {
            check(
                "workloads",
                "ready replicas".into(),
                Status::Note,
                None,
                "no baseline from the start of the run: ready replicas not compared (verify_baseline() before the first change)".into(),
            );
            for (key, reason) in &now_failing {
                check(
                    "pods",
                    key.clone(),
                    Status::Fail,
                    None,
                    format!("{reason} (no baseline to tell whether it was before)"),
                );
            }
        }
        Some(baseline) => {
            for (key, before) in &baseline.workloads {
                let Some(now) = now_workloads.get(key) else {
                    check(
                        "workloads",
                        key.clone(),
                        Status::Note,
                        Some(format!("{} ready", before.ready)),
                        "gone".into(),
                    );
                    continue;
                };
                let floor = before.ready.min(now.desired);
                check(
                    "workloads",
                    key.clone(),
                    if now.ready >= floor {
                        Status::Pass
                    } else {
                        Status::Fail
                    },
                    Some(format!("{} of {} ready", before.ready, before.desired)),
                    format!("{} of {} ready", now.ready, now.desired),
                );
            }
            for (key, reason) in &now_failing {
                match baseline.failing.get(key) {
                    Some(was) => check(
                        "pods",
                        key.clone(),
                        Status::Note,
                        Some(was.clone()),
                        format!("{reason}, as at the start"),
                    ),
                    None => check(
                        "pods",
                        key.clone(),
                        Status::Fail,
                        Some("running".into()),
                        format!("newly in {reason}"),
                    ),
                }
            }
        }
    }
    for pdb in view.pdbs.iter().map(PdbStatus::of) {
        let key = format!("{}/{}", pdb.namespace, pdb.name);
        let short = pdb.current_healthy < pdb.desired_healthy;
        let was_short = baseline.is_some_and(|b| b.budgets_short.contains(&key));
        check(
            "budgets",
            key,
            match (short, was_short) {
                (false, _) => Status::Pass,
                (true, true) => Status::Note,
                (true, false) => Status::Fail,
            },
            was_short.then(|| "short at the start".to_owned()),
            format!(
                "{} healthy of {} desired ({})",
                pdb.current_healthy, pdb.desired_healthy, pdb.budget
            ),
        );
    }

    let ok = !checks.iter().any(|c| c.status == Status::Fail);
    Verification {
        version: expect.version.clone(),
        ok,
        baseline: baseline.is_some(),
        checks,
    }
}
