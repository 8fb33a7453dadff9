//! Reading a cluster snapshot: what `kubectl get … -A -o yaml` prints (a `List`), a
//! multi-document YAML of objects, or the same as JSON.
//!
//! Fields the simulator acts on are checked here, so that a bad file fails at start with the
//! document and field named instead of misbehaving halfway through a drain.
//!
//! A kubectl `List` of a 20,000-pod cluster is tens of megabytes of YAML; parsed whole it would
//! need gigabytes. Its items are therefore parsed one at a time and kept only in their compact
//! stored form.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::clock::timestamp;
use super::error::LoadError;
use super::object::Stored;
use super::resource::{Builtin, Registry, ResId};
use super::value::{At, object_at, set_meta};
use crate::model::budget::IntOrPercent;
use crate::model::selector::Selector;

/// The resourceVersion of the first loaded object; each one after it gets the next, as if
/// they had been written one by one (a watch from an older one is then too old, 410).
pub(crate) const FIRST_RESOURCE_VERSION: u64 = 1;

/// A validated cluster snapshot, ready to be served.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(crate) registry: Registry,
    pub(crate) objects: Vec<(ResId, Arc<Stored>)>,
    /// When the snapshot was loaded: the creation time of objects that lack one.
    loaded_at: String,
    /// The resourceVersion the next object added in order gets.
    next_rv: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::empty()
    }
}

impl Cluster {
    /// A cluster with only the `default` namespace.
    pub fn empty() -> Cluster {
        let mut cluster = Cluster::new();
        cluster.add_missing_namespaces(&mut BTreeSet::new());
        cluster
    }

    fn new() -> Cluster {
        Cluster {
            registry: Registry::default(),
            objects: Vec::new(),
            loaded_at: timestamp(chrono::Utc::now()),
            next_rv: FIRST_RESOURCE_VERSION,
        }
    }

