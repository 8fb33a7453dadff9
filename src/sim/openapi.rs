//! `/openapi/v2`, as much of it as kubectl reads before it writes: the path of every writable
//! resource with its `patch` operation, tagged with the kind's group/version/kind
//! (`x-kubernetes-group-version-kind`) and listing the query parameters the simulator honours
//! (`dryRun`, `fieldManager`, `fieldValidation`, `force`). kubectl's dry-run and
//! field-validation verifiers (`k8s.io/cli-runtime/pkg/resource/query_param_verifier.go`) look
//! for exactly that, and its schema validation skips kinds the document has no schema for.
//! Schemas themselves (what `kubectl explain` prints) are not served.
//!
//! kubectl asks for the protobuf form (gnostic's `openapi_v2.Document`, field numbers from
//! `openapiv2/OpenAPIv2.proto`); other clients get the same document as JSON.

use prost::encoding::{WireType, encode_key, encode_varint};
use serde_json::{Value, json};

use super::resource::{Registry, ResourceType};

/// The media type kubectl asks `/openapi/v2` for.
pub(crate) const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

const PARAMETERS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];

/// The path of one object of `rt` in every served version.
fn paths(rt: &ResourceType) -> Vec<(String, String)> {
    rt.served_versions
        .iter()
        .map(|version| {
            let prefix = if rt.group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{}/{version}", rt.group)
            };
            let path = if rt.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
            } else {
                format!("{prefix}/{}/{{name}}", rt.plural)
            };
            (path, version.clone())
        })
        .collect()
}

fn gvk_yaml(rt: &ResourceType, version: &str) -> String {
    format!(
        "group: \"{}\"\nkind: {}\nversion: {version}\n",
        rt.group, rt.kind
    )
}

/// The document as JSON.
pub(crate) fn v2_json(registry: &Registry, version: &str) -> Value {
    let mut paths_json = serde_json::Map::new();
    for (_, rt) in registry.iter().filter(|(_, t)| t.writable()) {
        for (path, served) in paths(rt) {
            let parameters: Vec<Value> = PARAMETERS
                .iter()
                .map(|p| json!({"name": p, "in": "query", "type": "string", "uniqueItems": true}))
                .collect();
            paths_json.insert(
                path,
                json!({"patch": {
                    "parameters": parameters,
                    "x-kubernetes-group-version-kind": {"group": rt.group, "kind": rt.kind, "version": served},
                }}),
            );
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths_json,
        "definitions": {},
    })
}

/// The document as gnostic's protobuf.
pub(crate) fn v2_protobuf(registry: &Registry, version: &str) -> Vec<u8> {
    let mut document = Vec::new();
    string(1, "2.0", &mut document);
    let mut info = Vec::new();
    string(1, "Kubernetes", &mut info);
    string(2, version, &mut info);
    message(2, &info, &mut document);
    let mut paths_message = Vec::new();
    for (_, rt) in registry.iter().filter(|(_, t)| t.writable()) {
        for (path, served) in paths(rt) {
            let mut operation = Vec::new();
            for name in PARAMETERS {
                let mut query = Vec::new();
                string(2, "query", &mut query);
                string(4, name, &mut query);
                string(6, "string", &mut query);
                let mut non_body = Vec::new();
                message(3, &query, &mut non_body);
                let mut parameter = Vec::new();
                message(2, &non_body, &mut parameter);
                let mut item = Vec::new();
                message(1, &parameter, &mut item);
                message(8, &item, &mut operation);
            }
            let mut any = Vec::new();
            string(2, &gvk_yaml(rt, &served), &mut any);
            let mut extension = Vec::new();
            string(1, "x-kubernetes-group-version-kind", &mut extension);
            message(2, &any, &mut extension);
            message(13, &extension, &mut operation);
            let mut item = Vec::new();
            message(8, &operation, &mut item);
            let mut named = Vec::new();
            string(1, &path, &mut named);
            message(2, &item, &mut named);
            message(2, &named, &mut paths_message);
        }
    }
    message(8, &paths_message, &mut document);
    document
}

fn message(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn string(tag: u32, text: &str, out: &mut Vec<u8>) {
    message(tag, text.as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_patchable_with_dry_run_and_field_validation() {
        let registry = Registry::default();
        let doc = v2_json(&registry, "v1.33.0");
        let pods = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(pods["x-kubernetes-group-version-kind"]["kind"], "Pod");
        let names: Vec<&str> = pods["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"dryRun") && names.contains(&"fieldValidation"));
        let bytes = v2_protobuf(&registry, "v1.33.0");
        assert_eq!(&bytes[..5], b"\x0a\x032.0");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("/api/v1/namespaces/{namespace}/pods/{name}"));
        assert!(text.contains("kind: Pod"));
    }
}
