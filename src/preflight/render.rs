//! Preflight findings and the forecast as an operator reads them.

use std::fmt::Write as _;

use super::forecast::Forecast;
use super::{Finding, Report, Severity};
use crate::paint::{Paint, Tone};

fn tone(severity: Severity) -> Tone {
    match severity {
        Severity::Block => Tone::Danger,
        Severity::Warn => Tone::Caution,
        Severity::Info => Tone::Note,
    }
}

fn seconds(s: f64) -> String {
    if s.is_infinite() {
        "never (stuck)".to_owned()
    } else if s >= 120.0 {
        format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.0}s")
    }
}

/// A rule with more findings than this shows [`EXAMPLES`] of them and counts the rest.
const FOLD_OVER: usize = 5;
const EXAMPLES: usize = 3;

/// Findings grouped by severity, then by rule (the id's check), each with its fix. A rule
/// that found many objects (a target two minors ahead: one per node) shows a few of them and
/// how to see or accept the rest.
pub fn findings(findings: &[Finding], paint: Paint) -> String {
    let mut out = String::new();
    for severity in [Severity::Block, Severity::Warn, Severity::Info] {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        // Rules in the order they were first found, each with its findings.
        let mut rules: Vec<(&str, Vec<&Finding>)> = Vec::new();
        for f in &group {
            match rules.iter_mut().find(|(rule, _)| *rule == f.check()) {
                Some((_, members)) => members.push(f),
                None => rules.push((f.check(), vec![f])),
            }
        }
        let _ = writeln!(
            out,
            "{} ({}{}):",
            paint.paint(tone(severity), severity.label().to_uppercase()),
            group.len(),
            if rules.len() < group.len() {
                format!(
                    " in {} rule{}",
                    rules.len(),
                    if rules.len() == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        );
        for (rule, members) in rules {
            let folded = members.len() > FOLD_OVER;
            if folded {
                let _ = writeln!(
                    out,
                    "  {} ({} findings, {} shown):",
                    paint.paint(tone(severity), rule),
                    members.len(),
                    EXAMPLES
                );
            }
            let indent = if folded { "  " } else { "" };
            for f in members
                .iter()
                .take(if folded { EXAMPLES } else { usize::MAX })
            {
                let accepted = if f.accepted { " [accepted]" } else { "" };
                let id = if f.accepted {
                    paint.paint(Tone::Faint, &f.id)
                } else {
                    paint.paint(tone(severity), &f.id)
                };
                let _ = writeln!(out, "{indent}  {id}{accepted}");
                let _ = writeln!(out, "{indent}    {}", f.message);
                let _ = writeln!(out, "{indent}    fix: {}", f.fix);
            }
            if folded {
                let _ = writeln!(
                    out,
                    "    … and {} more {rule} finding{} (-o json lists every one{})",
                    members.len() - EXAMPLES,
                    if members.len() - EXAMPLES == 1 {
                        ""
                    } else {
                        "s"
                    },
                    if severity == Severity::Block {
                        format!("; --accept {rule} accepts them all")
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    if findings.is_empty() {
        out.push_str("no findings\n");
    }
    out
}

/// The forecast as a table, one block per batch, and the verdict.
pub fn forecast(forecast: &Forecast, paint: Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "disruption forecast (--batch {}): {} batch{}",
        forecast.plan,
        forecast.batches.len(),
        if forecast.batches.len() == 1 {
            ""
        } else {
            "es"
        }
    );
    let _ = writeln!(
        out,
        "  {:>5}  {:>5}  {:>7}  {:>12}  {:>12}  nodes",
        "batch", "nodes", "evicted", "held by PDB", "duration"
    );
    for b in &forecast.batches {
        let nodes = if b.nodes.len() > 4 {
            format!(
                "{}, … ({} more)",
                b.nodes[..3].join(", "),
                b.nodes.len() - 3
            )
        } else {
            b.nodes.join(", ")
        };
        let _ = writeln!(
            out,
            "  {:>5}  {:>5}  {:>7}  {:>12}  {:>12}  {nodes}{}",
            b.index,
            b.nodes.len(),
            b.evicted.len(),
            seconds(b.hold_seconds),
            b.duration_seconds.map_or_else(|| "—".to_owned(), seconds),
            if b.blocked() {
                format!("  {}", paint.paint(Tone::Danger, "BLOCK"))
            } else {
                String::new()
            }
        );
        if let Some(explanation) = &b.explanation {
            let _ = writeln!(out, "         why: {explanation}");
        }
        for w in b
            .workloads
            .iter()
            .filter(|w| w.zero_ready || w.below_pdb || w.held_seconds > 0.0)
            .take(8)
        {
            let budget = match (&w.pdb, w.pdb_min_healthy) {
                (Some(pdb), Some(min)) if pdb.starts_with("kept replica") => {
                    format!("no PDB, the drain keeps a replica: needs {min}")
                }
                (Some(pdb), Some(min)) => format!("PDB {pdb} needs {min}"),
                _ => "no PDB".to_owned(),
            };
            let mark = if w.zero_ready {
                paint.paint(Tone::Danger, "ZERO READY")
            } else if w.below_pdb {
                paint.paint(Tone::Danger, "below PDB")
            } else {
                paint.paint(Tone::Caution, "held")
            };
            let _ = writeln!(
                out,
                "         {mark}: {} ready {} → {} during the batch ({budget}; {} disrupted{})",
                w.workload,
                w.ready_before,
                w.min_ready,
                w.disrupted,
                if w.held_seconds > 0.0 {
                    format!(", waits {}", seconds(w.held_seconds))
                } else {
                    String::new()
                }
            );
        }
        for s in b.stuck.iter().take(5) {
            let _ = writeln!(
                out,
                "         {}: {}/{} on {}: {}",
                paint.paint(Tone::Danger, "STUCK"),
                s.namespace,
                s.pod,
                s.node,
                s.reason
            );
        }
        for r in b.refused.iter().take(5) {
            let _ = writeln!(
                out,
                "         {}: {r}",
                paint.paint(Tone::Danger, "REFUSED")
            );
        }
    }
    let _ = writeln!(
        out,
        "  total: {} of cluster time, {} violation{}; verdict: {}{}",
        forecast
            .total_seconds
            .map_or_else(|| "unbounded (a batch never finishes)".to_owned(), seconds),
        forecast.violations,
        if forecast.violations == 1 { "" } else { "s" },
        paint.paint(
            if forecast.verdict.blocking.is_empty() {
                Tone::Good
            } else if forecast.accepted {
                Tone::Caution
            } else {
                Tone::Danger
            },
            forecast.verdict.short()
        ),
        if forecast.accepted { " [accepted]" } else { "" }
    );
    out
}

/// The whole preflight report.
pub fn report(report: &Report, paint: Paint) -> String {
    let mut out = format!(
        "preflight: cluster {}{}\n",
        report.cluster_version,
        report
            .target
            .as_deref()
            .map(|t| format!(", target {t}"))
            .unwrap_or_default()
    );
    out.push_str(&findings(&report.findings, paint));
    if let Some(f) = &report.forecast {
        out.push_str(&forecast(f, paint));
    }
    let blocks = report.findings.iter().filter(|f| f.blocks()).count();
    if report.blocked() {
        let mut what = Vec::new();
        if blocks > 0 {
            what.push(format!(
                "{blocks} block finding{} (--accept ID)",
                if blocks == 1 { "" } else { "s" }
            ));
        }
        if report.forecast.as_ref().is_some_and(Forecast::blocked) {
            what.push("the disruption forecast (--accept forecast)".to_owned());
        }
        let _ = writeln!(
            out,
            "{}: {}; fix them, or accept each explicitly",
            paint.paint(Tone::Danger, "refused"),
            what.join(" and ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(check: &str, node: usize, severity: Severity) -> Finding {
        Finding::new(
            check,
            &format!("worker-{node}"),
            severity,
            format!("node/worker-{node}"),
            format!("worker-{node} is behind"),
            format!("upgrade worker-{node}"),
        )
    }

    #[test]
    fn a_rule_with_many_findings_shows_a_few_and_counts_the_rest() {
        let mut all: Vec<Finding> = (1..=500)
            .map(|n| finding("kubelet-skew", n, Severity::Block))
            .collect();
        all.push(finding("cordoned", 7, Severity::Block));
        all.extend((1..=4).map(|n| finding("single-replica", n, Severity::Warn)));
        let text = findings(&all, Paint::PLAIN);
        assert!(text.starts_with("BLOCK (501 in 2 rules):\n"), "{text}");
        assert!(
            text.contains("  kubelet-skew (500 findings, 3 shown):\n    kubelet-skew/worker-1\n"),
            "{text}"
        );
        assert!(text.contains("kubelet-skew/worker-3\n"), "{text}");
        assert!(!text.contains("kubelet-skew/worker-4\n"), "{text}");
        assert!(
            text.contains("    … and 497 more kubelet-skew findings (-o json lists every one; --accept kubelet-skew accepts them all)\n"),
            "{text}"
        );
        // Rules with few findings are listed whole, as before.
        assert!(
            text.contains("\n  cordoned/worker-7\n    worker-7 is behind\n"),
            "{text}"
        );
        assert!(
            text.contains("WARN (4 in 1 rule):\n  single-replica/worker-1\n"),
            "{text}"
        );
        assert!(text.contains("single-replica/worker-4\n"), "{text}");
        assert!(text.lines().count() < 40, "{text}");
    }
}