    /// Parses and validates a snapshot.
    pub fn load(text: &str) -> Result<Cluster, LoadError> {
        if text.trim_start().starts_with('{') {
            let mut cluster = Cluster::new();
            let mut seen = BTreeSet::new();
            let value = serde_json::from_str(text).map_err(|e| LoadError::Syntax {
                document: "the JSON document".into(),
                message: e.to_string(),
            })?;
            cluster.add_document("document 1", value, &mut seen)?;
            return Ok(cluster.finish(seen));
        }
        if let Some(items) = split_list_items(text) {
            match Cluster::load_items(&items) {
                // An item may use an alias whose anchor is in another item (PyYAML shares
                // repeated values that way): only the whole document can resolve it.
                Err(LoadError::Syntax { .. }) if has_alias(text) => {}
                result => return result,
            }
        }
        too_deep(text, "the snapshot")?;
        let mut cluster = Cluster::new();
        let mut seen = BTreeSet::new();
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let name = format!("document {}", i + 1);
            let value = Value::deserialize(document).map_err(|e| LoadError::Syntax {
                document: name.clone(),
                message: e.to_string(),
            })?;
            cluster.add_document(&name, value, &mut seen)?;
        }
        Ok(cluster.finish(seen))
    }

    /// The fast path for a kubectl `List`: parsing is most of the work and items are
    /// independent, so a window of items is parsed on every core, then added in order; the
    /// window bounds the memory held.
    fn load_items(items: &[(usize, &str)]) -> Result<Cluster, LoadError> {
        let mut cluster = Cluster::new();
        let mut seen = BTreeSet::new();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (w, window) in items.chunks(PARSE_WINDOW).enumerate() {
            let first = w * PARSE_WINDOW;
            let parsed = parse_items(
                &cluster.registry,
                &cluster.loaded_at,
                window,
                first,
                workers,
            );
            for (i, item) in parsed.into_iter().enumerate() {
                match item? {
                    Parsed::Ready(prepared) => cluster.add_prepared(prepared, &mut seen)?,
                    Parsed::Unregistered(value) => cluster.add_object_at(
                        &format!("items[{}]", first + i),
                        value,
                        FIRST_RESOURCE_VERSION + (first + i) as u64,
                        &mut seen,
                    )?,
                }
            }
        }
        Ok(cluster.finish(seen))
    }

    fn finish(mut self, mut seen: BTreeSet<(ResId, String)>) -> Cluster {
        self.add_missing_namespaces(&mut seen);
        self
    }

    /// Number of objects, including namespaces added because objects referred to them.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn add_document(
        &mut self,
        document: &str,
        value: Value,
        seen: &mut BTreeSet<(ResId, String)>,
    ) -> Result<(), LoadError> {
        if value.is_null() {
            return Ok(());
        }
        let is_list = value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && value.get("items").is_some();
        if !is_list {
            return self.add_object(document, value, seen);
        }
        let Value::Object(mut list) = value else {
            unreachable!("checked above")
        };
        let Some(Value::Array(items)) = list.remove("items") else {
            return Err(LoadError::field(
                document,
                "items",
                "must be a list of objects",
            ));
        };
        for (i, item) in items.into_iter().enumerate() {
            let label = if document == "document 1" {
                format!("items[{i}]")
            } else {
                format!("{document}, items[{i}]")
            };
            self.add_object(&label, item, seen)?;
        }
        Ok(())
    }

    fn add_object(
        &mut self,
        document: &str,
        value: Value,
        seen: &mut BTreeSet<(ResId, String)>,
    ) -> Result<(), LoadError> {
        let rv = self.next_rv;
        self.add_object_at(document, value, rv, seen)
    }

    fn add_object_at(
        &mut self,
        document: &str,
        value: Value,
        rv: u64,
        seen: &mut BTreeSet<(ResId, String)>,
    ) -> Result<(), LoadError> {
        let identity = Identity::of(document, &value)?;
        let res = match self.registry.by_kind(&identity.api_version, &identity.kind) {
            Some(res) => res,
            None => self.registry.register_other(
                &identity.api_version,
                &identity.kind,
                identity.namespace.is_some(),
            ),
        };
        let prepared = prepare(
            &self.registry,
            &self.loaded_at,
            document,
            res,
            identity,
            value,
            rv,
        )?;
        self.add_prepared(prepared, seen)
    }

    /// Adds an object made ready by [`prepare`], refusing a second object of the same name.
    fn add_prepared(
        &mut self,
        prepared: Prepared,
        seen: &mut BTreeSet<(ResId, String)>,
    ) -> Result<(), LoadError> {
        let Prepared {
            res,
            document,
            kind,
            stored,
        } = prepared;
        if !seen.insert((res, stored.key.clone())) {
            return Err(LoadError::Duplicate {
                document,
                kind,
                name: stored.key.clone(),
            });
        }
        self.next_rv = self.next_rv.max(stored.rv + 1);
        self.objects.push((res, stored));
        Ok(())
    }

    /// Fills in what the apiserver would have set and keeps the object in stored form.
    fn store(&mut self, res: ResId, value: Value) {
        let stored = stored_form(&self.registry, &self.loaded_at, res, value, self.next_rv);
        self.next_rv += 1;
        self.objects.push((res, stored));
    }

    /// Adds namespace objects for namespaces that objects live in but the snapshot lacks, and
    /// `default`, which clients assume exists.
    fn add_missing_namespaces(&mut self, seen: &mut BTreeSet<(ResId, String)>) {
        let ns_res = self.registry.builtin(Builtin::Namespace);
        let mut present = BTreeSet::new();
        let mut wanted = BTreeSet::from(["default".to_string()]);
        for (res, object) in &self.objects {
            if *res == ns_res {
                present.insert(object.name.clone());
            } else if !object.namespace.is_empty() {
                wanted.insert(object.namespace.clone());
            }
        }
        for ns in wanted.difference(&present) {
            seen.insert((ns_res, ns.clone()));
            let namespace = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            self.store(ns_res, namespace);
        }
    }
}

/// Whether YAML `text` may use an alias (`*name` where a value starts).
fn has_alias(text: &str) -> bool {
    text.lines().any(|line| {
        let content = line.trim_start().trim_start_matches("- ");
        content.starts_with('*')
            || content.contains(": *")
            || content.contains("[*")
            || content.contains(", *")
    })
}

/// How many list items are parsed together before they are stored.
const PARSE_WINDOW: usize = 2048;

