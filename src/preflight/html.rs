//! `--report FILE.html`: the preflight report as one self-contained page (no scripts, no
//! external assets) — the findings, the plan as a timeline of batches × nodes × cluster time,
//! and each workload's ready replicas through the upgrade.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::forecast::Forecast;
use super::{Report, Severity};

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn minutes(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 120.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
.block{background:#fdd}.warn{background:#ffe9b3}.info{background:#e8f0ff}.ok{background:#dfd}.held{background:#ffe9b3}\
.zero{background:#f99;font-weight:bold}.accepted{opacity:.6}.verdict{font-weight:bold}\
svg text{font:11px system-ui,sans-serif}";

/// The whole page.
pub fn page(report: &Report) -> String {
    let mut out = String::new();
    let title = format!(
        "krun preflight: cluster {}{}",
        report.cluster_version,
        report
            .target
            .as_deref()
            .map(|t| format!(" → {t}"))
            .unwrap_or_default()
    );
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    let verdict = if report.blocked() {
        "refused: something blocks (exit 3)"
    } else {
        "ok: nothing blocks"
    };
    let _ = write!(out, "<p class=\"verdict\">{verdict}</p>");
    findings(&mut out, report);
    if let Some(forecast) = &report.forecast {
        timeline(&mut out, forecast);
        availability(&mut out, forecast);
    }
    out.push_str("</body></html>\n");
    out
}

/// A hop's verification as a page of its own (`verify(#{ report: "FILE.html" })`).
pub fn verification_page(verification: &crate::kube::health::Verification) -> String {
    let title = format!("krun verification at {}", verification.version);
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title><style>{STYLE}</style></head><body><h1>{0}</h1>{1}</body></html>\n",
        escape(&title),
        super::verify_html::section(verification)
    )
}

fn findings(out: &mut String, report: &Report) {
    let _ = write!(out, "<h2>Findings ({})</h2>", report.findings.len());
    if report.findings.is_empty() {
        out.push_str("<p>No findings.</p>");
        return;
    }
    out.push_str("<table><tr><th>severity</th><th>id</th><th>finding</th><th>fix</th></tr>");
    for f in &report.findings {
        let class = match f.severity {
            Severity::Block => "block",
            Severity::Warn => "warn",
            Severity::Info => "info",
        };
        let accepted = if f.accepted { " accepted" } else { "" };
        let _ = write!(
            out,
            "<tr class=\"{class}{accepted}\"><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.severity.label(),
            if f.accepted { " (accepted)" } else { "" },
            escape(&f.id),
            escape(&f.message),
            escape(&f.fix)
        );
    }
    out.push_str("</table>");
}

/// Batches × nodes × cluster time, one row per node.
fn timeline(out: &mut String, forecast: &Forecast) {
    let _ = write!(
        out,
        "<h2>Plan: --batch {} — {} batches, {}, {} violation{}</h2><p>{}</p>",
        escape(&forecast.plan),
        forecast.batches.len(),
        forecast
            .total_seconds
            .map_or_else(|| "never finishes".to_owned(), minutes),
        forecast.violations,
        if forecast.violations == 1 { "" } else { "s" },
        escape(&forecast.verdict)
    );
    // A batch that never finishes is drawn as long as the longest batch that does, hatched.
    let longest = forecast
        .batches
        .iter()
        .filter_map(|b| b.duration_seconds)
        .fold(60.0f64, f64::max);
    let mut starts = Vec::new();
    let mut t = 0.0;
    for b in &forecast.batches {
        starts.push(t);
        t += b.duration_seconds.unwrap_or(longest);
    }
    let total = t.max(1.0);
    let rows: usize = forecast.batches.iter().map(|b| b.nodes.len()).sum();
    let (label, width, row) = (140.0, 760.0, 14.0);
    let height = rows as f64 * row + 30.0;
    let _ = write!(
        out,
        "<svg width=\"{}\" height=\"{height}\">",
        label + width + 20.0
    );
    out.push_str("<defs><pattern id=\"stuck\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\"><path d=\"M0,6 L6,0\" stroke=\"#c00\"/></pattern></defs>");
    let mut y = 0.0;
    for (b, start) in forecast.batches.iter().zip(&starts) {
        let x = label + start / total * width;
        let w = (b.duration_seconds.unwrap_or(longest) / total * width).max(1.0);
        let fill = if b.duration_seconds.is_none() {
            "url(#stuck)"
        } else if b.blocked() {
            "#f99"
        } else if b.hold_seconds > 0.0 {
            "#fc6"
        } else {
            "#7c7"
        };
        for node in &b.nodes {
            let _ = write!(
                out,
                "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\" fill=\"{fill}\" stroke=\"#555\" stroke-width=\".3\"><title>batch {}: {} ({})</title></rect>",
                y + row - 3.0,
                escape(node),
                row - 2.0,
                b.index,
                escape(node),
                b.duration_seconds
                    .map_or_else(|| "never finishes".to_owned(), minutes)
            );
            y += row;
        }
    }
    let _ = write!(
        out,
        "<text x=\"{label}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} of cluster time</text></svg>",
        y + 20.0,
        label + width,
        y + 20.0,
        minutes(total)
    );
    out.push_str("<table><tr><th>batch</th><th>nodes</th><th>evicted</th><th>held by budgets</th><th>why</th><th>blocks</th></tr>");
    for b in &forecast.batches {
        let class = if b.blocked() { "block" } else { "ok" };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            b.index,
            escape(&b.nodes.join(", ")),
            b.evicted.len(),
            if b.hold_seconds.is_infinite() {
                "never released".to_owned()
            } else {
                minutes(b.hold_seconds)
            },
            escape(b.explanation.as_deref().unwrap_or("")),
            escape(&b.blocks.join("; "))
        );
    }
    out.push_str("</table>");
}

/// Each workload's lowest ready replicas per batch, for the workloads that lose pods.
fn availability(out: &mut String, forecast: &Forecast) {
    let mut rows: BTreeMap<&str, BTreeMap<usize, &super::forecast::Impact>> = BTreeMap::new();
    for b in &forecast.batches {
        for w in &b.workloads {
            rows.entry(&w.workload).or_default().insert(b.index, w);
        }
    }
    // Worst first: zero ready, below budget, held; at most 200 rows.
    let mut ordered: Vec<(&str, BTreeMap<usize, &super::forecast::Impact>)> =
        rows.into_iter().collect();
    let score = |cells: &BTreeMap<usize, &super::forecast::Impact>| {
        let zero = cells.values().any(|i| i.zero_ready && i.ready_before > 1);
        let below = cells.values().any(|i| i.below_pdb);
        let held = cells.values().any(|i| i.held_seconds > 0.0);
        (!zero, !below, !held)
    };
    ordered.sort_by_key(|(name, cells)| (score(cells), *name));
    let _ = write!(
        out,
        "<h2>Workloads through the upgrade ({} lose pods)</h2><p>Ready replicas at their lowest in each batch / before it.</p><table><tr><th>workload</th>",
        ordered.len()
    );
    for b in &forecast.batches {
        let _ = write!(out, "<th>{}</th>", b.index);
    }
    out.push_str("</tr>");
    for (name, cells) in ordered.iter().take(200) {
        let _ = write!(out, "<tr><td>{}</td>", escape(name));
        for b in &forecast.batches {
            match cells.get(&b.index) {
                None => out.push_str("<td></td>"),
                Some(i) => {
                    let class = if i.zero_ready {
                        "zero"
                    } else if i.below_pdb {
                        "block"
                    } else if i.held_seconds > 0.0 || i.min_ready < i.ready_before {
                        "held"
                    } else {
                        "ok"
                    };
                    let _ = write!(
                        out,
                        "<td class=\"{class}\" title=\"{}\">{}/{}</td>",
                        escape(&format!(
                            "{} disrupted{}",
                            i.disrupted,
                            i.pdb
                                .as_deref()
                                .map(|p| format!(", PDB {p}"))
                                .unwrap_or_default()
                        )),
                        i.min_ready,
                        i.ready_before
                    );
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}
