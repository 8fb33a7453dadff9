//! What preflight reads of a cluster, in one call: the [`ClusterView`], whether each
//! kube-apiserver answers `/readyz` on its own address (and the address in use, normally the
//! load balancer), and the objects stored in API versions a target release removes. Preflight
//! judges it; nothing here decides anything.
//!
//! The apiserver endpoints come from the request or, on kubeadm clusters, from the
//! `kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint` annotation of the
//! kube-apiserver static pods. The probe sends no credentials (`/readyz` is readable
//! anonymously by default) and so does not verify the endpoint's certificate: it learns only
//! whether the endpoint answers "ok".

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::view::ClusterView;
use super::{Kube, KubeResult};

const ENDPOINT_ANNOTATION: &str = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to read besides the cluster view.
#[derive(Debug, Clone, Default)]
pub struct SurveyRequest {
    /// The target release, for the plan only.
    pub target: Option<String>,
    /// Each kube-apiserver's own address (`https://10.0.0.1:6443`); empty: from the kubeadm
    /// annotation on the apiserver pods.
    pub apiservers: Vec<String>,
    /// API versions whose stored objects to list.
    pub apis: Vec<ApiQuestion>,
}

/// Objects of `kinds` in `api_version`, and whether `replacement` serves them too.
#[derive(Debug, Clone)]
pub struct ApiQuestion {
    pub api_version: String,
    pub kinds: Vec<String>,
    /// The API version that replaces it (empty: none).
    pub replacement: String,
}

/// What was read.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub view: ClusterView,
    /// The apiserver endpoints probed, each with `Err(why)` when it did not answer "ok".
    pub readyz: Vec<(String, Result<(), String>)>,
    /// Why `/readyz` through the address this client uses (the VIP or load balancer) did not
    /// answer "ok"; `None` when it did.
    pub in_use: Option<String>,
    /// Objects served in the API versions asked about, by version and kind.
    pub stored: Vec<Stored>,
}

/// The objects one API version serves of one kind.
#[derive(Debug, Clone)]
pub struct Stored {
    pub api_version: String,
    pub kind: String,
    /// The replacement version serves the kind too: an object may have been written either way.
    pub replaced: bool,
    pub objects: Vec<StoredObject>,
}

#[derive(Debug, Clone)]
pub struct StoredObject {
    pub namespace: String,
    pub name: String,
    /// The `apiVersion` of its `kubectl.kubernetes.io/last-applied-configuration`.
    pub last_applied: Option<String>,
}

impl Survey {
    /// How the plan and the journal record a survey.
    pub fn summary(&self) -> serde_json::Value {
        let mut summary = self.view.summary();
        summary["apiservers_probed"] = self.readyz.len().into();
        summary["apiservers_down"] = self
            .readyz
            .iter()
            .filter(|(_, r)| r.is_err())
            .count()
            .into();
        summary["stored_in_removed_apis"] = self
            .stored
            .iter()
            .map(|s| s.objects.len())
            .sum::<usize>()
            .into();
        summary
    }

    /// Reads everything `request` asks for.
    pub async fn read(kube: &Kube, request: &SurveyRequest) -> KubeResult<Self> {
        let view = ClusterView::read(kube).await?;
        let endpoints = if request.apiservers.is_empty() {
            endpoints(&view)
        } else {
            request.apiservers.clone()
        };
        let mut readyz = Vec::new();
        for endpoint in endpoints {
            let answer = probe(&endpoint).await;
            readyz.push((endpoint, answer));
        }
        let in_use = ready(kube.client()).await.err();
        let mut stored = Vec::new();
        for question in &request.apis {
            stored.extend(stored_objects(kube.client(), question).await);
        }
        Ok(Survey {
            view,
            readyz,
            in_use,
            stored,
        })
    }
}

/// The apiserver endpoints kubeadm announces on its static pods.
pub fn endpoints(view: &ClusterView) -> Vec<String> {
    let mut found: Vec<String> = view
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some("kube-system"))
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("component"))
                .is_some_and(|c| c == "kube-apiserver")
        })
        .filter_map(|p| {
            p.metadata
                .annotations
                .as_ref()?
                .get(ENDPOINT_ANNOTATION)
                .cloned()
        })
        .map(|endpoint| format!("https://{endpoint}"))
        .collect();
    found.sort();
    found.dedup();
    found
}

async fn probe(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint.parse().map_err(|e| format!("not a URL: {e}"))?;
    let mut config = kube::Config::new(uri);
    config.accept_invalid_certs = true;
    config.default_retry = false;
    config.connect_timeout = Some(PROBE_TIMEOUT);
    config.read_timeout = Some(PROBE_TIMEOUT);
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    ready(&client).await
}

async fn ready(client: &kube::Client) -> Result<(), String> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(PROBE_TIMEOUT * 2, client.request_text(request))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if answer.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("answered {:?}", answer.trim()))
    }
}

/// The objects `question.api_version` serves of each of its kinds; nothing when the version is
/// not served (404: nothing can be stored in it).
async fn stored_objects(client: &kube::Client, question: &ApiQuestion) -> Vec<Stored> {
    let Ok(resources) = resources(client, &question.api_version).await else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for kind in &question.kinds {
        let Some(resource) = resources
            .resources
            .iter()
            .find(|r| &r.kind == kind && !r.name.contains('/'))
        else {
            continue;
        };
        let (group, version) = question
            .api_version
            .split_once('/')
            .unwrap_or(("", &question.api_version));
        let api_resource = ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: question.api_version.clone(),
            kind: kind.clone(),
            plural: resource.name.clone(),
        };
        let replaced = !question.replacement.is_empty()
            && resources_of(client, &question.replacement, kind).await;
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource);
        let objects = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(
                    "preflight: cannot list {} {kind} to check for a removed API: {e}",
                    question.api_version
                );
                continue;
            }
        };
        found.push(Stored {
            api_version: question.api_version.clone(),
            kind: kind.clone(),
            replaced,
            objects: objects
                .into_iter()
                .map(|object| StoredObject {
                    namespace: object.metadata.namespace.clone().unwrap_or_default(),
                    name: object.metadata.name.clone().unwrap_or_default(),
                    last_applied: last_applied_version(&object.metadata),
                })
                .collect(),
        });
    }
    found
}

async fn resources(
    client: &kube::Client,
    api_version: &str,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList, kube::Error> {
    if api_version.contains('/') {
        client.list_api_group_resources(api_version).await
    } else {
        client.list_core_api_resources(api_version).await
    }
}

async fn resources_of(client: &kube::Client, api_version: &str, kind: &str) -> bool {
    resources(client, api_version)
        .await
        .is_ok_and(|r| r.resources.iter().any(|r| r.kind == kind))
}

/// The `apiVersion` an object was last applied as (`kubectl apply`'s annotation).
pub fn last_applied_version(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    let text = meta.annotations.as_ref()?.get(LAST_APPLIED)?;
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("apiVersion")?.as_str().map(str::to_owned)
}
