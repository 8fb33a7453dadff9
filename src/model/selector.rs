//! Label selectors, in both shapes Kubernetes uses: the query-string syntax a user types
//! (`app=web,tier notin (db)`, `labelSelector=` on a LIST) and the `LabelSelector` object a
//! PodDisruptionBudget or a workload carries; and the node-affinity terms the scheduler
//! matches against a node's name and labels.
//!
//! The rules follow `k8s.io/apimachinery/pkg/labels/selector.go` (the parser) and
//! `pkg/apis/meta/v1/helpers.go` (`LabelSelectorAsSelector`): keys are qualified names,
//! values are label values, `Gt`/`Lt` take one integer, a nil object selects nothing and an
//! empty one everything.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiLabelSelector;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
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
            Requirement::GreaterThan(k, n) => number(labels.get(k)).is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => number(labels.get(k)).is_some_and(|l| l < *n),
            Requirement::Nothing => false,
        }
    }
}

fn number(value: Option<&String>) -> Option<i64> {
    value.and_then(|v| v.parse().ok())
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Equals(k, v) => write!(f, "{k}={v}"),
            Requirement::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Requirement::Exists(k) => f.write_str(k),
            Requirement::DoesNotExist(k) => write!(f, "!{k}"),
            Requirement::GreaterThan(k, n) => write!(f, "{k}>{n}"),
            Requirement::LessThan(k, n) => write!(f, "{k}<{n}"),
            Requirement::Nothing => Ok(()),
        }
    }
}

/// A parsed label selector; all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Why a selector string or object is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

impl Selector {
    /// The selector that matches no object (a nil `LabelSelector` in the API).
    pub fn nothing() -> Self {
        Selector {
            requirements: vec![Requirement::Nothing],
        }
    }

    /// Parses the query-string syntax accepted by `kubectl --selector` and `labelSelector=`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError(format!(
                    "empty requirement in selector {text:?}"
                )));
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self { requirements })
    }

    /// Converts a `LabelSelector` object as JSON (`matchLabels` + `matchExpressions`). `None`
    /// or JSON null is the nil selector, which matches nothing.
    pub fn from_json(value: Option<&Value>) -> Result<Self, SelectorError> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(Selector::nothing());
        };
        let mut requirements = Vec::new();
        if let Some(labels) = value.get("matchLabels").and_then(Value::as_object) {
            for (key, v) in labels {
                let v = v
                    .as_str()
                    .ok_or_else(|| SelectorError(format!("matchLabels.{key} must be a string")))?;
                requirements.push(Requirement::Equals(key.clone(), v.to_string()));
            }
        }
        if let Some(expressions) = value.get("matchExpressions").and_then(Value::as_array) {
            for expression in expressions {
                requirements.push(json_expression(expression)?);
            }
        }
        Ok(Selector { requirements })
    }

    /// Converts a typed `LabelSelector` object.
    pub fn from_api(selector: &ApiLabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::Equals(key.clone(), value.clone()));
        }
        for expression in selector.match_expressions.iter().flatten() {
            requirements.push(expression_requirement(
                &expression.key,
                &expression.operator,
                expression.values.clone().unwrap_or_default(),
            )?);
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
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
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Whether a PodDisruptionBudget's selector covers a pod with these labels, as policy/v1
/// defines it: a missing selector covers nothing, an empty one covers the whole namespace, an
/// invalid one covers nothing (the eviction API ignores it too).
pub fn pdb_selects(selector: Option<&ApiLabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector
        .and_then(|s| Selector::from_api(s).ok())
        .is_some_and(|s| s.matches(labels))
}

fn json_expression(expression: &Value) -> Result<Requirement, SelectorError> {
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| SelectorError("matchExpressions entry without key".into()))?;
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
    expression_requirement(key, operator, values)
}

fn expression_requirement(
    key: &str,
    operator: &str,
    values: Vec<String>,
) -> Result<Requirement, SelectorError> {
    let key = key.to_string();
    let integer = |values: &[String]| match values {
        [one] => one.parse::<i64>().map_err(|_| {
            SelectorError(format!("{operator} on {key} needs an integer, not {one:?}"))
        }),
        _ => Err(SelectorError(format!(
            "{operator} on {key} needs exactly one value"
        ))),
    };
    Ok(match operator {
        "In" => Requirement::In(key, values),
        "NotIn" => Requirement::NotIn(key, values),
        "Exists" => Requirement::Exists(key),
        "DoesNotExist" => Requirement::DoesNotExist(key),
        "Gt" => Requirement::GreaterThan(key.clone(), integer(&values)?),
        "Lt" => Requirement::LessThan(key.clone(), integer(&values)?),
        other => {
            return Err(SelectorError(format!(
                "{other:?} is not a valid label selector operator"
            )));
        }
    })
}

