//! Playbook parameters from `--set KEY=VALUE`.
//!
//! Only `true`/`false` and plain integers are converted; everything else stays a string, so a
//! version such as `1.21` is never silently turned into a float.

use std::collections::BTreeMap;

use rhai::Dynamic;

use crate::Error;

/// A parameter value as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Str(String),
}

impl ParamValue {
    pub fn parse(text: &str) -> Self {
        match text {
            "true" => Self::Bool(true),
            "false" => Self::Bool(false),
            _ if is_plain_integer(text) => text
                .parse()
                .map_or_else(|_| Self::Str(text.to_owned()), Self::Int),
            _ => Self::Str(text.to_owned()),
        }
    }

    pub fn to_dynamic(&self) -> Dynamic {
        match self {
            Self::Bool(b) => Dynamic::from_bool(*b),
            Self::Int(i) => Dynamic::from_int(*i),
            Self::Str(s) => Dynamic::from(s.clone()),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Bool(b) => (*b).into(),
            Self::Int(i) => (*i).into(),
            Self::Str(s) => s.clone().into(),
        }
    }
}

fn is_plain_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Parses every `--set`; a malformed one is invalid input (exit 2).
pub fn parse_sets(sets: &[String]) -> crate::Result<BTreeMap<String, ParamValue>> {
    parse_into(sets, "--set", ParamValue::parse, BTreeMap::new())
}

/// Parses `--set` and `--set-secret`; secret values always stay strings. Returns the
/// parameters and the names of the secret ones.
pub fn parse_with_secrets(
    sets: &[String],
    secrets: &[String],
) -> crate::Result<(BTreeMap<String, ParamValue>, Vec<String>)> {
    let plain = parse_sets(sets)?;
    let names: Vec<String> = plain.keys().cloned().collect();
    let all = parse_into(
        secrets,
        "--set-secret",
        |v| ParamValue::Str(v.to_owned()),
        plain,
    )?;
    let secret_names = all.keys().filter(|k| !names.contains(k)).cloned().collect();
    Ok((all, secret_names))
}

fn parse_into(
    sets: &[String],
    flag: &str,
    convert: impl Fn(&str) -> ParamValue,
    mut params: BTreeMap<String, ParamValue>,
) -> crate::Result<BTreeMap<String, ParamValue>> {
    for set in sets {
        let Some((key, value)) = set.split_once('=') else {
            return Err(Error::input(format!("{flag} `{set}`: expected KEY=VALUE")));
        };
        let key = key.trim();
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !valid {
            return Err(Error::input(format!(
                "{flag} `{set}`: the key must be letters, digits, `_`, `-` or `.`"
            )));
        }
        if params.insert(key.to_owned(), convert(value)).is_some() {
            return Err(Error::input(format!("parameter {key} is given twice")));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_stay_strings() {
        assert_eq!(ParamValue::parse("1.21"), ParamValue::Str("1.21".into()));
        assert_eq!(
            ParamValue::parse("1.21.14"),
            ParamValue::Str("1.21.14".into())
        );
        assert_eq!(ParamValue::parse("3"), ParamValue::Int(3));
        assert_eq!(ParamValue::parse("-3"), ParamValue::Int(-3));
        assert_eq!(ParamValue::parse("007"), ParamValue::Str("007".into()));
        assert_eq!(ParamValue::parse("true"), ParamValue::Bool(true));
        assert_eq!(ParamValue::parse("True"), ParamValue::Str("True".into()));
        assert_eq!(ParamValue::parse(""), ParamValue::Str(String::new()));
        assert_eq!(
            ParamValue::parse("99999999999999999999"),
            ParamValue::Str("99999999999999999999".into())
        );
    }

    #[test]
    fn malformed_sets_are_input_errors() {
        assert_eq!(parse_sets(&["novalue".into()]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse_sets(&["a=1".into(), "a=2".into()])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(parse_sets(&["=1".into()]).unwrap_err().exit_code(), 2);
        let p = parse_sets(&["version=1.21.14".into(), "x=a=b".into()]).unwrap();
        assert_eq!(p["x"], ParamValue::Str("a=b".into()));
    }
}
