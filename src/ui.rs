//! What the operator sees while a run goes: log lines on stderr and, on a terminal, a live
//! status line per node showing its current step. Without a terminal (or with `--output json`)
//! only plain log lines go to stderr, so stdout carries nothing but the result. Every log line
//! is redacted with the command's secrets on its way out, whatever printed it.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::plan::{Event as PlanEvent, Recorder, RunStatus};
use crate::secrets::Secrets;

/// The live display; `None` inside when stderr is not a terminal.
#[derive(Clone, Default)]
pub struct Ui {
    multi: Option<MultiProgress>,
    bars: Arc<Mutex<HashMap<usize, ProgressBar>>>,
    secrets: Arc<Secrets>,
}

impl Ui {
    /// A live display when stderr is a terminal and `live` is wanted.
    pub fn new(live: bool) -> Self {
        let multi = (live && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Arc::default(),
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
        let bars = Arc::clone(&self.bars);
        recorder.set_observer(move |event| {
            let mut bars = bars.lock().expect("bars lock");
            match event {
                PlanEvent::RunStatus {
                    run,
                    name,
                    status: RunStatus::Running,
                } => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                            .expect("template"),
                    );
                    bar.set_prefix(name.clone());
                    bar.set_message("starting");
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(run.0, bar);
                }
                PlanEvent::RunStatus { run, .. } => {
                    if let Some(bar) = bars.remove(&run.0) {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                }
                PlanEvent::StepStarted {
                    run,
                    seq,
                    action,
                    command,
                    ..
                } => {
                    if let Some(bar) = bars.get(&run.0) {
                        let command = command.lines().next().unwrap_or_default();
                        bar.set_message(format!("step {seq} {action}: {command}"));
                    }
                }
            }
        });
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
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .event_format(LineFormat)
            .with_writer(self.clone())
            .try_init();
    }
}

/// `message`, with the level in front for warnings and errors.
struct LineFormat;

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
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
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
