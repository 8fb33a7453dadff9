//! `krun preflight --report`'s page as a browser renders it: Debian's Chromium, headless, loads
//! the page at 1280 pixels wide and measures what it laid out (a script in a wrapper page
//! reads the report's rendered boxes and writes them into its own DOM, which `--dump-dom`
//! prints). At the bundled lab's size and at 500 nodes. Screenshots of both are kept under the
//! target directory (`report-screenshots/`) for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::Krun;

const WIDTH: u32 = 1280;

/// Reads the report's layout in the frame and writes it, as JSON, into `#m`.
const MEASURE: &str = r#"<!DOCTYPE html><html><body style="margin:0">
<iframe id="r" src="REPORT" style="width:1280px;height:900px;border:0"></iframe><pre id="m">not measured</pre>
<script>
document.getElementById('r').addEventListener('load', function () {
  var d = this.contentDocument;
  var all = function (s) { return Array.prototype.slice.call(d.querySelectorAll(s)); };
  var box = function (e) { var r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; };
  var svg = d.querySelector('svg.timeline');
  var timeline = svg ? box(svg) : null;
  var stuck = all('svg.timeline path.stuck').map(box);
  var rows = all('svg.timeline text.row');
  var bars = all('svg.timeline rect.batch').map(box);
  var label = rows.length ? Math.max.apply(null, rows.map(function (t) { return t.getComputedTextLength(); })) : 0;
  var firstBar = bars.length ? Math.min.apply(null, bars.map(function (b) { return b.x; })) : (timeline ? timeline.x + 190 : 0);
  var out = {
    width: d.documentElement.scrollWidth,
    height: d.documentElement.scrollHeight,
    verdict: (d.querySelector('.verdict') || {}).textContent,
    context: all('table.context tr').map(function (r) { return r.textContent; }),
    legend: all('svg.timeline ~ * .legend span, .legend span').length,
    ticks: all('svg.timeline text.tick').map(function (t) { return t.textContent; }),
    rows: rows.map(function (t) { return t.textContent; }),
    labelWidth: label,
    barsStartAt: timeline ? firstBar - timeline.x : 0,
    timeline: timeline,
    stuck: stuck,
    unreached: all('svg.timeline rect.unreached').length,
    findingRows: all('table.findings tr').length - 1,
    findingCounts: all('table.findings td.n').map(function (t) { return +t.textContent; }),
    batchRows: all('table.batches tr').filter(function (r) {
      return r.querySelector('td') && r.checkVisibility();
    }).length,
    workloadRows: all('table.workloads tr').length - 1,
    charts: all('.chart').map(function (c) {
      var line = c.querySelector('polyline.ready');
      return {
        title: c.querySelector('b').textContent,
        box: box(c),
        points: line ? line.getAttribute('points').split(' ').length : 0,
        budget: c.querySelector('line.budget') !== null,
        low: c.querySelectorAll('circle.low').length
      };
    })
  };
  document.getElementById('m').textContent = JSON.stringify(out);
});
</script></body></html>"#;

fn chromium() -> Command {
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
    ]);
    command
}

