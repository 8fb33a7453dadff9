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

/// Findings grouped by severity, each with its fix.
pub fn findings(findings: &[Finding], paint: Paint) -> String {
    let mut out = String::new();
    for severity in [Severity::Block, Severity::Warn, Severity::Info] {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "{} ({}):",
            paint.paint(tone(severity), severity.label().to_uppercase()),
            group.len()
        );
        for f in group {
            let accepted = if f.accepted { " [accepted]" } else { "" };
            let id = if f.accepted {
                paint.paint(Tone::Faint, &f.id)
            } else {
                paint.paint(tone(severity), &f.id)
            };
            let _ = writeln!(out, "  {id}{accepted}");
            let _ = writeln!(out, "    {}", f.message);
            let _ = writeln!(out, "    fix: {}", f.fix);
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
