//! Label and field selectors: the query-string syntax (`app=web,tier!=db`, `env in (a,b)`),
//! `LabelSelector` objects (PDBs, ReplicaSets) and node-affinity terms.

use std::collections::BTreeMap;

use serde_json::Value;

use super::object::Stored;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, f64),
    LessThan(String, f64),
    /// Matches nothing: a nil `LabelSelector`.
    Nothing,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::GreaterThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<f64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<f64>().ok())
                .is_some_and(|l| l < *n),
            Requirement::Nothing => false,
        }
    }
}

/// A conjunction of label requirements. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches no object (a nil `LabelSelector` in the API).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: vec![Requirement::Nothing],
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// A `key=value` label every matching object must carry, if the selector names one: the
    /// key to an index of the objects worth testing.
    pub fn required_label(&self) -> Option<(&str, &str)> {
        self.requirements.iter().find_map(|r| match r {
            Requirement::Equals(key, value) => Some((key.as_str(), value.as_str())),
            Requirement::In(key, values) if values.len() == 1 => {
                Some((key.as_str(), values[0].as_str()))
            }
            _ => None,
        })
    }

    /// Parses the `labelSelector` query syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Converts a `LabelSelector` object (`matchLabels` + `matchExpressions`). `None` or JSON
    /// null is the nil selector, which matches nothing.
    pub fn from_object(value: Option<&Value>) -> Result<Self, String> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(LabelSelector::nothing());
        };
        let mut requirements = Vec::new();
        if let Some(labels) = value.get("matchLabels").and_then(Value::as_object) {
            for (key, v) in labels {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("matchLabels.{key} must be a string"))?;
                requirements.push(Requirement::Equals(key.clone(), v.to_string()));
            }
        }
        if let Some(expressions) = value.get("matchExpressions").and_then(Value::as_array) {
            for expression in expressions {
                requirements.push(expression_requirement(expression)?);
            }
        }
        Ok(LabelSelector { requirements })
    }
}

fn expression_requirement(expression: &Value) -> Result<Requirement, String> {
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or("matchExpressions entry without key")?
        .to_string();
    let operator = expression
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let values: Vec<String> = expression
        .get("values")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let number = |values: &[String]| -> Result<f64, String> {
        values
            .first()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("operator {operator} on {key} needs one integer value"))
    };
    Ok(match operator {
        "In" => Requirement::In(key, values),
        "NotIn" => Requirement::NotIn(key, values),
        "Exists" => Requirement::Exists(key),
        "DoesNotExist" => Requirement::DoesNotExist(key),
        "Gt" => {
            let n = number(&values)?;
            Requirement::GreaterThan(key, n)
        }
        "Lt" => {
            let n = number(&values)?;
            Requirement::LessThan(key, n)
        }
        other => return Err(format!("{other:?} is not a valid label selector operator")),
    })
}

/// Splits at commas that are not inside `( … )`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a set like (a,b) but found {text:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(valid_key(key.trim())?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            valid_key(key.trim())?,
            value.trim().to_string(),
        ));
    }
    if let Some((key, value)) = part.split_once("==") {
        return Ok(Requirement::Equals(
            valid_key(key.trim())?,
            value.trim().to_string(),
        ));
    }
    if let Some((key, value)) = part.split_once('=') {
        return Ok(Requirement::Equals(
            valid_key(key.trim())?,
            value.trim().to_string(),
        ));
    }
    let number = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| format!("{v:?} is not a number"))
    };
    if let Some((key, value)) = part.split_once('>') {
        return Ok(Requirement::GreaterThan(
            valid_key(key.trim())?,
            number(value)?,
        ));
    }
    if let Some((key, value)) = part.split_once('<') {
        return Ok(Requirement::LessThan(
            valid_key(key.trim())?,
            number(value)?,
        ));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        return Ok(Requirement::Exists(valid_key(key)?));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(Requirement::NotIn(valid_key(key)?, parse_set(set)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(Requirement::In(valid_key(key)?, parse_set(set)?));
    }
    Err(format!("unable to parse requirement: {part:?}"))
}

fn valid_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

/// A conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a `fieldSelector`, accepting only fields the kind supports (as the apiserver does).
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !supported.contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, object: &Stored) -> bool {
        self.terms
            .iter()
            .all(|(field, equal, value)| (object.field(field).unwrap_or("") == value) == *equal)
    }

    /// The value this selector pins a field to (`spec.nodeName=n1` → `n1`), for index lookups.
    pub fn pinned(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, equal, _)| f == field && *equal)
            .map(|(_, _, v)| v.as_str())
    }
}