/// Parses and prepares list items (`first` is the index of the first) on up to `workers`
/// threads, keeping their order.
fn parse_items(
    registry: &Registry,
    loaded_at: &str,
    items: &[(usize, &str)],
    first: usize,
    workers: usize,
) -> Vec<Result<Parsed, LoadError>> {
    let per_worker = items.len().div_ceil(workers.max(1)).max(1);
    let one = |index: usize, line: usize, span: &str| -> Result<Parsed, LoadError> {
        let value = parse_item(index, line, span)?;
        let document = format!("items[{index}]");
        let identity = Identity::of(&document, &value)?;
        match registry.by_kind(&identity.api_version, &identity.kind) {
            Some(res) => {
                let rv = FIRST_RESOURCE_VERSION + index as u64;
                prepare(registry, loaded_at, &document, res, identity, value, rv).map(Parsed::Ready)
            }
            None => Ok(Parsed::Unregistered(value)),
        }
    };
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(per_worker)
            .enumerate()
            .map(|(part, chunk)| {
                let offset = first + part * per_worker;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, (line, item))| one(offset + i, *line, item))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().expect("preparing a list item does not panic"))
            .collect()
    })
}

/// One list item (`span`, from its `- `): the fast reader for what kubectl prints, the full
/// YAML parser otherwise.
fn parse_item(index: usize, line: usize, span: &str) -> Result<Value, LoadError> {
    match super::yaml::parse_entry(span) {
        Some(value) => Ok(value),
        None => {
            let document = format!("items[{index}] (the item starting at line {line})");
            let item = item_text(span);
            too_deep(&item, &document)?;
            Value::deserialize(serde_yaml_ng::Deserializer::from_str(&item)).map_err(|e| {
                LoadError::Syntax {
                    document,
                    message: e.to_string(),
                }
            })
        }
    }
}

/// Flow collections (`[`, `{`) opened this many times without closing are refused before the
/// general parser sees them: it takes quadratic time over deep nesting (100,000 `[` in one item
/// took 47 s) before its own recursion limit (128) rejects it. Counted naively, brackets in
/// strings included, so the margin is wide.
const MAX_FLOW_DEPTH: usize = 1000;

fn too_deep(text: &str, document: &str) -> Result<(), LoadError> {
    let mut depth = 0usize;
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(LoadError::Syntax {
                        document: document.to_owned(),
                        message: format!(
                            "collections (`[`, `{{`) nested more than {MAX_FLOW_DEPTH} deep"
                        ),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// What every object must name: its kind and its name (and namespace, if any).
struct Identity {
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
}

impl Identity {
    fn of(document: &str, value: &Value) -> Result<Identity, LoadError> {
        let Some(object) = value.as_object() else {
            return Err(LoadError::field(
                document,
                "(object)",
                "expected a Kubernetes object (a mapping)",
            ));
        };
        let text = |field: &str| -> Result<String, LoadError> {
            match object.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(LoadError::field(
                    document,
                    field,
                    "must be a non-empty string",
                )),
                None => Err(LoadError::field(document, field, "is missing")),
            }
        };
        let api_version = text("apiVersion")?;
        let kind = text("kind")?;
        let name = match value.at("/metadata/name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                return Err(LoadError::field(
                    document,
                    "metadata.name",
                    "must be a non-empty string",
                ));
            }
            None => return Err(LoadError::field(document, "metadata.name", "is missing")),
        };
        let namespace = match value.at("/metadata/namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                return Err(LoadError::field(
                    document,
                    "metadata.namespace",
                    "must be a non-empty string",
                ));
            }
        };
        Ok(Identity {
            api_version,
            kind,
            name,
            namespace,
        })
    }
}

/// An object checked and in stored form; only the duplicate check is left.
struct Prepared {
    res: ResId,
    /// The document, described with the object's kind and name, for the duplicate error.
    document: String,
    kind: String,
    stored: Arc<Stored>,
}

