//! Server-side apply (`PATCH` with `application/apply-patch+yaml`), as
//! `k8s.io/apimachinery/pkg/util/managedfields` does it: each field manager owns the fields it
//! applied (`metadata.managedFields`), applying a field another manager owns with a different
//! value is a conflict (409) unless forced, a field the manager applied before and leaves out
//! now is removed, and an apply to a missing object creates it. Plain writes (`PUT`, other
//! patches) make their manager the owner of the fields they change.
//!
//! Field paths follow `sigs.k8s.io/structured-merge-diff`: `f:<name>` for a field, `k:{…}` for
//! an item of a list merged by key (containers by `name`, …), `v:<value>` for an item of a
//! set (finalizers); any other list is atomic and owned whole.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::patch::merge_key;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Field(String),
    /// An item of a keyed list: its key fields, as JSON.
    Key(String),
    /// An item of a set, as JSON.
    Member(String),
}

type Path = Vec<Step>;

/// Fields nobody owns: identity and what the server sets.
fn unowned(path: &[Step]) -> bool {
    match path {
        [Step::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind" | "status"),
        [Step::Field(m), Step::Field(f), ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// The leaf paths of `value`, with the value at each.
fn leaves(value: &Value) -> BTreeMap<Path, Value> {
    let mut out = BTreeMap::new();
    walk(value, &mut Vec::new(), None, &mut out);
    out.retain(|path, _| !unowned(path));
    out
}

fn walk(value: &Value, path: &mut Path, field: Option<&str>, out: &mut BTreeMap<Path, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(Step::Field(k.clone()));
                walk(v, path, Some(k), out);
                path.pop();
            }
        }
        Value::Array(items) if field.and_then(merge_key).is_some() && !items.is_empty() => {
            let key = field.and_then(merge_key).expect("checked");
            for item in items {
                let Some(id) = item.get(key) else {
                    out.insert(path.clone(), value.clone());
                    return;
                };
                path.push(Step::Key(json!({ key: id }).to_string()));
                out.insert(
                    [path.clone(), vec![Step::Field(".".into())]].concat(),
                    Value::Bool(true),
                );
                walk(item, path, None, out);
                path.pop();
            }
        }
        Value::Array(items) if field == Some("finalizers") && !items.is_empty() => {
            for item in items {
                path.push(Step::Member(item.to_string()));
                out.insert(path.clone(), item.clone());
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone(), value.clone());
        }
    }
}

/// The value at `path` in `value`.
fn at<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut current = value;
    for (i, step) in path.iter().enumerate() {
        current = match step {
            Step::Field(f) if f == "." => return Some(current),
            Step::Field(f) => current.get(f)?,
            Step::Key(key) => {
                let key: Map<String, Value> = serde_json::from_str(key).ok()?;
                current
                    .as_array()?
                    .iter()
                    .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))?
            }
            Step::Member(member) => {
                let member: Value = serde_json::from_str(member).ok()?;
                let found = current.as_array()?.iter().find(|v| **v == member)?;
                if i + 1 == path.len() {
                    return Some(found);
                }
                found
            }
        };
    }
    Some(current)
}

/// Removes what `path` names from `value`.
fn remove(value: &mut Value, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    // An item's "." stands for the item itself.
    if *last == Step::Field(".".into()) {
        remove(value, parent);
        return;
    }
    let mut current = value;
    for step in parent {
        let next = match step {
            Step::Field(f) => current.get_mut(f),
            Step::Key(key) => {
                let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
                current.as_array_mut().and_then(|items| {
                    items
                        .iter_mut()
                        .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
                })
            }
            Step::Member(_) => None,
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(map) = current.as_object_mut() {
                map.remove(f);
            }
        }
        Step::Key(key) => {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            if let Some(items) = current.as_array_mut() {
                items.retain(|item| !key.iter().all(|(k, v)| item.get(k) == Some(v)));
            }
        }
        Step::Member(member) => {
            let member: Value = serde_json::from_str(member).unwrap_or(Value::Null);
            if let Some(items) = current.as_array_mut() {
                items.retain(|v| *v != member);
            }
        }
    }
}

/// Merges an applied configuration into an object: maps field by field, keyed lists item by
/// item, sets by member, anything else replaced.
fn merge(target: &mut Value, applied: &Value, field: Option<&str>) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                match t.get_mut(k) {
                    Some(existing) => merge(existing, v, Some(k)),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(a)) if field.and_then(merge_key).is_some() => {
            let key = field.and_then(merge_key).expect("checked");
            for item in a {
                match t
                    .iter_mut()
                    .find(|existing| item.get(key).is_some() && existing.get(key) == item.get(key))
                {
                    Some(existing) => merge(existing, item, None),
                    None => t.push(item.clone()),
                }
            }
        }
        (Value::Array(t), Value::Array(a)) if field == Some("finalizers") => {
            for item in a {
                if !t.contains(item) {
                    t.push(item.clone());
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// A path as conflicts print it: `.spec.replicas`, `.spec.containers[name="web"].image`.
fn show(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(f) if f == "." => {}
            Step::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Step::Key(key) => {
                let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
                let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Member(member) => out.push_str(&format!("[={member}]")),
        }
    }
    out
}

/// `fieldsV1`: the paths as nested objects (`{"f:spec":{"f:replicas":{}}}`).
fn fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for step in path {
            let name = match step {
                Step::Field(f) if f == "." => ".".to_string(),
                Step::Field(f) => format!("f:{f}"),
                Step::Key(key) => format!("k:{key}"),
                Step::Member(member) => format!("v:{member}"),
            };
            node = node
                .entry(name)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("field sets are objects");
        }
    }
    Value::Object(root)
}