/// Splits on commas that are not inside a `( … )` value set.
fn split_top_level(text: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError(format!("unbalanced ')' in selector {text:?}")))?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unclosed '(' in selector {text:?}")));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_of(key.trim(), part)?));
    }
    for (operator, build) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = part.split_once(operator) {
            return Ok(build(
                key_of(key.trim(), part)?,
                value_of(value.trim(), part)?,
            ));
        }
    }
    for (operator, greater) in [(">", true), ("<", false)] {
        if let Some((key, value)) = part.split_once(operator) {
            let key = key_of(key.trim(), part)?;
            let n = value.trim().parse::<i64>().map_err(|_| {
                SelectorError(format!("{part:?}: {operator} needs an integer value"))
            })?;
            return Ok(if greater {
                Requirement::GreaterThan(key, n)
            } else {
                Requirement::LessThan(key, n)
            });
        }
    }
    if let Some(open) = part.find('(') {
        let head: Vec<&str> = part[..open].split_whitespace().collect();
        let Some(body) = part[open + 1..].trim_end().strip_suffix(')') else {
            return Err(SelectorError(format!("{part:?}: expected ')' at the end")));
        };
        let values = body
            .split(',')
            .map(|v| value_of(v.trim(), part))
            .collect::<Result<Vec<_>, _>>()?;
        return match head.as_slice() {
            [key, "in"] => Ok(Requirement::In(key_of(key, part)?, values)),
            [key, "notin"] => Ok(Requirement::NotIn(key_of(key, part)?, values)),
            _ => Err(SelectorError(format!(
                "{part:?}: expected `KEY in (…)` or `KEY notin (…)`"
            ))),
        };
    }
    Ok(Requirement::Exists(key_of(part, part)?))
}

fn key_of(key: &str, part: &str) -> Result<String, SelectorError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if !prefix_ok || !is_name(name) {
        return Err(SelectorError(format!(
            "{part:?}: {key:?} is not a valid label key"
        )));
    }
    Ok(key.to_owned())
}

fn value_of(value: &str, part: &str) -> Result<String, SelectorError> {
    if value.is_empty() || is_name(value) {
        Ok(value.to_owned())
    } else {
        Err(SelectorError(format!(
            "{part:?}: {value:?} is not a valid label value"
        )))
    }
}

/// A label name or value: at most 63 characters, alphanumerics with `-`, `_`, `.` inside.
fn is_name(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !text.is_empty()
        && text.len() <= 63
        && edge(text.chars().next())
        && edge(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One `nodeSelectorTerms` entry: its `matchExpressions` over the node's labels and its
/// `matchFields` over the node's name (the only field the scheduler supports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    labels: Selector,
    fields: Selector,
    /// A term with neither list matches no node.
    empty: bool,
}

impl NodeSelectorTerm {
    /// Parses a term as JSON; an invalid expression makes the term match nothing, as the
    /// scheduler treats it.
    pub fn from_json(term: &Value) -> Self {
        let list = |name: &str| -> Selector {
            let Some(expressions) = term.get(name).and_then(Value::as_array) else {
                return Selector::default();
            };
            expressions
                .iter()
                .map(json_expression)
                .collect::<Result<Vec<_>, _>>()
                .map(|requirements| Selector { requirements })
                .unwrap_or_else(|_| Selector::nothing())
        };
        NodeSelectorTerm {
            labels: list("matchExpressions"),
            fields: list("matchFields"),
            empty: term.get("matchExpressions").is_none() && term.get("matchFields").is_none(),
        }
    }

    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.empty || !self.labels.matches(labels) {
            return false;
        }
        let fields = BTreeMap::from([("metadata.name".to_string(), node_name.to_string())]);
        self.fields.matches(&fields)
    }
}

/// Parses `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms` as JSON.
pub fn node_selector_terms(terms: &Value) -> Vec<NodeSelectorTerm> {
    terms
        .as_array()
        .map(|terms| terms.iter().map(NodeSelectorTerm::from_json).collect())
        .unwrap_or_default()
}

