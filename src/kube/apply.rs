//! Putting a team's manifests into the cluster, and waiting until what they run has rolled out.
//!
//! Objects are applied server-side (`kubectl apply --server-side --field-manager=krun
//! --force-conflicts`): the API server merges, so krun keeps no last-applied annotation and
//! takes over fields another manager set (a CNI installed by hand before). A server that
//! answers such a patch on a missing object with 404 instead of creating it (an older
//! simulator) gets a create.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use serde::Serialize;
use serde_json::Value;

use super::health::{self, Applied, Rollout};
use super::{Kube, KubeError, KubeResult};

/// The field manager krun applies as.
pub const FIELD_MANAGER: &str = "krun";

/// One object as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `created` or `configured` (`unchanged` is not told apart: the server merges).
    pub action: &'static str,
    /// The images its pod template runs, for workloads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// `apiVersion`, `kind`, namespace and name of a manifest object, or why it has none.
fn identity(object: &Value) -> Result<(GroupVersionKind, Option<String>, String), String> {
    let api_version = object["apiVersion"]
        .as_str()
        .ok_or("an object without apiVersion")?;
    let kind = object["kind"].as_str().ok_or("an object without kind")?;
    let name = object["metadata"]["name"]
        .as_str()
        .ok_or_else(|| format!("a {kind} without metadata.name"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok((
        GroupVersionKind::gvk(group, version, kind),
        object["metadata"]["namespace"].as_str().map(str::to_owned),
        name.to_owned(),
    ))
}

/// The images of a workload manifest's pod template.
fn images(object: &Value) -> Vec<String> {
    object
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

/// The objects of a manifest file: every YAML document (a `List`'s items in its place), empty
/// documents skipped.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    let mut objects = Vec::new();
    for (n, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| format!("document {}: {e}", n + 1))?;
        match value {
            Value::Null => {}
            Value::Object(_) if value["kind"] == "List" => {
                objects.extend(value["items"].as_array().cloned().unwrap_or_default());
            }
            Value::Object(_) => objects.push(value),
            _ => return Err(format!("document {} is not an object", n + 1)),
        }
    }
    for object in &objects {
        identity(object)?;
    }
    Ok(objects)
}

/// Whether the kind has a rollout krun can wait for.
pub fn is_workload(kind: &str) -> bool {
    matches!(kind, "Deployment" | "DaemonSet" | "StatefulSet")
}

impl Kube {
    /// Applies `objects` in order (`dry_run`: the server judges them without storing anything).
    pub async fn apply(&self, objects: &[Value], dry_run: bool) -> KubeResult<Vec<AppliedObject>> {
        let mut applied = Vec::new();
        for object in objects {
            let (gvk, namespace, name) = identity(object).map_err(|why| KubeError::Config {
                source_desc: "the manifests".into(),
                message: why,
            })?;
            let action = format!("APPLY {} {name}", gvk.kind);
            let (resource, capabilities) = pinned_kind(self.client(), &gvk)
                .await
                .map_err(|e| KubeError::api(format!("{action}: discovery"), e))?;
            let namespaced = capabilities.scope == kube::discovery::Scope::Namespaced;
            let namespace = namespaced.then(|| namespace.unwrap_or_else(|| "default".to_owned()));
            let api: Api<DynamicObject> = match &namespace {
                Some(ns) => Api::namespaced_with(self.client().clone(), ns, &resource),
                None => Api::all_with(self.client().clone(), &resource),
            };
            let mut params = PatchParams::apply(FIELD_MANAGER).force();
            params.dry_run = dry_run;
            let mut body = object.clone();
            if let Some(ns) = &namespace {
                body["metadata"]["namespace"] = Value::String(ns.clone());
            }
            let outcome = match api.patch(&name, &params, &Patch::Apply(&body)).await {
                Ok(_) => "configured",
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    let object: DynamicObject =
                        serde_json::from_value(body.clone()).map_err(|e| KubeError::Config {
                            source_desc: "the manifests".into(),
                            message: format!("{} {name}: {e}", gvk.kind),
                        })?;
                    let post = PostParams {
                        dry_run,
                        field_manager: Some(FIELD_MANAGER.to_owned()),
                    };
                    api.create(&post, &object)
                        .await
                        .map_err(|e| KubeError::api(action.clone(), e))?;
                    "created"
                }
                Err(e) => return Err(KubeError::api(action, e)),
            };
            applied.push(AppliedObject {
                kind: gvk.kind.clone(),
                namespace: namespace.unwrap_or_default(),
                name,
                action: outcome,
                images: images(object),
            });
        }
        Ok(applied)
    }

    /// How one workload stands now.
    pub async fn rollout(&self, workload: &Applied) -> KubeResult<Option<Rollout>> {
        let client = self.client().clone();
        let what = format!(
            "GET {} {}/{}",
            workload.kind, workload.namespace, workload.name
        );
        let ns = workload.namespace.as_str();
        let found = match workload.kind.as_str() {
            "Deployment" => Api::<Deployment>::namespaced(client, ns)
                .get_opt(&workload.name)
                .await
                .map(|d| d.as_ref().map(health::deployment_rollout)),
            "DaemonSet" => Api::<DaemonSet>::namespaced(client, ns)
                .get_opt(&workload.name)
                .await
                .map(|d| d.as_ref().map(health::daemonset_rollout)),
            "StatefulSet" => Api::<StatefulSet>::namespaced(client, ns)
                .get_opt(&workload.name)
                .await
                .map(|d| d.as_ref().map(health::statefulset_rollout)),
            _ => return Ok(None),
        };
        found.map_err(|e| KubeError::api(what, e))
    }

    /// Waits until every workload has rolled out with its images, for at most `timeout`;
    /// returns how each stands at the end (the caller decides what a timeout means).
    pub async fn wait_rollout(
        &self,
        workloads: &[Applied],
        timeout: Duration,
        poll: Duration,
    ) -> KubeResult<Vec<(Applied, Option<Rollout>)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut states = Vec::new();
            for workload in workloads {
                states.push((workload.clone(), self.rollout(workload).await?));
            }
            let done = states.iter().all(|(w, state)| {
                state.as_ref().is_some_and(|(done, _, images)| {
                    *done && w.images.iter().all(|i| images.contains(i))
                })
            });
            if done || Instant::now() >= deadline {
                return Ok(states);
            }
            tokio::time::sleep(poll.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_object_names_its_kind_namespace_and_name() {
        let object = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "calico-node", "namespace": "kube-system"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "calico/node:v3.26.1"}]}}}
        });
        let (gvk, ns, name) = identity(&object).unwrap();
        assert_eq!(
            (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()),
            ("apps", "v1", "DaemonSet")
        );
        assert_eq!(
            (ns.as_deref(), name.as_str()),
            (Some("kube-system"), "calico-node")
        );
        assert_eq!(images(&object), ["calico/node:v3.26.1"]);
        let parsed = parse_manifests("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: cni}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n").unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(
            parse_manifests("kind: Pod\n")
                .unwrap_err()
                .contains("without apiVersion")
        );
        let nameless = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        assert_eq!(
            identity(&nameless).unwrap_err(),
            "a ConfigMap without metadata.name"
        );
    }
}