/// Checks an object of a known kind and puts it in stored form. Needs only to read the
/// registry, so list items are prepared in parallel.
fn prepare(
    registry: &Registry,
    loaded_at: &str,
    document: &str,
    res: ResId,
    identity: Identity,
    mut value: Value,
    rv: u64,
) -> Result<Prepared, LoadError> {
    let Identity {
        kind,
        name,
        namespace,
        ..
    } = identity;
    let described = match &namespace {
        Some(ns) => format!("{document} ({kind} {ns}/{name})"),
        None => format!("{document} ({kind} {name})"),
    };
    let document = described.as_str();
    let rt = registry.get(res);
    match (rt.namespaced, namespace) {
        (true, Some(_)) | (false, None) => {}
        (true, None) => {
            set_meta(&mut value, "namespace", Value::from("default"));
        }
        (false, Some(_)) => {
            return Err(LoadError::field(
                document,
                "metadata.namespace",
                format!("{kind} objects are cluster-scoped"),
            ));
        }
    }
    for map in ["labels", "annotations"] {
        check_string_map(document, &value, map)?;
    }
    validate_kind(document, rt.builtin, &value)?;
    super::defaults::apply(rt.builtin, &mut value);
    Ok(Prepared {
        res,
        document: described.clone(),
        kind,
        stored: stored_form(registry, loaded_at, res, value, rv),
    })
}

/// Fills in what the apiserver would have set and makes the stored form.
fn stored_form(
    registry: &Registry,
    loaded_at: &str,
    res: ResId,
    mut value: Value,
    rv: u64,
) -> Arc<Stored> {
    let rt = registry.get(res);
    let uses_generation = rt.writable() && rt.uses_generation();
    let identity = format!(
        "{}/{}/{}",
        rt.group_resource(),
        value
            .at("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        value
            .at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    let meta = object_at(&mut value, &["metadata"]);
    meta.insert("resourceVersion".into(), Value::from(rv.to_string()));
    meta.entry("creationTimestamp")
        .or_insert_with(|| Value::from(loaded_at.to_string()));
    meta.entry("uid")
        .or_insert_with(|| Value::from(stable_uid(&identity)));
    if uses_generation {
        meta.entry("generation").or_insert(Value::from(1));
    }
    Arc::new(Stored::new(rt, &value))
}

/// A list item after the parallel step: ready to add, or of a kind the registry does not
/// know yet (registered, in order, by [`Cluster::add_object`]).
enum Parsed {
    Ready(Prepared),
    Unregistered(Value),
}

/// A uid derived from the object's identity, so a snapshot without uids loads the same way
/// every time.
fn stable_uid(identity: &str) -> String {
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha256::digest(identity.as_bytes()));
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The items of a `List` laid out as kubectl prints it (`items:` at the top level, each item
/// starting with `- ` at column 0), each as a YAML document of its own with the line it starts
/// on. `None` for any other layout, which is then parsed as a whole.
///
/// Items are found here, in one pass, and read in place by the threads that parse them; only
/// an item the fast reader declines is copied out ([`item_text`]) for the general parser.
fn split_list_items(text: &str) -> Option<Vec<(usize, &str)>> {
    let mut items: Vec<(usize, &str)> = Vec::new();
    // Where the item being read starts in `text`, and its line number.
    let mut open: Option<(usize, usize)> = None;
    let mut in_items = false;
    let mut seen_items = false;
    let mut list_kind = false;
    let mut offset = 0;
    for (number, raw) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        // As `str::lines` ends a line.
        let line = raw
            .strip_suffix('\n')
            .map_or(raw, |l| l.strip_suffix('\r').unwrap_or(l));
        let top_level = !line.is_empty() && !line.starts_with(' ') && !line.starts_with('#');
        if line.starts_with("---") || line.starts_with("...") {
            return None;
        }
        if in_items && line.starts_with("- ") {
            if let Some((from, first)) = open.replace((start, number + 1)) {
                items.push((first, &text[from..start]));
            }
            continue;
        }
        if top_level {
            if let Some((from, first)) = open.take() {
                items.push((first, &text[from..start]));
            }
            in_items = false;
            if line == "items:" {
                if seen_items {
                    return None;
                }
                in_items = true;
                seen_items = true;
            } else if let Some(kind) = line.strip_prefix("kind:") {
                list_kind = kind.trim().trim_matches('"').ends_with("List");
            } else if line.starts_with('-') || line.starts_with('{') || line.starts_with('[') {
                return None;
            }
            continue;
        }
        if in_items && open.is_none() && !line.trim().is_empty() {
            return None;
        }
    }
    if let Some((from, first)) = open {
        items.push((first, &text[from..]));
    }
    (seen_items && list_kind).then_some(items)
}

/// A list item found by [`split_list_items`] as a YAML document of its own: its `- ` becomes
/// indentation, and its lines end in `\n` whatever they ended in.
fn item_text(span: &str) -> String {
    let mut item = String::with_capacity(span.len() + 1);
    if !span.contains('\r') {
        item.push_str("  ");
        item.push_str(&span[2..]);
        if !item.ends_with('\n') {
            item.push('\n');
        }
        return item;
    }
    for (i, line) in span.lines().enumerate() {
        if i == 0 {
            item.push_str("  ");
            item.push_str(&line[2..]);
        } else {
            item.push_str(line);
        }
        item.push('\n');
    }
    item
}

fn check_string_map(document: &str, value: &Value, map: &str) -> Result<(), LoadError> {
    match value.at(&format!("/metadata/{map}")) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(entries)) => {
            for (key, v) in entries {
                if !v.is_string() {
                    return Err(LoadError::field(
                        document,
                        format!("metadata.{map}.{key}"),
                        "must be a string (quote numbers and booleans)",
                    ));
                }
            }
            Ok(())
        }
        Some(_) => Err(LoadError::field(
            document,
            format!("metadata.{map}"),
            "must be a mapping of strings",
        )),
    }
}

