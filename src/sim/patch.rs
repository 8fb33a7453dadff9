//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and the strategic merge
//! patch kubectl sends (`cordon`, `label`, `annotate`, `edit`), which merges known lists by a
//! key instead of replacing them.

use serde_json::{Map, Value};

/// The patch types the apiserver accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    /// Server-side apply; approximated by a merge patch (no field ownership is tracked).
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Why a patch could not be applied; becomes a 400 or 422 `Status`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatchError {
    #[error("the patch is not valid JSON: {0}")]
    Decode(String),
    #[error("{0}")]
    Apply(String),
}

/// Applies `body` to `target` in place.
pub(crate) fn apply(
    target: &mut Value,
    patch_type: PatchType,
    body: &[u8],
) -> Result<(), PatchError> {
    match patch_type {
        PatchType::Json => {
            let patch: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| PatchError::Decode(e.to_string()))?;
            json_patch::patch(target, &patch).map_err(|e| PatchError::Apply(e.to_string()))
        }
        PatchType::Merge => {
            let patch: Value =
                serde_json::from_slice(body).map_err(|e| PatchError::Decode(e.to_string()))?;
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchType::Apply => {
            let patch: Value = match serde_json::from_slice(body) {
                Ok(patch) => patch,
                Err(_) => serde_yaml_ng::from_slice(body)
                    .map_err(|e| PatchError::Decode(e.to_string()))?,
            };
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchType::StrategicMerge => {
            let patch: Value =
                serde_json::from_slice(body).map_err(|e| PatchError::Decode(e.to_string()))?;
            let Value::Object(patch) = patch else {
                return Err(PatchError::Apply(
                    "a strategic merge patch must be a JSON object".into(),
                ));
            };
            strategic_merge(target, &patch);
            Ok(())
        }
    }
}

/// The merge key of a list field whose patch strategy is `merge` (from the API types' struct
/// tags). Lists not named here are replaced wholesale.
pub(crate) fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "hostAliases" | "podIPs" | "hostIPs" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Primitive lists that merge as sets.
fn merges_as_set(field: &str) -> bool {
    field == "finalizers"
}

fn strategic_merge(target: &mut Value, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("just made an object");
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        map.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(existing)), Some(remove)) =
                (map.get_mut(field), value.as_array())
            {
                existing.retain(|v| !remove.contains(v));
            }
            continue;
        }
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(child) => {
                if child.get("$patch").and_then(Value::as_str) == Some("delete") {
                    map.remove(key);
                    continue;
                }
                let entry = map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(entry, child);
            }
            Value::Array(items) => {
                let entry = map.entry(key.clone()).or_insert(Value::Null);
                merge_list(entry, key, items);
            }
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
}

fn merge_list(target: &mut Value, field: &str, items: &[Value]) {
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace {
        let rest = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        *target = Value::Array(rest);
        return;
    }
    if merges_as_set(field) {
        let mut merged = target.as_array().cloned().unwrap_or_default();
        for item in items {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        *target = Value::Array(merged);
        return;
    }
    let Some(key) = merge_key(field) else {
        *target = Value::Array(items.to_vec());
        return;
    };
    let mut merged = target.as_array().cloned().unwrap_or_default();
    for item in items {
        let Some(item_map) = item.as_object() else {
            merged.push(item.clone());
            continue;
        };
        let id = item_map.get(key);
        let position = id.and_then(|id| merged.iter().position(|m| m.get(key) == Some(id)));
        let delete = item_map.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                merged.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut merged[i], item_map),
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, item_map);
                merged.push(fresh);
            }
        }
    }
    *target = Value::Array(merged);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(mut target: Value, patch: Value) -> Value {
        apply(
            &mut target,
            PatchType::StrategicMerge,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        target
    }

    #[test]
    fn cordon_and_uncordon_patches() {
        let node = json!({"spec": {"podCIDR": "10.0.0.0/24"}});
        let cordoned = smp(node, json!({"spec": {"unschedulable": true}}));
        assert_eq!(
            cordoned,
            json!({"spec": {"podCIDR": "10.0.0.0/24", "unschedulable": true}})
        );
        let uncordoned = smp(cordoned, json!({"spec": {"unschedulable": null}}));
        assert_eq!(uncordoned, json!({"spec": {"podCIDR": "10.0.0.0/24"}}));
    }

    #[test]
    fn lists_with_merge_keys_merge_by_key() {
        let node = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "MemoryPressure", "status": "False"}
        ]}});
        let patched = smp(
            node,
            json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}}),
        );
        assert_eq!(
            patched,
            json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "KubeletNotReady"},
                {"type": "MemoryPressure", "status": "False"}
            ]}})
        );
        let deleted = smp(
            patched,
            json!({"status": {"conditions": [{"type": "MemoryPressure", "$patch": "delete"}]}}),
        );
        assert_eq!(
            deleted
                .pointer("/status/conditions")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn lists_without_merge_keys_are_replaced_and_finalizers_are_sets() {
        let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}, "metadata": {"finalizers": ["x"]}});
        let patched = smp(
            node,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}, "metadata": {"finalizers": ["y", "x"]}}),
        );
        assert_eq!(
            patched,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}, "metadata": {"finalizers": ["x", "y"]}})
        );
        let removed = smp(
            patched,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        );
        assert_eq!(removed.pointer("/metadata/finalizers"), Some(&json!(["y"])));
    }

    #[test]
    fn replace_directive_and_retain_keys() {
        let obj = json!({"spec": {"a": 1, "b": 2}});
        assert_eq!(
            smp(obj.clone(), json!({"spec": {"$patch": "replace", "c": 3}})),
            json!({"spec": {"c": 3}})
        );
        assert_eq!(
            smp(obj, json!({"spec": {"$retainKeys": ["b"], "b": 5}})),
            json!({"spec": {"b": 5}})
        );
    }

    #[test]
    fn json_and_merge_patches() {
        let mut obj = json!({"spec": {"unschedulable": false}, "metadata": {"labels": {"a": "1"}}});
        apply(
            &mut obj,
            PatchType::Json,
            br#"[{"op": "replace", "path": "/spec/unschedulable", "value": true}]"#,
        )
        .unwrap();
        apply(
            &mut obj,
            PatchType::Merge,
            br#"{"metadata": {"labels": {"a": null, "b": "2"}}}"#,
        )
        .unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"unschedulable": true}, "metadata": {"labels": {"b": "2"}}})
        );
        let err = apply(
            &mut obj,
            PatchType::Json,
            br#"[{"op": "test", "path": "/spec/unschedulable", "value": false}]"#,
        );
        assert!(matches!(err, Err(PatchError::Apply(_))));
        assert!(matches!(
            apply(&mut obj, PatchType::Merge, b"{"),
            Err(PatchError::Decode(_))
        ));
    }
}
