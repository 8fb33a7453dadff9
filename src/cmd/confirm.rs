//! Asking before a run that takes nodes out of service or destroys something: on a terminal,
//! the run is planned first (a dry-run of the same command, not journaled), and when the plan
//! cordons, drains or evicts, formats a disk, removes an etcd member or restores a snapshot,
//! the operator sees a summary with the destructive steps in red and types `yes` to go on.
//! `--yes` skips the question; without a terminal there is never one.
//!
//! One mechanism for every such step: the question is asked once, before the run's first
//! change, from the plan; no primitive asks anything itself.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};

use crate::output::{destroys, disrupts};
use crate::paint::{Paint, Tone};
use crate::runtime::run::{Report, RunSettings};

/// How many nodes and destructive steps the question lists before it counts the rest.
const SHOWN: usize = 20;

/// Whether to plan and maybe ask before this run: a real run, without `--yes`, with a person
/// at a terminal to answer.
pub fn wanted(settings: &RunSettings, yes: bool) -> bool {
    if settings.dry_run || yes {
        return false;
    }
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !terminal {
        tracing::debug!("no terminal: running without asking");
    }
    terminal
}

/// The settings of the plan made before asking: the same run as a dry-run, not journaled.
pub fn plan_of(settings: &RunSettings) -> RunSettings {
    let mut plan = settings.clone();
    plan.dry_run = true;
    plan.journal = false;
    plan
}

/// Shows what the planned run would take out of service or destroy and asks; true to go on.
/// A plan that does neither goes on without a question.
pub fn ask(plan: &Report) -> crate::Result<bool> {
    let paint = Paint::stderr();
    let Some(question) = question(plan, paint) else {
        return Ok(true);
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| crate::Error::runtime(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

/// The plan's summary and the question, or `None` when the plan neither disrupts nor destroys.
pub fn question(plan: &Report, paint: Paint) -> Option<String> {
    let mut changes = 0;
    let mut destructive = Vec::new();
    let mut lines = Vec::new();
    for run in &plan.nodes {
        let mut what: Vec<&str> = Vec::new();
        let mut count = 0;
        for step in &run.steps {
            if step.access == crate::effects::Access::Read {
                continue;
            }
            count += 1;
            if let Some(reason) = disrupts(step).or_else(|| destroys(step))
                && !what.contains(&reason)
            {
                what.push(reason);
            }
            if let Some(reason) = destroys(step) {
                destructive.push((step.node.as_str(), step, reason));
            }
        }
        changes += count;
        if count > 0 {
            lines.push(format!(
                "  {:<16} {count} change{}{}",
                run.name,
                if count == 1 { "" } else { "s" },
                if what.is_empty() {
                    String::new()
                } else {
                    format!(": {}", what.join(", "))
                }
            ));
        }
    }
    let asks = plan
        .nodes
        .iter()
        .flat_map(|r| &r.steps)
        .any(|s| disrupts(s).is_some() || destroys(s).is_some());
    if !asks {
        return None;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} {}",
        paint.paint(Tone::Strong, "This run changes the cluster:"),
        plan.playbook
    );
    for line in lines.iter().take(SHOWN) {
        let _ = writeln!(out, "{line}");
    }
    if lines.len() > SHOWN {
        let _ = writeln!(out, "  … and {} more nodes", lines.len() - SHOWN);
    }
    if !destructive.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.paint(Tone::Danger, "Destroys what a second run cannot give back:")
        );
        for (node, step, reason) in destructive.iter().take(SHOWN) {
            let location = step
                .line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {node:<16} step {}{location}: {} — {reason}",
                step.seq,
                paint.paint(
                    Tone::Danger,
                    step.command.lines().next().unwrap_or_default()
                )
            );
        }
        if destructive.len() > SHOWN {
            let _ = writeln!(out, "  … and {} more", destructive.len() - SHOWN);
        }
    }
    let _ = writeln!(
        out,
        "Plan: {} node{}, {changes} change{}, {} destructive. The same command with --dry-run shows every step.",
        plan.nodes.len(),
        if plan.nodes.len() == 1 { "" } else { "s" },
        if changes == 1 { "" } else { "s" },
        paint.paint(
            if destructive.is_empty() {
                Tone::Good
            } else {
                Tone::Danger
            },
            destructive.len()
        ),
    );
    let _ = write!(
        out,
        "Go on? Only {} goes on: ",
        paint.paint(Tone::Strong, "yes")
    );
    Some(out)
}
