//! The API verbs on the stored objects: list, create, update, patch, delete, evict, with the
//! apiserver's rules (server-set metadata, optimistic concurrency, status subresources,
//! graceful pod deletion, garbage collection of dependents, `dryRun=All`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::disruption::{Budget, BudgetStatus, Verdict, check_eviction};
use super::object::{Stored, object_at, str_at};
use super::patch::{self, PatchError, PatchType};
use super::resource::{Builtin, ResId};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, ApiError};
use super::world::World;

/// Filters and paging of a LIST or WATCH.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListOptions {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_after: Option<String>,
}

impl ListOptions {
    pub fn matches(&self, object: &Stored) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == object.namespace)
            && self.labels.matches(&object.labels)
            && self.fields.matches(object)
    }
}

pub(crate) struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub rv: u64,
    pub continue_token: Option<String>,
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

/// Continue tokens are opaque to clients; this one names the resourceVersion of the first
/// page and the last key served.
pub(crate) fn encode_continue(rv: u64, key: &str) -> String {
    hex::encode(format!("{rv}\n{key}"))
}

pub(crate) fn decode_continue(token: &str) -> Result<String, ApiError> {
    let bytes =
        hex::decode(token).map_err(|_| ApiError::bad_request("continue key is not valid"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| ApiError::bad_request("continue key is not valid"))?;
    let (_, key) = text
        .split_once('\n')
        .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
    Ok(key.to_string())
}

impl World {
    pub fn list(&self, res: ResId, options: &ListOptions) -> ListPage {
        let after = options.continue_after.as_deref();
        let map = &self.objects[res];
        let candidates: Box<dyn Iterator<Item = &Arc<Stored>>> =
            match (res == self.ids.pod, options.fields.pinned("spec.nodeName")) {
                (true, Some(node)) if !node.is_empty() => Box::new(
                    self.pods_by_node
                        .get(node)
                        .into_iter()
                        .flatten()
                        .filter(move |k| after.is_none_or(|a| k.as_str() > a))
                        .filter_map(move |k| map.get(k)),
                ),
                _ => match (&options.namespace, after) {
                    (_, Some(after)) => Box::new(
                        map.range::<str, _>((
                            std::ops::Bound::Excluded(after),
                            std::ops::Bound::Unbounded,
                        ))
                        .map(|(_, v)| v),
                    ),
                    (Some(ns), None) if !ns.is_empty() => Box::new(self.in_namespace(res, ns)),
                    _ => Box::new(map.values()),
                },
            };
        let mut items = Vec::new();
        let mut continue_token = None;
        for object in candidates {
            if let Some(ns) = &options.namespace
                && !ns.is_empty()
                && object.namespace > *ns
            {
                break;
            }
            if !options.matches(object) {
                continue;
            }
            if options.limit.is_some_and(|limit| items.len() >= limit) {
                let last: &Arc<Stored> = items.last().expect("limit is at least one");
                continue_token = Some(encode_continue(self.rv, &last.key));
                break;
            }
            items.push(object.clone());
        }
        ListPage {
            items,
            rv: self.rv,
            continue_token,
        }
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
    pub fn update(
        &mut self,
        res: ResId,
        namespace: &str,
        name: &str,
        mut body: Value,
        status_only: bool,
        dry_run: bool,
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
                return self.create(res, namespace, body, dry_run);
            }
            None => return Err(ApiError::not_found(&rt, name)),
        };
        if let Some(rv) =
            str_at(&body, &["metadata", "resourceVersion"]).filter(|rv| !rv.is_empty())
            && rv != current.rv.to_string()
        {
            return Err(ApiError::modified(&rt, name));
        }
        self.commit_change(res, &current, body, status_only, dry_run)
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
    ) -> Result<Value, ApiError> {
        self.read_only(res)?;
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
        self.commit_change(res, &current, value, status_only, dry_run)
    }

    /// Stores the result of an update or patch, keeping what clients may not change.
    fn commit_change(
        &mut self,
        res: ResId,
        current: &Stored,
        mut new: Value,
        status_only: bool,
        dry_run: bool,
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
            match old.pointer(&format!("/metadata/{kept}")) {
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
        if super::world::uses_generation(rt.builtin) && old.get("spec") != new.get("spec") {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                + 1;
            object_at(&mut new, &["metadata"]).insert("generation".into(), json!(generation));
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
        let page = self.list(
            res,
            &ListOptions {
                limit: None,
                continue_after: None,
                ..options.clone()
            },
        );
        let mut deleted = Vec::new();
        for object in page.items {
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
                        .pointer("/metadata/ownerReferences")
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
        let api_version = str_at(body, &["apiVersion"]).unwrap_or("policy/v1");
        if !matches!(api_version, "policy/v1" | "policy/v1beta1")
            || str_at(body, &["kind"]).is_some_and(|k| k != "Eviction")
        {
            return Err(ApiError::bad_request(format!(
                "expected an Eviction of policy/v1 or policy/v1beta1, got {} {api_version}",
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
                let budget =
                    Budget::from_spec(pdb_value.get("spec")).map_err(ApiError::internal)?;
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
                        return Err(too_many_requests(format!(
                            "The disruption budget {} needs {desired_healthy} healthy pods and has {current_healthy} currently",
                            pdb.name
                        )));
                    }
                    Verdict::NotYetProcessed => {
                        return Err(too_many_requests(format!(
                            "The disruption budget {} is still being processed by the server.",
                            pdb.name
                        )));
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
            self.delete_pod(&pod.key, options.grace_period);
            self.settle();
        }
        Ok(status::success(201))
    }

    /// Records an eviction in the PDB as the eviction subresource does, before the pod goes.
    fn take_disruption(&mut self, pdb_key: &str, pod_name: &str) {
        let now = self.now_string();
        self.modify(self.ids.pdb, pdb_key, |v| {
            let allowed = v
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                - 1;
            let observed = v
                .pointer("/status/observedGeneration")
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

fn too_many_requests(cause: String) -> ApiError {
    ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    )
    .with_details(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]}))
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
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
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
