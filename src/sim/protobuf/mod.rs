//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which kubectl 1.32 and later sends for built-in kinds (`create deployment`, `create pdb`,
//! the DeleteOptions of `drain --disable-eviction`), turned into the JSON the rest of the
//! simulator works with.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` envelope naming the object's
//! apiVersion and kind, around the object's own bytes. The wire format is read with prost's
//! primitives; the messages come from field tables generated from the API types' struct tags
//! (`schema.rs`, see `scripts/gen-sim-protobuf.py`), so no `protoc` is involved. JSON follows
//! the types' `omitempty` rules, so a decoded object reads as the same object sent as JSON.
//! A field the tables do not know is refused, never dropped.

#[rustfmt::skip]
mod schema;

use base64::Engine as _;
use bytes::Buf;
use chrono::{DateTime, SecondsFormat};
use prost::encoding::{WireType, decode_key, decode_varint};
use serde_json::{Map, Value, json};

/// The media type of protobuf bodies.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One field of a message.
pub(super) struct Field {
    pub tag: u32,
    /// The JSON name; empty for an embedded struct whose fields are inlined.
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    /// A pointer or a field without `omitempty`: its zero value is shown, not left out.
    pub keep_zero: bool,
}

pub(super) enum Kind {
    Str,
    Int,
    Bool,
    Time,
    MicroTime,
    IntOrString,
    Quantity,
    StrMap,
    BytesMap,
    QuantityMap,
    Message(fn() -> &'static [Field]),
}

/// Decodes a protobuf request body into the object as JSON.
pub(crate) fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf magic number")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut buf = envelope;
    while buf.has_remaining() {
        let (tag, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        match (tag, wire) {
            (1, WireType::LengthDelimited) => {
                let mut meta = length_delimited(&mut buf)?;
                while meta.has_remaining() {
                    let (tag, wire) = decode_key(&mut meta).map_err(|e| e.to_string())?;
                    let text = string(length_delimited(&mut meta)?)?;
                    match (tag, wire) {
                        (1, WireType::LengthDelimited) => api_version = text,
                        (2, WireType::LengthDelimited) => kind = text,
                        _ => return Err(format!("unexpected field {tag} in the envelope's type")),
                    }
                }
            }
            (2, WireType::LengthDelimited) => raw = length_delimited(&mut buf)?,
            (3 | 4, WireType::LengthDelimited) => {
                let text = string(length_delimited(&mut buf)?)?;
                if !text.is_empty() && tag == 3 {
                    return Err(format!("content encoding {text:?} is not supported"));
                }
            }
            _ => return Err(format!("unexpected field {tag} in the protobuf envelope")),
        }
    }
    let fields = schema::root(&api_version, &kind).ok_or_else(|| {
        format!("the simulator cannot read {kind} {api_version} as protobuf; send it as JSON")
    })?;
    let mut object = message(raw, fields, &kind)?;
    if let Value::Object(map) = &mut object
        && api_version != "meta.k8s.io/v1"
    {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    Ok(object)
}

fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = decode_varint(buf).map_err(|e| e.to_string())? as usize;
    if len > buf.len() {
        return Err("a length runs past the end of the body".into());
    }
    let (value, rest) = buf.split_at(len);
    *buf = rest;
    Ok(value)
}

fn string(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
}

/// One message as a JSON object.
fn message(mut buf: &[u8], fields: &[Field], what: &str) -> Result<Value, String> {
    let mut out = Map::new();
    while buf.has_remaining() {
        let (tag, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let field = fields.iter().find(|f| f.tag == tag).ok_or_else(|| {
            format!(
                "field {tag} of {what} is not one the simulator decodes; send the object as JSON"
            )
        })?;
        let value = match (&field.kind, wire) {
            (Kind::Int, WireType::Varint) => {
                json!(decode_varint(&mut buf).map_err(|e| e.to_string())? as i64)
            }
            (Kind::Bool, WireType::Varint) => {
                json!(decode_varint(&mut buf).map_err(|e| e.to_string())? != 0)
            }
            (_, WireType::LengthDelimited) => {
                let bytes = length_delimited(&mut buf)?;
                scalar(&field.kind, bytes, field.name)?
            }
            _ => return Err(format!("field {tag} of {what} has an unexpected wire type")),
        };
        if field.name.is_empty() {
            // An embedded struct: its fields belong to this object.
            if let Value::Object(inner) = value {
                out.extend(inner);
            }
            continue;
        }
        match &field.kind {
            Kind::StrMap | Kind::BytesMap | Kind::QuantityMap => {
                let entry = out.entry(field.name).or_insert_with(|| json!({}));
                if let (Some(map), Value::Object(pair)) = (entry.as_object_mut(), value) {
                    map.extend(pair);
                }
            }
            _ if field.repeated => {
                let entry = out.entry(field.name).or_insert_with(|| json!([]));
                if let Some(list) = entry.as_array_mut() {
                    list.push(value);
                }
            }
            _ => {
                out.insert(field.name.into(), value);
            }
        }
    }
    // What the JSON encoding leaves out: zero values of `omitempty` fields.
    for field in fields {
        if field.keep_zero || field.name.is_empty() {
            continue;
        }
        if out.get(field.name).is_some_and(is_zero) {
            out.remove(field.name);
        }
    }
    Ok(Value::Object(out))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        // encoding/json's omitempty keeps an empty struct (`"spec": {}`).
        Value::Object(_) => false,
    }
}

/// A length-delimited value of `kind`.
fn scalar(kind: &Kind, bytes: &[u8], name: &str) -> Result<Value, String> {
    Ok(match kind {
        Kind::Str => json!(string(bytes)?),
        Kind::Message(fields) => message(bytes, fields(), name)?,
        Kind::Time | Kind::MicroTime => time(bytes, matches!(kind, Kind::MicroTime))?,
        Kind::IntOrString => int_or_string(bytes)?,
        Kind::Quantity => quantity(bytes)?,
        Kind::StrMap | Kind::BytesMap | Kind::QuantityMap => map_entry(kind, bytes)?,
        Kind::Int | Kind::Bool => return Err(format!("{name} is not length-delimited")),
    })
}

/// `Time` (`seconds`, `nanos`) as RFC 3339; the zero time is null, as in JSON.
fn time(mut buf: &[u8], micro: bool) -> Result<Value, String> {
    let (mut seconds, mut nanos) = (0i64, 0u32);
    while buf.has_remaining() {
        let (tag, _) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let n = decode_varint(&mut buf).map_err(|e| e.to_string())?;
        match tag {
            1 => seconds = n as i64,
            2 => nanos = n as u32,
            _ => return Err(format!("unexpected field {tag} in a time")),
        }
    }
    if seconds == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let at = DateTime::from_timestamp(seconds, nanos).ok_or("a time out of range")?;
    Ok(json!(if micro {
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    } else {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }))
}

/// `IntOrString` (`type`, `intVal`, `strVal`) as a number or a string.
fn int_or_string(mut buf: &[u8]) -> Result<Value, String> {
    let (mut is_string, mut int, mut text) = (false, 0i64, String::new());
    while buf.has_remaining() {
        let (tag, _) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        match tag {
            1 => is_string = decode_varint(&mut buf).map_err(|e| e.to_string())? == 1,
            2 => int = decode_varint(&mut buf).map_err(|e| e.to_string())? as i32 as i64,
            3 => text = string(length_delimited(&mut buf)?)?,
            _ => return Err(format!("unexpected field {tag} in an IntOrString")),
        }
    }
    Ok(if is_string { json!(text) } else { json!(int) })
}

/// `Quantity` (`string`) as its string.
fn quantity(mut buf: &[u8]) -> Result<Value, String> {
    let mut text = String::new();
    while buf.has_remaining() {
        let (tag, _) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let bytes = length_delimited(&mut buf)?;
        if tag == 1 {
            text = string(bytes)?;
        }
    }
    Ok(json!(text))
}

/// One map entry (`key` = 1, `value` = 2) as a one-key object.
fn map_entry(kind: &Kind, mut buf: &[u8]) -> Result<Value, String> {
    let (mut key, mut value) = (String::new(), Value::String(String::new()));
    if matches!(kind, Kind::QuantityMap) {
        value = json!("0");
    }
    while buf.has_remaining() {
        let (tag, _) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let bytes = length_delimited(&mut buf)?;
        match tag {
            1 => key = string(bytes)?,
            2 => {
                value = match kind {
                    Kind::StrMap => json!(string(bytes)?),
                    Kind::BytesMap => {
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                    _ => quantity(bytes)?,
                }
            }
            _ => return Err(format!("unexpected field {tag} in a map entry")),
        }
    }
    let mut pair = Map::new();
    pair.insert(key, value);
    Ok(Value::Object(pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag << 3 | 2), out);
        varint(value.len() as u64, out);
        out.extend_from_slice(value);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes(1, api_version.as_bytes(), &mut type_meta);
        bytes(2, kind.as_bytes(), &mut type_meta);
        let mut out = MAGIC.to_vec();
        bytes(1, &type_meta, &mut out);
        bytes(2, raw, &mut out);
        bytes(3, b"", &mut out);
        bytes(4, b"", &mut out);
        out
    }

    // What Go's generated marshaller writes for `kubectl create namespace shop`: every
    // non-pointer string, even empty, and a zero creation time.
    #[test]
    fn a_namespace_reads_as_its_json() {
        let mut meta = Vec::new();
        bytes(1, b"shop", &mut meta);
        bytes(2, b"", &mut meta);
        bytes(3, b"", &mut meta);
        bytes(8, b"", &mut meta);
        let mut label = Vec::new();
        bytes(1, b"team", &mut label);
        bytes(2, b"", &mut label);
        bytes(11, &label, &mut meta);
        let mut ns = Vec::new();
        bytes(1, &meta, &mut ns);
        bytes(2, b"", &mut ns);
        let mut status = Vec::new();
        bytes(1, b"", &mut status);
        bytes(3, &status, &mut ns);
        let value = decode(&envelope("v1", "Namespace", &ns)).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": ""}}, "spec": {}, "status": {}})
        );
    }

    #[test]
    fn budgets_keep_int_or_string_and_delete_options_their_zeros() {
        let mut min = Vec::new();
        varint(1 << 3, &mut min);
        varint(1, &mut min);
        bytes(3, b"50%", &mut min);
        let mut spec = Vec::new();
        bytes(1, &min, &mut spec);
        let mut pdb = Vec::new();
        bytes(2, &spec, &mut pdb);
        let value = decode(&envelope("policy/v1", "PodDisruptionBudget", &pdb)).unwrap();
        assert_eq!(value["spec"]["minAvailable"], json!("50%"));

        let mut options = Vec::new();
        varint(1 << 3, &mut options);
        varint(0, &mut options);
        let value = decode(&envelope("meta.k8s.io/v1", "DeleteOptions", &options)).unwrap();
        assert_eq!(value, json!({"gracePeriodSeconds": 0}));
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let mut ns = Vec::new();
        bytes(9, b"x", &mut ns);
        let err = decode(&envelope("v1", "Namespace", &ns)).unwrap_err();
        assert!(err.contains("field 9 of Namespace"), "{err}");
        assert!(decode(&envelope("example.com/v1", "Widget", &[])).is_err());
        assert!(decode(b"{}").is_err());
    }
}
