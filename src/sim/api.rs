//! HTTP routing of the Kubernetes API: path → resource, method → verb, `Accept` → JSON, Table
//! or PartialObjectMetadata, and errors → `Status` bodies.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::control;
use super::discovery;
use super::faults::RequestKind;
use super::format::{Format, Query, negotiate, query_param};
use super::object::Stored;
use super::openapi;
use super::ops::{Continue, DeleteOptions, ListOptions, ListPage, Writer};
use super::patch::{self, PatchType};
use super::protobuf;
use super::resource::{Builtin, ResId};
use super::selector::FieldSelector;
use super::shared::Shared;
use super::status::ApiError;
use super::table::{self, IncludeObject};
use super::watch;
use crate::model::selector::Selector;

/// A parsed resource path.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub res: ResId,
    /// The version in the path, which the response's objects carry.
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub watch_path: bool,
}

enum Route {
    Version,
    OpenApiV2,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Resource(Target),
    NotFound,
}

fn route(shared: &Shared, path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::Resources(String::new(), version.to_string()),
        ["apis", group, version] => Route::Resources(group.to_string(), version.to_string()),
        ["api", version, rest @ ..] => resource_route(shared, "", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(shared, group, version, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(shared: &Shared, group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    shared.read(|world| {
        let lookup = |plural: &str| world.registry.by_plural(group, version, plural);
        let namespaced_path = rest.len() >= 3
            && rest[0] == "namespaces"
            && lookup(rest[2]).is_some_and(|r| world.registry.get(r).namespaced);
        let (namespace, rest) = if namespaced_path {
            (Some(rest[1].to_string()), &rest[2..])
        } else {
            (None, rest)
        };
        let Some(res) = rest.first().and_then(|plural| lookup(plural)) else {
            return Route::NotFound;
        };
        if rest.len() > 3
            || (namespace.is_none() && world.registry.get(res).namespaced && rest.len() > 1)
        {
            return Route::NotFound;
        }
        Route::Resource(Target {
            res,
            version: version.to_string(),
            namespace,
            name: rest.get(1).map(|s| s.to_string()),
            subresource: rest.get(2).map(|s| s.to_string()),
            watch_path,
        })
    })
}

fn json_response(code: u16, value: &Value) -> Response {
    raw_json(
        code,
        Bytes::from(serde_json::to_vec(value).expect("JSON values serialize")),
    )
}

fn raw_json(code: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) fn error_response(error: &ApiError) -> Response {
    let mut response = json_response(error.code, &error.body());
    // The apiserver turns a Status's retryAfterSeconds into a Retry-After header.
    if let Some(seconds) = error
        .details
        .as_ref()
        .and_then(|d| d.get("retryAfterSeconds"))
        .and_then(Value::as_u64)
        && let Ok(value) = header::HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The single entry point of the HTTP server.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path == "/sim" || path.starts_with("/sim/") {
        return control::handle(shared, &method, &path, &body);
    }
    let query: Query = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let route = route(&shared, &path);
    let kind = request_kind(&shared, &route, &method, &query);
    let (fault, delay) = shared.control().admit(&kind);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(fault) = fault {
        return error_response(&fault);
    }
    let result = match route {
        Route::Version => Ok(json_response(
            200,
            &discovery::version(&shared.read(|w| w.control_plane_version.clone())),
        )),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::OpenApiV2 => {
            let wants_protobuf = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains(openapi::PROTOBUF));
            let (registry, version) =
                shared.read(|w| (w.registry.clone(), w.control_plane_version.clone()));
            Ok(if wants_protobuf {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, openapi::PROTOBUF)],
                    openapi::v2_protobuf(&registry, &version),
                )
                    .into_response()
            } else {
                json_response(200, &openapi::v2_json(&registry, &version))
            })
        }
        Route::CoreVersions => Ok(json_response(
            200,
            &discovery::core_versions(&shared.address.to_string()),
        )),
        Route::Groups => Ok(json_response(
            200,
            &shared.read(|w| discovery::groups(&w.registry)),
        )),
        Route::Group(group) => shared
            .read(|w| discovery::api_group(&w.registry, &group))
            .map(|doc| json_response(200, &doc))
            .ok_or_else(|| not_found_path(&path)),
        Route::Resources(group, version) => shared
            .read(|w| discovery::resource_list(&w.registry, &group, &version, &w.version))
            .map(|doc| json_response(200, &doc))
            .ok_or_else(|| not_found_path(&path)),
        Route::Resource(target) => {
            serve_resource(&shared, &method, target, &query, &headers, &body)
        }
        Route::NotFound => Err(not_found_path(&path)),
    };
    result.unwrap_or_else(|error| error_response(&error))
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
}

