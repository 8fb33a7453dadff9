//! A fast reader for the YAML kubectl and serde_yaml print: block mappings and sequences,
//! plain, quoted and literal scalars, `{}` and `[]`.
//!
//! A 20,000-pod snapshot is 70 MB of YAML, which the general parser reads in several seconds.
//! This reader handles the regular subset that tools emit and answers `None` for anything
//! else (anchors, tags, flow collections, folded scalars, unusual numbers), so the caller
//! falls back to the general parser and the result is always what it would have produced.

use serde_json::{Map, Number, Value};

struct Line<'a> {
    indent: usize,
    /// The line without indentation and trailing whitespace.
    content: &'a str,
    /// Whether trailing whitespace was cut, which a literal block would have kept.
    trailing: bool,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
}

fn is_blank(line: &Line<'_>) -> bool {
    line.content.is_empty()
}

fn is_comment(line: &Line<'_>) -> bool {
    line.content.starts_with('#')
}

fn is_sequence_entry(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Parses `text` if it is within the supported subset.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Option<Value> {
    parse_lines(lines(text, false))
}

/// Parses one entry of a block sequence, `text` starting at its `- `, as the document the
/// entry holds (the `- ` read as indentation), if it is within the supported subset. This is
/// how a kubectl `List`'s items are read without copying each out of the file first.
pub(crate) fn parse_entry(text: &str) -> Option<Value> {
    text.starts_with("- ")
        .then(|| parse_lines(lines(text, true)))?
}

/// `text`'s lines; with `entry`, the first line's `- ` counts as two spaces of indentation.
fn lines(text: &str, entry: bool) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .map(|(i, raw)| {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let (dash, raw) = match raw.strip_prefix("- ") {
                Some(rest) if entry && i == 0 => (2, rest),
                _ => (0, raw),
            };
            let content = raw.trim_start_matches(' ');
            let trimmed = content.trim_end();
            Line {
                indent: dash + raw.len() - content.len(),
                content: trimmed,
                trailing: trimmed.len() != content.len(),
            }
        })
        .collect()
}

fn parse_lines(lines: Vec<Line<'_>>) -> Option<Value> {
    if lines.iter().any(|l| {
        l.content.starts_with('\t') || l.content.starts_with("---") || l.content.starts_with("...")
    }) {
        return None;
    }
    let mut reader = Reader { lines, pos: 0 };
    let value = match reader.peek() {
        None => Value::Null,
        Some(first) => {
            let indent = first.indent;
            reader.node(indent)?
        }
    };
    reader.peek().is_none().then_some(value)
}

