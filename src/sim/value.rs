//! Reading and editing objects as JSON: the few paths the simulator walks everywhere
//! (`metadata.name`, `status.conditions`), so that no module has to reach into another for
//! them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The string at a path of object keys.
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut current = value;
    for key in path {
        current = current.get(key)?;
    }
    current.as_str()
}

pub(crate) fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The status of the condition of `type` in `status.conditions`.
pub(crate) fn condition_status<'a>(value: &'a Value, kind: &str) -> Option<&'a str> {
    str_at(condition(value, kind)?, &["status"])
}

/// The `status.conditions` entry of type `kind`.
pub(crate) fn condition<'a>(value: &'a Value, kind: &str) -> Option<&'a Value> {
    value
        .at("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Sets `metadata.<key>` to `value`, creating `metadata` if needed.
pub(crate) fn set_meta(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert(key.to_string(), value);
        }
    }
}

/// A mutable object at `path`, creating empty objects on the way.
pub(crate) fn object_at<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut current = value;
    for key in path {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        current = current
            .as_object_mut()
            .expect("just made an object")
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !current.is_object() {
        *current = Value::Object(Map::new());
    }
    current.as_object_mut().expect("just made an object")
}

/// Sets the condition of `kind` in `status.conditions`, keeping its transition time when the
/// status does not change. Returns whether anything changed.
pub(crate) fn set_condition(
    value: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> bool {
    let status_map = object_at(value, &["status"]);
    let conditions = status_map
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let conditions = conditions.as_array_mut().expect("just made an array");
    if let Some(existing) = conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        let same = existing.get("status").and_then(Value::as_str) == Some(status)
            && existing.get("reason").and_then(Value::as_str).unwrap_or("") == reason;
        if same {
            return false;
        }
        let transition = existing.get("status").and_then(Value::as_str) != Some(status);
        let map = existing.as_object_mut().expect("conditions are objects");
        map.insert("status".into(), status.into());
        if reason.is_empty() {
            map.remove("reason");
        } else {
            map.insert("reason".into(), reason.into());
        }
        if message.is_empty() {
            map.remove("message");
        } else {
            map.insert("message".into(), message.into());
        }
        if transition {
            map.insert("lastTransitionTime".into(), now.into());
        }
        return true;
    }
    let mut condition = Map::new();
    condition.insert("type".into(), kind.into());
    condition.insert("status".into(), status.into());
    condition.insert("lastTransitionTime".into(), now.into());
    if !reason.is_empty() {
        condition.insert("reason".into(), reason.into());
    }
    if !message.is_empty() {
        condition.insert("message".into(), message.into());
    }
    conditions.push(Value::Object(condition));
    true
}

/// An integer at a JSON pointer, or `default`.
pub(crate) fn int_at(value: &Value, pointer: &str, default: i64) -> i64 {
    value.at(pointer).and_then(Value::as_i64).unwrap_or(default)
}

/// [`Value::pointer`] without its allocations: it copies every token to undo `~` escapes,
/// while the simulator's paths are literal keys, walked for every object at load and on
/// every request.
pub(crate) trait At {
    fn at(&self, pointer: &str) -> Option<&Value>;
}

impl At for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() || pointer.contains('~') {
            return self.pointer(pointer);
        }
        let mut current = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            current = match current {
                Value::Object(map) => map.get(token)?,
                Value::Array(items) => items.get(array_index(token)?)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

/// An array index as RFC 6901 writes it: digits, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn at_finds_what_json_pointer_finds() {
        let value = json!({
            "spec": {"containers": [{"image": "a"}, {"image": "b"}], "": {"x": 1}},
            "metadata": {"annotations": {"a/b": "slash", "m~n": "tilde"}},
            "10": "ten",
        });
        for pointer in [
            "",
            "/",
            "/spec",
            "/spec/containers/1/image",
            "/spec/containers/01/image",
            "/spec/containers/+1/image",
            "/spec/containers/2",
            "/spec/containers/x",
            "/spec//x",
            "/metadata/annotations/a~1b",
            "/metadata/annotations/m~0n",
            "/10",
            "/missing/deeper",
            "spec",
        ] {
            assert_eq!(value.at(pointer), value.pointer(pointer), "{pointer:?}");
        }
        assert_eq!(value.at("/spec/containers/1/image"), Some(&json!("b")));
    }

    #[test]
    fn conditions_keep_their_transition_time_when_unchanged() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]}});
        assert!(!set_condition(&mut pod, "Ready", "True", "", "", "t1"));
        assert!(set_condition(
            &mut pod,
            "Ready",
            "False",
            "NodeNotReady",
            "",
            "t2"
        ));
        assert_eq!(
            pod.pointer("/status/conditions/0/lastTransitionTime"),
            Some(&json!("t2"))
        );
        assert!(set_condition(
            &mut pod,
            "PodScheduled",
            "True",
            "",
            "",
            "t3"
        ));
        assert_eq!(condition_status(&pod, "PodScheduled"), Some("True"));
    }
}