/// Reads `fieldsV1` back into paths.
fn paths_of(fields: &Value) -> BTreeSet<Path> {
    fn go(node: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(map) = node.as_object() else {
            return;
        };
        if map.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (name, child) in map {
            let step = if name == "." {
                Step::Field(".".into())
            } else if let Some(f) = name.strip_prefix("f:") {
                Step::Field(f.into())
            } else if let Some(k) = name.strip_prefix("k:") {
                Step::Key(k.into())
            } else if let Some(v) = name.strip_prefix("v:") {
                Step::Member(v.into())
            } else {
                continue;
            };
            path.push(step);
            go(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    go(fields, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Owner {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    paths: BTreeSet<Path>,
}

fn owners(object: &Value) -> Vec<Owner> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let text = |f: &str| {
                        e.get(f)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    Owner {
                        manager: text("manager"),
                        operation: text("operation"),
                        api_version: text("apiVersion"),
                        time: text("time"),
                        subresource: text("subresource"),
                        paths: e.get("fieldsV1").map(paths_of).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_owners(object: &mut Value, owners: &[Owner]) {
    let entries: Vec<Value> = owners
        .iter()
        .filter(|o| !o.paths.is_empty())
        .map(|o| {
            let mut entry = json!({
                "manager": o.manager,
                "operation": o.operation,
                "apiVersion": o.api_version,
                "time": o.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&o.paths),
            });
            if !o.subresource.is_empty() {
                entry["subresource"] = json!(o.subresource);
            }
            entry
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// Who is applying, and how.
pub(crate) struct Manager {
    pub name: String,
    pub api_version: String,
    pub force: bool,
    pub now: String,
}

/// A failed apply: the `Status` it answers.
#[derive(Debug)]
pub(crate) struct Conflicts {
    pub message: String,
    pub causes: Vec<Value>,
}

/// Applies `applied` (a manager's whole intent for the object) to `current` (`None`: the object
/// does not exist yet), returning the new object with its `managedFields`.
pub(crate) fn apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &Manager,
) -> Result<Value, Conflicts> {
    let mut object = current.cloned().unwrap_or_else(|| json!({}));
    let mut owners = owners(&object);
    let applied_leaves = leaves(applied);
    let applied_paths: BTreeSet<Path> = applied_leaves.keys().cloned().collect();

    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for owner in owners.iter().filter(|o| o.manager != manager.name) {
        for path in owner.paths.intersection(&applied_paths) {
            // An item's "." is shared as long as the item exists.
            let item = path.last() == Some(&Step::Field(".".into()));
            let differs = !item && at(&object, path) != applied_leaves.get(path);
            if differs {
                conflicts.push((describe(owner), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !manager.force {
        return Err(conflict_error(&conflicts));
    }
    // Forced, or shared with an equal value: a conflicting field changes hands.
    let taken: BTreeSet<&Path> = conflicts.iter().map(|(_, p)| p).collect();
    for owner in owners.iter_mut().filter(|o| o.manager != manager.name) {
        owner.paths.retain(|p| !taken.contains(p));
    }
    // Fields this manager applied before and leaves out now go, unless someone else owns them.
    let before: BTreeSet<Path> = owners
        .iter()
        .find(|o| o.manager == manager.name && o.operation == "Apply")
        .map(|o| o.paths.clone())
        .unwrap_or_default();
    let others: BTreeSet<Path> = owners
        .iter()
        .filter(|o| o.manager != manager.name || o.operation != "Apply")
        .flat_map(|o| o.paths.iter().cloned())
        .collect();
    for dropped in before.difference(&applied_paths) {
        if !others.contains(dropped) {
            remove(&mut object, dropped);
        }
    }
    merge(&mut object, applied, None);
    owners.retain(|o| !(o.manager == manager.name && o.operation == "Apply"));
    owners.push(Owner {
        manager: manager.name.clone(),
        operation: "Apply".into(),
        api_version: manager.api_version.clone(),
        time: manager.now.clone(),
        subresource: String::new(),
        paths: applied_paths,
    });
    write_owners(&mut object, &owners);
    Ok(object)
}

/// Records a plain write (`Update`) by `manager`: it owns the fields it changed, which no
/// other manager owns any more.
pub(crate) fn record_update(old: Option<&Value>, new: &mut Value, manager: &Manager) {
    let old_leaves = old.map(leaves).unwrap_or_default();
    let changed: BTreeSet<Path> = leaves(new)
        .into_iter()
        .filter(|(path, value)| old_leaves.get(path) != Some(value))
        .map(|(path, _)| path)
        .collect();
    let mut owners = old.map(owners).unwrap_or_default();
    if changed.is_empty() {
        write_owners(new, &owners);
        return;
    }
    for owner in &mut owners {
        owner.paths.retain(|p| !changed.contains(p));
    }
    match owners
        .iter_mut()
        .find(|o| o.manager == manager.name && o.operation == "Update")
    {
        Some(owner) => {
            owner.paths.extend(changed);
            owner.time = manager.now.clone();
        }
        None => owners.push(Owner {
            manager: manager.name.clone(),
            operation: "Update".into(),
            api_version: manager.api_version.clone(),
            time: manager.now.clone(),
            subresource: String::new(),
            paths: changed,
        }),
    }
    write_owners(new, &owners);
}

/// A manager as conflicts name it (`printManager`).
fn describe(owner: &Owner) -> String {
    let mut text = format!("{:?}", owner.manager);
    if !owner.subresource.is_empty() {
        text.push_str(&format!(" with subresource {:?}", owner.subresource));
    }
    if owner.operation == "Update" {
        text.push_str(&format!(" using {}", owner.api_version));
        if !owner.time.is_empty() {
            text.push_str(&format!(" at {}", owner.time));
        }
    }
    text
}

/// The message and causes of `NewConflictError`.
fn conflict_error(conflicts: &[(String, Path)]) -> Conflicts {
    let causes = conflicts
        .iter()
        .map(|(manager, path)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": show(path)})
        })
        .collect();
    let message = if let [(manager, path)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {manager}: {}",
            show(path)
        )
    } else {
        let mut by_manager: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (manager, path) in conflicts {
            by_manager.entry(manager).or_default().push(show(path));
        }
        let mut lines = Vec::new();
        for (manager, paths) in by_manager {
            lines.push(format!("conflicts with {manager}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    Conflicts { message, causes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(name: &str, force: bool) -> Manager {
        Manager {
            name: name.to_string(),
            api_version: "apps/v1".to_string(),
            force,
            now: "2024-01-01T00:00:00Z".to_string(),
        }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn apply_creates_and_records_the_managers_fields() {
        let object = apply(None, &deployment(3, "nginx:1"), &manager("kubectl", false)).unwrap();
        let entry = &object["metadata"]["managedFields"][0];
        assert_eq!(entry["manager"], "kubectl");
        assert_eq!(entry["operation"], "Apply");
        assert_eq!(entry["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        assert_eq!(
            entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]
                ["f:image"],
            json!({})
        );
        assert!(entry["fieldsV1"]["f:metadata"].get("f:name").is_none());
    }

    // "Server-Side Apply" concept page: a field another manager set to a different value is a
    // conflict; forcing takes it over; an equal value is shared.
    #[test]
    fn conflicts_name_the_manager_and_the_field() {
        let mine = apply(None, &deployment(3, "nginx:1"), &manager("kubectl", false)).unwrap();
        let err = apply(
            Some(&mine),
            &deployment(5, "nginx:1"),
            &manager("helm", false),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
        );
        assert_eq!(err.causes[0]["field"], ".spec.replicas");
        let shared = apply(
            Some(&mine),
            &deployment(3, "nginx:1"),
            &manager("helm", false),
        )
        .unwrap();
        assert_eq!(
            shared["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let forced = apply(
            Some(&mine),
            &deployment(5, "nginx:1"),
            &manager("helm", true),
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
    }

    #[test]
    fn fields_left_out_of_the_next_apply_are_removed() {
        let mut with_label = deployment(3, "nginx:1");
        with_label["metadata"]["labels"] = json!({"tier": "web", "team": "a"});
        let first = apply(None, &with_label, &manager("kubectl", false)).unwrap();
        let mut without = deployment(3, "nginx:1");
        without["metadata"]["labels"] = json!({"tier": "web"});
        let second = apply(Some(&first), &without, &manager("kubectl", false)).unwrap();
        assert_eq!(second["metadata"]["labels"], json!({"tier": "web"}));
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let applied = apply(None, &deployment(3, "nginx:1"), &manager("kubectl", false)).unwrap();
        let mut scaled = applied.clone();
        scaled["spec"]["replicas"] = json!(6);
        record_update(
            Some(&applied),
            &mut scaled,
            &manager("kubectl-scale", false),
        );
        let err = apply(
            Some(&scaled),
            &deployment(3, "nginx:1"),
            &manager("kubectl", false),
        )
        .unwrap_err();
        assert!(
            err.message.starts_with("Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1 at 2024-01-01T00:00:00Z: .spec.replicas"),
            "{}",
            err.message
        );
    }
}