impl<'a> Reader<'a> {
    /// The next line that is neither blank nor a comment.
    fn peek(&mut self) -> Option<&Line<'a>> {
        while self.pos < self.lines.len()
            && (is_blank(&self.lines[self.pos]) || is_comment(&self.lines[self.pos]))
        {
            self.pos += 1;
        }
        self.lines.get(self.pos)
    }

    fn node(&mut self, indent: usize) -> Option<Value> {
        let line = self.peek()?;
        if is_sequence_entry(line.content) {
            self.sequence(indent)
        } else {
            self.mapping(indent)
        }
    }

    fn mapping(&mut self, indent: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_sequence_entry(line.content) {
                return None;
            }
            let (key, rest) = split_key(line.content)?;
            self.pos += 1;
            let value = if rest.is_empty() {
                match self.peek() {
                    Some(next) if next.indent > indent => {
                        let nested = next.indent;
                        self.node(nested)?
                    }
                    Some(next) if next.indent == indent && is_sequence_entry(next.content) => {
                        self.sequence(indent)?
                    }
                    _ => Value::Null,
                }
            } else {
                self.inline(rest, indent)?
            };
            if map.insert(key, value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent || (line.indent == indent && !is_sequence_entry(line.content)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let rest = line.content.get(2..).unwrap_or("");
            if rest.is_empty() {
                self.pos += 1;
                let value = match self.peek() {
                    Some(next) if next.indent > indent => {
                        let nested = next.indent;
                        self.node(nested)?
                    }
                    _ => Value::Null,
                };
                items.push(value);
            } else if is_sequence_entry(rest) {
                return None;
            } else if split_key(rest).is_some() {
                // `- key: value` opens a mapping whose keys sit two columns in.
                let pos = self.pos;
                self.lines[pos] = Line {
                    indent: indent + 2,
                    content: rest,
                    trailing: false,
                };
                items.push(self.mapping(indent + 2)?);
            } else {
                self.pos += 1;
                items.push(self.inline(rest, indent)?);
            }
        }
        Some(Value::Array(items))
    }

    /// A value on the same line as its key or dash, with any continuation lines (which are
    /// indented deeper than `parent`).
    fn inline(&mut self, text: &'a str, parent: usize) -> Option<Value> {
        match text.as_bytes()[0] {
            b'{' => (text == "{}").then(|| Value::Object(Map::new())),
            b'[' => (text == "[]").then(|| Value::Array(Vec::new())),
            b'|' => self.literal(text, parent).map(Value::String),
            b'\'' | b'"' => self.quoted(text, parent).map(Value::String),
            b'&' | b'*' | b'!' | b'>' | b'%' | b'@' | b'`' | b'?' | b',' | b']' | b'}' => None,
            _ => {
                if text.contains(" #") {
                    return None;
                }
                let mut folded = String::from(text);
                while let Some(next) = self.lines.get(self.pos) {
                    if is_blank(next) || next.indent <= parent {
                        break;
                    }
                    if next.content.contains(" #")
                        || next.content.contains(": ")
                        || next.content.ends_with(':')
                    {
                        return None;
                    }
                    folded.push(' ');
                    folded.push_str(next.content);
                    self.pos += 1;
                }
                if folded.len() != text.len() {
                    // Multi-line plain scalars are always strings.
                    return resolve_plain(&folded).filter(Value::is_string);
                }
                resolve_plain(text)
            }
        }
    }

    /// A `|` block scalar.
    fn literal(&mut self, header: &str, parent: usize) -> Option<String> {
        let (chomp, explicit) = match &header[1..] {
            "" => ('c', None),
            "-" => ('-', None),
            "+" => ('+', None),
            other => {
                let digit = other.chars().find(char::is_ascii_digit)?.to_digit(10)? as usize;
                let chomp = other
                    .chars()
                    .find(|c| *c == '-' || *c == '+')
                    .unwrap_or('c');
                if other.len() != 1 + usize::from(chomp != 'c') {
                    return None;
                }
                (chomp, Some(parent + digit))
            }
        };
        let start = self.pos;
        let mut end = start;
        let mut content_indent = explicit;
        while let Some(line) = self.lines.get(end) {
            if is_blank(line) {
                end += 1;
                continue;
            }
            let indent = *content_indent.get_or_insert(line.indent);
            if line.indent < indent || indent <= parent {
                break;
            }
            end += 1;
        }
        let indent = content_indent?;
        // Trailing blank lines belong to the scalar only for chomping.
        let mut last = end;
        while last > start && is_blank(&self.lines[last - 1]) {
            last -= 1;
        }
        let mut text = String::new();
        for line in &self.lines[start..last] {
            if !is_blank(line) {
                text.push_str(&" ".repeat(line.indent - indent));
                text.push_str(line.content);
            }
            text.push('\n');
        }
        // Trailing spaces were trimmed from lines; a literal keeps them, so refuse those.
        if self.lines[start..last].iter().any(|l| l.trailing) {
            return None;
        }
        match chomp {
            '-' => {
                while text.ends_with('\n') {
                    text.pop();
                }
            }
            '+' => text.extend(std::iter::repeat_n('\n', end - last)),
            _ => {}
        }
        self.pos = end;
        Some(text)
    }

    /// A single- or double-quoted scalar, possibly folded over several lines.
    fn quoted(&mut self, text: &'a str, parent: usize) -> Option<String> {
        let quote = text.as_bytes()[0];
        let mut out = String::new();
        let mut current: &str = &text[1..];
        let mut pending_breaks = 0usize;
        loop {
            let mut chars = current.char_indices().peekable();
            let mut escaped_break = false;
            while let Some((i, c)) = chars.next() {
                if pending_breaks > 0 {
                    if pending_breaks == 1 {
                        out.push(' ');
                    } else {
                        out.extend(std::iter::repeat_n('\n', pending_breaks - 1));
                    }
                    pending_breaks = 0;
                }
                match (quote, c) {
                    (b'\'', '\'') => {
                        if chars.peek().map(|(_, n)| *n) == Some('\'') {
                            chars.next();
                            out.push('\'');
                        } else {
                            let rest = current[i + 1..].trim();
                            return rest.is_empty().then_some(out);
                        }
                    }
                    (b'"', '"') => {
                        let rest = current[i + 1..].trim();
                        return rest.is_empty().then_some(out);
                    }
                    (b'"', '\\') => {
                        let (_, e) = match chars.next() {
                            Some(next) => next,
                            None => {
                                escaped_break = true;
                                break;
                            }
                        };
                        match e {
                            '0' => out.push('\0'),
                            'a' => out.push('\x07'),
                            'b' => out.push('\x08'),
                            't' | '\t' => out.push('\t'),
                            'n' => out.push('\n'),
                            'v' => out.push('\x0b'),
                            'f' => out.push('\x0c'),
                            'r' => out.push('\r'),
                            'e' => out.push('\x1b'),
                            ' ' => out.push(' '),
                            '"' => out.push('"'),
                            '/' => out.push('/'),
                            '\\' => out.push('\\'),
                            'N' => out.push('\u{85}'),
                            '_' => out.push('\u{a0}'),
                            'L' => out.push('\u{2028}'),
                            'P' => out.push('\u{2029}'),
                            'x' | 'u' | 'U' => {
                                let width = match e {
                                    'x' => 2,
                                    'u' => 4,
                                    _ => 8,
                                };
                                let mut code = String::new();
                                for _ in 0..width {
                                    code.push(chars.next()?.1);
                                }
                                out.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
                            }
                            _ => return None,
                        }
                    }
                    _ => out.push(c),
                }
            }
            // The line ended inside the quotes: fold into the next line.
            if !escaped_break {
                let trimmed = out.trim_end_matches([' ', '\t']).len();
                out.truncate(trimmed);
            }
            let mut breaks = 1;
            while self.lines.get(self.pos).is_some_and(is_blank) {
                breaks += 1;
                self.pos += 1;
            }
            let next = self.lines.get(self.pos)?;
            if next.indent <= parent || (escaped_break && breaks > 1) {
                return None;
            }
            pending_breaks = if escaped_break { breaks - 1 } else { breaks };
            current = next.content;
            self.pos += 1;
        }
    }
}

