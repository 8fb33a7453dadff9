//! The API verbs on the stored objects: list, create, update, patch, delete, evict, with the
//! apiserver's rules (server-set metadata, optimistic concurrency, status subresources,
//! graceful pod deletion, garbage collection of dependents, `dryRun=All`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::apply;
use super::object::Stored;
use super::pages::ListSnapshots;
use super::patch::{self, PatchError, PatchType};
use super::resource::{Builtin, ResId};
use super::selector::FieldSelector;
use super::status::{self, ApiError};
use super::value::{At, int_at, object_at, set_condition, str_at};
use super::world::World;
use crate::model::budget::{Budget, BudgetStatus, Verdict, check_eviction};
use crate::model::selector::Selector;

/// Filters and paging of a LIST or WATCH.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListOptions {
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_from: Option<Continue>,
    /// `resourceVersion` of a LIST: the state must be at least this new.
    pub resource_version: Option<u64>,
}

impl ListOptions {
    pub fn matches(&self, object: &Stored) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == object.namespace)
            && self.labels.matches(&object.labels)
            && self.fields.matches(|field| object.field(field))
    }

    fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || self.fields != FieldSelector::default()
    }
}

pub(crate) struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub rv: u64,
    pub continue_token: Option<String>,
    /// Items left after this page, when the list has no selector (as the apiserver reports).
    pub remaining: Option<usize>,
}

/// `DeleteOptions`, from the body or the query.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub orphan: bool,
}

impl DeleteOptions {
    pub fn from_body(body: &Value) -> Self {
        DeleteOptions {
            grace_period: body.get("gracePeriodSeconds").and_then(Value::as_i64),
            uid: str_at(body, &["preconditions", "uid"]).map(str::to_string),
            resource_version: str_at(body, &["preconditions", "resourceVersion"])
                .map(str::to_string),
            orphan: str_at(body, &["propagationPolicy"]) == Some("Orphan")
                || body.get("orphanDependents").and_then(Value::as_bool) == Some(true),
        }
    }

    fn check(&self, world: &World, res: ResId, object: &Stored) -> Result<(), ApiError> {
        let rt = world.registry.get(res);
        if let Some(uid) = self.uid.as_ref().filter(|u| **u != object.uid) {
            return Err(ApiError::conflict(
                rt,
                &object.name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object.uid
                ),
            ));
        }
        if let Some(rv) = self
            .resource_version
            .as_ref()
            .filter(|rv| **rv != object.rv.to_string())
        {
            return Err(ApiError::conflict(
                rt,
                &object.name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    object.rv
                ),
            ));
        }
        Ok(())
    }
}

/// Who writes: the field manager (the `fieldManager` parameter, else the client's user-agent
/// name, as the apiserver derives it) and whether an apply may take fields over (`force`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Writer {
    pub field_manager: Option<String>,
    pub user_agent: String,
    pub force: bool,
}

impl Writer {
    fn manager(&self, rt: &super::resource::ResourceType, now: &str) -> apply::Manager {
        apply::Manager {
            name: self
                .field_manager
                .clone()
                .unwrap_or_else(|| self.user_agent.clone()),
            api_version: rt.api_version(),
            force: self.force,
            now: now.to_string(),
        }
    }
}

/// Where a paginated LIST goes on: the snapshot of its first page, at `rv`, after `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Continue {
    pub rv: u64,
    pub snapshot: u64,
    pub key: String,
}

impl Continue {
    /// Continue tokens are opaque to clients; this one names the resourceVersion of the first
    /// page, the snapshot kept for it, and the last key served.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}\n{}\n{}", self.rv, self.snapshot, self.key))
    }

    pub fn decode(token: &str) -> Result<Continue, ApiError> {
        let invalid = || ApiError::bad_request("invalid continue token: continue key is not valid");
        let text = hex::decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid)?;
        let mut parts = text.splitn(3, '\n');
        let rv = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let snapshot = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let key = parts.next().ok_or_else(invalid)?.to_string();
        Ok(Continue { rv, snapshot, key })
    }
}

