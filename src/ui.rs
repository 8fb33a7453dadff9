//! What the operator sees while a run goes: log lines on stderr, each with its time and the
//! node it concerns, and, on a terminal, a live status line per node (its step, pods evicted of
//! those to evict, the longest a budget has held one against the drain's limit) under a line
//! for the batch plan (batch i of N, how long the rest should take). Without a terminal (or with
//! `--output json`) only plain log lines go to stderr, with RFC 3339 times, so stdout carries
//! nothing but the result. Every log line is redacted with the command's secrets on its way
//! out, whatever printed it.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::paint::{Paint, Tone};
use crate::plan::{Event as PlanEvent, Recorder, RunStatus};
use crate::secrets::Secrets;

/// The target of events that move the live display (a drain's counts, a batch's start).
const PROGRESS: &str = "krun::progress";

/// The live display; `None` inside when stderr is not a terminal.
#[derive(Clone)]
pub struct Ui {
    multi: Option<MultiProgress>,
    state: Arc<Mutex<Display>>,
    started: Instant,
    secrets: Arc<Secrets>,
}

/// The live display's lines: the batch plan's, and one per running node.
#[derive(Default)]
struct Display {
    header: Option<ProgressBar>,
    nodes: HashMap<String, NodeLine>,
}

/// A node's line: its current step and, during a drain, how far it has come (before the
/// command, which the terminal's width may cut).
struct NodeLine {
    bar: ProgressBar,
    step: String,
    command: String,
    drain: Option<String>,
}

impl NodeLine {
    fn show(&self) {
        let drain = self
            .drain
            .as_ref()
            .map(|d| format!(" · {d}"))
            .unwrap_or_default();
        let command = if self.command.is_empty() {
            String::new()
        } else {
            format!(": {}", self.command)
        };
        self.bar
            .set_message(format!("{}{drain}{command}", self.step));
    }
}

impl Default for Ui {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Ui {
    /// A live display when stderr is a terminal and `live` is wanted.
    pub fn new(live: bool) -> Self {
        let multi = (live && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            state: Arc::default(),
            started: Instant::now(),
            secrets: Arc::default(),
        }
    }

    /// The secrets every log line is redacted with: the recorder of the command's runs is
    /// built with them ([`Recorder::with_secrets`]).
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// Follows the recorder's events with one status line per running node.
    pub fn follow(&self, recorder: &Recorder) {
        let Some(multi) = self.multi.clone() else {
            return;
        };
        let state = Arc::clone(&self.state);
        recorder.set_observer(move |event| {
            let mut state = state.lock().expect("display lock");
            match event {
                PlanEvent::RunStatus {
                    name,
                    status: RunStatus::Running,
                    ..
                } => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                            .expect("template"),
                    );
                    bar.set_prefix(name.clone());
                    bar.set_message("starting");
                    bar.enable_steady_tick(Duration::from_millis(120));
                    state.nodes.insert(
                        name.clone(),
                        NodeLine {
                            bar,
                            step: "starting".to_owned(),
                            command: String::new(),
                            drain: None,
                        },
                    );
                }
                PlanEvent::RunStatus { name, .. } => {
                    if let Some(line) = state.nodes.remove(name) {
                        line.bar.finish_and_clear();
                        multi.remove(&line.bar);
                    }
                }
                PlanEvent::StepStarted {
                    name,
                    seq,
                    action,
                    command,
                    ..
                } => {
                    if let Some(line) = state.nodes.get_mut(name) {
                        line.step = format!("step {seq} {action}");
                        line.command = command.lines().next().unwrap_or_default().to_owned();
                        line.drain = None;
                        line.show();
                    }
                }
            }
        });
    }

    /// Takes the batch line away once the run is over.
    pub fn finish(&self) {
        let header = self.state.lock().expect("display lock").header.take();
        if let (Some(multi), Some(header)) = (&self.multi, header) {
            header.finish_and_clear();
            multi.remove(&header);
        }
    }

    /// Installs the log subscriber writing above the live display (or plainly to stderr).
    pub fn init_logging(&self, verbose: u8, quiet: bool) {
        let default = match (quiet, verbose) {
            (true, _) => "krun=error",
            (false, 0) => "krun=info",
            (false, 1) => "krun=debug",
            (false, _) => "krun=trace,russh=debug",
        };
        let filter =
            EnvFilter::try_from_env("KRUN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
        // The message only: the fields of progress events are for the live display.
        let message_only = tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
            if field.name() == "message" {
                write!(writer, "{value:?}")
            } else {
                Ok(())
            }
        });
        let lines = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(message_only)
            .event_format(LineFormat {
                terminal: std::io::stderr().is_terminal(),
                paint: Paint::stderr(),
                started: self.started,
            })
            .with_writer(self.clone())
            .with_filter(filter);
        let progress =
            Progress { ui: self.clone() }.with_filter(tracing_subscriber::filter::filter_fn(
                |meta| meta.target() == PROGRESS || (meta.is_span() && meta.name() == "run"),
            ));
        let _ = tracing_subscriber::registry()
            .with(lines)
            .with(progress)
            .try_init();
    }

    /// A `krun::progress` event: the batch line, or a node's drain counts.
    fn progress(&self, run: Option<&str>, fields: &ProgressFields) {
        let Some(multi) = &self.multi else {
            return;
        };
        let mut state = self.state.lock().expect("display lock");
        if let (Some(batch), Some(batches)) = (fields.batch, fields.batches) {
            let header = state.header.get_or_insert_with(|| {
                let bar = multi.insert(0, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{prefix:.bold} {wide_msg}").expect("template"),
                );
                bar
            });
            header.set_prefix(format!("batch {batch} of {batches}"));
            header.set_message(
                fields
                    .message
                    .split_once(": ")
                    .map_or(String::new(), |(_, rest)| rest.to_owned()),
            );
            return;
        }
        let (Some(evicted), Some(total)) = (fields.evicted, fields.total) else {
            return;
        };
        let key = run
            .filter(|r| state.nodes.contains_key(*r))
            .or(fields.node.as_deref())
            .map(str::to_owned);
        if let Some(line) = key.and_then(|k| state.nodes.get_mut(&k)) {
            let mut drain = format!("evicted {evicted}/{total}");
            let waited = fields.waited_s.unwrap_or(0.0);
            if waited >= 1.0 {
                let limit = fields.limit_s.unwrap_or(0.0);
                drain.push_str(&format!(", budget wait {}", seconds(waited)));
                if limit > 0.0 {
                    drain.push_str(&format!(" of {}", seconds(limit)));
                }
            }
            line.drain = Some(drain);
            line.show();
        }
    }
}

