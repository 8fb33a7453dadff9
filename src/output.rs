//! How a plan or a report reads: numbered steps grouped by node with the playbook line and the
//! exact command, rendered file changes as diffs, then a per-node summary.

use std::fmt::Write as _;

use crate::effects::Access;
use crate::plan::{RunRecord, RunStatus, StepRecord};
use crate::runtime::run::Report;

/// The text form of a report (a dry-run's plan, or a real run's steps and summary).
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let heading = if report.dry_run {
        if report.offline {
            "Plan (dry-run, offline: nothing was contacted or changed)"
        } else {
            "Plan (dry-run: read-only probes ran, nothing was changed)"
        }
    } else {
        "Run"
    };
    let _ = writeln!(out, "{heading}: {}", report.playbook);
    if !report.params.is_empty() {
        let params: Vec<String> = report
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "Parameters: {}", params.join(" "));
    }
    let mut any_unobserved = false;
    for run in report.setup.iter().chain(&report.nodes) {
        out.push('\n');
        match &run.host {
            Some(host) => {
                let _ = writeln!(out, "{} ({host})", run.name);
            }
            None if report.setup.as_ref().is_some_and(|s| std::ptr::eq(s, run)) => {
                let _ = writeln!(out, "{} krun's own steps, before the playbook", run.name);
            }
            None => {
                let _ = writeln!(out, "{}", run.name);
            }
        }
        if run.steps.is_empty() {
            let _ = writeln!(out, "  (no steps)");
        }
        for step in &run.steps {
            any_unobserved |= !step.observed;
            write_step(&mut out, run, step, report.dry_run);
        }
    }
    if any_unobserved {
        let _ = writeln!(
            out,
            "\n? marks steps that depend on state krun could not observe (offline or unreachable node)."
        );
    }
    out.push('\n');
    out.push_str(&summary(&report.nodes));
    if let Some(id) = &report.run_id {
        let _ = writeln!(out, "Run {id}");
    }
    out
}

fn write_step(out: &mut String, run: &RunRecord, step: &StepRecord, dry_run: bool) {
    let mark = if step.observed { ' ' } else { '?' };
    let location = match (&step.file, step.line) {
        (Some(file), Some(line)) => format!("{}:{line}", short_path(file)),
        _ => String::new(),
    };
    let target = if step.node == run.name {
        String::new()
    } else {
        format!("on {}: ", step.node)
    };
    let verb = match (dry_run, step.access, step.executed) {
        (true, Access::Read, true) => "read",
        (true, Access::Read, false) => "not read",
        (true, _, _) => "would",
        (false, _, _) => "",
    };
    let _ = writeln!(
        out,
        "{mark}{:>3}  {:<14} {:<22} {}{}{}",
        step.seq,
        step.action,
        location,
        if verb.is_empty() {
            String::new()
        } else {
            format!("[{verb}] ")
        },
        target,
        first_line(&step.command)
    );
    let mut result = Vec::new();
    if let Some(code) = step.exit_code
        && (!dry_run || code != 0)
    {
        result.push(format!("exit {code}"));
    }
    if let Some(ms) = step.duration_ms
        && !dry_run
    {
        result.push(format!("{ms} ms"));
    }
    if let Some(error) = &step.error {
        result.push(format!("error: {error}"));
    }
    if !result.is_empty() {
        let _ = writeln!(out, "{:>6}→ {}", "", result.join(", "));
    }
    if let Some(diff) = &step.diff {
        for line in diff.lines() {
            let _ = writeln!(out, "{:>8}{line}", "");
        }
    }
}

fn first_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}

/// Paths relative to the working directory read better in a plan.
fn short_path(file: &str) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            std::path::Path::new(file)
                .strip_prefix(cwd)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| file.to_owned())
}

/// Per-node status lines: ok / failed at step N / interrupted / not started.
pub fn summary(runs: &[RunRecord]) -> String {
    let mut out = String::from("Summary:\n");
    for run in runs {
        let status = match run.status {
            RunStatus::Ok => format!("ok ({} steps)", run.steps.len()),
            RunStatus::NotStarted => "not started".to_owned(),
            RunStatus::Running => "still running".to_owned(),
            RunStatus::Failed | RunStatus::Interrupted => {
                let word = if run.status == RunStatus::Failed {
                    "failed"
                } else {
                    "interrupted"
                };
                let failure = run.failure.as_ref();
                let at = failure
                    .and_then(|f| f.step)
                    .and_then(|seq| run.steps.get(seq - 1))
                    .map(|s| format!(" at step {} ({})", s.seq, s.action))
                    .unwrap_or_default();
                let line = failure
                    .and_then(|f| f.file.as_ref().zip(f.line))
                    .map(|(file, line)| format!(" [{}:{line}]", short_path(file)))
                    .unwrap_or_default();
                let message = failure.map(|f| first_line(&f.message)).unwrap_or_default();
                let mut text = format!("{word}{at}{line}: {message}");
                for node in failure
                    .map(|f| f.left_cordoned.as_slice())
                    .unwrap_or_default()
                {
                    let _ = write!(
                        text,
                        "\n  {:<16} {node} is left CORDONED: fix the cause, then resume the run \
                         (or `kubectl uncordon {node}` to return it to service as it is)",
                        ""
                    );
                }
                text
            }
        };
        let _ = writeln!(out, "  {:<16} {status}", run.name);
    }
    out
}
