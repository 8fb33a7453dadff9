//! How a plan or a report reads: numbered steps grouped by node with the playbook line and the
//! exact command, rendered file changes as diffs, then a per-node summary; and the documents of
//! `--output json|yaml`, each with its `schema`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::Error;
use crate::cli::OutputFormat;
use crate::effects::Access;
use crate::paint::{Paint, Tone};
use crate::plan::{RunRecord, RunStatus, StepRecord, Unplanned};
use crate::runtime::run::Report;

/// The schema of `krun PLAYBOOK -o json|yaml` (and of `krun resume`).
pub const RUN_SCHEMA: &str = "krun/run/v1";
/// The schema of `krun preflight -o json|yaml`.
pub const PREFLIGHT_SCHEMA: &str = "krun/preflight/v1";
/// The schema of `krun describe -o json|yaml`.
pub const DESCRIBE_SCHEMA: &str = "krun/describe/v1";
/// The schema of `krun runs -o json|yaml`.
pub const RUNS_SCHEMA: &str = "krun/runs/v1";

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    /// Names the document's shape; a new version when a field changes meaning or goes away.
    schema: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// `body` as a JSON or YAML document with its `schema` first; `None` for text.
pub fn document<T: Serialize>(
    format: OutputFormat,
    schema: &str,
    body: &T,
) -> crate::Result<Option<String>> {
    let document = Document { schema, body };
    let text = match format {
        OutputFormat::Text => return Ok(None),
        OutputFormat::Json => serde_json::to_string_pretty(&document).map(|j| j + "\n"),
        OutputFormat::Yaml => {
            return serde_yaml_ng::to_string(&document)
                .map(Some)
                .map_err(|e| Error::runtime(format!("cannot write YAML: {e}")));
        }
    };
    text.map(Some)
        .map_err(|e| Error::runtime(format!("cannot write JSON: {e}")))
}

/// How the text of a report is written.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    pub paint: Paint,
    /// `-q`: the summary only.
    pub quiet: bool,
    /// The command that resumes this run, shown when it stopped.
    pub resume: Option<String>,
}

/// Why a change takes away something a second run cannot give back, if it does: the steps a
/// plan shows as `[would destroy]` and that a run asks about before it starts.
pub fn destroys(step: &StepRecord) -> Option<&'static str> {
    if step.access != Access::Change {
        return None;
    }
    if step.action == "etcd_remove_member" {
        return Some("removes an etcd member");
    }
    for words in commands(&step.command) {
        let program = words[0].rsplit('/').next().unwrap_or_default();
        let then = |sub: &[&str]| words.len() > sub.len() && words[1..=sub.len()] == *sub;
        if program == "mkfs" || program.starts_with("mkfs.") {
            return Some("formats a disk");
        }
        if program == "wipefs" {
            return Some("wipes a disk");
        }
        if (program == "etcdutl" || program == "etcdctl") && then(&["snapshot", "restore"]) {
            return Some("restores etcd from a snapshot");
        }
        if program == "kubeadm" && then(&["reset"]) {
            return Some("resets the node's Kubernetes state");
        }
    }
    None
}

/// The simple commands of a shell command line, each as its words from the program on
/// (`sudo`, `env`, `exec` and variable assignments in front are skipped).
fn commands(line: &str) -> Vec<Vec<&str>> {
    line.split(['\n', ';', '&', '|', '(', ')'])
        .filter_map(|segment| {
            let words: Vec<&str> = segment
                .split_whitespace()
                .map(|w| w.trim_matches(['\'', '"']))
                .skip_while(|w| {
                    matches!(*w, "sudo" | "-n" | "env" | "exec" | "then" | "do" | "!")
                        || w.contains('=')
                })
                .collect();
            (!words.is_empty()).then_some(words)
        })
        .collect()
}

/// Whether a change takes a node's workloads away (cordon, drain, eviction).
pub fn disrupts(step: &StepRecord) -> Option<&'static str> {
    if step.access != Access::Change {
        return None;
    }
    match step.action.as_str() {
        "cordon" => Some("cordons a node"),
        "drain" => Some("drains a node"),
        "evict" => Some("evicts a pod"),
        _ => None,
    }
}