impl World {
    /// A LIST as the apiserver answers it, with its error codes: `continue` with a
    /// `resourceVersion` is refused (400), a `resourceVersion` newer than the cluster's is
    /// 504, and later pages come from the snapshot of the first.
    pub fn list(&self, res: ResId, options: &ListOptions) -> Result<ListPage, ApiError> {
        if let Some(rv) = options.resource_version {
            if options.continue_from.is_some() && rv != 0 {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            if rv > self.rv {
                return Err(too_large_resource_version(rv, self.rv));
            }
        }
        let Some(limit) = options.limit else {
            return Ok(ListPage {
                items: self.matching(res, options),
                rv: self.rv,
                continue_token: None,
                remaining: None,
            });
        };
        let (snapshot, rv, items) = match &options.continue_from {
            Some(from) => {
                let items = self.snapshots().get(from.snapshot).ok_or_else(|| {
                    ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    )
                })?;
                (from.snapshot, from.rv, items)
            }
            None => {
                let all = self.matching(res, options);
                if all.len() <= limit {
                    return Ok(ListPage {
                        items: all,
                        rv: self.rv,
                        continue_token: None,
                        remaining: None,
                    });
                }
                let (id, items) = self.snapshots().keep(all);
                (id, self.rv, items)
            }
        };
        let start = match &options.continue_from {
            Some(from) => items.partition_point(|o| o.key.as_str() <= from.key.as_str()),
            None => 0,
        };
        let end = (start + limit).min(items.len());
        let page: Vec<Arc<Stored>> = items[start..end].to_vec();
        let left = items.len() - end;
        let continue_token = (left > 0).then(|| {
            Continue {
                rv,
                snapshot,
                key: page.last().map(|o| o.key.clone()).unwrap_or_default(),
            }
            .encode()
        });
        Ok(ListPage {
            items: page,
            rv,
            continue_token,
            remaining: (left > 0 && !options.has_selectors()).then_some(left),
        })
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, ListSnapshots> {
        self.list_snapshots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every object of `res` the options select, in key order.
    pub fn matching(&self, res: ResId, options: &ListOptions) -> Vec<Arc<Stored>> {
        let map = &self.objects[res];
        let candidates: Box<dyn Iterator<Item = &Arc<Stored>>> =
            match (res == self.ids.pod, options.fields.pinned("spec.nodeName")) {
                (true, Some(node)) if !node.is_empty() => Box::new(
                    self.pods_by_node
                        .get(node)
                        .into_iter()
                        .flatten()
                        .filter_map(move |k| map.get(k)),
                ),
                _ => match &options.namespace {
                    Some(ns) if !ns.is_empty() => Box::new(self.in_namespace(res, ns)),
                    _ => Box::new(map.values()),
                },
            };
        candidates
            .filter(|object| options.matches(object))
            .cloned()
            .collect()
    }

    fn require_namespace(&self, res: ResId, namespace: &str) -> Result<(), ApiError> {
        if self.registry.get(res).namespaced && self.get(self.ids.namespace, namespace).is_none() {
            let ns = self.registry.get(self.ids.namespace);
            return Err(ApiError::not_found(ns, namespace));
        }
        Ok(())
    }

    fn read_only(&self, res: ResId) -> Result<(), ApiError> {
        let rt = self.registry.get(res);
        if rt.writable() {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource: the simulator serves {} read-only",
                rt.group_resource()
            )))
        }
    }

    pub fn lookup(&self, res: ResId, namespace: &str, name: &str) -> Result<Arc<Stored>, ApiError> {
        self.get_in(res, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(self.registry.get(res), name))
    }

    pub fn create(
        &mut self,
        res: ResId,
        namespace: &str,
        mut body: Value,
        dry_run: bool,
        writer: &Writer,
    ) -> Result<Value, ApiError> {
        self.read_only(res)?;
        let rt = self.registry.get(res).clone();
        check_type(&rt, &mut body)?;
        let body_ns = str_at(&body, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        if rt.namespaced {
            if !body_ns.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            object_at(&mut body, &["metadata"]).insert("namespace".into(), json!(namespace));
            self.require_namespace(res, namespace)?;
        } else {
            object_at(&mut body, &["metadata"]).remove("namespace");
        }
        let name = match str_at(&body, &["metadata", "name"]).filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None => match str_at(&body, &["metadata", "generateName"]).filter(|n| !n.is_empty()) {
                Some(prefix) => format!("{prefix}{}", self.random_suffix(5)),
                None => {
                    return Err(ApiError::invalid(
                        &rt,
                        "",
                        "metadata.name",
                        "name or generateName is required",
                    ));
                }
            },
        };
        object_at(&mut body, &["metadata"]).insert("name".into(), json!(name));
        if self
            .get_in(res, if rt.namespaced { namespace } else { "" }, &name)
            .is_some()
        {
            return Err(ApiError::already_exists(&rt, &name));
        }
        let meta = object_at(&mut body, &["metadata"]);
        for server_set in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            meta.remove(server_set);
        }
        super::defaults::apply(rt.builtin, &mut body);
        match rt.builtin {
            Builtin::Pod => {
                if let Some(map) = body.as_object_mut() {
                    map.remove("status");
                }
            }
            Builtin::Namespace => {
                object_at(&mut body, &["spec"])
                    .entry("finalizers")
                    .or_insert(json!(["kubernetes"]));
                object_at(&mut body, &["status"]).insert("phase".into(), json!("Active"));
                object_at(&mut body, &["metadata", "labels"])
                    .insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            _ => {}
        }
        if body.at("/metadata/managedFields").is_none() {
            let now = self.now_string();
            apply::record_update(None, &mut body, &writer.manager(&rt, &now));
        }
        if dry_run {
            let uid = self.new_uid();
            let meta = object_at(&mut body, &["metadata"]);
            meta.insert("uid".into(), json!(uid));
            meta.insert("creationTimestamp".into(), json!(self.now_string()));
            return Ok(body);
        }
        let stored = if rt.builtin == Builtin::Pod {
            self.admit_pod(body)
        } else {
            self.admit_object(res, body)
        };
        self.settle();
        Ok(self
            .get(res, &stored.key)
            .map(|s| s.value())
            .unwrap_or_else(|| stored.value()))
    }

    /// PUT: replaces the object (or its status).
    // One parameter per part of the PUT request, as for `patch`.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        res: ResId,
        namespace: &str,
        name: &str,
        mut body: Value,
        status_only: bool,
        dry_run: bool,
        writer: &Writer,
    ) -> Result<Value, ApiError> {
        self.read_only(res)?;
        let rt = self.registry.get(res).clone();
        check_type(&rt, &mut body)?;
        if let Some(body_name) = str_at(&body, &["metadata", "name"]).filter(|n| *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let current = match self.get_in(res, namespace, name) {
            Some(current) => current.clone(),
            None if rt.builtin == Builtin::Lease && !status_only => {
                // Leases may be created by PUT, which lock clients rely on.
                return self.create(res, namespace, body, dry_run, writer);
            }
            None => return Err(ApiError::not_found(&rt, name)),
        };
        if let Some(rv) =
            str_at(&body, &["metadata", "resourceVersion"]).filter(|rv| !rv.is_empty())
            && rv != current.rv.to_string()
        {
            return Err(ApiError::modified(&rt, name));
        }
        self.commit_change(res, &current, body, status_only, dry_run, Some(writer))
    }

    // One parameter per part of the PATCH request, as the API defines it.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        res: ResId,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        status_only: bool,
        dry_run: bool,
        writer: &Writer,
    ) -> Result<(Value, bool), ApiError> {
        self.read_only(res)?;
        if patch_type == PatchType::Apply {
            return self.server_side_apply(res, namespace, name, body, dry_run, writer);
        }
        let rt = self.registry.get(res).clone();
        let current = self.lookup(res, namespace, name)?;
        let mut value = current.value();
        patch::apply(&mut value, patch_type, body).map_err(|e| match e {
            PatchError::Decode(message) => ApiError::bad_request(message),
            PatchError::Apply(message) => ApiError::new(422, "Invalid", message),
        })?;
        if let Some(rv) =
            str_at(&value, &["metadata", "resourceVersion"]).filter(|rv| !rv.is_empty())
            && rv != current.rv.to_string()
        {
            return Err(ApiError::modified(&rt, name));
        }
        if str_at(&value, &["metadata", "name"]) != Some(name) {
            return Err(ApiError::invalid(
                &rt,
                name,
                "metadata.name",
                "field is immutable",
            ));
        }
        self.commit_change(res, &current, value, status_only, dry_run, Some(writer))
            .map(|object| (object, false))
    }

    /// PATCH with an apply configuration: creates the object when missing, else merges it
    /// as its field manager's intent (see `apply.rs`).
    fn server_side_apply(
        &mut self,
        res: ResId,
        namespace: &str,
        name: &str,
        body: &[u8],
        dry_run: bool,
        writer: &Writer,
    ) -> Result<(Value, bool), ApiError> {
        let rt = self.registry.get(res).clone();
        let Some(manager) = writer.field_manager.as_deref() else {
            return Err(ApiError::bad_request(
                "fieldManager is required for apply requests",
            ));
        };
        let mut applied: Value = serde_json::from_slice(body)
            .or_else(|_| serde_yaml_ng::from_slice(body))
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        check_type(&rt, &mut applied)?;
        if str_at(&applied, &["metadata", "name"]).is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                str_at(&applied, &["metadata", "name"]).unwrap_or_default()
            )));
        }
        let manager = apply::Manager {
            name: manager.to_string(),
            api_version: rt.api_version(),
            force: writer.force,
            now: self.now_string(),
        };
        let conflict = |c: apply::Conflicts| {
            ApiError::new(409, "Conflict", c.message).with_details(json!({
                "name": name, "group": rt.group, "kind": rt.plural, "causes": c.causes,
            }))
        };
        match self.get_in(res, namespace, name).cloned() {
            None => {
                let mut object = apply::apply(None, &applied, &manager).map_err(conflict)?;
                object_at(&mut object, &["metadata"]).insert("name".into(), json!(name));
                self.create(res, namespace, object, dry_run, writer)
                    .map(|object| (object, true))
            }
            Some(current) => {
                let object =
                    apply::apply(Some(&current.value()), &applied, &manager).map_err(conflict)?;
                self.commit_change(res, &current, object, false, dry_run, None)
                    .map(|object| (object, false))
            }
        }
    }

    /// Stores the result of an update or patch, keeping what clients may not change.
    fn commit_change(
        &mut self,
        res: ResId,
        current: &Stored,
        mut new: Value,
        status_only: bool,
        dry_run: bool,
        writer: Option<&Writer>,
    ) -> Result<Value, ApiError> {
        let rt = self.registry.get(res).clone();
        let old = current.value();
        if status_only {
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(status) => object_at(&mut new, &[]).insert("status".into(), status),
                None => object_at(&mut new, &[]).remove("status"),
            };
        } else if rt.has_status() {
            match old.get("status") {
                Some(status) => object_at(&mut new, &[]).insert("status".into(), status.clone()),
                None => object_at(&mut new, &[]).remove("status"),
            };
        }
        for kept in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
        ] {
            let meta = object_at(&mut new, &["metadata"]);
            match old.at(&format!("/metadata/{kept}")) {
                Some(value) => meta.insert(kept.into(), value.clone()),
                None => meta.remove(kept),
            };
        }
        if rt.builtin == Builtin::Pod {
            let old_node = str_at(&old, &["spec", "nodeName"]).unwrap_or_default();
            let new_node = str_at(&new, &["spec", "nodeName"]).unwrap_or_default();
            if !old_node.is_empty() && old_node != new_node {
                return Err(ApiError::invalid(
                    &rt,
                    &current.name,
                    "spec.nodeName",
                    "field is immutable once the pod is scheduled",
                ));
            }
        }
        if rt.uses_generation() && old.get("spec") != new.get("spec") {
            let generation = int_at(&old, "/metadata/generation", 1) + 1;
            object_at(&mut new, &["metadata"]).insert("generation".into(), json!(generation));
        }
        super::defaults::apply(rt.builtin, &mut new);
        if let Some(writer) = writer {
            let now = self.now_string();
            apply::record_update(Some(&old), &mut new, &writer.manager(&rt, &now));
        }
        object_at(&mut new, &["metadata"])
            .insert("resourceVersion".into(), json!(current.rv.to_string()));
        if new == old || dry_run {
            return Ok(new);
        }
        let stored = self.put(res, new);
        self.settle();
        Ok(self
            .get(res, &stored.key)
            .map(|s| s.value())
            .unwrap_or_else(|| stored.value()))
    }

    /// The object's `scale` subresource, an autoscaling/v1 `Scale`.
    pub fn scale(&self, res: ResId, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let object = self.lookup(res, namespace, name)?;
        let value = object.value();
        let mut scale = json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": object.name,
                "namespace": object.namespace,
                "uid": object.uid,
                "resourceVersion": object.rv.to_string(),
                "creationTimestamp": value.at("/metadata/creationTimestamp"),
            },
            "spec": {"replicas": int_at(&value, "/spec/replicas", 1)},
            "status": {"replicas": int_at(&value, "/status/replicas", 0)},
        });
        let selector = super::cells::format_selector(value.at("/spec/selector"));
        if selector != "<none>" {
            scale["status"]["selector"] = json!(selector);
        }
        Ok(scale)
    }

    /// PUT of the `scale` subresource: a new `spec.replicas`, nothing else.
    pub fn set_scale(
        &mut self,
        res: ResId,
        namespace: &str,
        name: &str,
        scale: &Value,
        dry_run: bool,
        writer: &Writer,
    ) -> Result<Value, ApiError> {
        let rt = self.registry.get(res).clone();
        let current = self.lookup(res, namespace, name)?;
        if let Some(rv) =
            str_at(scale, &["metadata", "resourceVersion"]).filter(|rv| !rv.is_empty())
            && rv != current.rv.to_string()
        {
            return Err(ApiError::modified(&rt, name));
        }
        let Some(replicas) = scale.at("/spec/replicas").and_then(Value::as_i64) else {
            return Err(ApiError::invalid(
                &rt,
                name,
                "spec.replicas",
                "must be a non-negative integer",
            ));
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                &rt,
                name,
                "spec.replicas",
                "must be greater than or equal to 0",
            ));
        }
        let mut value = current.value();
        object_at(&mut value, &["spec"]).insert("replicas".into(), json!(replicas));
        self.commit_change(res, &current, value, false, dry_run, Some(writer))?;
        let mut answer = self.scale(res, namespace, name)?;
        answer["spec"]["replicas"] = json!(replicas);
        Ok(answer)
    }

    pub fn delete(
        &mut self,
        res: ResId,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.read_only(res)?;
        let current = self.lookup(res, namespace, name)?;
        options.check(self, res, &current)?;
        let builtin = self.registry.get(res).builtin;
        if dry_run {
            let mut value = current.value();
            if builtin == Builtin::Pod {
                let (period, _) = self.grace_period(&current, options.grace_period);
                if period > 0 {
                    let at = self.clock.now() + chrono::Duration::seconds(period);
                    let meta = object_at(&mut value, &["metadata"]);
                    meta.insert(
                        "deletionTimestamp".into(),
                        json!(super::clock::timestamp(at)),
                    );
                    meta.insert("deletionGracePeriodSeconds".into(), json!(period));
                }
            }
            return Ok(value);
        }
        let result = match builtin {
            Builtin::Pod => self.delete_pod(&current.key, options.grace_period),
            Builtin::Namespace => {
                self.delete_namespace_contents(name);
                self.remove(res, &current.key)
            }
            _ => {
                self.collect_dependents(&current, options.orphan);
                self.remove(res, &current.key)
            }
        };
        self.settle();
        Ok(result.map(|s| s.value()).unwrap_or_else(|| current.value()))
    }

    pub fn delete_collection(
        &mut self,
        res: ResId,
        options: &ListOptions,
        delete: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Vec<Value>, ApiError> {
        self.read_only(res)?;
        let items = self.matching(res, options);
        let mut deleted = Vec::new();
        for object in items {
            deleted.push(self.delete(res, &object.namespace, &object.name, delete, dry_run)?);
        }
        Ok(deleted)
    }

    fn delete_namespace_contents(&mut self, namespace: &str) {
        for res in 0..self.registry.len() {
            if !self.registry.get(res).namespaced {
                continue;
            }
            let keys: Vec<String> = self
                .in_namespace(res, namespace)
                .map(|o| o.key.clone())
                .collect();
            for key in keys {
                self.remove(res, &key);
            }
        }
    }

    /// The garbage collector: dependents of a deleted owner are deleted (background
    /// propagation) or released (orphan propagation).
    fn collect_dependents(&mut self, owner: &Stored, orphan: bool) {
        for res in [self.ids.replicaset, self.ids.pod] {
            let dependents: Vec<Arc<Stored>> = self
                .in_namespace(res, &owner.namespace)
                .filter(|o| {
                    o.value()
                        .at("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter().any(|r| str_at(r, &["uid"]) == Some(&owner.uid))
                        })
                })
                .cloned()
                .collect();
            for dependent in dependents {
                if orphan {
                    let uid = owner.uid.clone();
                    self.modify(res, &dependent.key, |v| {
                        if let Some(refs) = v
                            .pointer_mut("/metadata/ownerReferences")
                            .and_then(Value::as_array_mut)
                        {
                            refs.retain(|r| str_at(r, &["uid"]) != Some(&uid));
                        }
                    });
                } else if res == self.ids.pod {
                    self.delete_pod(&dependent.key, None);
                } else {
                    self.collect_dependents(&dependent, false);
                    self.remove(res, &dependent.key);
                }
            }
        }
    }

    /// POST pods/{name}/eviction.
    pub fn evict(
        &mut self,
        namespace: &str,
        name: &str,
        body: &Value,
        dry_run_query: bool,
    ) -> Result<Value, ApiError> {
        let served_eviction = format!("policy/{}", self.version.eviction_version());
        let api_version = str_at(body, &["apiVersion"]).unwrap_or(&served_eviction);
        // policy/v1beta1 Evictions are accepted as long as the cluster serves that version;
        // before 1.22 the scheme has no policy/v1 Eviction at all.
        let known = api_version == served_eviction
            || (api_version == "policy/v1beta1" && self.version.minor < 25);
        if !known {
            return Err(ApiError::bad_request(format!(
                "no kind \"Eviction\" is registered for version \"{api_version}\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
            )));
        }
        if str_at(body, &["kind"]).is_some_and(|k| k != "Eviction") {
            return Err(ApiError::bad_request(format!(
                "expected an Eviction of {served_eviction}, got {} {api_version}",
                str_at(body, &["kind"]).unwrap_or("an object without kind")
            )));
        }
        if str_at(body, &["metadata", "name"]).is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        if str_at(body, &["metadata", "namespace"]).is_some_and(|n| !n.is_empty() && n != namespace)
        {
            return Err(ApiError::bad_request(
                "namespace in URL does not match namespace in Eviction object",
            ));
        }
        let delete_options = body.get("deleteOptions").cloned().unwrap_or_default();
        let dry_run = dry_run_query
            || delete_options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"));
        let options = DeleteOptions::from_body(&delete_options);
        let pod = self.lookup(self.ids.pod, namespace, name)?;
        options.check(self, self.ids.pod, &pod)?;
        let info = pod.pod().expect("pod").clone();

        // Terminal, pending and terminating pods cost no availability: no budget is consulted.
        let ignores_budgets = info.terminal() || info.phase == "Pending" || pod.deleting;
        if !ignores_budgets {
            let budgets = self.budgets_for(namespace, &pod.labels);
            if budgets.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = budgets.first() {
                let pdb_value = pdb.value();
                let mut budget =
                    Budget::from_spec(pdb_value.get("spec")).map_err(ApiError::internal)?;
                budget.always_allow_unhealthy &=
                    self.version.honours_unhealthy_pod_eviction_policy();
                let pdb_status = BudgetStatus::from_object(&pdb_value);
                match check_eviction(info.ready, &budget, pdb_status) {
                    Verdict::AllowUnhealthy => {}
                    Verdict::AllowAndDecrement => {
                        if !dry_run {
                            self.take_disruption(&pdb.key, name);
                        }
                    }
                    Verdict::Blocked {
                        desired_healthy,
                        current_healthy,
                    } => {
                        return Err(too_many_requests(
                            format!(
                                "The disruption budget {} needs {desired_healthy} healthy pods and has {current_healthy} currently",
                                pdb.name
                            ),
                            0,
                        ));
                    }
                    Verdict::NotYetProcessed => {
                        return Err(too_many_requests(
                            format!(
                                "The disruption budget {} is still being processed by the server.",
                                pdb.name
                            ),
                            10,
                        ));
                    }
                    Verdict::Negative => {
                        return Err(ApiError::new(
                            403,
                            "Forbidden",
                            format!(
                                "poddisruptionbudgets.policy {:?} is forbidden: pdb disruptions allowed is negative",
                                pdb.name
                            ),
                        ));
                    }
                }
            }
        }
        if !dry_run {
            if self.version.disruption_target_condition() && !info.terminal() {
                let now = self.now_string();
                self.modify(self.ids.pod, &pod.key, |v| {
                    set_condition(
                        v,
                        "DisruptionTarget",
                        "True",
                        "EvictionByEvictionAPI",
                        "Eviction API: evicting",
                        &now,
                    );
                });
            }
            self.delete_pod(&pod.key, options.grace_period);
            self.settle();
        }
        Ok(status::success(201))
    }

    /// Records an eviction in the PDB as the eviction subresource does, before the pod goes.
    fn take_disruption(&mut self, pdb_key: &str, pod_name: &str) {
        let now = self.now_string();
        self.modify(self.ids.pdb, pdb_key, |v| {
            let allowed = int_at(v, "/status/disruptionsAllowed", 0) - 1;
            let observed = v
                .at("/status/observedGeneration")
                .cloned()
                .unwrap_or(json!(0));
            let status = object_at(v, &["status"]);
            status.insert("disruptionsAllowed".into(), json!(allowed));
            let disrupted = status.entry("disruptedPods").or_insert_with(|| json!({}));
            if let Some(map) = disrupted.as_object_mut() {
                map.insert(pod_name.to_string(), json!(now));
            }
            if allowed == 0 {
                super::controllers::set_budget_condition(
                    status,
                    "False",
                    "InsufficientPods",
                    "",
                    &now,
                    observed,
                );
            }
        });
    }
}