fn validate_kind(document: &str, builtin: Builtin, value: &Value) -> Result<(), LoadError> {
    match builtin {
        Builtin::Pod => validate_pod_spec(document, "spec", value.get("spec")),
        Builtin::PodDisruptionBudget => {
            for field in ["minAvailable", "maxUnavailable"] {
                if let Some(v) = value.at(&format!("/spec/{field}")).filter(|v| !v.is_null()) {
                    IntOrPercent::parse(v)
                        .map_err(|e| LoadError::field(document, format!("spec.{field}"), e))?;
                }
            }
            validate_selector(document, value, false)
        }
        Builtin::Deployment | Builtin::ReplicaSet | Builtin::StatefulSet | Builtin::DaemonSet => {
            if let Some(replicas) = value.at("/spec/replicas")
                && replicas.as_i64().is_none_or(|r| r < 0)
            {
                return Err(LoadError::field(
                    document,
                    "spec.replicas",
                    "must be a non-negative integer",
                ));
            }
            validate_selector(document, value, true)?;
            validate_pod_spec(
                document,
                "spec.template.spec",
                value.at("/spec/template/spec"),
            )
        }
        Builtin::Node => match value.at("/status/conditions") {
            None | Some(Value::Array(_)) => Ok(()),
            Some(_) => Err(LoadError::field(
                document,
                "status.conditions",
                "must be a list",
            )),
        },
        _ => Ok(()),
    }
}

fn validate_selector(document: &str, value: &Value, required: bool) -> Result<(), LoadError> {
    match value.at("/spec/selector") {
        None if required => Err(LoadError::field(document, "spec.selector", "is missing")),
        None => Ok(()),
        Some(selector) => {
            if !selector.is_object() {
                return Err(LoadError::field(
                    document,
                    "spec.selector",
                    "must be a label selector (matchLabels/matchExpressions)",
                ));
            }
            Selector::from_json(Some(selector))
                .map(|_| ())
                .map_err(|e| LoadError::field(document, "spec.selector", e.to_string()))
        }
    }
}