/// `key: rest` or `key:`; the key plain or quoted.
fn split_key(content: &str) -> Option<(String, &str)> {
    let first = content.as_bytes()[0];
    let (key, after) = if first == b'"' || first == b'\'' {
        let close = find_closing_quote(content)?;
        let mut reader = Reader {
            lines: vec![Line {
                indent: 0,
                content: &content[..=close],
                trailing: false,
            }],
            pos: 0,
        };
        (reader.quoted(&content[..=close], 0)?, &content[close + 1..])
    } else {
        if matches!(
            first,
            b'-' | b'?'
                | b'&'
                | b'*'
                | b'!'
                | b'|'
                | b'>'
                | b'%'
                | b'@'
                | b'`'
                | b'{'
                | b'['
                | b'#'
                | b','
        ) {
            return None;
        }
        let end = content
            .find(": ")
            .or_else(|| content.ends_with(':').then(|| content.len() - 1))?;
        let key = &content[..end];
        // Nearly every key is a word, which is a string unless it spells null or a boolean.
        let word = first.is_ascii_alphabetic()
            && !matches!(
                key,
                "null" | "Null" | "NULL" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
            );
        if key.contains(" #") || !(word || resolve_plain(key)?.is_string()) {
            return None;
        }
        (key.to_string(), &content[end..])
    };
    let rest = after.strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((key, rest.trim_start()))
}

