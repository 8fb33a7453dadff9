//! Reading a cluster snapshot: what `kubectl get … -A -o yaml` prints (a `List`), a
//! multi-document YAML of objects, or the same as JSON.
//!
//! Fields the simulator acts on are checked here, so that a bad file fails at start with the
//! document and field named instead of misbehaving halfway through a drain.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::disruption::IntOrPercent;
use super::error::LoadError;
use super::object::object_key;
use super::resource::{Builtin, Registry, ResId};
use super::selector::LabelSelector;

/// A validated cluster snapshot, ready to be served.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(crate) registry: Registry,
    pub(crate) objects: Vec<(ResId, Value)>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::empty()
    }
}

impl Cluster {
    /// A cluster with only the `default` namespace.
    pub fn empty() -> Cluster {
        let mut cluster = Cluster { registry: Registry::default(), objects: Vec::new() };
        cluster.add_missing_namespaces();
        cluster
    }

    /// Parses and validates a snapshot.
    pub fn load(text: &str) -> Result<Cluster, LoadError> {
        let mut cluster = Cluster { registry: Registry::default(), objects: Vec::new() };
        let mut seen = BTreeSet::new();
        for (document, value) in documents(text)? {
            cluster.add_document(&document, value, &mut seen)?;
        }
        cluster.add_missing_namespaces();
        Ok(cluster)
    }

    /// Number of objects, including namespaces added because objects referred to them.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn add_document(&mut self, document: &str, value: Value, seen: &mut BTreeSet<(ResId, String)>) -> Result<(), LoadError> {
        if value.is_null() {
            return Ok(());
        }
        let is_list = value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
            && value.get("items").is_some();
        if !is_list {
            return self.add_object(document, value, seen);
        }
        let Value::Object(mut list) = value else { unreachable!("checked above") };
        let Some(Value::Array(items)) = list.remove("items") else {
            return Err(LoadError::field(document, "items", "must be a list of objects"));
        };
        for (i, item) in items.into_iter().enumerate() {
            let label = if document == "document 1" { format!("items[{i}]") } else { format!("{document}, items[{i}]") };
            self.add_object(&label, item, seen)?;
        }
        Ok(())
    }

    fn add_object(&mut self, document: &str, mut value: Value, seen: &mut BTreeSet<(ResId, String)>) -> Result<(), LoadError> {
        let Some(object) = value.as_object() else {
            return Err(LoadError::field(document, "(object)", "expected a Kubernetes object (a mapping)"));
        };
        let text = |field: &str| -> Result<String, LoadError> {
            match object.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(LoadError::field(document, field, "must be a non-empty string")),
                None => Err(LoadError::field(document, field, "is missing")),
            }
        };
        let api_version = text("apiVersion")?;
        let kind = text("kind")?;
        let name = match value.pointer("/metadata/name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(LoadError::field(document, "metadata.name", "must be a non-empty string")),
            None => return Err(LoadError::field(document, "metadata.name", "is missing")),
        };
        let namespace = match value.pointer("/metadata/namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err(LoadError::field(document, "metadata.namespace", "must be a non-empty string")),
        };
        let described = match &namespace {
            Some(ns) => format!("{document} ({kind} {ns}/{name})"),
            None => format!("{document} ({kind} {name})"),
        };
        let document = described.as_str();
        let res = match self.registry.by_kind(&api_version, &kind) {
            Some(res) => res,
            None => self.registry.register_other(&api_version, &kind, namespace.is_some()),
        };
        let rt = self.registry.get(res).clone();
        let namespace = match (rt.namespaced, namespace) {
            (true, Some(ns)) => ns,
            (true, None) => {
                super::object::set_meta(&mut value, "namespace", Value::from("default"));
                "default".to_string()
            }
            (false, Some(_)) => {
                return Err(LoadError::field(document, "metadata.namespace", format!("{kind} objects are cluster-scoped")));
            }
            (false, None) => String::new(),
        };
        for map in ["labels", "annotations"] {
            check_string_map(document, &value, map)?;
        }
        validate_kind(document, rt.builtin, &value)?;
        if !seen.insert((res, object_key(&namespace, &name))) {
            return Err(LoadError::Duplicate { document: document.to_string(), kind, name: object_key(&namespace, &name) });
        }
        self.objects.push((res, value));
        Ok(())
    }

    /// Adds namespace objects for namespaces that objects live in but the snapshot lacks, and
    /// `default`, which clients assume exists.
    fn add_missing_namespaces(&mut self) {
        let ns_res = self.registry.builtin(Builtin::Namespace);
        let mut present = BTreeSet::new();
        let mut wanted = BTreeSet::from(["default".to_string()]);
        for (res, value) in &self.objects {
            let namespace = value.pointer("/metadata/namespace").and_then(Value::as_str);
            if *res == ns_res {
                present.insert(value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string());
            } else if let Some(ns) = namespace {
                wanted.insert(ns.to_string());
            }
        }
        for ns in wanted.difference(&present) {
            let namespace = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            self.objects.push((ns_res, namespace));
        }
    }
}

/// Splits the text into documents, each with a name for error messages.
fn documents(text: &str) -> Result<Vec<(String, Value)>, LoadError> {
    if text.trim_start().starts_with('{') {
        let value = serde_json::from_str(text)
            .map_err(|e| LoadError::Syntax { document: "the JSON document".into(), message: e.to_string() })?;
        return Ok(vec![("document 1".into(), value)]);
    }
    let mut documents = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let name = format!("document {}", i + 1);
        let value = Value::deserialize(document).map_err(|e| LoadError::Syntax { document: name.clone(), message: e.to_string() })?;
        documents.push((name, value));
    }
    Ok(documents)
}

