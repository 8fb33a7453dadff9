//! Typed operations on the Kubernetes API: cordon, drain, evict, uncordon, wait for Ready.
//!
//! Reads, writes and decisions are kept apart so the effects boundary can treat each on its
//! own terms: reads (`node_info`, `pods_on`, `pdbs`, …) run in a dry-run too; every API
//! write is its own call (`cordon`, one `evict` per pod, `uncordon`) so it can be recorded
//! as one plan step; and the decisions (which pods a drain may evict) are pure functions in
//! [`drain_plan`], so a dry-run shows exactly what a live run would do.
//!
//! Waiting is done by watching, never by polling: one watch on the node's pods tells every
//! eviction when its pod is gone, one watch on PodDisruptionBudgets tells a blocked eviction
//! when trying again can succeed, and both survive an API server restart.

pub mod apply;
pub mod call;
pub mod client;
pub mod drain;
pub mod drain_plan;
pub mod error;
pub mod eviction;
pub mod health;
pub mod kept;
pub mod lock;
pub mod node;
pub mod pdb;
pub mod pod;
pub mod retry;
pub mod selector;
pub mod survey;
pub mod view;
pub mod watch;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};

pub use call::Call;
pub use client::ClientOptions;
pub use drain::{DrainEvent, DrainOptions, DrainPreview, DrainReport, EvictionBypass};
/// See [`client::nothing_configured`], for this process's environment.
pub fn nothing_configured(options: &ClientOptions) -> bool {
    client::nothing_configured(options, &client::Environment::current())
}

pub use drain_plan::{DrainFilters, DrainPlan, PodAction, Refusal, SkipReason};
pub use error::{KubeError, KubeResult};
pub use eviction::{EvictOptions, EvictionAnswer, EvictionApi, EvictionReport, RetryPolicy};
pub use node::{NodeInfo, ServerVersion};
pub use pdb::{PdbStatus, PolicyVersion, ServedPdb};
pub use pod::PodRef;
pub use survey::Survey;
pub use view::ClusterView;

/// A connection to one cluster. Cheap to clone; clones share the connection pool and what
/// discovery found out.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    /// Where the configuration came from, for messages (`/root/.kube/config (lab)`).
    source: String,
    eviction_api: std::sync::Arc<tokio::sync::OnceCell<EvictionApi>>,
    /// Every drain made through this connection shares the kept replicas' turns.
    kept: std::sync::Arc<kept::KeptReplicas>,
    policy_version: std::sync::Arc<tokio::sync::OnceCell<PolicyVersion>>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("source", &self.source)
            .finish()
    }
}

impl Kube {
    /// Connects as kubectl would with the same `--kubeconfig`, `--context` and environment.
    pub async fn connect(options: &ClientOptions) -> KubeResult<Self> {
        let (config, source) =
            client::load_config(options, &client::Environment::current()).await?;
        Self::from_config(config, source)
    }

    /// Connects to a plain-http API server, such as the simulator, with no credentials.
    pub fn from_url(url: &str) -> KubeResult<Self> {
        let uri = url.parse().map_err(|e| KubeError::Config {
            source_desc: url.to_owned(),
            message: format!("not a URL: {e}"),
        })?;
        let mut config = kube::Config::new(uri);
        config.default_retry = false;
        Self::from_config(config, url.to_owned())
    }

    /// Uses a prepared configuration; kube's automatic retries are turned off regardless, and
    /// reads are retried as [`retry`] says. Needs a Tokio runtime (the client's buffers run on it).
    pub fn from_config(mut config: kube::Config, source: String) -> KubeResult<Self> {
        config.default_retry = false;
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| KubeError::Config {
                source_desc: source.clone(),
                message: format!("cannot build a client: {e}"),
            })?
            // Retry needs a service it can clone; the buffer makes one.
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&tower::retry::RetryLayer::new(retry::ReadRetry::default()))
            .build();
        Ok(Self {
            client,
            source,
            eviction_api: std::sync::Arc::default(),
            kept: std::sync::Arc::default(),
            policy_version: std::sync::Arc::default(),
        })
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every pod scheduled to `node`, in all namespaces, sorted by namespace and name.
    pub async fn pods_on(&self, node: &str) -> KubeResult<Vec<Pod>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let mut pods = list_all(&api, params, &format!("LIST pods on node {node}")).await?;
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        Ok(pods)
    }

    /// The kube-apiserver static pods (kubeadm's `component=kube-apiserver` in kube-system):
    /// `(node, version)` from each pod's image tag, sorted by node.
    pub async fn apiserver_versions(&self) -> KubeResult<Vec<(String, String)>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "kube-system");
        let params = ListParams::default().labels("component=kube-apiserver");
        let pods = list_all(&api, params, "LIST kube-apiserver pods").await?;
        let mut versions: Vec<(String, String)> = pods
            .iter()
            .filter_map(|pod| {
                let spec = pod.spec.as_ref()?;
                let node = spec.node_name.clone()?;
                let image = spec.containers.first()?.image.clone()?;
                let tag = image.rsplit_once(':')?.1.to_owned();
                Some((node, tag))
            })
            .collect();
        versions.sort();
        Ok(versions)
    }

    /// The `policy` version PodDisruptionBudgets are served under, found by discovery once
    /// per connection (policy/v1 when discovery cannot tell).
    pub async fn policy_version(&self) -> PolicyVersion {
        *self
            .policy_version
            .get_or_init(|| async {
                match self.client.list_api_groups().await {
                    Ok(groups) => PolicyVersion::choose(&groups),
                    Err(e) => {
                        tracing::debug!("discovery failed, assuming policy/v1: {e}");
                        PolicyVersion::V1
                    }
                }
            })
            .await
    }

    /// PodDisruptionBudgets, in the whole cluster or one namespace, through the served version.
    pub async fn pdb_api(&self, namespace: Option<&str>) -> Api<ServedPdb> {
        let version = self.policy_version().await;
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &version),
            None => Api::all_with(self.client.clone(), &version),
        }
    }

    /// Every PodDisruptionBudget in the cluster.
    pub async fn pdbs(&self) -> KubeResult<Vec<PodDisruptionBudget>> {
        let api = self.pdb_api(None).await;
        let budgets = list_all(&api, ListParams::default(), "LIST poddisruptionbudgets").await?;
        Ok(budgets.into_iter().map(|b| b.0).collect())
    }
}

/// Lists in pages of 500, as kubectl does, so a large node does not need one huge response.
async fn list_all<K>(api: &Api<K>, params: ListParams, action: &str) -> KubeResult<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = params.limit(500);
    let mut items = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| KubeError::api(action, e))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}