/// The text form of a report (a dry-run's plan, or a real run's steps and summary).
pub fn text(report: &Report, options: &TextOptions) -> String {
    let paint = options.paint;
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
    if !options.quiet {
        let _ = writeln!(
            out,
            "{}: {}",
            paint.paint(Tone::Strong, heading),
            report.playbook
        );
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
            let name = paint.paint(Tone::Strong, &run.name);
            match &run.host {
                Some(host) => {
                    let _ = writeln!(out, "{name} ({host})");
                }
                None if report.setup.as_ref().is_some_and(|s| std::ptr::eq(s, run)) => {
                    let _ = writeln!(out, "{name} krun's own steps, before the playbook");
                }
                None => {
                    let _ = writeln!(out, "{name}");
                }
            }
            if run.steps.is_empty() && run.unplanned.is_empty() {
                let _ = writeln!(out, "  (no steps)");
            }
            let notes_after =
                |seq: usize| run.unplanned.iter().filter(move |u| u.after_step == seq);
            for note in notes_after(0) {
                write_unplanned(&mut out, run, note, paint);
            }
            for step in &run.steps {
                any_unobserved |= !step.observed;
                write_step(&mut out, run, step, report.dry_run, paint);
                for note in notes_after(step.seq) {
                    write_unplanned(&mut out, run, note, paint);
                }
            }
        }
        if any_unobserved {
            let _ = writeln!(
                out,
                "\n? marks steps that depend on state krun could not observe (offline or unreachable node)."
            );
        }
        out.push('\n');
    }
    out.push_str(&summary(&report.nodes, report.dry_run, paint));
    if let Some(id) = &report.run_id {
        let _ = writeln!(out, "Run {id}");
    }
    if let Some(resume) = &options.resume {
        let _ = writeln!(out, "Resume with: {}", paint.paint(Tone::Strong, resume));
    }
    out
}

fn write_step(out: &mut String, run: &RunRecord, step: &StepRecord, dry_run: bool, paint: Paint) {
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
    let destroys = destroys(step);
    let (verb, tone) = match (dry_run, step.access, step.executed) {
        (true, Access::Read, true) => ("[read] ", Tone::Faint),
        (true, Access::Read, false) => ("[not read] ", Tone::Faint),
        (true, _, _) if destroys.is_some() => ("[would destroy] ", Tone::Danger),
        (true, Access::Change, _) => ("[would] ", Tone::Caution),
        (true, Access::Wait, _) => ("[would] ", Tone::Note),
        (false, _, true) if destroys.is_some() && step.error.is_none() => {
            ("[destroyed] ", Tone::Danger)
        }
        (false, _, _) => ("", Tone::Faint),
    };
    let command = first_line(&step.command);
    let command = if destroys.is_some() {
        paint.paint(Tone::Danger, command)
    } else {
        command
    };
    let _ = writeln!(
        out,
        "{mark}{:>3}  {:<14} {} {}{}{}",
        step.seq,
        step.action,
        paint.paint(Tone::Faint, format!("{location:<22}")),
        if verb.is_empty() {
            String::new()
        } else {
            paint.paint(tone, verb)
        },
        target,
        command
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
        result.push(paint.paint(Tone::Danger, format!("error: {error}")));
    }
    if !result.is_empty() {
        let _ = writeln!(out, "{:>6}→ {}", "", result.join(", "));
    }
    // What a call's preview found (a dry-run's drain: pods refused, budgets waited on).
    for note in step.data["notes"].as_array().into_iter().flatten() {
        if let Some(note) = note.as_str() {
            let _ = writeln!(out, "{:>6}· {note}", "");
        }
    }
    if let Some(diff) = &step.diff {
        for line in diff.lines() {
            let tone = if line.starts_with('+') && !line.starts_with("+++") {
                Some(Tone::Good)
            } else if line.starts_with('-') && !line.starts_with("---") {
                Some(Tone::Danger)
            } else {
                None
            };
            let line = tone.map_or_else(|| line.to_owned(), |t| paint.paint(t, line));
            let _ = writeln!(out, "{:>8}{line}", "");
        }
    }
}