fn find_closing_quote(content: &str) -> Option<usize> {
    let bytes = content.as_bytes();
    let quote = bytes[0];
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == quote => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Types a plain scalar as serde_yaml does, or `None` where the rules get subtle.
fn resolve_plain(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unsigned.strip_prefix(prefix) {
            // `0x1F` is a number, `0bbb7682-b0a6-…` (a uid) is a string.
            let number_like = rest.is_empty()
                || rest.starts_with(['+', '-'])
                || rest.chars().all(|c| c.is_digit(radix) || c == '_');
            return if number_like {
                None
            } else {
                Some(Value::String(text.to_string()))
            };
        }
    }
    if unsigned.starts_with(".inf")
        || unsigned.starts_with(".Inf")
        || unsigned.starts_with(".INF")
        || unsigned.starts_with(".nan")
        || unsigned.starts_with(".NaN")
        || unsigned.starts_with(".NAN")
    {
        return None;
    }
    // serde_yaml takes only finite floats from Rust's parser: `infinity` and `nan` are strings.
    if !text.parse::<f64>().is_ok_and(f64::is_finite) {
        return Some(Value::String(text.to_string()));
    }
    // Something Rust reads as a number: accept the plain forms, leave the rest (`012`, `1e3`,
    // `+5`, `inf`) to the general parser's rules.
    let digits = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let negative = text.starts_with('-');
    let body = text.strip_prefix('-').unwrap_or(text);
    if digits(body) {
        return if negative {
            text.parse::<i64>().ok().map(|n| Value::Number(n.into()))
        } else {
            text.parse::<u64>().ok().map(|n| Value::Number(n.into()))
        };
    }
    let (whole, fraction) = body.split_once('.')?;
    if digits(whole) && !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn general(text: &str) -> Value {
        Value::deserialize(serde_yaml_ng::Deserializer::from_str(text)).unwrap()
    }

    /// The fast reader either declines or agrees with the general parser.
    fn agrees(text: &str) -> bool {
        match parse(text) {
            Some(fast) => {
                assert_eq!(fast, general(text), "the readers disagree on:\n{text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn agrees_with_the_general_parser_on_kubectl_output() {
        let text = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Pod"}
    note: 'it''s quoted'
    "quoted/key": "tab\there \u00e9 \"x\""
    empty: ""
  creationTimestamp: "2024-03-01T08:00:00Z"
  labels:
    app: web
    version: "1.20"
  name: web-0
  ownerReferences:
  - apiVersion: apps/v1
    blockOwnerDeletion: true
    controller: true
    kind: StatefulSet
    name: web
spec:
  containers:
  - args:
    - --port=8080
    - -v
    command: []
    image: nginx:1.25
    resources: {}
  priority: -5
  ratio: 0.25
  nodeName: null
  terminationGracePeriodSeconds: 30
  tolerations:
  - effect: NoExecute
    operator: Exists
    tolerationSeconds: 300
status:
  message: this is a long message that a printer
    folded over two lines
  quoted: 'a single quoted
    folded one'
  phase: Running
"#;
        assert!(agrees(text));
    }

    #[test]
    fn literal_block_chomping() {
        for header in ["|", "|-", "|+", "|2"] {
            let text =
                format!("a: {header}\n    line one\n      indented\n\n    line three\n\nb: 1\n");
            assert!(agrees(&text), "{header}");
        }
    }

    #[test]
    fn declines_what_it_does_not_know() {
        for text in [
            "a: &anchor 1\nb: *anchor\n",
            "a: !!str 1\n",
            "a: {b: 1}\n",
            "a: [1, 2]\n",
            "a: >\n  folded\n",
            "a: 0x1F\n",
            "a: 1e3\n",
            "a: .inf\n",
            "a: 012\n",
            "a: b # comment\n",
            "---\na: 1\n",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn agrees_on_scalars_and_nesting() {
        for (text, fast) in [
            (
                "a: 1\nb: -2\nc: 1.5\nd: true\ne: False\nf: ~\ng:\nh: -x\ni: --flag\nj: 10Gi\nk: 1.2.3\n",
                true,
            ),
            ("- a\n- - nested\n", false),
            ("list:\n- 1\n-\n  x: 2\n- y: 3\n  z:\n  - 4\n", true),
            ("a:\n  b:\n    c: d\n", true),
            ("\"x\": \"multi\n  line \\\n  joined\"\n", true),
            ("s: 'one\n\n  two'\n", true),
            ("a: 012\nb: +5\n", false),
        ] {
            assert_eq!(agrees(text), fast, "{text}");
        }
    }

    #[test]
    fn an_entry_reads_as_the_document_it_holds() {
        for entry in [
            "- kind: Pod\n  metadata:\n    name: a\n",
            "- kind: Pod\r\n  metadata:\r\n    name: a\r\n",
            "-   kind: Pod\n    spec: {}\n",
            "- - a\n  - b\n",
            "- a: |\n    text\n  b: 1\n",
            "- kind: Pod\n  bad: [1, 2]\n",
            "- kind: Pod\n- kind: Node\n",
            "- plain\n",
        ] {
            let document = format!("  {}", &entry[2..]);
            assert_eq!(parse_entry(entry), parse(&document), "{entry:?}");
        }
        assert_eq!(
            parse_entry("- kind: Pod\n  metadata:\n    name: a\n"),
            Some(serde_json::json!({"kind": "Pod", "metadata": {"name": "a"}}))
        );
        assert_eq!(parse_entry("kind: Pod\n"), None);
    }
}
