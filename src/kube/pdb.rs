//! PodDisruptionBudgets as an operator needs to see them when a drain waits: which budget
//! holds which pod, and the numbers that explain why ("default/apigate: needs 2 healthy,
//! has 2, 0 disruptions allowed").

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod;
use super::selector::pdb_selects;

/// One PodDisruptionBudget: its spec in words and the disruption controller's latest status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PdbStatus {
    pub namespace: String,
    pub name: String,
    /// `minAvailable: 2` or `maxUnavailable: 25%`, as written in the spec.
    pub budget: String,
    pub desired_healthy: i32,
    pub current_healthy: i32,
    pub disruptions_allowed: i32,
    pub expected_pods: i32,
    /// False while the disruption controller has not caught up with the latest spec: the
    /// numbers may be stale and the API server refuses evictions meanwhile.
    pub observed: bool,
}

impl PdbStatus {
    pub fn of(pdb: &PodDisruptionBudget) -> Self {
        let spec = pdb.spec.as_ref();
        let show = |v: &IntOrString| match v {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => s.clone(),
        };
        let budget = match (
            spec.and_then(|s| s.min_available.as_ref()),
            spec.and_then(|s| s.max_unavailable.as_ref()),
        ) {
            (Some(min), _) => format!("minAvailable: {}", show(min)),
            (None, Some(max)) => format!("maxUnavailable: {}", show(max)),
            (None, None) => "no budget set".to_owned(),
        };
        let status = pdb.status.clone().unwrap_or_default();
        let observed = match (status.observed_generation, pdb.metadata.generation) {
            (Some(seen), Some(generation)) => seen >= generation,
            (None, Some(_)) => false,
            _ => true,
        };
        Self {
            namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
            name: pdb.metadata.name.clone().unwrap_or_default(),
            budget,
            desired_healthy: status.desired_healthy,
            current_healthy: status.current_healthy,
            disruptions_allowed: status.disruptions_allowed,
            expected_pods: status.expected_pods,
            observed,
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for PdbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}: needs {} healthy, has {}, {} disruption{} allowed ({}, {} pod{})",
            self.namespace,
            self.name,
            self.desired_healthy,
            self.current_healthy,
            self.disruptions_allowed,
            if self.disruptions_allowed == 1 {
                ""
            } else {
                "s"
            },
            self.budget,
            self.expected_pods,
            if self.expected_pods == 1 { "" } else { "s" },
        )?;
        if !self.observed {
            f.write_str(", status not yet updated for the latest spec")?;
        }
        Ok(())
    }
}

/// The budgets that cover `pod`, as the eviction API chooses them: same namespace, and a
/// selector that matches the pod's labels. Sorted by name, so messages are stable.
pub fn covering<'a>(
    pdbs: impl IntoIterator<Item = &'a PodDisruptionBudget>,
    pod: &Pod,
) -> Vec<&'a PodDisruptionBudget> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let labels = pod::labels(pod);
    let mut found: Vec<&PodDisruptionBudget> = pdbs
        .into_iter()
        .filter(|pdb| pdb.metadata.namespace.as_deref().unwrap_or_default() == namespace)
        .filter(|pdb| pdb_selects(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()), labels))
        .collect();
    found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    found
}

/// Joins budgets for a message: `a; b`.
pub fn describe(pdbs: &[PdbStatus]) -> String {
    pdbs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `policy` version a cluster serves PodDisruptionBudgets under: `v1` from Kubernetes
/// 1.21, only `v1beta1` before (and both until 1.25).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    #[default]
    V1,
    V1beta1,
}

impl PolicyVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVersion::V1 => "v1",
            PolicyVersion::V1beta1 => "v1beta1",
        }
    }

    /// The preferred version among those the `policy` group serves: v1 when served.
    pub fn choose(groups: &APIGroupList) -> Self {
        let served = |version: &str| {
            groups
                .groups
                .iter()
                .filter(|g| g.name == "policy")
                .flat_map(|g| &g.versions)
                .any(|v| v.version == version)
        };
        if !served("v1") && served("v1beta1") {
            PolicyVersion::V1beta1
        } else {
            PolicyVersion::V1
        }
    }
}

