//! `--report FILE.html`: the preflight report as one self-contained page (no scripts, no
//! external assets): where it was made and from what, the verdict, the findings grouped by
//! rule, the plan as a timeline of batches over cluster time, and for each critical workload its
//! ready replicas through the plan against its budget's minimum.
//!
//! It stays readable at 500 nodes: one timeline row per batch (not per node), node lists and
//! each rule's findings folded in `<details>`, the workloads table limited to the worst.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::forecast::{BatchForecast, Forecast, Impact};
use super::markup::escape;
use super::{Finding, Report, Severity};

/// Where and how the report was made, shown at its top.
#[derive(Debug, Clone, Default)]
pub struct PageContext {
    /// The command line, shell-quoted.
    pub command: String,
    /// When, RFC 3339.
    pub generated_at: String,
    /// What was judged: the live cluster's kubeconfig and context, or the rehearsal's snapshot.
    pub cluster: String,
    pub krun_version: String,
}

fn duration(seconds: f64) -> String {
    if seconds.is_infinite() {
        "never".to_owned()
    } else if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 120.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}\
h1{font-size:1.4em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.context td:first-child{color:#555;border:none;padding-left:0}.context td{border:none}.context code{font-size:12px}\
.block{background:#fdd}.warn{background:#ffe9b3}.info{background:#e8f0ff}.ok{background:#dfd}.held{background:#ffe9b3}\
.zero{background:#f99;font-weight:bold}.accepted{opacity:.6}\
.verdict{font-weight:bold;padding:.5em 1em;border-radius:4px;display:inline-block}.verdict.refused{background:#fdd;color:#900}.verdict.passed{background:#dfd;color:#060}\
.sev{font-weight:bold;text-transform:uppercase;font-size:12px}\
.legend span{display:inline-block;margin-right:1.2em}.legend i{display:inline-block;width:14px;height:10px;margin-right:.3em;border:1px solid #555;vertical-align:middle}\
td.nodes{min-width:16em}table.workloads td:nth-child(2){text-align:right;font-variant-numeric:tabular-nums}.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{border:1px solid #ddd;padding:.4em;width:300px}.chart p{margin:0;font-size:12px}\
details summary{cursor:pointer}svg text{font:11px system-ui,sans-serif}";

/// The whole page.
pub fn page(report: &Report, context: &PageContext) -> String {
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
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    header(&mut out, report, context);
    findings(&mut out, report);
    if let Some(forecast) = &report.forecast {
        timeline(&mut out, forecast);
        critical(&mut out, forecast);
        workloads(&mut out, forecast);
    }
    out.push_str("</body></html>\n");
    out
}

fn header(out: &mut String, report: &Report, context: &PageContext) {
    let _ = write!(
        out,
        "<table class=\"context\"><tr><td>made</td><td>{}</td></tr><tr><td>cluster</td><td>{}</td></tr>\
         <tr><td>command</td><td><code>{}</code></td></tr><tr><td>krun</td><td>{}</td></tr></table>",
        escape(&context.generated_at),
        escape(&context.cluster),
        escape(&context.command),
        escape(&context.krun_version)
    );
    let blocks = report.findings.iter().filter(|f| f.blocks()).count();
    let forecast_blocks = report.forecast.as_ref().is_some_and(Forecast::blocked);
    if report.blocked() {
        let mut what = Vec::new();
        if blocks > 0 {
            what.push(plural(blocks, "block finding", "block findings"));
        }
        if forecast_blocks {
            what.push("the disruption forecast".to_owned());
        }
        let _ = write!(
            out,
            "<p class=\"verdict refused\">refused (exit 3): {}. Fix them, or accept each with --accept.</p>",
            escape(&what.join(" and "))
        );
    } else {
        out.push_str("<p class=\"verdict passed\">ok: nothing blocks</p>");
    }
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

/// One row per rule (the id's check), most severe first, with its findings folded.
fn findings(out: &mut String, report: &Report) {
    let mut rules: BTreeMap<(Severity, &str), Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        rules.entry((f.severity, f.check())).or_default().push(f);
    }
    let _ = write!(
        out,
        "<h2>Findings: {} in {}</h2>",
        report.findings.len(),
        plural(rules.len(), "rule", "rules")
    );
    if report.findings.is_empty() {
        out.push_str("<p>No findings.</p>");
        return;
    }
    out.push_str(
        "<table class=\"findings\"><tr><th>severity</th><th>rule</th><th>count</th><th>what and where</th><th>fix</th></tr>",
    );
    let mut ordered: Vec<_> = rules.into_iter().collect();
    ordered
        .sort_by_key(|((severity, rule), list)| (*severity, std::cmp::Reverse(list.len()), *rule));
    for ((severity, rule), list) in ordered {
        let class = match severity {
            Severity::Block => "block",
            Severity::Warn => "warn",
            Severity::Info => "info",
        };
        let accepted = list.iter().filter(|f| f.accepted).count();
        let all_accepted = accepted == list.len();
        let first = list[0];
        let same_fix = list.iter().all(|f| f.fix == first.fix);
        let detail = if list.len() == 1 {
            format!(
                "{}<br><small>{}</small>",
                escape(&first.message),
                escape(&first.id)
            )
        } else {
            let mut items = String::new();
            for f in &list {
                let _ = write!(
                    items,
                    "<li>{}{}{}</li>",
                    escape(&f.message),
                    if same_fix {
                        String::new()
                    } else {
                        format!(" <em>fix:</em> <code>{}</code>", escape(&f.fix))
                    },
                    if f.accepted { " (accepted)" } else { "" }
                );
            }
            format!(
                "<details{}><summary>{}, e.g. {}</summary><ul>{items}</ul></details>",
                if list.len() <= 5 { " open" } else { "" },
                plural(list.len(), "object", "objects"),
                escape(&first.object)
            )
        };
        let fix = if same_fix {
            format!("<code>{}</code>", escape(&first.fix))
        } else {
            "each its own (see the list)".to_owned()
        };
        let _ = write!(
            out,
            "<tr class=\"{class}{}\"><td class=\"sev\">{}{}</td><td>{}</td><td class=\"n\">{}</td><td>{detail}</td><td>{fix}</td></tr>",
            if all_accepted { " accepted" } else { "" },
            severity.label(),
            match accepted {
                0 => String::new(),
                n if n == list.len() => " (accepted)".to_owned(),
                n => format!(" ({n} accepted)"),
            },
            escape(rule),
            list.len()
        );
    }
    out.push_str("</table>");
}

/// Tick spacing for a time axis of `total` seconds: at most about ten ticks.
fn tick_step(total: f64) -> f64 {
    const STEPS: [f64; 14] = [
        10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
        43200.0, 86400.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| total / s <= 10.0)
        .unwrap_or(86400.0 * (total / 86400.0 / 10.0).ceil())
}

fn tick_label(seconds: f64) -> String {
    if seconds == 0.0 {
        "0".to_owned()
    } else if seconds % 3600.0 == 0.0 {
        format!("{:.0} h", seconds / 3600.0)
    } else if seconds % 60.0 == 0.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}

fn node_list(nodes: &[String]) -> String {
    if nodes.len() <= 3 {
        return escape(&nodes.join(", "));
    }
    format!(
        "<details><summary>{}, … ({} more)</summary>{}</details>",
        escape(&nodes[..3].join(", ")),
        nodes.len() - 3,
        escape(&nodes.join(", "))
    )
}

/// The batches the upgrade gets to: up to and including the first that never finishes.
fn reached(forecast: &Forecast) -> &[BatchForecast] {
    let stuck = forecast
        .batches
        .iter()
        .position(|b| b.duration_seconds.is_none());
    &forecast.batches[..stuck.map_or(forecast.batches.len(), |s| s + 1)]
}

/// How a timeline row is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ok,
    Held,
    Block,
    /// Never finishes: an open bar to the axis's end.
    Stuck,
    /// After a batch that never finishes: the upgrade never gets there.
    Unreached,
}

/// One row of the timeline: a batch, or several consecutive ones on a big plan.
struct Row {
    label: String,
    start: f64,
    /// `None`: never finishes.
    end: Option<f64>,
    kind: Kind,
    tip: String,
}

/// At most this many rows: consecutive batches share a row beyond it.
const MAX_ROWS: usize = 40;

fn kind(b: &BatchForecast) -> Kind {
    if b.duration_seconds.is_none() {
        Kind::Stuck
    } else if b.blocked() {
        Kind::Block
    } else if b.hold_seconds > 0.0 {
        Kind::Held
    } else {
        Kind::Ok
    }
}

fn span_label(first: &BatchForecast, last: &BatchForecast, nodes: usize) -> String {
    let which = if first.index == last.index {
        format!("batch {}", first.index)
    } else {
        format!("batches {}–{}", first.index, last.index)
    };
    match (first.index == last.index, first.nodes.as_slice()) {
        (true, [one]) => format!("{which} · {one}"),
        (true, [one, two]) => format!("{which} · {one}, {two}"),
        _ => format!("{which} · {}", plural(nodes, "node", "nodes")),
    }
}

/// The rows: the batches the upgrade reaches (grouped when there are many), then one for those
/// after a batch that never finishes.
fn rows(forecast: &Forecast) -> (Vec<Row>, f64) {
    let batches = &forecast.batches;
    let stuck = batches.iter().position(|b| b.duration_seconds.is_none());
    let reached = reached(forecast);
    let mut starts = Vec::new();
    let mut t = 0.0;
    for b in reached {
        starts.push(t);
        t += b.duration_seconds.unwrap_or(0.0);
    }
    let group = reached.len().div_ceil(MAX_ROWS).max(1);
    let mut rows = Vec::new();
    for (chunk, chunk_starts) in reached.chunks(group).zip(starts.chunks(group)) {
        let (first, last) = (&chunk[0], &chunk[chunk.len() - 1]);
        let nodes: usize = chunk.iter().map(|b| b.nodes.len()).sum();
        let end = last
            .duration_seconds
            .map(|d| chunk_starts[chunk.len() - 1] + d);
        let kind = chunk.iter().map(kind).max().unwrap_or(Kind::Ok);
        let tip = if chunk.len() == 1 {
            format!(
                "batch {}: {} — {}",
                first.index,
                first.nodes.join(", "),
                first
                    .duration_seconds
                    .map_or_else(|| "never finishes".to_owned(), duration)
            )
        } else {
            format!(
                "batches {}–{}: {} nodes — {}",
                first.index,
                last.index,
                nodes,
                end.map_or_else(
                    || "the last never finishes".to_owned(),
                    |e| duration(e - chunk_starts[0])
                )
            )
        };
        rows.push(Row {
            label: span_label(first, last, nodes),
            start: chunk_starts[0],
            end,
            kind,
            tip,
        });
    }
    let after = &batches[reached.len()..];
    if let (Some(first), Some(last)) = (after.first(), after.last()) {
        let nodes: usize = after.iter().map(|b| b.nodes.len()).sum();
        rows.push(Row {
            label: span_label(first, last, nodes),
            start: t,
            end: None,
            kind: Kind::Unreached,
            tip: format!(
                "not reached: batch {} never finishes",
                reached[reached.len() - 1].index
            ),
        });
    }
    // A batch that never finishes runs off the axis: a fifth of it is left for its open end.
    let axis = if stuck.is_some() {
        t.max(60.0) * 1.25
    } else {
        t.max(60.0)
    };
    (rows, axis)
}

/// The batches over cluster time. A batch that never finishes is an open bar to the axis's
/// end; the batches after it are one row marked as not reached, since the upgrade never gets
/// to them.
fn timeline(out: &mut String, forecast: &Forecast) {
    let _ = write!(
        out,
        "<h2>Plan: --batch {} — {}, {}, {}</h2><p>verdict: {}{}</p>",
        escape(&forecast.plan),
        plural(forecast.batches.len(), "batch", "batches"),
        forecast
            .total_seconds
            .map_or_else(|| "never finishes".to_owned(), duration),
        plural(forecast.violations, "violation", "violations"),
        escape(&forecast.verdict.short()),
        if forecast.accepted { " (accepted)" } else { "" }
    );
    out.push_str(
        "<p class=\"legend\"><span><i style=\"background:#7c7\"></i>finishes, no budget waits</span>\
         <span><i style=\"background:#fc6\"></i>held by budgets</span>\
         <span><i style=\"background:#f99\"></i>blocks (a workload at zero ready, a pod refused)</span>\
         <span><i style=\"background:repeating-linear-gradient(135deg,#fee 0 3px,#c00 3px 4px)\"></i>never finishes (open to the right)</span>\
         <span><i style=\"background:#fff;border-style:dashed\"></i>not reached</span></p>",
    );
    let (rows, axis) = rows(forecast);
    let (label, width, row, top) = (190.0, 860.0, 18.0, 24.0);
    let height = top + rows.len() as f64 * row + 10.0;
    let _ = write!(
        out,
        "<svg class=\"timeline\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"batches over cluster time\">",
        label + width + 20.0
    );
    out.push_str("<defs><pattern id=\"stuck\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\"><rect width=\"6\" height=\"6\" fill=\"#fee\"/><path d=\"M0,6 L6,0\" stroke=\"#c00\"/></pattern></defs>");
    let step = tick_step(axis);
    let mut tick = 0.0;
    while tick <= axis + 0.001 {
        let x = label + tick / axis * width;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/><text class=\"tick\" x=\"{x:.1}\" y=\"12\" text-anchor=\"middle\">{}</text>",
            top - 6.0,
            height - 6.0,
            tick_label(tick)
        );
        tick += step;
    }
    let mut y = top;
    for r in &rows {
        let _ = write!(
            out,
            "<text class=\"row\" x=\"0\" y=\"{:.1}\">{}</text>",
            y + row - 5.0,
            escape(&r.label)
        );
        let x = label + r.start / axis * width;
        let h = row - 4.0;
        let tip = escape(&r.tip);
        match (r.kind, r.end) {
            (Kind::Unreached, _) => {
                let _ = write!(
                    out,
                    "<rect class=\"unreached\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h}\" fill=\"#fff\" stroke=\"#999\" stroke-dasharray=\"3,2\"><title>{tip}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">not reached</text>",
                    (label + width - x).max(60.0),
                    x + 6.0,
                    y + row - 6.0
                );
            }
            (_, None) => {
                let w = label + width - x;
                let _ = write!(
                    out,
                    "<path class=\"stuck\" d=\"M{x:.1},{y:.1} h{w:.1} l6,{half:.1} l-6,{half:.1} h-{w:.1} z\" fill=\"url(#stuck)\" stroke=\"#c00\"><title>{tip}</title></path>",
                    half = h / 2.0
                );
            }
            (kind, Some(end)) => {
                let fill = match kind {
                    Kind::Block => "#f99",
                    Kind::Held => "#fc6",
                    _ => "#7c7",
                };
                let w = ((end - r.start) / axis * width).max(2.0);
                let _ = write!(
                    out,
                    "<rect class=\"batch\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h}\" fill=\"{fill}\" stroke=\"#555\" stroke-width=\".4\"><title>{tip}</title></rect>"
                );
            }
        }
        y += row;
    }
    out.push_str("</svg>");
    batch_table(out, forecast);
}

/// The batches as a table: those the upgrade reaches (the first 20, the rest folded), then
/// those it does not, folded.
fn batch_table(out: &mut String, forecast: &Forecast) {
    const SHOWN: usize = 20;
    let reached = reached(forecast);
    let head = "<table class=\"batches\"><tr><th>batch</th><th>nodes</th><th>evicted</th><th>held by budgets</th><th>takes</th><th>why these nodes</th><th>blocks</th></tr>";
    let row = |b: &BatchForecast| {
        let class = if b.blocked() { "block" } else { "ok" };
        format!(
            "<tr class=\"{class}\"><td class=\"n\">{}</td><td class=\"nodes\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            b.index,
            node_list(&b.nodes),
            b.evicted.len(),
            if b.hold_seconds.is_infinite() {
                "never released".to_owned()
            } else {
                duration(b.hold_seconds)
            },
            b.duration_seconds
                .map_or_else(|| "never finishes".to_owned(), duration),
            escape(b.explanation.as_deref().unwrap_or("")),
            escape(&b.blocks.join("; "))
        )
    };
    out.push_str(head);
    for b in reached.iter().take(SHOWN) {
        out.push_str(&row(b));
    }
    out.push_str("</table>");
    if reached.len() > SHOWN {
        let _ = write!(
            out,
            "<details><summary>batches {}–{}</summary>{head}",
            reached[SHOWN].index,
            reached[reached.len() - 1].index
        );
        for b in &reached[SHOWN..] {
            out.push_str(&row(b));
        }
        out.push_str("</table></details>");
    }
    let after = &forecast.batches[reached.len()..];
    if !after.is_empty() {
        let _ = write!(
            out,
            "<details><summary>{} not reached: batch {} never finishes (their forecast assumes it did)</summary>{head}",
            plural(after.len(), "batch", "batches"),
            reached[reached.len() - 1].index
        );
        for b in after {
            out.push_str(&row(b));
        }
        out.push_str("</table></details>");
    }
}

/// Each critical workload's ready replicas before the plan and at their lowest in each batch,
/// with its budget's minimum as a dashed line.
fn critical(out: &mut String, forecast: &Forecast) {
    let reached = reached(forecast);
    let mut series: BTreeMap<&str, BTreeMap<usize, &Impact>> = BTreeMap::new();
    for b in reached {
        for w in b.workloads.iter().filter(|w| w.critical) {
            series.entry(&w.workload).or_default().insert(b.index, w);
        }
    }
    let _ = write!(
        out,
        "<h2>Critical workloads through the plan ({})</h2>",
        series.len()
    );
    if reached.len() < forecast.batches.len() {
        let _ = write!(
            out,
            "<p>Up to batch {}, which never finishes: the upgrade does not get further.</p>",
            reached[reached.len() - 1].index
        );
    }
    if series.is_empty() {
        out.push_str("<p>No critical workload loses a pod.</p>");
        return;
    }
    out.push_str(
        "<p class=\"legend\"><span><i style=\"background:#36c\"></i>ready replicas, at their lowest in each batch</span>\
         <span><i style=\"background:#fff;border-color:#c00;border-style:dashed\"></i>the budget's minimum</span>\
         <span><i style=\"background:#c00;border-radius:5px\"></i>at zero or below the budget</span></p><div class=\"charts\">",
    );
    for (name, impacts) in &series {
        chart(out, name, impacts, reached);
    }
    out.push_str("</div>");
}

fn chart(
    out: &mut String,
    name: &str,
    impacts: &BTreeMap<usize, &Impact>,
    batches: &[BatchForecast],
) {
    let any = impacts.values().next().expect("a series has a point");
    let replicas = impacts
        .values()
        .map(|i| i.replicas.max(i.ready_before))
        .max()
        .unwrap_or(1)
        .max(1);
    let minimum = impacts.values().find_map(|i| i.pdb_min_healthy);
    let (w, h, left, bottom) = (280.0, 90.0, 26.0, 16.0);
    let plot_w = w - left - 6.0;
    let plot_h = h - bottom - 8.0;
    let n = batches.len() + 1;
    let x = |i: usize| left + plot_w * i as f64 / (n - 1).max(1) as f64;
    let y = |v: i32| 8.0 + plot_h * (1.0 - f64::from(v) / f64::from(replicas));
    // Before the plan, and in a batch that does not touch it: what it had; in a batch that
    // does: its lowest.
    let before = impacts
        .values()
        .map(|i| i.ready_before)
        .max()
        .unwrap_or(replicas);
    let mut points = vec![(0, before)];
    for (i, b) in batches.iter().enumerate() {
        let value = impacts.get(&b.index).map_or(before, |imp| imp.min_ready);
        points.push((i + 1, value));
    }
    let budget = match (minimum, &any.pdb) {
        (Some(m), Some(pdb)) => format!("budget {} needs {m}", pdb),
        _ => "no budget".to_owned(),
    };
    let lowest = points.iter().map(|p| p.1).min().unwrap_or(0);
    let _ = write!(
        out,
        "<div class=\"chart\"><p><b>{}</b></p><p>{} replicas, lowest {lowest}; {}</p><svg width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"ready replicas of {}\">",
        escape(name),
        replicas,
        escape(&budget),
        escape(name)
    );
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{replicas}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>",
        y(0),
        left + plot_w,
        y(0),
        left - 4.0,
        y(replicas) + 4.0,
        left - 4.0,
        y(0) + 4.0
    );
    let _ = write!(
        out,
        "<text x=\"{left}\" y=\"{:.1}\">before</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">batch {}</text>",
        h - 3.0,
        left + plot_w,
        h - 3.0,
        batches.last().map_or(0, |b| b.index)
    );
    if let Some(m) = minimum {
        let _ = write!(
            out,
            "<line class=\"budget\" x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c00\" stroke-dasharray=\"4,3\"><title>{budget}</title></line>",
            y(m),
            left + plot_w,
            y(m)
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v)))
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"ready\" points=\"{}\" fill=\"none\" stroke=\"#36c\" stroke-width=\"1.5\"/>",
        path.join(" ")
    );
    for (i, v) in &points {
        let bad = *v == 0 || minimum.is_some_and(|m| *v < m);
        if bad {
            let _ = write!(
                out,
                "<circle class=\"low\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#c00\"><title>batch {i}: {v} ready</title></circle>",
                x(*i),
                y(*v)
            );
        }
    }
    out.push_str("</svg></div>");
}

/// The workloads that lose pods, worst first (at most 30): their lowest ready count, in which
/// batch, and their budget.
fn workloads(out: &mut String, forecast: &Forecast) {
    const SHOWN: usize = 30;
    let mut worst: BTreeMap<&str, (usize, &Impact)> = BTreeMap::new();
    for b in reached(forecast) {
        for w in &b.workloads {
            let entry = worst.entry(&w.workload).or_insert((b.index, w));
            if (w.min_ready, !w.zero_ready) < (entry.1.min_ready, !entry.1.zero_ready) {
                *entry = (b.index, w);
            }
        }
    }
    let mut ordered: Vec<(&str, (usize, &Impact))> = worst.into_iter().collect();
    let rank = |i: &Impact| {
        (
            !(i.zero_ready && i.ready_before > 1),
            !i.below_pdb,
            i.held_seconds <= 0.0,
            !i.critical,
        )
    };
    ordered.sort_by_key(|(name, (_, i))| (rank(i), *name));
    let _ = write!(
        out,
        "<h2>Workloads through the upgrade ({} lose pods)</h2><p>Each at its lowest: ready replicas of those before the batch, the batch, its budget.</p>",
        ordered.len()
    );
    if ordered.is_empty() {
        return;
    }
    out.push_str("<table class=\"workloads\"><tr><th>workload</th><th>lowest ready</th><th>in batch</th><th>budget</th><th>held by it</th></tr>");
    for (name, (batch, i)) in ordered.iter().take(SHOWN) {
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
            "<tr><td>{}{}</td><td class=\"{class}\">{}/{}</td><td class=\"n\">{batch}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            if i.critical {
                " <small>(critical)</small>"
            } else {
                ""
            },
            i.min_ready,
            i.ready_before,
            escape(
                &i.pdb
                    .as_deref()
                    .map(|p| format!("{p} needs {}", i.pdb_min_healthy.unwrap_or(0)))
                    .unwrap_or_else(|| "none".to_owned())
            ),
            if i.held_seconds > 0.0 {
                duration(i.held_seconds)
            } else {
                String::new()
            }
        );
    }
    out.push_str("</table>");
    if ordered.len() > SHOWN {
        let _ = write!(
            out,
            "<p>… and {} more that lose fewer pods (--output json has every one).</p>",
            ordered.len() - SHOWN
        );
    }
}
