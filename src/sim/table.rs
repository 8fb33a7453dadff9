//! Server-side printing: `meta.k8s.io/v1` `Table` responses, which kubectl asks for on `get`
//! and prints as they come. Columns and cells follow the apiserver's printers so that
//! `kubectl get pods -A -o wide` reads as it does against a real cluster.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::object::Stored;
use super::resource::{Builtin, ResourceType};

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(text: Option<&str>) -> Self {
        match text {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Name, type and priority (1 = shown only with `-o wide`).
type Column = (&'static str, &'static str, u8);

fn columns(builtin: Builtin) -> &'static [Column] {
    match builtin {
        Builtin::Pod => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        Builtin::Node => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        Builtin::Namespace => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        Builtin::PodDisruptionBudget => &[
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        Builtin::Deployment => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Builtin::ReplicaSet => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Builtin::StatefulSet => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        Builtin::DaemonSet => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Builtin::Lease => &[
            ("Name", "string", 0),
            ("Holder", "string", 0),
            ("Age", "string", 0),
        ],
        Builtin::Event => &[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        Builtin::Plain | Builtin::Other | Builtin::AccessReview => {
            &[("Name", "string", 0), ("Created At", "date", 0)]
        }
    }
}

/// The `columnDefinitions` of a kind's table.
pub(crate) fn column_definitions(rt: &ResourceType) -> Value {
    Value::Array(
        columns(rt.builtin)
            .iter()
            .map(|(name, kind, priority)| {
                let format = if *name == "Name" { "name" } else { "" };
                json!({"name": name, "type": kind, "format": format, "description": name, "priority": priority})
            })
            .collect(),
    )
}

/// A whole table of `objects`, their rows spliced from the bytes each object keeps.
pub(crate) fn table<'a>(
    rt: &ResourceType,
    objects: impl IntoIterator<Item = &'a Stored>,
    include: IncludeObject,
    now: DateTime<Utc>,
    rv: u64,
    continue_token: Option<&str>,
) -> Vec<u8> {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    let head = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(rt),
    });
    let head = serde_json::to_vec(&head).expect("JSON values serialize");
    let objects = objects.into_iter();
    let mut out = Vec::with_capacity(head.len() + 16 + objects.size_hint().0 * 512);
    // `rows` sorts after every key of the head, as serde_json would have placed it.
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"rows\":[");
    for (i, object) in objects.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_row(object, include, now, &mut out);
    }
    out.extend_from_slice(b"]}");
    out
}

/// One row: `{"cells":[…],"object":…}`.
fn write_row(object: &Stored, include: IncludeObject, now: DateTime<Utc>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"cells\":[");
    object.cells.write(now, out);
    out.push(b']');
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            out.extend_from_slice(b",\"object\":");
            write_partial_metadata(object, out);
        }
        IncludeObject::Object => {
            out.extend_from_slice(b",\"object\":");
            out.extend_from_slice(&object.raw);
        }
    }
    out.push(b'}');
}

/// The object as `PartialObjectMetadata`.
pub(crate) fn write_partial_metadata(object: &Stored, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"{\"apiVersion\":\"meta.k8s.io/v1\",\"kind\":\"PartialObjectMetadata\",\"metadata\":",
    );
    out.extend_from_slice(object.metadata());
    out.push(b'}');
}
