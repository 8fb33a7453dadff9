//! Playbook errors rendered for a person: message, file, line, column and a source snippet,
//! also for errors raised inside imported modules and inside primitives (which name the node
//! and the command). Rendering happens once, at the edge.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};
use rhai::{EvalAltResult, ParseError, Position};
use serde::Serialize;

use crate::effects::StepFailure;
use crate::error::Kind;
use crate::runtime::engine::{MAX_OPERATIONS, source_text};

/// An error located in a playbook or module.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    #[serde(skip)]
    pub kind: Kind,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Outer frames: "in call to upgrade() at playbooks/worker.rhai:12".
    pub trace: Vec<String>,
    pub help: Option<String>,
    #[serde(skip)]
    pub failure: Option<StepFailure>,
}

impl Diagnostic {
    pub fn from_parse(error: &ParseError, file: &str) -> Self {
        let position = error.position();
        let message = error.err_type().to_string();
        let help = match error.err_type() {
            rhai::ParseErrorType::VariableUndefined(name) => Some(format!(
                "`{name}` is not defined here; declare it with `let {name} = …;` (krun compiles playbooks with strict variables)"
            )),
            _ => None,
        };
        Self {
            kind: Kind::Input,
            message,
            file: Some(file.to_owned()),
            line: position.line(),
            column: position.position(),
            trace: Vec::new(),
            help,
            failure: None,
        }
    }

    /// A source Rhai cannot report positions in: it counts lines and columns in 16 bits, so an
    /// error past line or column 65,535 would be shown at a wrong place (and a 10 MB line in
    /// full). Such a file is refused before it is parsed.
    pub fn oversized(file: &str, text: &str) -> Option<Self> {
        let limit = usize::from(u16::MAX);
        let problem = text
            .lines()
            .enumerate()
            .find_map(|(index, line)| {
                let length = line.chars().count();
                (length > limit).then(|| {
                    (
                        Some(index + 1),
                        format!(
                            "line {} is {length} characters long; krun reads playbooks and modules \
                             with lines of at most {limit} characters (pass data with --set or a \
                             template file instead)",
                            index + 1
                        ),
                    )
                })
            })
            .or_else(|| {
                let lines = text.lines().count();
                (lines > limit).then(|| {
                    (
                        None,
                        format!(
                            "{file} has {lines} lines; krun reads playbooks and modules of at most \
                             {limit} lines (split it into modules)"
                        ),
                    )
                })
            })?;
        Some(Self {
            kind: Kind::Input,
            message: problem.1,
            file: Some(file.to_owned()),
            line: problem.0,
            column: None,
            trace: Vec::new(),
            help: None,
            failure: None,
        })
    }

    /// Unwraps Rhai's chain of function-call and module frames down to the real error.
    pub fn from_eval(error: &EvalAltResult, file: &str) -> Self {
        let mut current_file = file.to_owned();
        let mut trace = Vec::new();
        let mut error = error;
        loop {
            match error {
                EvalAltResult::ErrorInFunctionCall(name, source, inner, position) => {
                    trace.push(format!(
                        "in call to {name}() at {}",
                        at(&current_file, *position)
                    ));
                    if !source.is_empty() {
                        current_file = source.clone();
                    }
                    error = inner;
                }
                EvalAltResult::ErrorInModule(module, inner, position) => {
                    trace.push(format!(
                        "in module {module} imported at {}",
                        at(&current_file, *position)
                    ));
                    current_file = module.clone();
                    error = inner;
                }
                _ => break,
            }
        }
        trace.reverse();
        let position = error.position();
        let (kind, message, help, failure) = describe(error);
        Self {
            kind,
            message,
            file: Some(current_file),
            line: position.line(),
            column: position.position(),
            trace,
            help,
            failure,
        }
    }

    /// "file:line:column" when known.
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        Some(match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
            (Some(line), None) => format!("{file}:{line}"),
            _ => file.to_owned(),
        })
    }

    /// The full report with a source snippet; colours only when `color`.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
        let mut diagnostic = MietteDiagnostic::new(self.message.clone());
        if let Some(help) = &self.help {
            diagnostic = diagnostic.with_help(help.clone());
        }
        let snippet = self
            .file
            .as_deref()
            .zip(self.line)
            .and_then(|(file, line)| {
                let text = source_text(file)?;
                let offset = offset_of(&text, line, self.column.unwrap_or(1))?;
                let length = token_length(&text[offset..]);
                Some((file.to_owned(), text, offset, length))
            });
        let mut out = String::new();
        let result = match snippet {
            // A long line is shown as a window around the position, not whole.
            Some((file, text, offset, length))
                if line_around(&text, offset).len() > SNIPPET_WIDTH =>
            {
                let report = miette::Report::new(diagnostic);
                let result = handler.render_report(&mut out, report.as_ref());
                out.push_str(&clipped(
                    &self.location().unwrap_or(file),
                    &text,
                    offset,
                    length,
                    self.line,
                ));
                result
            }
            Some((file, text, offset, length)) => {
                let label = LabeledSpan::at(offset..offset + length, "here");
                let report = miette::Report::new(diagnostic.with_labels([label]))
                    .with_source_code(NamedSource::new(file, text));
                handler.render_report(&mut out, report.as_ref())
            }
            None => {
                let report = miette::Report::new(diagnostic);
                handler.render_report(&mut out, report.as_ref())
            }
        };
        if result.is_err() || out.is_empty() {
            out = format!("error: {}", self.message);
        }
        if self.line.is_some()
            && let Some(location) = self.location()
            && !out.contains(&location)
        {
            out.push_str(&format!("  at {location}\n"));
        }
        for frame in &self.trace {
            out.push_str(&format!("  {frame}\n"));
        }
        out
    }
}

