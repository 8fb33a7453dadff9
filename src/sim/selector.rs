//! Field selectors (`spec.nodeName=n1,status.phase!=Succeeded`): a conjunction of equalities
//! over the fields a kind makes selectable. Label selectors are Kubernetes rules shared with
//! the rest of krun and live in `crate::model::selector`.

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

    /// Whether an object, whose field values `field` reads, is selected.
    pub fn matches<'a>(&self, field: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.terms
            .iter()
            .all(|(name, equal, value)| (field(name).unwrap_or("") == value) == *equal)
    }

    /// The value this selector pins a field to (`spec.nodeName=n1` → `n1`), for index lookups.
    pub fn pinned(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, equal, _)| f == field && *equal)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors_reject_unsupported_fields() {
        assert!(FieldSelector::parse("spec.nodeName=n1", &["spec.nodeName"]).is_ok());
        let err = FieldSelector::parse("spec.bogus=1", &["spec.nodeName"]).unwrap_err();
        assert_eq!(err, "field label not supported: spec.bogus");
        let s =
            FieldSelector::parse("spec.nodeName==n1,metadata.name!=x", &["spec.nodeName"]).unwrap();
        assert_eq!(s.pinned("spec.nodeName"), Some("n1"));
    }
}
