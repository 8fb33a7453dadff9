//! `krun runs` and `krun runs show ID`: the journals under the state directory, as a table or
//! one run in detail; `-o json|yaml` for programs.

use std::fmt::Write as _;

use crate::app::print;
use crate::cli::{RunsArgs, RunsCommand};
use crate::journal::view::{JournalView, RunState, RunSummary, Stopped};
use crate::output::{RUNS_SCHEMA, document};
use crate::paint::{Paint, Tone};

#[derive(serde::Serialize)]
struct Listing<'a> {
    runs: &'a [RunSummary],
}

pub fn runs(args: &RunsArgs) -> crate::Result<u8> {
    let paint = Paint::stdout();
    let now = chrono::Utc::now();
    match &args.command {
        Some(RunsCommand::Show { id }) => {
            let summary = JournalView::load(&args.state_dir, id)?.summary();
            let latest = JournalView::latest_resume(&args.state_dir, id)?;
            match document(
                args.output,
                RUNS_SCHEMA,
                &Listing {
                    runs: std::slice::from_ref(&summary),
                },
            )? {
                Some(text) => print(&text),
                None => print(&show(&summary, &latest, &args.state_dir, now, paint)),
            }
        }
        None => {
            let all: Vec<RunSummary> = JournalView::list(&args.state_dir)
                .iter()
                .map(JournalView::summary)
                .collect();
            match document(args.output, RUNS_SCHEMA, &Listing { runs: &all })? {
                Some(text) => print(&text),
                None if all.is_empty() => print(&format!(
                    "no runs recorded under {}\n",
                    args.state_dir.display()
                )),
                None => print(&table(&all, now, paint)),
            }
        }
    }
    Ok(0)
}

fn tone(state: RunState) -> Tone {
    match state {
        RunState::Failed | RunState::Refused => Tone::Danger,
        RunState::Interrupted | RunState::Unfinished => Tone::Caution,
        RunState::Done => Tone::Good,
    }
}

/// How long ago a run started, in its largest unit: `45s`, `12m`, `3h`, `2d`.
pub fn age(started_at: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(started) = chrono::DateTime::parse_from_rfc3339(started_at) else {
        return "?".to_owned();
    };
    let seconds = (now - started.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn where_stopped(stopped: &Stopped) -> String {
    let mut at = stopped.node.clone();
    if let (Some(step), Some(action)) = (stopped.step, &stopped.action) {
        let _ = write!(at, " step {step} ({action})");
    }
    if let Some(line) = stopped.line {
        let _ = write!(at, " line {line}");
    }
    format!("{at}: {}", stopped.reason)
}

/// One line per run, newest first: id, age, kind, playbook, nodes, state, where it stopped.
pub fn table(runs: &[RunSummary], now: chrono::DateTime<chrono::Utc>, paint: Paint) -> String {
    let header = [
        "ID",
        "AGE",
        "KIND",
        "PLAYBOOK",
        "NODES",
        "STATE",
        "WHERE IT STOPPED",
    ];
    let rows: Vec<(RunState, [String; 7])> = runs
        .iter()
        .map(|run| {
            let kind = if run.dry_run {
                "dry-run"
            } else if run.resumes.is_some() {
                "resume"
            } else {
                "run"
            };
            let nodes = match run.nodes.as_slice() {
                [] => "-".to_owned(),
                [one] => one.node.clone(),
                [first, rest @ ..] => format!("{} +{}", first.node, rest.len()),
            };
            (
                run.state,
                [
                    run.id.clone(),
                    age(&run.started_at, now),
                    kind.to_owned(),
                    run.playbook.clone(),
                    nodes,
                    run.state.word().to_owned(),
                    run.stopped.as_ref().map(where_stopped).unwrap_or_default(),
                ],
            )
        })
        .collect();
    let mut widths = header.map(str::len);
    for (_, row) in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: [String; 7], state: Option<RunState>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let last = i == cells.len() - 1;
            let padded = if last {
                cell.clone()
            } else {
                format!("{cell:<width$}  ", width = widths[i])
            };
            let padded = match (i, state) {
                (5, Some(state)) => paint.paint(tone(state), padded),
                (_, None) => paint.paint(Tone::Strong, padded),
                _ => padded,
            };
            text.push_str(&padded);
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header.map(str::to_owned), None));
    for (state, row) in rows {
        let _ = writeln!(out, "{}", line(row, Some(state)));
    }
    out
}

/// One run in detail: what ran, where each node stopped, and how to resume it.
pub fn show(
    run: &RunSummary,
    latest: &JournalView,
    state_dir: &std::path::Path,
    now: chrono::DateTime<chrono::Utc>,
    paint: Paint,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  {}{}  {}",
        paint.paint(Tone::Strong, &run.id),
        run.playbook,
        if run.dry_run { "  (dry-run)" } else { "" },
        paint.paint(tone(run.state), run.state.word())
    );
    let _ = writeln!(
        out,
        "  started {} ({} ago) by {}@{}",
        run.started_at,
        age(&run.started_at, now),
        run.user,
        run.host
    );
    if let Some(resumes) = &run.resumes {
        let _ = writeln!(out, "  resumes {resumes}");
    }
    let _ = writeln!(out, "  command: {}", run.command);
    for library in &run.libraries {
        let _ = writeln!(
            out,
            "  library {} {} {}",
            library.name, library.version, library.hash
        );
    }
    for node in &run.nodes {
        let state = match &node.stopped {
            None => format!("{} ({} steps)", node.state, node.steps),
            Some(stopped) => {
                let mut text = node.state.clone();
                match (stopped.step, &stopped.action, stopped.line) {
                    (Some(step), Some(action), line) => {
                        let _ = write!(
                            text,
                            " at step {step} ({action} `{}`, line {})",
                            stopped.command.as_deref().unwrap_or_default(),
                            line.map_or("?".to_owned(), |l| l.to_string())
                        );
                    }
                    (_, _, Some(line)) => {
                        let _ = write!(text, " at line {line}");
                    }
                    _ => {}
                }
                let _ = write!(text, ": {}", stopped.reason);
                text
            }
        };
        let _ = writeln!(out, "  {:<16} {state}", node.node);
    }
    if run.nodes.is_empty()
        && let Some(stopped) = &run.stopped
    {
        let _ = writeln!(out, "  {}", where_stopped(stopped));
    }
    if let Some(line) = run.torn {
        let _ = writeln!(
            out,
            "  the journal's last record (line {line}) is torn: krun was killed, or the disk \
             filled, while writing it; the step it belonged to counts as not recorded"
        );
    }
    out.push_str(&run.restorable);
    // A stopped run resumed since: resuming again continues from the newest of the chain.
    if latest.id != run.id {
        let state = if latest.finished() {
            "which finished"
        } else {
            "which stopped too"
        };
        let _ = writeln!(out, "  resumed by run {}, {state}", latest.id);
    }
    if !latest.finished() && !run.dry_run {
        let _ = writeln!(
            out,
            "  resume with: {}",
            paint.paint(
                Tone::Strong,
                super::run::resume_command(&latest.id, state_dir)
            )
        );
    }
    out
}