fn at(file: &str, position: Position) -> String {
    match (position.line(), position.position()) {
        (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
        (Some(line), None) => format!("{file}:{line}"),
        _ => file.to_owned(),
    }
}

fn describe(error: &EvalAltResult) -> (Kind, String, Option<String>, Option<StepFailure>) {
    match error {
        EvalAltResult::ErrorRuntime(value, _) => match value.clone().try_cast::<StepFailure>() {
            Some(failure) => (failure.kind, failure.message.clone(), None, Some(failure)),
            None => (Kind::Runtime, format!("the playbook threw: {value}"), None, None),
        },
        EvalAltResult::ErrorTooManyOperations(_) => (
            Kind::Runtime,
            format!("the playbook ran {MAX_OPERATIONS} operations without finishing"),
            Some("an endless loop? Loops that wait for something should call a waiting primitive (wait_active, …)".into()),
            None,
        ),
        EvalAltResult::ErrorTerminated(_, _) => (Kind::Interrupted, "interrupted".into(), None, None),
        EvalAltResult::ErrorFunctionNotFound(signature, _) => (
            Kind::Input,
            format!("no function {signature}"),
            Some("`krun check` lists unknown functions before anything runs; `krun doc` lists the primitives".into()),
            None,
        ),
        EvalAltResult::ErrorModuleNotFound(path, _) => (Kind::Input, format!("module not found: {path}"), None, None),
        EvalAltResult::ErrorParsing(parse, _) => (Kind::Input, parse.to_string(), None, None),
        other => {
            let text = other.to_string();
            let suffix = format!(" ({})", other.position());
            let text = text.strip_suffix(&suffix).map_or(text.clone(), str::to_owned);
            (Kind::Runtime, text, None, None)
        }
    }
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    let mut offset = 0;
    for (index, content) in text.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            let within = content
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(content.trim_end().len(), |(i, _)| i);
            return Some(offset + within);
        }
        offset += content.len();
    }
    None
}

/// Lines longer than this are shown clipped around the error.
const SNIPPET_WIDTH: usize = 160;

/// The line of `text` holding byte `offset`, as (start, end) byte offsets.
fn line_around(text: &str, offset: usize) -> std::ops::Range<usize> {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    start..end
}

/// A window of a long line around `offset`, with a caret under it:
/// `  at play.rhai:1:50021 (a line of 50,033 characters, shown clipped)`.
fn clipped(
    location: &str,
    text: &str,
    offset: usize,
    length: usize,
    line: Option<usize>,
) -> String {
    const CONTEXT: usize = 60;
    let range = line_around(text, offset);
    let before: Vec<(usize, char)> = text[range.start..offset].char_indices().collect();
    let from = before
        .len()
        .checked_sub(CONTEXT)
        .map_or(range.start, |skip| range.start + before[skip].0);
    let after_end = text[offset..range.end]
        .char_indices()
        .nth(length.clamp(1, CONTEXT) + CONTEXT)
        .map_or(range.end, |(i, _)| offset + i);
    let head = if from > range.start { "…" } else { "" };
    let tail = if after_end < range.end { "…" } else { "" };
    let number = line.map_or_else(String::new, |l| l.to_string());
    let pad = " ".repeat(number.len());
    let caret = " ".repeat(head.chars().count() + text[from..offset].chars().count());
    format!(
        "  at {location} (a line of {} characters, shown clipped)\n  {number} │ {head}{}{tail}\n  {pad} │ {caret}^ here\n",
        text[range.clone()].chars().count(),
        &text[from..after_end],
    )
}

/// Length of the identifier (or single character) starting a text, for the label.
fn token_length(text: &str) -> usize {
    let ident: usize = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if ident > 0 {
        ident
    } else {
        text.chars().next().map_or(0, char::len_utf8)
    }
}
