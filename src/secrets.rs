//! Secret values (`--set-secret`, `secret()`, the output of a step marked secret) and their
//! redaction. One set per command, owned by the recorder: the record, the journal and the log
//! sink all redact through it, so no printer has to remember to.
//!
//! A value is redacted as a whole, and so are its shell-quoted form (a password with a `'` shows
//! up quoted in the command a step runs) and its escaped forms (`debug()` and JSON write a
//! newline as `\n`). A multi-line value (a PEM key) also reaches outputs
//! one line at a time (streamed output, diffs): each line of at least [`MIN_LINE`] characters is
//! redacted wherever it appears, and a shorter line wherever a whole output line is exactly it,
//! so that `b` of `a\nb` is hidden as a line of output without every `b` in the log becoming
//! `***`.

use std::collections::BTreeSet;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Lines of a multi-line secret at least this long are redacted wherever they appear; shorter
/// ones only as a whole line of output.
pub const MIN_LINE: usize = 4;

#[derive(Default)]
struct Known {
    /// Redacted wherever they appear, longest first (a value before its own lines).
    anywhere: Vec<String>,
    /// Redacted where a whole line of output is exactly one of them (after trimming).
    whole_lines: BTreeSet<String>,
}

/// The secret values of one command.
#[derive(Default)]
pub struct Secrets {
    known: RwLock<Known>,
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a value that must never appear in logs, plans, reports or the journal.
    pub fn add(&self, value: &str) {
        if value.trim().is_empty() {
            return;
        }
        let mut known = self.known.write().expect("secrets lock");
        let mut anywhere = vec![value.to_owned(), value.trim().to_owned()];
        // As a command shows it, as `debug()` prints it, and as JSON text carries it.
        anywhere.push(crate::quote::quote(value));
        let debug = format!("{value:?}");
        anywhere.push(debug[1..debug.len() - 1].to_owned());
        if let Ok(json) = serde_json::to_string(value) {
            anywhere.push(json.trim_matches('"').to_owned());
        }
        let lines: Vec<&str> = value
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.len() > 1 {
            for line in lines {
                if line.chars().count() >= MIN_LINE {
                    anywhere.push(line.to_owned());
                } else {
                    known.whole_lines.insert(line.to_owned());
                }
            }
        }
        for value in anywhere {
            if !value.is_empty() && !known.anywhere.contains(&value) {
                known.anywhere.push(value);
            }
        }
        known
            .anywhere
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    pub fn is_empty(&self) -> bool {
        let known = self.known.read().expect("secrets lock");
        known.anywhere.is_empty() && known.whole_lines.is_empty()
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let known = self.known.read().expect("secrets lock");
        let mut text = known.anywhere.iter().fold(text.to_owned(), |acc, secret| {
            acc.replace(secret.as_str(), MASK)
        });
        if !known.whole_lines.is_empty() {
            text = text
                .split_inclusive('\n')
                .map(|line| {
                    let content = line.trim_end_matches(['\n', '\r']);
                    if known.whole_lines.contains(content.trim()) {
                        format!("{MASK}{}", &line[content.len()..])
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
        }
        text
    }

    /// [`Secrets::redact`] for structured data: every string (and key) in it, so a secret
    /// escaped in JSON (`a\nb`) is found as it is.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(text) => Value::String(self.redact(text)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGx3c2VjcmV0a2V5bWF0ZXJpYWwxMjM0NTY3\nOTA=\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_value_is_redacted_whole_and_quoted() {
        let secrets = Secrets::new();
        secrets.add("pa'ss word");
        assert_eq!(secrets.redact("x=pa'ss word;"), "x=***;");
        assert_eq!(
            secrets.redact(&format!("echo {}", crate::quote::quote("pa'ss word"))),
            "echo ***"
        );
    }

    #[test]
    fn a_multi_line_value_is_redacted_line_by_line() {
        let secrets = Secrets::new();
        secrets.add(PEM);
        assert_eq!(secrets.redact(&format!("key:\n{PEM}")), "key:\n***");
        let diff = "+MC4CAQAwBQYDK2VwBCIEIGx3c2VjcmV0a2V5bWF0ZXJpYWwxMjM0NTY3\n+OTA=\n";
        assert_eq!(secrets.redact(diff), "+***\n+***\n");
        assert_eq!(secrets.redact("[n1] OTA="), "[n1] ***");
    }

    #[test]
    fn short_lines_are_redacted_as_whole_lines_only() {
        let secrets = Secrets::new();
        secrets.add("a\nb");
        assert_eq!(secrets.redact("a\nb"), "***");
        assert_eq!(secrets.redact("x\na\n  b\r\nabc\n"), "x\n***\n***\r\nabc\n");
        assert_eq!(secrets.redact("a bad day"), "a bad day");
    }

    #[test]
    fn escaped_forms_are_redacted() {
        let secrets = Secrets::new();
        secrets.add("q7x\nz9");
        assert_eq!(secrets.redact("debug: \"q7x\\nz9\""), "debug: \"***\"");
    }

    #[test]
    fn json_strings_are_redacted_unescaped() {
        let secrets = Secrets::new();
        secrets.add("a\nb\"c");
        let value = serde_json::json!({ "out": "a\nb\"c", "list": ["a\nb\"c!"], "n": 1 });
        assert_eq!(
            secrets.redact_json(&value),
            serde_json::json!({ "out": "***", "list": ["***!"], "n": 1 })
        );
    }
}
