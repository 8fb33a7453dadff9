//! A kept replica: a drain keeps at least one ready replica of every controller-managed
//! workload that has no PodDisruptionBudget, as if it had `maxUnavailable: 1` across all the
//! drains of one krun command.
//!
//! The field reports' worst outage: the two Ingress nodes were drained together and the
//! controller, which had no budget, lost every replica at once. Nothing in the Eviction API
//! stops that: without a budget an eviction is always admitted. So for such a workload krun
//! evicts one pod at a time (per workload, whichever node it is on, in whichever drain of the
//! command) and waits until the workload has as many ready replicas as before the eviction —
//! the replacement Ready on another node — before the next one of its pods may go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Kube, KubeError, KubeResult};

/// The workload a kept replica is kept for: the pod's controller, a ReplicaSet (a Deployment's
/// pods) or a StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl Owner {
    /// The controller a kept replica applies to, if the pod has one of the kinds it knows.
    pub fn of(pod: &Pod) -> Option<Self> {
        let owner = pod
            .metadata
            .owner_references
            .as_ref()?
            .iter()
            .find(|o| o.controller == Some(true))?;
        matches!(owner.kind.as_str(), "ReplicaSet" | "StatefulSet").then(|| Owner {
            kind: owner.kind.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: owner.name.clone(),
        })
    }
}

/// One eviction at a time per workload, for every drain of the command.
#[derive(Default)]
pub struct KeptReplicas {
    turns: Mutex<HashMap<Owner, Arc<Semaphore>>>,
}

impl KeptReplicas {
    /// Waits for `owner`'s turn; held until the replacement is Ready.
    pub async fn turn(&self, owner: &Owner) -> OwnedSemaphorePermit {
        let turn = Arc::clone(
            self.turns
                .lock()
                .expect("kept replicas lock")
                .entry(owner.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(1))),
        );
        turn.acquire_owned().await.expect("never closed")
    }
}

impl Kube {
    /// `(ready, desired)` replicas of `owner` now.
    pub async fn readiness(&self, owner: &Owner) -> KubeResult<(i32, i32)> {
        let what = format!("GET {owner}");
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &owner.namespace);
                let rs = api
                    .get(&owner.name)
                    .await
                    .map_err(|e| KubeError::api(&what, e))?;
                let status = rs.status.unwrap_or_default();
                Ok((
                    status.ready_replicas.unwrap_or(0),
                    rs.spec.and_then(|s| s.replicas).unwrap_or(1),
                ))
            }
            _ => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &owner.namespace);
                let sts = api
                    .get(&owner.name)
                    .await
                    .map_err(|e| KubeError::api(&what, e))?;
                let status = sts.status.unwrap_or_default();
                Ok((
                    status.ready_replicas.unwrap_or(0),
                    sts.spec.and_then(|s| s.replicas).unwrap_or(1),
                ))
            }
        }
    }

    /// Waits until `owner` has `ready` ready replicas again (a replacement Ready elsewhere),
    /// watching it; an error at `deadline`.
    pub async fn await_replacement(
        &self,
        owner: &Owner,
        ready: i32,
        deadline: Option<Instant>,
    ) -> KubeResult<()> {
        use kube::runtime::wait::await_condition;
        let enough = move |ready_now: Option<i32>| ready_now.unwrap_or(0) >= ready;
        let waited = async {
            match owner.kind.as_str() {
                "ReplicaSet" => {
                    let api: Api<ReplicaSet> =
                        Api::namespaced(self.client.clone(), &owner.namespace);
                    await_condition(api, &owner.name, move |rs: Option<&ReplicaSet>| {
                        enough(rs.and_then(|r| r.status.as_ref()?.ready_replicas))
                    })
                    .await
                    .map(|_| ())
                }
                _ => {
                    let api: Api<StatefulSet> =
                        Api::namespaced(self.client.clone(), &owner.namespace);
                    await_condition(api, &owner.name, move |sts: Option<&StatefulSet>| {
                        enough(sts.and_then(|s| s.status.as_ref()?.ready_replicas))
                    })
                    .await
                    .map(|_| ())
                }
            }
        };
        let timed_out = || KubeError::KeptReplica {
            owner: owner.to_string(),
            ready,
        };
        match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), waited).await {
                Ok(result) => result.map_err(|e| KubeError::Watch {
                    what: format!("{owner}"),
                    message: e.to_string(),
                }),
                Err(_) => Err(timed_out()),
            },
            None => waited.await.map_err(|e| KubeError::Watch {
                what: format!("{owner}"),
                message: e.to_string(),
            }),
        }
    }
}
