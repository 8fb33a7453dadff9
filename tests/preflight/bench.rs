//! Forecast benchmark on the size of the largest cluster in the field reports (500 nodes,
//! 20,000 pods): the time and memory of forecasting a full worker plan, and the cluster time
//! and violations of `--batch auto` against fixed plans. Prints figures; asserts nothing about
//! time. Run with
//! `cargo test --release --test integration -- preflight::bench --ignored --nocapture`
//! (sizes: FORECAST_BENCH_NODES, FORECAST_BENCH_PODS; FORECAST_BENCH_BOUND=1 keeps the budgets
//! that allow nothing now, the case where many budgets are at their limit;
//! FORECAST_BENCH_PLAN=FILE writes the auto plan's batches there, to compare plans).

use std::time::Instant;

use krun::kube::Kube;
use krun::preflight::{BatchSpec, ClusterView, ForecastOptions, batches};
use krun::sim::{Cluster, GenOptions, Server, SimOptions, generate};
use serde_yaml_ng::Value;

#[path = "../../benches/support/measure.rs"]
mod measure;
use measure::{env_usize, memory};

/// The generated cluster without the budgets that allow nothing at all (`maxUnavailable: 0`,
/// `minAvailable: 100%`, and budgets already at their limit): with them no plan finishes, and
/// the comparison is about how fast a plan that can finish does.
fn without_blocking_budgets(text: &str) -> String {
    let mut list: Value = serde_yaml_ng::from_str(text).unwrap();
    list["items"].as_sequence_mut().unwrap().retain(|i| {
        i["kind"] != "PodDisruptionBudget" || i["status"]["disruptionsAllowed"].as_i64() != Some(0)
    });
    serde_yaml_ng::to_string(&list).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn forecast_a_full_worker_plan_of_a_large_cluster() {
    let nodes = env_usize("FORECAST_BENCH_NODES", 500);
    let pods = env_usize("FORECAST_BENCH_PODS", 20_000);
    let bound = std::env::var("FORECAST_BENCH_BOUND").is_ok_and(|v| v == "1");
    println!(
        "forecast benchmark: {nodes} nodes, {pods} pods{}",
        if bound {
            ", budgets at their limit kept"
        } else {
            ""
        }
    );
    let generated = generate(&GenOptions {
        nodes,
        pods,
        seed: 1,
        ..GenOptions::default()
    });
    let text = if bound {
        generated
    } else {
        without_blocking_budgets(&generated)
    };
    let cluster = Cluster::load(&text).unwrap();
    drop(text);
    let server = Server::start(cluster, SimOptions::default()).await.unwrap();
    let kube = Kube::from_url(&server.url()).unwrap();
    let (rss_unread, _) = memory();
    let start = Instant::now();
    let view = ClusterView::read(&kube).await.unwrap();
    let (rss_read, _) = memory();
    println!(
        "read the cluster (list calls):  {:>8.2} s  ({} nodes, {} pods, {} PDBs)",
        start.elapsed().as_secs_f64(),
        view.nodes.len(),
        view.pods.len(),
        view.pdbs.len()
    );
    let workers: Vec<String> = view
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .filter(|n| n.starts_with("worker-"))
        .collect();
    let options = ForecastOptions {
        force: true,
        ..ForecastOptions::default()
    };
    println!(
        "the cluster as read:            {:>8.0} MiB resident",
        rss_read - rss_unread
    );
    let (rss_before, peak_before) = memory();
    println!(
        "resident before the forecasts:  {rss_before:>8.0} MiB (peak {peak_before:.0} MiB, simulator included)"
    );
    println!(
        "{:<10} {:>8} {:>10} {:>14} {:>11} {:>10}",
        "plan", "batches", "largest", "cluster time", "violations", "forecast"
    );
    for spec in [
        BatchSpec::Fixed(1),
        BatchSpec::Percent(10),
        BatchSpec::Percent(20),
        BatchSpec::Auto,
    ] {
        let start = Instant::now();
        let forecast = batches::plan(&view, &[], &workers, spec, &options);
        let took = start.elapsed().as_secs_f64();
        if let (BatchSpec::Auto, Ok(path)) = (spec, std::env::var("FORECAST_BENCH_PLAN")) {
            // The auto plan's batches, one per line, to compare plans across changes.
            let lines: Vec<String> = forecast
                .batches
                .iter()
                .map(|b| format!("{} {}", b.nodes.join(","), b.blocks.join("; ")))
                .collect();
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        }
        let largest = forecast
            .batches
            .iter()
            .map(|b| b.nodes.len())
            .max()
            .unwrap_or(0);
        let time = forecast.total_seconds.map_or_else(
            || "never ends".to_owned(),
            |s| format!("{:.1} h", s / 3600.0),
        );
        println!(
            "{:<10} {:>8} {:>10} {:>14} {:>11} {:>8.2} s",
            format!("--batch {spec}"),
            forecast.batches.len(),
            largest,
            time,
            forecast.violations,
            took
        );
    }
    let (rss, peak) = memory();
    println!(
        "resident after:                 {rss:>8.0} MiB (peak {peak:.0} MiB; the forecasts added at most {:.0} MiB to the peak)",
        peak - peak_before
    );
}