fn request_kind(shared: &Shared, route: &Route, method: &Method, query: &Query) -> RequestKind {
    let Route::Resource(target) = route else {
        return RequestKind {
            verb: "get",
            resource: "discovery".into(),
            namespace: None,
        };
    };
    let watching = target.watch_path || matches!(query_param(query, "watch"), Some("true" | "1"));
    let verb = match (method.as_str(), target.name.is_some()) {
        ("GET", _) if watching => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    };
    let plural = shared.read(|w| w.registry.get(target.res).plural.clone());
    let resource = match &target.subresource {
        Some(sub) => format!("{plural}/{sub}"),
        None => plural,
    };
    RequestKind {
        verb,
        resource,
        namespace: target.namespace.clone(),
    }
}

fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match query_param(query, "dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value {other:?}: valid values are \"All\""
        ))),
    }
}

fn list_options(shared: &Shared, target: &Target, query: &Query) -> Result<ListOptions, ApiError> {
    let fields_supported = shared.read(|w| w.registry.get(target.res).selectable_fields());
    let labels = Selector::parse(query_param(query, "labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let mut field_text = query_param(query, "fieldSelector")
        .unwrap_or_default()
        .to_string();
    if let Some(name) = &target.name {
        // A watch on a single object (`…/pods/NAME?watch=true`).
        if !field_text.is_empty() {
            field_text.push(',');
        }
        field_text.push_str(&format!("metadata.name={name}"));
    }
    let fields =
        FieldSelector::parse(&field_text, fields_supported).map_err(ApiError::bad_request)?;
    let limit = match query_param(query, "limit") {
        None | Some("") | Some("0") => None,
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}")))?,
        ),
    };
    let continue_from = match query_param(query, "continue") {
        None | Some("") => None,
        Some(token) => Some(Continue::decode(token)?),
    };
    let resource_version =
        match query_param(query, "resourceVersion") {
            None | Some("") => None,
            Some(text) => Some(text.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {text:?}"))
            })?),
        };
    Ok(ListOptions {
        namespace: target.namespace.clone(),
        labels,
        fields,
        limit,
        continue_from,
        resource_version,
    })
}

/// A request body as JSON: JSON or YAML as sent, protobuf decoded.
fn body_json(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with(protobuf::MEDIA_TYPE) {
        return protobuf::decode(body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not a valid object: {e}"))
        });
    }
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml_ng::from_slice(body))
        .map_err(|e| ApiError::bad_request(format!("the request body is not a valid object: {e}")))
}