/// Whether a node satisfies a pod's required node affinity: any one of the terms must match
/// (no terms: any node).
pub fn node_affinity_matches(
    terms: &[NodeSelectorTerm],
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    terms.is_empty() || terms.iter().any(|t| t.matches(node_name, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sel(text: &str) -> Selector {
        Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn equality_requirements() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&web));
        assert!(sel("app==web").matches(&web));
        assert!(sel("app=web,tier=front").matches(&web));
        assert!(!sel("app=web,tier=back").matches(&web));
        assert!(sel("app!=db").matches(&web));
        assert!(!sel("app!=web").matches(&web));
        // `!=` also matches objects that lack the label, as in Kubernetes.
        assert!(sel("missing!=x").matches(&web));
    }

    #[test]
    fn set_requirements() {
        let web = labels(&[("app", "web"), ("env", "prod")]);
        assert!(sel("env in (prod, staging)").matches(&web));
        assert!(!sel("env in (dev)").matches(&web));
        assert!(sel("env notin (dev,staging)").matches(&web));
        assert!(sel("zone notin (a)").matches(&web));
        assert!(!sel("zone in (a)").matches(&web));
        assert!(sel("app,!zone").matches(&web));
        assert!(!sel("zone").matches(&web));
        assert!(sel("app=web,env in (prod,dev),!zone").matches(&web));
    }

    #[test]
    fn numeric_requirements() {
        let pod = labels(&[("replicas", "3")]);
        assert!(sel("replicas>2").matches(&pod));
        assert!(!sel("replicas<3").matches(&pod));
        assert!(!sel("missing>1").matches(&pod));
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(sel("").is_empty());
        assert!(sel("  ").matches(&labels(&[])));
    }

    #[test]
    fn prefixed_keys() {
        let pod = labels(&[("app.kubernetes.io/name", "ingress-nginx")]);
        assert!(sel("app.kubernetes.io/name=ingress-nginx").matches(&pod));
    }

    #[test]
    fn invalid_selectors_are_rejected_with_the_offending_part() {
        for bad in [
            "app=web,",
            "env in (a",
            "env in a)",
            "env within (a)",
            "=web",
            "app=we b",
            "-bad=x",
            "n>many",
            "a/b/c=d",
            "bad key=1",
            "app in web",
        ] {
            let error = Selector::parse(bad).expect_err(bad);
            assert!(!error.to_string().is_empty(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        let text = "app=web,env in (a,b),!zone,tier notin (db),n>2";
        assert_eq!(sel(text).to_string(), text);
        assert_eq!(sel(&sel(text).to_string()), sel(text));
    }

    #[test]
    fn required_label_is_an_equality_or_a_single_value_set() {
        let required = |text: &str| sel(text).required_label().map(|(k, v)| format!("{k}={v}"));
        assert_eq!(required("tier!=a,app=web").as_deref(), Some("app=web"));
        assert_eq!(required("app in (web)").as_deref(), Some("app=web"));
        assert_eq!(required("app in (web,db)"), None);
        assert_eq!(required("app"), None);
        assert_eq!(required(""), None);
    }

    #[test]
    fn selector_objects_nil_matches_nothing_and_empty_matches_all() {
        let l = labels(&[("app", "web")]);
        assert!(!Selector::from_json(None).unwrap().matches(&l));
        assert!(Selector::from_json(Some(&json!({}))).unwrap().matches(&l));
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]});
        assert!(Selector::from_json(Some(&s)).unwrap().matches(&l));
        let s =
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]});
        assert!(!Selector::from_json(Some(&s)).unwrap().matches(&l));
        assert!(
            Selector::from_json(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
            ))
            .is_err()
        );
    }

    #[test]
    fn pdb_selector_semantics_follow_policy_v1() {
        let pod = labels(&[("app", "web")]);
        // No selector: the budget covers no pod.
        assert!(!pdb_selects(None, &pod));
        // An empty selector covers every pod in the namespace.
        assert!(pdb_selects(Some(&ApiLabelSelector::default()), &pod));
        let by_label = ApiLabelSelector {
            match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..Default::default()
        };
        assert!(pdb_selects(Some(&by_label), &pod));
        assert!(!pdb_selects(Some(&by_label), &labels(&[("app", "db")])));
        let expression = |operator: &str, values: Option<Vec<&str>>| ApiLabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".to_owned(),
                operator: operator.to_owned(),
                values: values.map(|v| v.into_iter().map(str::to_owned).collect()),
            }]),
            ..Default::default()
        };
        assert!(pdb_selects(
            Some(&expression("In", Some(vec!["web", "api"]))),
            &pod
        ));
        assert!(!pdb_selects(
            Some(&expression("NotIn", Some(vec!["web"]))),
            &pod
        ));
        assert!(pdb_selects(Some(&expression("Exists", None)), &pod));
        assert!(!pdb_selects(Some(&expression("DoesNotExist", None)), &pod));
        // An invalid selector covers nothing rather than everything.
        assert!(!pdb_selects(Some(&expression("Near", None)), &pod));
    }

    #[test]
    fn node_affinity_terms_are_ored_and_expressions_anded() {
        let l = labels(&[("zone", "a"), ("disk", "ssd")]);
        let terms = node_selector_terms(&json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}, {"key": "disk", "operator": "Exists"}]}
        ]));
        assert!(node_affinity_matches(&terms, "n1", &l));
        let terms = node_selector_terms(
            &json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
        );
        assert!(!node_affinity_matches(&terms, "n1", &l));
        assert!(node_affinity_matches(&terms, "n2", &l));
        assert!(!node_affinity_matches(
            &node_selector_terms(&json!([{}])),
            "n1",
            &l
        ));
        assert!(node_affinity_matches(&[], "n1", &l));
    }
}