fn write_unplanned(out: &mut String, run: &RunRecord, note: &Unplanned, paint: Paint) {
    let location = match (&note.file, note.line) {
        (Some(file), Some(line)) => format!("{}:{line}", short_path(file)),
        _ => String::new(),
    };
    let target = if note.node == run.name {
        String::new()
    } else {
        format!("on {}: ", note.node)
    };
    let _ = writeln!(
        out,
        "?  -  {:<14} {} {}{target}{}",
        "unplanned",
        paint.paint(Tone::Faint, format!("{location:<22}")),
        paint.paint(Tone::Caution, "[not planned] "),
        first_line(&note.what)
    );
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

/// What became of a run, in one word: done, refused, failed, interrupted.
pub fn state(run: &RunRecord) -> &'static str {
    match run.status {
        RunStatus::Ok => "ok",
        RunStatus::NotStarted => "not started",
        RunStatus::Running => "still running",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed
            if run
                .failure
                .as_ref()
                .is_some_and(|f| f.exit_code == crate::error::Kind::Refused.exit_code()) =>
        {
            "refused"
        }
        RunStatus::Failed => "failed",
    }
}

/// Per-node status lines: ok / refused, failed or interrupted at step N / not started.
pub fn summary(runs: &[RunRecord], dry_run: bool, paint: Paint) -> String {
    let mut out = format!("{}\n", paint.paint(Tone::Strong, "Summary:"));
    for run in runs {
        let word = state(run);
        let status = match run.status {
            RunStatus::Ok => {
                let mut text = paint.paint(Tone::Good, format!("ok ({} steps", run.steps.len()));
                let destroying = run.steps.iter().filter(|s| destroys(s).is_some()).count();
                if destroying > 0 {
                    let verb = if dry_run {
                        "would destroy"
                    } else {
                        "destroyed"
                    };
                    let _ = write!(
                        text,
                        ", {}",
                        paint.paint(Tone::Danger, format!("{destroying} {verb}"))
                    );
                }
                if !run.unplanned.is_empty() {
                    let _ = write!(
                        text,
                        ", {}",
                        paint.paint(
                            Tone::Caution,
                            format!("{} not planned", run.unplanned.len())
                        )
                    );
                }
                text.push_str(&paint.paint(Tone::Good, ")"));
                text
            }
            RunStatus::NotStarted | RunStatus::Running => paint.paint(Tone::Faint, word),
            RunStatus::Failed | RunStatus::Interrupted => {
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
                let tone = if run.status == RunStatus::Failed {
                    Tone::Danger
                } else {
                    Tone::Caution
                };
                let mut text = format!("{}{at}{line}: {message}", paint.paint(tone, word));
                for node in failure
                    .map(|f| f.left_cordoned.as_slice())
                    .unwrap_or_default()
                {
                    let _ = write!(
                        text,
                        "\n  {:<16} {node} is left {}: fix the cause, then resume the run \
                         (or `kubectl uncordon {node}` to return it to service as it is)",
                        "",
                        paint.paint(Tone::Caution, "CORDONED")
                    );
                }
                text
            }
        };
        let _ = writeln!(out, "  {:<16} {status}", run.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Origin;

    fn change(action: &str, command: &str) -> StepRecord {
        StepRecord::new(
            action,
            "n1",
            Access::Change,
            command.to_owned(),
            Origin::default(),
        )
    }

    #[test]
    fn destructive_steps_are_told_from_other_changes() {
        for (action, command, expected) in [
            (
                "sh",
                "mkfs.ext4 -F -L runtime /dev/vdb",
                Some("formats a disk"),
            ),
            ("sh", "/sbin/mkfs -t xfs /dev/sdb", Some("formats a disk")),
            ("sh", "wipefs -a /dev/vdb", Some("wipes a disk")),
            (
                "etcd_remove_member",
                "etcd member remove m1",
                Some("removes an etcd member"),
            ),
            (
                "sh",
                "etcdutl snapshot restore /backup/etcd.db --data-dir /var/lib/etcd",
                Some("restores etcd from a snapshot"),
            ),
            (
                "sh",
                "kubeadm reset -f",
                Some("resets the node's Kubernetes state"),
            ),
            ("sh", "echo mkfs is a word here", None),
            ("systemctl", "systemctl restart kubelet", None),
        ] {
            assert_eq!(destroys(&change(action, command)), expected, "{command}");
        }
        let mut read = change("sh", "mkfs.ext4 /dev/vdb");
        read.access = Access::Read;
        assert_eq!(destroys(&read), None);
        assert_eq!(
            disrupts(&change("cordon", "kubectl cordon n1")),
            Some("cordons a node")
        );
    }
}