/// Whether a node (its name and labels) satisfies a pod's required node affinity: any one of
/// the `nodeSelectorTerms` must match, and within a term all expressions must.
pub(crate) fn node_affinity_matches(
    terms: &Value,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(terms) = terms.as_array() else {
        return true;
    };
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|term| {
        let expressions_ok = term
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(|exprs| {
                exprs
                    .iter()
                    .all(|e| expression_requirement(e).is_ok_and(|r| r.matches(labels)))
            })
            .unwrap_or(true);
        let fields_ok = term
            .get("matchFields")
            .and_then(Value::as_array)
            .map(|exprs| {
                let fields = BTreeMap::from([("metadata.name".to_string(), node_name.to_string())]);
                exprs
                    .iter()
                    .all(|e| expression_requirement(e).is_ok_and(|r| r.matches(&fields)))
            })
            .unwrap_or(true);
        let has_any = term.get("matchExpressions").is_some() || term.get("matchFields").is_some();
        has_any && expressions_ok && fields_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn required_label_is_an_equality_or_a_single_value_set() {
        let required = |text: &str| {
            LabelSelector::parse(text)
                .unwrap()
                .required_label()
                .map(|(k, v)| format!("{k}={v}"))
        };
        assert_eq!(required("tier!=a,app=web").as_deref(), Some("app=web"));
        assert_eq!(required("app in (web)").as_deref(), Some("app=web"));
        assert_eq!(required("app in (web,db)"), None);
        assert_eq!(required("app"), None);
        assert_eq!(required(""), None);
    }

    #[test]
    fn query_syntax_covers_equality_sets_and_existence() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("rank", "3")]);
        let cases = [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (db, web)", true),
            ("tier notin (front)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("rank>2", true),
            ("rank<2", false),
            ("", true),
        ];
        for (text, expected) in cases {
            assert_eq!(
                LabelSelector::parse(text).unwrap().matches(&l),
                expected,
                "{text}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("bad key=1").is_err());
    }

    #[test]
    fn selector_objects_nil_matches_nothing_and_empty_matches_all() {
        let l = labels(&[("app", "web")]);
        assert!(!LabelSelector::from_object(None).unwrap().matches(&l));
        assert!(
            LabelSelector::from_object(Some(&json!({})))
                .unwrap()
                .matches(&l)
        );
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]});
        assert!(LabelSelector::from_object(Some(&s)).unwrap().matches(&l));
        let s =
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]});
        assert!(!LabelSelector::from_object(Some(&s)).unwrap().matches(&l));
        assert!(
            LabelSelector::from_object(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
            ))
            .is_err()
        );
    }

    #[test]
    fn field_selectors_reject_unsupported_fields() {
        assert!(FieldSelector::parse("spec.nodeName=n1", &["spec.nodeName"]).is_ok());
        let err = FieldSelector::parse("spec.bogus=1", &["spec.nodeName"]).unwrap_err();
        assert_eq!(err, "field label not supported: spec.bogus");
        let s =
            FieldSelector::parse("spec.nodeName==n1,metadata.name!=x", &["spec.nodeName"]).unwrap();
        assert_eq!(s.pinned("spec.nodeName"), Some("n1"));
    }

    #[test]
    fn node_affinity_terms_are_ored_and_expressions_anded() {
        let l = labels(&[("zone", "a"), ("disk", "ssd")]);
        let terms = json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}, {"key": "disk", "operator": "Exists"}]}
        ]);
        assert!(node_affinity_matches(&terms, "n1", &l));
        let terms = json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]);
        assert!(!node_affinity_matches(&terms, "n1", &l));
    }
}
