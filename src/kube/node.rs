//! Nodes: what a node reports about itself, cordoning, and waiting until it is Ready.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;

use super::Kube;
use super::error::{KubeError, KubeResult, NotReady};
use super::watch::Mirror;

/// What `node_info` reports: versions, OS, state and the address ssh uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub kubelet_version: String,
    pub kube_proxy_version: String,
    /// `containerd`, `cri-o`, `docker`: the part of `containerRuntimeVersion` before `://`.
    pub container_runtime: String,
    pub container_runtime_version: String,
    pub os_image: String,
    pub kernel_version: String,
    pub operating_system: String,
    pub architecture: String,
    pub ready: bool,
    pub conditions: Vec<Condition>,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    pub internal_ip: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

impl NodeInfo {
    pub fn of(node: &Node) -> Self {
        let status = node.status.clone().unwrap_or_default();
        let info = status.node_info.unwrap_or_default();
        let (container_runtime, container_runtime_version) =
            match info.container_runtime_version.split_once("://") {
                Some((runtime, version)) => (runtime.to_owned(), version.to_owned()),
                None => (String::new(), info.container_runtime_version.clone()),
            };
        let conditions: Vec<Condition> = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| Condition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
            })
            .collect();
        let address = |kind: &str| {
            status
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == kind)
                .map(|a| a.address.clone())
        };
        let spec = node.spec.clone().unwrap_or_default();
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            kubelet_version: info.kubelet_version,
            kube_proxy_version: info.kube_proxy_version,
            container_runtime,
            container_runtime_version,
            os_image: info.os_image,
            kernel_version: info.kernel_version,
            operating_system: info.operating_system,
            architecture: info.architecture,
            ready: conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            conditions,
            unschedulable: spec.unschedulable.unwrap_or(false),
            taints: spec
                .taints
                .unwrap_or_default()
                .into_iter()
                .map(|t| Taint {
                    key: t.key,
                    value: t.value,
                    effect: t.effect,
                })
                .collect(),
            internal_ip: address("InternalIP"),
            hostname: address("Hostname"),
        }
    }

    /// `Ready=False (KubeletNotReady: container runtime is down), kubelet v1.21.14`.
    pub fn readiness(&self) -> String {
        let ready = self.conditions.iter().find(|c| c.type_ == "Ready");
        let mut text = match ready {
            Some(c) => {
                let mut text = format!("Ready={}", c.status);
                match (&c.reason, &c.message) {
                    (Some(reason), Some(message)) if !message.is_empty() => {
                        text.push_str(&format!(" ({reason}: {message})"));
                    }
                    (Some(reason), _) => text.push_str(&format!(" ({reason})")),
                    _ => {}
                }
                text
            }
            None => "no Ready condition".to_owned(),
        };
        text.push_str(&format!(", kubelet {}", self.kubelet_version));
        text
    }
}

/// Whether a reported kubelet version is the wanted one. `1.21.14` and `v1.21.14` are the
/// same; a shorter wanted version matches on whole components (`1.21` matches `v1.21.14`,
/// not `v1.210.0`).
pub fn kubelet_matches(reported: &str, wanted: &str) -> bool {
    let reported = reported.trim().trim_start_matches('v');
    let wanted = wanted.trim().trim_start_matches('v');
    !wanted.is_empty()
        && (reported == wanted
            || reported.strip_prefix(wanted).is_some_and(|rest| {
                rest.starts_with('.') || rest.starts_with('+') || rest.starts_with('-')
            }))
}

/// What `/version` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerVersion {
    pub git_version: String,
    pub major: String,
    pub minor: String,
    pub platform: String,
}