/// The report's layout as Chromium renders it.
fn measure(page: &Path, profile: &Path) -> Value {
    let wrapper = page.with_extension("measure.html");
    let name = page.file_name().unwrap().to_str().unwrap();
    std::fs::write(&wrapper, MEASURE.replace("REPORT", name)).unwrap();
    let out = chromium()
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--virtual-time-budget=20000")
        .arg(format!("--window-size={WIDTH},1000"))
        .arg("--dump-dom")
        .arg(format!("file://{}", wrapper.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let json = dom
        .split("<pre id=\"m\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "no measurement in Chromium's DOM:\n{dom}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// A full-page screenshot, kept for people to look at; checked to be a PNG of the page's size.
fn screenshot(page: &Path, profile: &Path, height: u64, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let out = chromium()
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "--window-size={WIDTH},{}",
            height.clamp(600, 16000)
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    assert_eq!(width, WIDTH);
    png
}

/// The page of a plan whose drains evict workloads without a budget all at once
/// (`--no-keep-replica`), so that zero-ready batches are drawn.
fn preflight(dir: &Path, snapshot: &Path, target: &str, batch: &str, page: &str) -> PathBuf {
    let report = dir.join(page);
    Krun::new()
        .args(["preflight", "--rehearse"])
        .arg_path(snapshot)
        .args([
            "--no-keep-replica",
            "--target",
            target,
            "--batch",
            batch,
            "--report",
        ])
        .arg_path(&report)
        .run()
        .code(3);
    report
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect()
}

#[test]
fn the_lab_report_renders_with_its_legend_ticks_context_and_charts() {
    if !crate::support::require(&["chromium"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = preflight(
        dir.path(),
        &super::root().join("examples/lab/cluster.yaml"),
        "1.21.14",
        "auto",
        "lab.html",
    );
    let m = measure(&page, &dir.path().join("profile"));
    screenshot(
        &page,
        &dir.path().join("profile"),
        m["height"].as_u64().unwrap(),
        "lab",
    );

    assert!(
        m["width"].as_f64().unwrap() <= f64::from(WIDTH),
        "wider than the window: {m}"
    );
    assert!(
        m["verdict"]
            .as_str()
            .unwrap()
            .starts_with("refused (exit 3)"),
        "{m}"
    );
    let context = m["context"].to_string();
    for needed in [
        "made",
        "examples/lab/cluster.yaml",
        "krun preflight --rehearse",
        "--batch auto",
    ] {
        assert!(
            context.contains(needed),
            "{needed} not in the context: {context}"
        );
    }
    // Findings: one row per rule, the counts adding up to every finding.
    let counts = numbers(&m["findingCounts"]);
    assert_eq!(counts.len() as u64, m["findingRows"].as_u64().unwrap());
    assert_eq!(counts.iter().sum::<f64>(), 10.0, "{m}");

    // The timeline: ticks at round times, every label left of the bars, a legend.
    let ticks = m["ticks"].as_array().unwrap();
    assert!(ticks.len() >= 4 && ticks[0] == "0", "{ticks:?}");
    assert!(
        ticks.iter().any(|t| t.as_str().unwrap().ends_with("min")),
        "{ticks:?}"
    );
    assert!(m["legend"].as_u64().unwrap() >= 5, "{m}");
    assert!(
        m["labelWidth"].as_f64().unwrap() < m["barsStartAt"].as_f64().unwrap(),
        "row labels run into the bars: {m}"
    );
    // Batch 3 (worker-4) never finishes: drawn open to the right edge, the rest not reached.
    let rows: Vec<&str> = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        rows,
        [
            "batch 1 · worker-1",
            "batch 2 · worker-2",
            "batch 3 · worker-4",
            "batches 4–6 · 3 nodes"
        ]
    );
    let timeline = &m["timeline"];
    let stuck = &m["stuck"][0];
    let right = stuck["x"].as_f64().unwrap() + stuck["w"].as_f64().unwrap();
    let edge = timeline["x"].as_f64().unwrap() + timeline["w"].as_f64().unwrap();
    assert!(
        edge - right < 30.0,
        "the stuck batch ends before the edge: {m}"
    );
    assert_eq!(m["unreached"], 1);
    // Only the batches reached are in the table; the others are folded away.
    assert_eq!(m["batchRows"], 3, "{m}");

    // A chart per critical workload that loses pods; the Ingress controller goes to zero.
    let charts = m["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 4, "{m}");
    let ingress = charts
        .iter()
        .find(|c| c["title"] == "Deployment ingress-nginx/ingress-nginx-controller")
        .expect("the Ingress controller's chart");
    assert_eq!(ingress["points"], 4, "before, then batches 1 to 3");
    assert!(
        ingress["low"].as_u64().unwrap() >= 1,
        "zero ready is not marked"
    );
    assert!(
        charts
            .iter()
            .all(|c| c["box"]["w"].as_f64().unwrap() < 400.0)
    );
}

#[test]
fn a_report_of_500_nodes_stays_readable() {
    if !crate::support::require(&["chromium"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("cluster.yaml");
    let generated = Krun::new()
        .args([
            "sim", "gen", "--nodes", "500", "--pods", "2000", "--seed", "1",
        ])
        .run();
    generated.code(0);
    // Without the budgets that allow no disruption at all, no batch gets stuck: the plan goes
    // through all fifty batches, which is what has to stay readable.
    let mut cluster: Value = serde_yaml_ng::from_str(&generated.stdout).unwrap();
    cluster["items"].as_array_mut().unwrap().retain(|i| {
        !(i["kind"] == "PodDisruptionBudget" && i["status"]["disruptionsAllowed"] == 0)
    });
    std::fs::write(&snapshot, serde_yaml_ng::to_string(&cluster).unwrap()).unwrap();
    // Batches of ten nodes: fifty of them.
    let page = preflight(dir.path(), &snapshot, "1.29.4", "2%", "big.html");
    let forecast = Krun::new()
        .args([
            "preflight",
            "-o",
            "json",
            "--no-keep-replica",
            "--batch",
            "2%",
            "--rehearse",
        ])
        .arg_path(&snapshot)
        .run()
        .json();
    let batches = forecast["forecast"]["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 50);
    assert!(
        batches.iter().all(|b| b["duration_seconds"].is_f64()),
        "a batch never finishes: the test no longer draws fifty"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let m = measure(&page, &dir.path().join("profile"));
    let height = m["height"].as_u64().unwrap();
    let png = screenshot(&page, &dir.path().join("profile"), height, "500-nodes");

    assert!(
        m["width"].as_f64().unwrap() <= f64::from(WIDTH),
        "wider than the window: {m}"
    );
    // Before, one timeline row per node and a column per batch: thousands of pixels.
    assert!(height < 6000, "{height} px tall ({}): {m}", png.display());
    // Fifty batches on forty rows or fewer, consecutive ones sharing a row.
    let rows = m["rows"].as_array().unwrap();
    assert!(rows.len() <= 40 && rows.len() >= 20, "{m}");
    assert_eq!(rows[0], "batches 1–2 · 20 nodes", "{m}");
    assert_eq!(m["stuck"].as_array().unwrap().len(), 0);
    assert!(
        m["findingRows"].as_u64().unwrap() <= 12,
        "findings not grouped: {m}"
    );
    let counts = numbers(&m["findingCounts"]);
    assert!(
        counts.iter().any(|c| *c > 1.0),
        "no rule has several findings: {m}"
    );
    assert!(m["workloadRows"].as_u64().unwrap() <= 30, "{m}");
    assert_eq!(
        m["batchRows"], 20,
        "the first twenty batches, the rest folded: {m}"
    );
    // The critical workloads' charts run through all fifty batches.
    for chart in m["charts"].as_array().unwrap() {
        assert_eq!(chart["points"], 51, "{chart}");
    }
    assert!(
        m["labelWidth"].as_f64().unwrap() < m["barsStartAt"].as_f64().unwrap(),
        "row labels run into the bars: {m}"
    );
    // Every node is still in the page, folded.
    for i in [1, 250, 497] {
        let node = format!("worker-{i:03}");
        assert!(html.contains(&node), "{node} is not in the page");
    }
}
