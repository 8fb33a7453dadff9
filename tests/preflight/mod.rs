//! Preflight and the disruption forecast against the field reports' incidents, each a cluster
//! snapshot under tests/data/preflight/ served by the in-process simulator.

mod apiserver;
mod bench;
mod certs;
mod cli;
mod etcd;
mod lb;
mod parity;
mod rules;
mod scenarios;

use krun::kube::Kube;
use krun::preflight::ClusterView;
use krun::sim::{Cluster, Server, SimOptions};

/// The snapshot `tests/data/preflight/<name>.yaml`.
pub fn snapshot(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/preflight")
        .join(format!("{name}.yaml"))
}

/// A simulator serving the snapshot, a client for it, and the cluster as preflight reads it.
pub async fn serve(name: &str, time_scale: f64) -> (Server, Kube, ClusterView) {
    let text = std::fs::read_to_string(snapshot(name)).expect("the snapshot exists");
    serve_text(&text, time_scale).await
}

/// A simulator serving the cluster in `text`.
pub async fn serve_text(text: &str, time_scale: f64) -> (Server, Kube, ClusterView) {
    let cluster = Cluster::load(text).expect("the snapshot loads");
    let server = Server::start(
        cluster,
        SimOptions {
            time_scale,
            startup_delay: std::time::Duration::from_secs(10),
            bookmark_interval: std::time::Duration::from_millis(500),
            ..SimOptions::default()
        },
    )
    .await
    .expect("the simulator starts");
    let kube = Kube::from_url(&server.url()).expect("a client");
    let view = ClusterView::read(&kube).await.expect("the cluster reads");
    (server, kube, view)
}

/// The Kubernetes side of preflight, read and judged as `krun preflight` does.
pub async fn judge(
    kube: &Kube,
    options: &krun::preflight::PreflightOptions,
) -> krun::Result<Vec<krun::preflight::Finding>> {
    let request = krun::preflight::survey_request(options);
    let survey = krun::kube::Survey::read(kube, &request).await?;
    krun::preflight::findings(&survey, options)
}

/// `krun preflight --rehearse tests/data/preflight/<name>.yaml ARGS…`, as an operator runs it.
pub fn preflight_cli(name: &str, args: &[&str]) -> crate::cli::Output {
    let mut all = vec![
        "preflight".to_owned(),
        "--rehearse".to_owned(),
        snapshot(name).display().to_string(),
    ];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    crate::cli::Krun::new().args(all).run()
}

/// [`preflight_cli`] off the async runtime, for tests that serve simulators or etcd meanwhile.
pub async fn preflight_cli_async(name: &'static str, args: Vec<String>) -> crate::cli::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        preflight_cli(name, &args)
    })
    .await
    .unwrap()
}

/// The findings in `krun preflight --output json`'s answer.
pub fn findings(out: &crate::cli::Output) -> Vec<serde_json::Value> {
    out.json()["findings"].as_array().unwrap().clone()
}

/// The ids of the findings in `krun preflight --output json`'s answer.
pub fn finding_ids(out: &crate::cli::Output) -> Vec<String> {
    out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

pub fn names(nodes: &[&str]) -> Vec<String> {
    nodes.iter().map(|n| (*n).to_owned()).collect()
}