/// 504 for a resourceVersion the cluster has not reached (`storage.NewTooLargeResourceVersionError`).
fn too_large_resource_version(asked: u64, current: u64) -> ApiError {
    ApiError::new(
        504,
        "Timeout",
        format!("Too large resource version: {asked}, current: {current}"),
    )
    .with_details(json!({
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    }))
}

/// The 429 of a refused eviction (`errors.NewTooManyRequests`): a budget still being
/// processed asks the client to come back in 10 s (`Retry-After`).
fn too_many_requests(cause: String, retry_after: u32) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    )
    .with_details(details)
}

/// Fills in or checks `apiVersion` and `kind` of a request body.
fn check_type(rt: &super::resource::ResourceType, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let expected = rt.api_version();
    match str_at(body, &["apiVersion"]) {
        Some(v) if v != expected => {
            let (group, version) = v.split_once('/').unwrap_or(("", v));
            if group != rt.group || !rt.serves(version) {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({expected})"
                )));
            }
            // An older version the cluster still serves: stored as the preferred one. A
            // policy/v1beta1 budget with an empty selector keeps selecting no pod
            // (`pkg/apis/policy/v1beta1/conversion.go`).
            if rt.builtin == Builtin::PodDisruptionBudget
                && version == "v1beta1"
                && body
                    .at("/spec/selector")
                    .and_then(Value::as_object)
                    .is_some_and(|s| {
                        s.values().all(|v| {
                            v.as_object().is_some_and(|m| m.is_empty())
                                || v.as_array().is_some_and(|a| a.is_empty())
                                || v.is_null()
                        })
                    })
            {
                body["spec"]["selector"] = json!({"matchExpressions": [{"key": "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match", "operator": "Exists"}]});
            }
            object_at(body, &[]).insert("apiVersion".into(), json!(expected));
        }
        Some(_) => {}
        None => {
            object_at(body, &[]).insert("apiVersion".into(), json!(expected));
        }
    }
    match str_at(body, &["kind"]) {
        Some(k) if k != rt.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match {}",
            rt.kind
        ))),
        Some(_) => Ok(()),
        None => {
            object_at(body, &[]).insert("kind".into(), json!(rt.kind));
            Ok(())
        }
    }
}
