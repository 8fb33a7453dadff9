//! The cluster as a whole, read once: what preflight judges and the forecast plays batches on.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};

use super::{Kube, KubeError, KubeResult};
use crate::versions::KubeVersion;

/// Everything the checks and the forecast read, fetched once.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The API server's `gitVersion` (`v1.28.9`).
    pub server_version: String,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub deployments: Vec<Deployment>,
    pub replicasets: Vec<ReplicaSet>,
    pub statefulsets: Vec<StatefulSet>,
    pub daemonsets: Vec<DaemonSet>,
}

impl ClusterView {
    /// Reads the cluster with list calls only (pages of 500, as kubectl).
    pub async fn read(kube: &Kube) -> KubeResult<Self> {
        let client = kube.client().clone();
        let server_version = kube.server_version().await?.git_version;
        Ok(ClusterView {
            server_version,
            nodes: list(Api::all(client.clone()), "nodes").await?,
            pods: list(Api::all(client.clone()), "pods").await?,
            pdbs: kube.pdbs().await?,
            deployments: list(Api::all(client.clone()), "deployments").await?,
            replicasets: list(Api::all(client.clone()), "replicasets").await?,
            statefulsets: list(Api::all(client.clone()), "statefulsets").await?,
            daemonsets: list(Api::all(client), "daemonsets").await?,
        })
    }

    /// The version the cluster runs now, from the API server.
    pub fn current_version(&self) -> Option<KubeVersion> {
        KubeVersion::parse(&self.server_version)
    }

    /// How the plan and the journal record a view: what was read, not all of it.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "server_version": self.server_version,
            "nodes": self.nodes.len(),
            "pods": self.pods.len(),
            "pdbs": self.pdbs.len(),
            "deployments": self.deployments.len(),
            "replicasets": self.replicasets.len(),
            "statefulsets": self.statefulsets.len(),
            "daemonsets": self.daemonsets.len(),
        })
    }
}

async fn list<K>(api: Api<K>, what: &str) -> KubeResult<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = ListParams::default().limit(500);
    let mut items = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| KubeError::api(format!("LIST {what}"), e))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}