fn check_string_map(document: &str, value: &Value, map: &str) -> Result<(), LoadError> {
    match value.pointer(&format!("/metadata/{map}")) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(entries)) => {
            for (key, v) in entries {
                if !v.is_string() {
                    return Err(LoadError::field(document, format!("metadata.{map}.{key}"), "must be a string (quote numbers and booleans)"));
                }
            }
            Ok(())
        }
        Some(_) => Err(LoadError::field(document, format!("metadata.{map}"), "must be a mapping of strings")),
    }
}

fn validate_kind(document: &str, builtin: Builtin, value: &Value) -> Result<(), LoadError> {
    match builtin {
        Builtin::Pod => validate_pod_spec(document, "spec", value.get("spec")),
        Builtin::PodDisruptionBudget => {
            for field in ["minAvailable", "maxUnavailable"] {
                if let Some(v) = value.pointer(&format!("/spec/{field}")).filter(|v| !v.is_null()) {
                    IntOrPercent::parse(v).map_err(|e| LoadError::field(document, format!("spec.{field}"), e))?;
                }
            }
            validate_selector(document, value, false)
        }
        Builtin::Deployment | Builtin::ReplicaSet | Builtin::StatefulSet | Builtin::DaemonSet => {
            if let Some(replicas) = value.pointer("/spec/replicas") {
                if !replicas.as_i64().is_some_and(|r| r >= 0) {
                    return Err(LoadError::field(document, "spec.replicas", "must be a non-negative integer"));
                }
            }
            validate_selector(document, value, true)?;
            validate_pod_spec(document, "spec.template.spec", value.pointer("/spec/template/spec"))
        }
        Builtin::Node => match value.pointer("/status/conditions") {
            None | Some(Value::Array(_)) => Ok(()),
            Some(_) => Err(LoadError::field(document, "status.conditions", "must be a list")),
        },
        _ => Ok(()),
    }
}

fn validate_selector(document: &str, value: &Value, required: bool) -> Result<(), LoadError> {
    match value.pointer("/spec/selector") {
        None if required => Err(LoadError::field(document, "spec.selector", "is missing")),
        None => Ok(()),
        Some(selector) => {
            if !selector.is_object() {
                return Err(LoadError::field(document, "spec.selector", "must be a label selector (matchLabels/matchExpressions)"));
            }
            LabelSelector::from_object(Some(selector)).map(|_| ()).map_err(|e| LoadError::field(document, "spec.selector", e))
        }
    }
}

fn validate_pod_spec(document: &str, path: &str, spec: Option<&Value>) -> Result<(), LoadError> {
    let Some(spec) = spec else {
        return Err(LoadError::field(document, path, "is missing"));
    };
    let Some(containers) = spec.get("containers").and_then(Value::as_array).filter(|c| !c.is_empty()) else {
        return Err(LoadError::field(document, format!("{path}.containers"), "must be a non-empty list"));
    };
    for (i, container) in containers.iter().enumerate() {
        if !container.get("name").is_some_and(Value::is_string) {
            return Err(LoadError::field(document, format!("{path}.containers[{i}].name"), "must be a string"));
        }
    }
    if let Some(node) = spec.get("nodeName") {
        if !node.is_string() {
            return Err(LoadError::field(document, format!("{path}.nodeName"), "must be a string"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  containers:\n  - name: web\n    image: nginx\n";

    #[test]
    fn lists_and_multi_document_yaml_load_the_same_objects() {
        let list = format!("apiVersion: v1\nkind: List\nitems:\n- {}", POD.replace('\n', "\n  ").trim_end());
        let a = Cluster::load(&list).unwrap();
        let b = Cluster::load(&format!("---\n{POD}---\n")).unwrap();
        assert_eq!(a.objects, b.objects);
        // The pod plus the namespaces `shop` and `default`, added because they are missing.
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn unknown_kinds_are_kept() {
        let text = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: tls\n  namespace: shop\nspec:\n  anything: [1, 2]\n";
        let cluster = Cluster::load(text).unwrap();
        let (res, value) = &cluster.objects[0];
        assert_eq!(cluster.registry.get(*res).plural, "certificates");
        assert_eq!(value.pointer("/spec/anything/1"), Some(&serde_json::json!(2)));
    }

    #[test]
    fn errors_name_the_document_and_field() {
        let bad = POD.replace("  - name: web\n", "  - nam: web\n");
        let err = Cluster::load(&format!("{POD}---\n{bad}")).unwrap_err().to_string();
        assert_eq!(err, "document 2 (Pod shop/web): field `spec.containers[0].name`: must be a string");

        let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: p\n  namespace: a\nspec:\n  minAvailable: \"50\"\n";
        let err = Cluster::load(pdb).unwrap_err().to_string();
        assert!(err.starts_with("document 1 (PodDisruptionBudget a/p): field `spec.minAvailable`"), "{err}");

        let err = Cluster::load("kind: List\napiVersion: v1\nitems:\n- kind: Node\n  apiVersion: v1\n  metadata: {}\n").unwrap_err();
        assert_eq!(err.to_string(), "items[0]: field `metadata.name`: is missing");

        let err = Cluster::load("a: [1,\n").unwrap_err().to_string();
        assert!(err.starts_with("not valid YAML in document 1"), "{err}");

        let err = Cluster::load(&format!("{POD}---\n{POD}")).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");

        let labels = POD.replace("  name: web\n", "  name: web\n  labels:\n    replicas: 3\n");
        let err = Cluster::load(&labels).unwrap_err().to_string();
        assert!(err.contains("metadata.labels.replicas"), "{err}");
    }
}