fn serve_resource(
    shared: &Arc<Shared>,
    method: &Method,
    target: Target,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let include = IncludeObject::parse(query_param(query, "includeObject"));
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone();
    let sub = target.subresource.as_deref();
    let status_only = sub == Some("status");
    let watching = target.watch_path || matches!(query_param(query, "watch"), Some("true" | "1"));
    let res = target.res;
    // Objects are stored under the kind's preferred version; one read through an older
    // version the cluster still serves carries that version.
    let served_as = shared.read(|w| {
        let rt = w.registry.get(res);
        (target.version != rt.version).then(|| format!("{}/{}", rt.group, target.version))
    });
    let served_as = served_as.as_deref();
    let relabel = |mut value: Value| {
        if let Some(version) = served_as {
            value["apiVersion"] = json!(version);
        }
        value
    };
    if let Some(sub) = sub {
        let allowed = match sub {
            "status" => shared.read(|w| w.registry.get(res).has_status()),
            "scale" => shared.read(|w| w.registry.get(res).has_scale()),
            "eviction" => shared.read(|w| res == w.ids.pod) && *method == Method::POST,
            _ => false,
        };
        if !allowed {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({sub})"),
            ));
        }
    }
    let scale = sub == Some("scale");
    let writer = Writer {
        field_manager: query_param(query, "fieldManager")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        // The apiserver names a manager that gave no name after its user agent's first word.
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|ua| !ua.is_empty())
            .unwrap_or("unknown")
            .to_string(),
        force: matches!(query_param(query, "force"), Some("true" | "1")),
    };
    match (method.as_str(), name) {
        ("POST", None) if shared.read(|w| w.registry.get(res).builtin == Builtin::AccessReview) => {
            let review = body_json(headers, body)?;
            Ok(json_response(201, &access_review(review)?))
        }
        ("GET", Some(name)) if scale => {
            let object = shared.read(|w| w.scale(res, &namespace, &name))?;
            Ok(json_response(200, &object))
        }
        ("PUT", Some(name)) if scale => {
            let dry_run = dry_run(query)?;
            let scale = body_json(headers, body)?;
            let object = shared
                .with_world(|w| w.set_scale(res, &namespace, &name, &scale, dry_run, &writer))?;
            Ok(json_response(200, &object))
        }
        ("PATCH", Some(name)) if scale => {
            let dry_run = dry_run(query)?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch_type = PatchType::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let object = shared.with_world(|w| {
                let mut current = w.scale(res, &namespace, &name)?;
                patch::apply(&mut current, patch_type, body).map_err(|e| match e {
                    patch::PatchError::Decode(message) => ApiError::bad_request(message),
                    patch::PatchError::Apply(message) => ApiError::new(422, "Invalid", message),
                })?;
                if let Some(meta) = current.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("resourceVersion");
                }
                w.set_scale(res, &namespace, &name, &current, dry_run, &writer)
            })?;
            Ok(json_response(200, &object))
        }
        ("GET", _) if watching => {
            let format = negotiate(accept, include)?;
            let options = list_options(shared, &target, query)?;
            watch::serve(shared.clone(), res, options, query, format, served_as)
        }
        ("GET", Some(name)) => {
            let format = negotiate(accept, include)?;
            let object = shared.read(|w| w.lookup(res, &namespace, &name))?;
            Ok(single(shared, res, &object, format, served_as))
        }
        ("GET", None) => {
            let format = negotiate(accept, include)?;
            let options = list_options(shared, &target, query)?;
            let page = shared.read(|w| w.list(res, &options))?;
            Ok(list_response(shared, res, page, format, served_as))
        }
        ("POST", Some(name)) if sub == Some("eviction") => {
            let dry_run = dry_run(query)?;
            let eviction = body_json(headers, body)?;
            let status = shared.with_world(|w| w.evict(&namespace, &name, &eviction, dry_run))?;
            Ok(json_response(201, &status))
        }
        ("POST", None) => {
            let dry_run = dry_run(query)?;
            let object = body_json(headers, body)?;
            let created =
                shared.with_world(|w| w.create(res, &namespace, object, dry_run, &writer))?;
            Ok(json_response(201, &relabel(created)))
        }
        ("PUT", Some(name)) => {
            let dry_run = dry_run(query)?;
            let object = body_json(headers, body)?;
            let updated = shared.with_world(|w| {
                w.update(
                    res,
                    &namespace,
                    &name,
                    object,
                    status_only,
                    dry_run,
                    &writer,
                )
            })?;
            Ok(json_response(200, &relabel(updated)))
        }
        ("PATCH", Some(name)) => {
            let dry_run = dry_run(query)?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch_type = PatchType::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let patched = shared.with_world(|w| {
                w.patch(
                    res,
                    &namespace,
                    &name,
                    patch_type,
                    body,
                    status_only,
                    dry_run,
                    &writer,
                )
            })?;
            // An apply that created the object answers 201, as a create does.
            let (patched, created) = patched;
            let code = if created { 201 } else { 200 };
            Ok(json_response(code, &relabel(patched)))
        }
        ("DELETE", Some(name)) => {
            let options_body = body_json(headers, body)?;
            let mut options = DeleteOptions::from_body(&options_body);
            if let Some(grace) =
                query_param(query, "gracePeriodSeconds").and_then(|g| g.parse().ok())
            {
                options.grace_period = Some(grace);
            }
            let dry_run = dry_run(query)?
                || options_body
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|v| v == "All"));
            let deleted =
                shared.with_world(|w| w.delete(res, &namespace, &name, &options, dry_run))?;
            Ok(json_response(200, &deleted))
        }
        ("DELETE", None) => {
            let options_body = body_json(headers, body)?;
            let delete = DeleteOptions::from_body(&options_body);
            let dry_run = dry_run(query)?;
            let list = list_options(shared, &target, query)?;
            let deleted =
                shared.with_world(|w| w.delete_collection(res, &list, &delete, dry_run))?;
            let (api_version, list_kind) = shared.read(|w| {
                let rt = w.registry.get(res);
                (rt.api_version(), format!("{}List", rt.kind))
            });
            Ok(json_response(
                200,
                &json!({"kind": list_kind, "apiVersion": api_version, "metadata": {}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// A SelfSubjectAccessReview answered: the simulator authorizes everything, as a
/// `cluster-admin` kubeconfig would be.
fn access_review(mut review: Value) -> Result<Value, ApiError> {
    let spec = review.get("spec");
    if spec.is_none_or(|s| {
        s.get("resourceAttributes").is_none() && s.get("nonResourceAttributes").is_none()
    }) {
        return Err(ApiError::new(
            422,
            "Invalid",
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = json!({
        "allowed": true,
        "reason": "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\"",
    });
    Ok(review)
}

/// One object in the negotiated representation.
fn single(
    shared: &Shared,
    res: ResId,
    object: &Stored,
    format: Format,
    served_as: Option<&str>,
) -> Response {
    match format {
        Format::Json => raw_json(200, object.json_as(served_as)),
        Format::PartialMetadata => {
            let mut out = Vec::with_capacity(object.metadata().len() + 80);
            table::write_partial_metadata(object, &mut out);
            raw_json(200, Bytes::from(out))
        }
        Format::Table(include) => {
            let (rt, now) = shared.read(|w| (w.registry.get(res).clone(), w.clock.now()));
            let body = table::table(&rt, [object], include, now, object.rv, None);
            raw_json(200, Bytes::from(body))
        }
    }
}

fn list_response(
    shared: &Shared,
    res: ResId,
    page: ListPage,
    format: Format,
    served_as: Option<&str>,
) -> Response {
    let (rt, now) = shared.read(|w| (w.registry.get(res).clone(), w.clock.now()));
    let mut metadata = json!({"resourceVersion": page.rv.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let body = match format {
        Format::Json => {
            let api_version = served_as.map_or_else(|| rt.api_version(), str::to_string);
            let head = json!({"kind": format!("{}List", rt.kind), "apiVersion": api_version, "metadata": metadata});
            let size: usize = page.items.iter().map(|o| o.raw.len() + 1).sum();
            splice_items(&head, size, &page.items, |object, out| {
                out.extend_from_slice(&object.json_as(served_as));
            })
        }
        Format::PartialMetadata => {
            let head = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata});
            let size: usize = page.items.iter().map(|o| o.metadata().len() + 80).sum();
            splice_items(&head, size, &page.items, table::write_partial_metadata)
        }
        Format::Table(include) => table::table(
            &rt,
            page.items.iter().map(|o| &**o),
            include,
            now,
            page.rv,
            page.continue_token.as_deref(),
        ),
    };
    raw_json(200, Bytes::from(body))
}

/// `head` with `"items":[…]` appended, each item written by `write`; `items` sorts after every
/// key of a list's head, where serde_json would have placed it.
fn splice_items(
    head: &Value,
    size: usize,
    items: &[Arc<Stored>],
    write: impl Fn(&Stored, &mut Vec<u8>),
) -> Vec<u8> {
    let head = serde_json::to_vec(head).expect("JSON values serialize");
    let mut out = Vec::with_capacity(head.len() + size + 16);
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, object) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(object, &mut out);
    }
    out.extend_from_slice(b"]}");
    out
}
