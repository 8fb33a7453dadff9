//! What a request asks for beyond its path: the representation (`Accept`: JSON, Table or
//! PartialObjectMetadata), query parameters, and the shape of a streaming (watch) response.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::status::ApiError;
use super::table::IncludeObject;

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

pub(crate) type Query = Vec<(String, String)>;

pub(crate) fn query_param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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
