//! Pods grouped by the workload that owns them (a Deployment through its ReplicaSet), the
//! budgets that cover each, and which workloads an upgrade must treat as critical.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;

use super::ClusterView;
use crate::kube::pod;
use crate::kube::selector::Selector;

/// `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet` (without a Deployment), or the
/// owner kind as written (`Job`, an operator's kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct WorkloadId {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One workload: its desired replicas and the indices of its pods in `ClusterView::pods`.
#[derive(Debug, Clone)]
pub struct Workload {
    pub id: WorkloadId,
    /// `spec.replicas` (DaemonSets: the pods that exist).
    pub replicas: i32,
    pub pods: Vec<usize>,
    /// The team named it, or it is an ingress controller, Prometheus, Alertmanager, CoreDNS.
    pub critical: bool,
    /// Ingress controllers: never two of their nodes in one batch.
    pub ingress: bool,
}

/// The cluster's workloads and budgets, indexed.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub workloads: Vec<Workload>,
    /// Pod index → workload index.
    pub workload_of: HashMap<usize, usize>,
    /// Pod index → indices of the budgets (in `ClusterView::pdbs`) covering it.
    pub budgets_of: HashMap<usize, Vec<usize>>,
    /// Budget index → the pods it covers.
    pub pods_of_budget: Vec<Vec<usize>>,
}

impl Index {
    pub fn build(view: &ClusterView, critical: &[String]) -> Self {
        let deployment_of_rs: HashMap<(String, String), String> = view
            .replicasets
            .iter()
            .filter_map(|rs| {
                let owner = rs
                    .metadata
                    .owner_references
                    .as_ref()?
                    .iter()
                    .find(|o| o.controller == Some(true) && o.kind == "Deployment")?;
                Some((
                    (
                        rs.metadata.namespace.clone().unwrap_or_default(),
                        rs.metadata.name.clone().unwrap_or_default(),
                    ),
                    owner.name.clone(),
                ))
            })
            .collect();
        let mut replicas: HashMap<WorkloadId, i32> = HashMap::new();
        let id = |kind: &str, ns: &Option<String>, name: &Option<String>| WorkloadId {
            kind: kind.to_owned(),
            namespace: ns.clone().unwrap_or_default(),
            name: name.clone().unwrap_or_default(),
        };
        for d in &view.deployments {
            let r = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            replicas.insert(id("Deployment", &d.metadata.namespace, &d.metadata.name), r);
        }
        for s in &view.statefulsets {
            let r = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            replicas.insert(
                id("StatefulSet", &s.metadata.namespace, &s.metadata.name),
                r,
            );
        }
        for rs in &view.replicasets {
            let r = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            replicas.insert(
                id("ReplicaSet", &rs.metadata.namespace, &rs.metadata.name),
                r,
            );
        }

        let mut by_id: BTreeMap<WorkloadId, Vec<usize>> = BTreeMap::new();
        for (i, p) in view.pods.iter().enumerate() {
            if pod::is_finished(p) || pod::is_mirror(p) {
                continue;
            }
            let Some(owner) = pod::controller_of(p) else {
                continue;
            };
            let namespace = p.metadata.namespace.clone().unwrap_or_default();
            let workload = match owner.kind.as_str() {
                "ReplicaSet" => {
                    match deployment_of_rs.get(&(namespace.clone(), owner.name.clone())) {
                        Some(deployment) => WorkloadId {
                            kind: "Deployment".into(),
                            namespace,
                            name: deployment.clone(),
                        },
                        None => WorkloadId {
                            kind: "ReplicaSet".into(),
                            namespace,
                            name: owner.name.clone(),
                        },
                    }
                }
                kind => WorkloadId {
                    kind: kind.to_owned(),
                    namespace,
                    name: owner.name.clone(),
                },
            };
            by_id.entry(workload).or_default().push(i);
        }
        let mut index = Index::default();
        for (id, pods) in by_id {
            let named = critical
                .iter()
                .any(|c| *c == format!("{}/{}", id.namespace, id.name) || *c == id.name);
            let ingress = is_ingress(&id, pods.first().map(|&i| &view.pods[i]));
            let well_known = ingress || is_well_known_critical(&id);
            let count = pods.len() as i32;
            let w = index.workloads.len();
            for &p in &pods {
                index.workload_of.insert(p, w);
            }
            index.workloads.push(Workload {
                replicas: replicas.get(&id).copied().unwrap_or(count),
                critical: named || well_known,
                ingress,
                id,
                pods,
            });
        }
        let mut by_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
        for (b, pdb) in view.pdbs.iter().enumerate() {
            by_namespace
                .entry(pdb.metadata.namespace.as_deref().unwrap_or_default())
                .or_default()
                .push(b);
        }
        index.pods_of_budget = vec![Vec::new(); view.pdbs.len()];
        // Parsed once per budget; a missing or invalid selector selects nothing (as policy/v1
        // defines it, and as the eviction API ignores an invalid one).
        let selectors: Vec<Option<Selector>> = view
            .pdbs
            .iter()
            .map(|pdb| {
                let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref())?;
                Selector::from_api(selector).ok()
            })
            .collect();
        for (i, p) in view.pods.iter().enumerate() {
            let namespace = p.metadata.namespace.as_deref().unwrap_or_default();
            let Some(candidates) = by_namespace.get(namespace) else {
                continue;
            };
            let labels = pod::labels(p);
            let covering: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&b| selectors[b].as_ref().is_some_and(|s| s.matches(labels)))
                .collect();
            for &b in &covering {
                index.pods_of_budget[b].push(i);
            }
            if !covering.is_empty() {
                index.budgets_of.insert(i, covering);
            }
        }
        index
    }

    /// The budgets covering any pod of the workload.
    pub fn budgets_of_workload(&self, workload: usize) -> Vec<usize> {
        let mut found: Vec<usize> = self.workloads[workload]
            .pods
            .iter()
            .flat_map(|p| self.budgets_of.get(p).into_iter().flatten().copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

fn is_ingress(id: &WorkloadId, sample: Option<&Pod>) -> bool {
    let name = id.name.to_lowercase();
    let image_says = sample.and_then(|p| p.spec.as_ref()).is_some_and(|s| {
        s.containers.iter().any(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            image.contains("ingress")
                || image.contains("traefik")
                || image.contains("haproxy")
                || image.contains("contour")
                || image.contains("kong")
        })
    });
    name.contains("ingress") || name.contains("traefik") || image_says
}

fn is_well_known_critical(id: &WorkloadId) -> bool {
    let name = id.name.to_lowercase();
    ["prometheus", "alertmanager", "coredns", "kube-dns"]
        .iter()
        .any(|n| name.contains(n))
        && !name.contains("operator")
        && !name.contains("exporter")
}
