//! Discovery documents (`/version`, `/api`, `/apis`, group/version resource lists) in the
//! unaggregated form every kubectl since 1.0 understands; clients that prefer aggregated
//! discovery fall back to it when the response is plain JSON.

use serde_json::{Value, json};

use super::resource::{Builtin, Registry, ResourceType};
use super::version::Version;

const WRITE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const READ_VERBS: &[&str] = &["get", "list", "watch"];

pub(crate) fn version(git_version: &str) -> Value {
    let numbers: Vec<&str> = git_version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .collect();
    json!({
        "major": numbers.first().copied().unwrap_or("1"),
        "minor": numbers.get(1).copied().unwrap_or("0"),
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions.clone(), "preferredVersion": versions[0]})
}

pub(crate) fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(name, versions)| group(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn api_group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = registry.groups();
    let (_, versions) = groups.iter().find(|(g, _)| g == name)?;
    let mut document = group(name, versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Some(document)
}

fn main_resource(rt: &ResourceType) -> Value {
    let verbs = if rt.builtin == Builtin::AccessReview {
        &["create"]
    } else if rt.writable() {
        WRITE_VERBS
    } else {
        READ_VERBS
    };
    let mut resource = json!({
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": verbs,
    });
    if !rt.short_names.is_empty() {
        resource["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        resource["categories"] = json!(rt.categories);
    }
    resource
}

/// The resource list of one group/version, or `None` if nothing is served there.
pub(crate) fn resource_list(
    registry: &Registry,
    group: &str,
    version: &str,
    cluster: &Version,
) -> Option<Value> {
    let mut resources = Vec::new();
    for (_, rt) in registry
        .iter()
        .filter(|(_, t)| t.group == group && t.serves(version))
    {
        resources.push(main_resource(rt));
        if rt.has_status() {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if rt.has_scale() {
            resources.push(json!({
                "name": format!("{}/scale", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if rt.builtin == Builtin::Pod {
            resources.push(json!({
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": true,
                "group": "policy",
                "version": cluster.eviction_version(),
                "kind": "Eviction",
                "verbs": ["create"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_advertises_policy_v1_evictions() {
        let registry = Registry::default();
        let list = resource_list(&registry, "", "v1", &Version::newest()).unwrap();
        let eviction = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(
            (
                eviction["group"].as_str(),
                eviction["version"].as_str(),
                eviction["kind"].as_str()
            ),
            (Some("policy"), Some("v1"), Some("Eviction"))
        );
        assert!(resource_list(&registry, "apps", "v2", &Version::newest()).is_none());
        let groups = groups(&registry);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "coordination.k8s.io")
        );
        assert_eq!(version("v1.28.9")["minor"], "28");
    }

    #[test]
    fn a_1_20_cluster_serves_budgets_and_evictions_as_policy_v1beta1() {
        let mut registry = Registry::default();
        let old = Version::of("v1.20.15").unwrap();
        registry.adapt_to(&old);
        let core = resource_list(&registry, "", "v1", &old).unwrap();
        let eviction = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(eviction["version"], "v1beta1");
        assert!(resource_list(&registry, "policy", "v1", &old).is_none());
        let policy = resource_list(&registry, "policy", "v1beta1", &old).unwrap();
        assert_eq!(policy["resources"][0]["name"], "poddisruptionbudgets");
        let groups = groups(&registry);
        let batch = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "batch")
            .unwrap();
        assert_eq!(batch["preferredVersion"]["version"], "v1");
        assert_eq!(batch["versions"].as_array().unwrap().len(), 2);
    }
}