fn seconds(s: f64) -> String {
    humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string()
}

/// The name of the run a span belongs to (`node` of the `run` span), kept in its extensions
/// so that every line logged inside it can say which node it is about.
struct RunName(String);

/// Keeps run names on their spans and moves the live display on progress events.
struct Progress {
    ui: Ui,
}

impl<S> Layer<S> for Progress
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = ProgressFields::default();
        attrs.record(&mut fields);
        if let (Some(node), Some(span)) = (fields.node, ctx.span(id)) {
            span.extensions_mut().insert(RunName(node));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != PROGRESS {
            return;
        }
        let mut fields = ProgressFields::default();
        event.record(&mut fields);
        let run = run_name(ctx.event_scope(event));
        self.ui.progress(run.as_deref(), &fields);
    }
}

fn run_name<'a, R: LookupSpan<'a>>(
    scope: Option<tracing_subscriber::registry::Scope<'a, R>>,
) -> Option<String> {
    scope?
        .from_root()
        .find_map(|span| span.extensions().get::<RunName>().map(|n| n.0.clone()))
}

/// The fields of a progress event (or the `run` span's node).
#[derive(Default)]
struct ProgressFields {
    message: String,
    node: Option<String>,
    evicted: Option<u64>,
    total: Option<u64>,
    waited_s: Option<f64>,
    limit_s: Option<f64>,
    batch: Option<u64>,
    batches: Option<u64>,
}

impl Visit for ProgressFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "evicted" => self.evicted = Some(value),
            "total" => self.total = Some(value),
            "batch" => self.batch = Some(value),
            "batches" => self.batches = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match field.name() {
            "waited_s" => self.waited_s = Some(value),
            "limit_s" => self.limit_s = Some(value),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "node" {
            self.node = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "node" => self.node = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// `TIME [node] level: message`: RFC 3339 times in plain logs, the time since the start on a
/// terminal; the node of the run the line comes from; the level for warnings and errors.
struct LineFormat {
    terminal: bool,
    paint: Paint,
    started: Instant,
}

impl LineFormat {
    fn time(&self) -> String {
        if !self.terminal {
            return chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        }
        let elapsed = self.started.elapsed().as_secs();
        let (h, m, s) = (elapsed / 3600, elapsed / 60 % 60, elapsed % 60);
        if h > 0 {
            format!("+{h}:{m:02}:{s:02}")
        } else {
            format!("+{m}:{s:02}")
        }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let paint = self.paint;
        write!(writer, "{} ", paint.paint(Tone::Faint, self.time()))?;
        if let Some(run) = run_name(ctx.event_scope()) {
            write!(writer, "{} ", paint.paint(Tone::Strong, format!("[{run}]")))?;
        }
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "{} ", paint.paint(Tone::Danger, "error:"))?,
            Level::WARN => write!(writer, "{} ", paint.paint(Tone::Caution, "warning:"))?,
            Level::DEBUG | Level::TRACE => write!(writer, "{}: ", event.metadata().target())?,
            Level::INFO => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Writes log lines above the live display, or to stderr.
pub struct LineWriter {
    multi: Option<MultiProgress>,
    secrets: Arc<Secrets>,
    buffer: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = self
            .secrets
            .redact(&String::from_utf8_lossy(&self.buffer))
            .trim_end_matches('\n')
            .to_owned();
        self.buffer.clear();
        match &self.multi {
            Some(multi) => multi.println(text),
            None => writeln!(std::io::stderr().lock(), "{text}"),
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for Ui {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            multi: self.multi.clone(),
            secrets: Arc::clone(&self.secrets),
            buffer: Vec::new(),
        }
    }
}