/// A PodDisruptionBudget read through whichever `policy` version the cluster serves. The
/// fields krun reads (selector, minAvailable, maxUnavailable, status) are the same in both, so
/// a policy/v1beta1 budget is read as a policy/v1 one.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedPdb(pub PodDisruptionBudget);

impl std::ops::Deref for ServedPdb {
    type Target = PodDisruptionBudget;
    fn deref(&self) -> &PodDisruptionBudget {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for ServedPdb {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("apiVersion".into(), "policy/v1".into());
        }
        serde_json::from_value(value)
            .map(ServedPdb)
            .map_err(serde::de::Error::custom)
    }
}

impl kube::Resource for ServedPdb {
    type DynamicType = PolicyVersion;
    type Scope = kube::core::DynamicResourceScope;

    fn kind(_: &PolicyVersion) -> Cow<'_, str> {
        "PodDisruptionBudget".into()
    }
    fn group(_: &PolicyVersion) -> Cow<'_, str> {
        "policy".into()
    }
    fn version(version: &PolicyVersion) -> Cow<'_, str> {
        version.as_str().into()
    }
    fn plural(_: &PolicyVersion) -> Cow<'_, str> {
        "poddisruptionbudgets".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn pdb(namespace: &str, name: &str, app: Option<&str>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(2)),
                selector: app.map(|app| LabelSelector {
                    match_labels: Some([("app".to_owned(), app.to_owned())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                current_healthy: 2,
                desired_healthy: 2,
                disruptions_allowed: 0,
                expected_pods: 3,
                observed_generation: Some(1),
                ..Default::default()
            }),
        }
    }

    fn web_pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".to_owned()),
                namespace: Some("default".to_owned()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn reads_like_an_explanation() {
        let status = PdbStatus::of(&pdb("default", "apigate", Some("web")));
        assert_eq!(
            status.to_string(),
            "default/apigate: needs 2 healthy, has 2, 0 disruptions allowed (minAvailable: 2, 3 pods)"
        );
    }

    #[test]
    fn percent_budgets_and_stale_status_are_shown() {
        let mut p = pdb("default", "web", Some("web"));
        let spec = p.spec.as_mut().unwrap();
        spec.min_available = None;
        spec.max_unavailable = Some(IntOrString::String("25%".to_owned()));
        p.metadata.generation = Some(2);
        let text = PdbStatus::of(&p).to_string();
        assert!(text.contains("maxUnavailable: 25%"), "{text}");
        assert!(
            text.ends_with("status not yet updated for the latest spec"),
            "{text}"
        );
    }

    #[test]
    fn policy_v1beta1_budgets_read_as_policy_v1() {
        let text = r#"{"apiVersion":"policy/v1beta1","kind":"PodDisruptionBudget","metadata":{"name":"web","namespace":"shop"},"spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"web"}}},"status":{"currentHealthy":3,"desiredHealthy":2,"disruptionsAllowed":1,"expectedPods":3}}"#;
        let pdb: ServedPdb = serde_json::from_str(text).unwrap();
        assert_eq!(pdb.status.as_ref().unwrap().disruptions_allowed, 1);
        let groups: APIGroupList = serde_json::from_value(serde_json::json!({
            "groups": [{"name": "policy", "versions": [{"groupVersion": "policy/v1beta1", "version": "v1beta1"}]}]
        }))
        .unwrap();
        assert_eq!(PolicyVersion::choose(&groups), PolicyVersion::V1beta1);
    }

    #[test]
    fn covering_budgets_share_the_namespace_and_match_labels() {
        let pdbs = [
            pdb("default", "web", Some("web")),
            pdb("default", "db", Some("db")),
            pdb("other", "web", Some("web")),
            pdb("default", "none", None),
        ];
        let names: Vec<_> = covering(&pdbs, &web_pod())
            .into_iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["web"]);
    }
}
