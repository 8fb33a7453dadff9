//! HTTP routing of the Kubernetes API: path → resource, method → verb, `Accept` → JSON, Table
//! or PartialObjectMetadata, and errors → `Status` bodies.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::control::{self, RequestKind};
use super::discovery;
use super::object::Stored;
use super::ops::{DeleteOptions, ListOptions, decode_continue};
use super::patch::PatchType;
use super::resource::ResId;
use super::selector::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::status::ApiError;
use super::table::{self, IncludeObject};
use super::watch;

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Table(IncludeObject),
    PartialMetadata,
}

/// Picks the first representation in `Accept` that the simulator can produce.
pub(crate) fn negotiate(accept: Option<&str>, include: IncludeObject) -> Result<Format, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let params: Vec<(&str, &str)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        match (param("as"), param("g")) {
            (None, _) => return Ok(Format::Json),
            (Some("Table"), Some("meta.k8s.io")) => return Ok(Format::Table(include)),
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Ok(Format::PartialMetadata);
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// A parsed resource path.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub res: ResId,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub watch_path: bool,
}

enum Route {
    Version,
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
            namespace,
            name: rest.get(1).map(|s| s.to_string()),
            subresource: rest.get(2).map(|s| s.to_string()),
            watch_path,
        })
    })
}

pub(crate) type Query = Vec<(String, String)>;

fn query_param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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
    json_response(error.code, &error.body())
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
            .read(|w| discovery::resource_list(&w.registry, &group, &version))
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
    let labels = LabelSelector::parse(query_param(query, "labelSelector").unwrap_or_default())
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
    let continue_after = match query_param(query, "continue") {
        None | Some("") => None,
        Some(token) => Some(decode_continue(token)?),
    };
    Ok(ListOptions {
        namespace: target.namespace.clone(),
        labels,
        fields,
        limit,
        continue_after,
    })
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
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
    if let Some(sub) = sub {
        let allowed = match sub {
            "status" => shared.read(|w| w.registry.get(res).has_status()),
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
    match (method.as_str(), name) {
        ("GET", _) if watching => {
            let format = negotiate(accept, include)?;
            let options = list_options(shared, &target, query)?;
            watch::serve(shared.clone(), res, options, query, format)
        }
        ("GET", Some(name)) => {
            let format = negotiate(accept, include)?;
            let object = shared.read(|w| w.lookup(res, &namespace, &name))?;
            Ok(single(shared, res, &object, format))
        }
        ("GET", None) => {
            let format = negotiate(accept, include)?;
            let options = list_options(shared, &target, query)?;
            let page = shared.read(|w| w.list(res, &options));
            Ok(list_response(shared, res, page, format))
        }
        ("POST", Some(name)) if sub == Some("eviction") => {
            let dry_run = dry_run(query)?;
            let eviction = body_json(body)?;
            let status = shared.with_world(|w| w.evict(&namespace, &name, &eviction, dry_run))?;
            Ok(json_response(201, &status))
        }
        ("POST", None) => {
            let dry_run = dry_run(query)?;
            let object = body_json(body)?;
            let created = shared.with_world(|w| w.create(res, &namespace, object, dry_run))?;
            Ok(json_response(201, &created))
        }
        ("PUT", Some(name)) => {
            let dry_run = dry_run(query)?;
            let object = body_json(body)?;
            let updated = shared
                .with_world(|w| w.update(res, &namespace, &name, object, status_only, dry_run))?;
            Ok(json_response(200, &updated))
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
                )
            })?;
            Ok(json_response(200, &patched))
        }
        ("DELETE", Some(name)) => {
            let options_body = body_json(body)?;
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
            let options_body = body_json(body)?;
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

/// One object in the negotiated representation.
fn single(shared: &Shared, res: ResId, object: &Stored, format: Format) -> Response {
    match format {
        Format::Json => raw_json(200, object.raw.clone()),
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
    page: super::ops::ListPage,
    format: Format,
) -> Response {
    let (rt, now) = shared.read(|w| (w.registry.get(res).clone(), w.clock.now()));
    let mut metadata = json!({"resourceVersion": page.rv.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    let body = match format {
        Format::Json => {
            let head = json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": metadata});
            let size: usize = page.items.iter().map(|o| o.raw.len() + 1).sum();
            splice_items(&head, size, &page.items, |object, out| {
                out.extend_from_slice(&object.raw);
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

/// A response whose body is a stream of watch events.
pub(crate) fn streaming(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation_follows_kubectl_preferences() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(kubectl_get), IncludeObject::Metadata).unwrap(),
            Format::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf, application/json"),
                IncludeObject::Metadata
            )
            .unwrap(),
            Format::Json
        );
        assert_eq!(
            negotiate(None, IncludeObject::Metadata).unwrap(),
            Format::Json
        );
        assert_eq!(
            negotiate(Some("*/*"), IncludeObject::Metadata).unwrap(),
            Format::Json
        );
        let err = negotiate(
            Some("application/vnd.kubernetes.protobuf"),
            IncludeObject::Metadata,
        )
        .unwrap_err();
        assert_eq!(err.code, 406);
        let discovery =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(discovery), IncludeObject::Metadata).unwrap(),
            Format::Json
        );
    }
}
