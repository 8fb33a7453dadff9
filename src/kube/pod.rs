//! The facts about a pod that draining decides on, read once from the API object.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;

/// The annotation the kubelet puts on the API copy of a static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// A pod by namespace and name, with the UID it had when it was read: a pod recreated under
/// the same name (a StatefulSet replica) has a new UID and is a different pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// `namespace/name`, the key watches and PDB status use.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The owner reference marked `controller: true`, as `metav1.GetControllerOf` finds it.
pub fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
}

/// Succeeded or Failed: nothing runs any more, so deleting it loses nothing.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

pub fn has_empty_dir(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .any(|volume| volume.empty_dir.is_some())
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn deletion_timestamp(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.deletion_timestamp.as_ref().map(|t| t.0)
}

pub fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

/// The images the pod's init containers and containers run, in that order, each once. A runtime
/// switch has to be able to pull every one of them: the node's pods start again from these.
pub fn images(pod: &Pod) -> Vec<String> {
    let mut images: Vec<String> = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return images;
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for image in containers.filter_map(|c| c.image.as_deref()) {
        if !image.is_empty() && !images.iter().any(|seen| seen == image) {
            images.push(image.to_owned());
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_init_containers_then_containers_each_once() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web", "namespace": "shop" },
            "spec": {
                "initContainers": [
                    { "name": "migrate", "image": "registry.example.com/shop/web:1.2" },
                    { "name": "wait", "image": "busybox:1.36" }
                ],
                "containers": [
                    { "name": "web", "image": "registry.example.com/shop/web:1.2" },
                    { "name": "proxy", "image": "envoyproxy/envoy@sha256:0123" },
                    { "name": "unset" }
                ]
            }
        }))
        .unwrap();
        assert_eq!(
            images(&pod),
            [
                "registry.example.com/shop/web:1.2",
                "busybox:1.36",
                "envoyproxy/envoy@sha256:0123"
            ]
        );
        assert!(images(&Pod::default()).is_empty());
    }
}