fn validate_pod_spec(document: &str, path: &str, spec: Option<&Value>) -> Result<(), LoadError> {
    let Some(spec) = spec else {
        return Err(LoadError::field(document, path, "is missing"));
    };
    let Some(containers) = spec
        .get("containers")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return Err(LoadError::field(
            document,
            format!("{path}.containers"),
            "must be a non-empty list",
        ));
    };
    for (i, container) in containers.iter().enumerate() {
        if !container.get("name").is_some_and(Value::is_string) {
            return Err(LoadError::field(
                document,
                format!("{path}.containers[{i}].name"),
                "must be a string",
            ));
        }
    }
    if let Some(node) = spec.get("nodeName")
        && !node.is_string()
    {
        return Err(LoadError::field(
            document,
            format!("{path}.nodeName"),
            "must be a string",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: \"2024-03-01T08:00:00Z\"\n  name: web\n  namespace: shop\nspec:\n  containers:\n  - name: web\n    image: nginx\n";

    #[test]
    fn lists_and_multi_document_yaml_load_the_same_objects() {
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            POD.replace('\n', "\n  ").trim_end()
        );
        let a = Cluster::load(&list).unwrap();
        let b = Cluster::load(&format!("---\n{POD}---\n")).unwrap();
        assert_eq!(a.objects[0].1.raw, b.objects[0].1.raw);
        assert_eq!(a.objects[0].1.rv, FIRST_RESOURCE_VERSION);
        // Every object has a resourceVersion of its own.
        let rvs: BTreeSet<u64> = a.objects.iter().map(|(_, o)| o.rv).collect();
        assert_eq!(rvs.len(), a.len());
        // The pod plus the namespaces `shop` and `default`, added because they are missing.
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn kubectl_and_generated_lists_take_the_fast_path_and_agree() {
        let generated = crate::sim::generate(&crate::sim::GenOptions {
            nodes: 6,
            pods: 60,
            seed: 2,
            ..Default::default()
        });
        let fixture = include_str!("../../tests/data/sim/drain.yaml");
        for text in [generated.as_str(), fixture] {
            let items = split_list_items(text).expect("a kubectl List");
            assert!(items.len() > 20);
            for (line, span) in items {
                let item = item_text(span);
                let fast = crate::sim::yaml::parse_entry(span).unwrap_or_else(|| {
                    panic!("the item at line {line} needs the slow path:\n{item}")
                });
                let general: Value = serde_yaml_ng::from_str(&item).unwrap();
                assert_eq!(fast, general, "item at line {line}");
                assert_eq!(crate::sim::yaml::parse(&item), Some(general));
            }
        }
    }

    #[test]
    fn list_items_read_the_same_whatever_ends_their_lines() {
        let text = "apiVersion: v1\nitems:\n- kind: Pod\n  metadata:\n    name: a\n\n# note\n- kind: Pod\n  metadata:\n    name: b\nkind: List\nmetadata: {}";
        let items = |text: &str| -> Vec<(usize, String)> {
            let items = split_list_items(text).expect("a kubectl List");
            items.into_iter().map(|(n, s)| (n, item_text(s))).collect()
        };
        let expected = vec![
            (
                3,
                "  kind: Pod\n  metadata:\n    name: a\n\n# note\n".to_string(),
            ),
            (8, "  kind: Pod\n  metadata:\n    name: b\n".to_string()),
        ];
        assert_eq!(items(text), expected);
        assert_eq!(items(&text.replace('\n', "\r\n")), expected);
    }

    #[test]
    fn unknown_kinds_are_kept() {
        let text = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: tls\n  namespace: shop\nspec:\n  anything: [1, 2]\n";
        let cluster = Cluster::load(text).unwrap();
        let (res, object) = &cluster.objects[0];
        assert_eq!(cluster.registry.get(*res).plural, "certificates");
        assert_eq!(
            object.value().at("/spec/anything/1"),
            Some(&serde_json::json!(2))
        );
    }

    #[test]
    fn errors_name_the_document_and_field() {
        let bad = POD.replace("  - name: web\n", "  - nam: web\n");
        let err = Cluster::load(&format!("{POD}---\n{bad}"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "document 2 (Pod shop/web): field `spec.containers[0].name`: must be a string"
        );

        let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: p\n  namespace: a\nspec:\n  minAvailable: \"50\"\n";
        let err = Cluster::load(pdb).unwrap_err().to_string();
        assert!(
            err.starts_with("document 1 (PodDisruptionBudget a/p): field `spec.minAvailable`"),
            "{err}"
        );

        let err = Cluster::load(
            "kind: List\napiVersion: v1\nitems:\n- kind: Node\n  apiVersion: v1\n  metadata: {}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "items[0]: field `metadata.name`: is missing"
        );
        let err =
            Cluster::load("apiVersion: v1\nitems:\n- kind: Node\n  metadata: [\nkind: List\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("not valid YAML in items[0] (the item starting at line 3)"),
            "{err}"
        );

        let err = Cluster::load("a: [1,\n").unwrap_err().to_string();
        assert!(err.starts_with("not valid YAML in document 1"), "{err}");

        let err = Cluster::load(&format!("{POD}---\n{POD}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("appears twice"), "{err}");

        let labels = POD.replace("  name: web\n", "  name: web\n  labels:\n    replicas: 3\n");
        let err = Cluster::load(&labels).unwrap_err().to_string();
        assert!(err.contains("metadata.labels.replicas"), "{err}");
    }
}