impl Kube {
    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    pub async fn server_version(&self) -> KubeResult<ServerVersion> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| KubeError::api("GET /version", e))?;
        Ok(ServerVersion {
            git_version: info.git_version,
            major: info.major,
            minor: info.minor,
            platform: info.platform,
        })
    }

    /// The node object; a missing node is [`KubeError::NodeNotFound`].
    pub async fn node(&self, node: &str) -> KubeResult<Node> {
        match self.nodes().get(node).await {
            Ok(n) => Ok(n),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(KubeError::NodeNotFound {
                node: node.to_owned(),
            }),
            Err(e) => Err(KubeError::api(format!("GET node {node}"), e)),
        }
    }

    pub async fn node_info(&self, node: &str) -> KubeResult<NodeInfo> {
        Ok(NodeInfo::of(&self.node(node).await?))
    }

    /// Every node's info, sorted by name.
    pub async fn node_infos(&self) -> KubeResult<Vec<NodeInfo>> {
        let list = self
            .nodes()
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| KubeError::api("GET nodes", e))?;
        let mut infos: Vec<NodeInfo> = list.items.iter().map(NodeInfo::of).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    /// Marks the node unschedulable; false when it already was (nothing written).
    pub async fn cordon(&self, node: &str) -> KubeResult<bool> {
        self.set_unschedulable(node, true).await
    }

    /// Marks the node schedulable again; false when it already was (nothing written).
    pub async fn uncordon(&self, node: &str) -> KubeResult<bool> {
        self.set_unschedulable(node, false).await
    }

    /// Cordon or uncordon. A write answered "try again" (or not answered) is tried again after
    /// a pause, reading the node first: whether the lost write took effect or not, the node
    /// ends as asked, and the result says whether this call changed it.
    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> KubeResult<bool> {
        let mut pause = Duration::from_millis(200);
        let mut sent_before = false;
        for attempt in 1.. {
            match self.write_unschedulable(node, unschedulable).await {
                Ok(changed) => return Ok(changed || sent_before),
                Err((error, sent)) if attempt < 5 && error.transient() => {
                    tracing::debug!("{error}; reading {node} again in {} ms", pause.as_millis());
                    sent_before |= sent;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err((error, _)) => return Err(error),
            }
        }
        unreachable!("the loop returns")
    }

    /// One read and, when the node is not as asked, one write; the error says whether the
    /// write was sent.
    async fn write_unschedulable(
        &self,
        node: &str,
        unschedulable: bool,
    ) -> Result<bool, (KubeError, bool)> {
        let current = self.node(node).await.map_err(|e| (e, false))?;
        let is = current
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if is == unschedulable {
            return Ok(false);
        }
        // The same strategic-merge patch kubectl sends: uncordon removes the field.
        let value = if unschedulable {
            serde_json::Value::Bool(true)
        } else {
            serde_json::Value::Null
        };
        let patch = serde_json::json!({ "spec": { "unschedulable": value } });
        let verb = if unschedulable { "cordon" } else { "uncordon" };
        self.nodes()
            .patch(node, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|e| {
                (
                    KubeError::api(format!("PATCH node {node} ({verb})"), e),
                    true,
                )
            })?;
        Ok(true)
    }

    /// Waits, by watching the node, until it is Ready and (if given) reports the wanted
    /// kubelet version. Survives watch restarts; gives up after `timeout`.
    pub async fn wait_ready(
        &self,
        node: &str,
        timeout: Duration,
        kubelet_version: Option<&str>,
    ) -> KubeResult<NodeInfo> {
        let deadline = Instant::now() + timeout;
        let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let mirror = Mirror::start(self.nodes(), config, format!("node {node}"));
        let wanted = |info: &NodeInfo| {
            info.ready && kubelet_version.is_none_or(|v| kubelet_matches(&info.kubelet_version, v))
        };
        let result = mirror
            .wait_until(Some(deadline), |store| {
                store
                    .state()
                    .first()
                    .is_some_and(|n| wanted(&NodeInfo::of(n)))
            })
            .await;
        let last = mirror.all().into_iter().next().map(|n| NodeInfo::of(&n));
        match (result, last) {
            (Ok(()), Some(info)) => Ok(info),
            // Deleted right after it was seen Ready.
            (Ok(()), None) => Err(KubeError::NodeNotFound {
                node: node.to_owned(),
            }),
            (Err(super::watch::WaitError::Watch(message)), _) => Err(KubeError::Watch {
                what: format!("node {node}"),
                message,
            }),
            (Err(super::watch::WaitError::TimedOut { last_error }), last) => {
                let mut last_seen = match last {
                    Some(info) => info.readiness(),
                    None => "the node does not exist".to_owned(),
                };
                if let Some(error) = last_error {
                    last_seen.push_str(&format!("; the watch last failed with: {error}"));
                }
                Err(KubeError::NotReady(Box::new(NotReady {
                    node: node.to_owned(),
                    waited: timeout,
                    wanted_kubelet: kubelet_version.map(str::to_owned),
                    last_seen,
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_versions_match_on_whole_components() {
        assert!(kubelet_matches("v1.21.14", "1.21.14"));
        assert!(kubelet_matches("v1.21.14", "v1.21.14"));
        assert!(kubelet_matches("v1.21.14", "1.21"));
        assert!(kubelet_matches("v1.28.2+k3s1", "1.28.2"));
        assert!(!kubelet_matches("v1.210.0", "1.21"));
        assert!(!kubelet_matches("v1.21.14", "1.21.1"));
        assert!(!kubelet_matches("v1.21.14", ""));
    }

    #[test]
    fn node_info_reads_versions_runtime_and_address() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
            "status": {
                "nodeInfo": {
                    "kubeletVersion": "v1.21.14", "kubeProxyVersion": "v1.21.14",
                    "containerRuntimeVersion": "containerd://1.6.20", "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0", "operatingSystem": "linux", "architecture": "arm64",
                    "bootID": "", "machineID": "", "systemUUID": ""
                },
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.11"}],
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy"}]
            }
        }))
        .unwrap();
        let info = NodeInfo::of(&node);
        assert_eq!(info.container_runtime, "containerd");
        assert_eq!(info.container_runtime_version, "1.6.20");
        assert_eq!(info.internal_ip.as_deref(), Some("10.0.0.11"));
        assert_eq!(info.architecture, "arm64");
        assert!(info.unschedulable);
        assert!(!info.ready);
        assert_eq!(info.taints.len(), 1);
        assert_eq!(
            info.readiness(),
            "Ready=False (KubeletNotReady: PLEG is not healthy), kubelet v1.21.14"
        );
    }
}

/// A control-plane node as the cluster lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlPlane {
    pub name: String,
    /// Its InternalIP, when it has one.
    pub address: Option<String>,
}

/// The cluster's control-plane nodes (label `node-role.kubernetes.io/control-plane` or
/// `…/master`), by name.
pub fn control_planes(nodes: &[Node]) -> Vec<ControlPlane> {
    let mut found: Vec<ControlPlane> = nodes
        .iter()
        .filter(|n| {
            n.metadata.labels.as_ref().is_some_and(|l| {
                l.contains_key("node-role.kubernetes.io/control-plane")
                    || l.contains_key("node-role.kubernetes.io/master")
            })
        })
        .map(|n| ControlPlane {
            name: n.metadata.name.clone().unwrap_or_default(),
            address: n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone()),
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}
