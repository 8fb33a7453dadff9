//! `krun preflight`: the findings and, with `--batch`, the disruption forecast; exit 3 on a
//! block.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::app::{duration, print};
use crate::inventory::Inventory;
use crate::paint::Paint;
use crate::plan::Recorder;
use crate::ssh::SshConfig;
use crate::wiring::{Mode, Wiring};

pub async fn preflight(args: crate::cli::PreflightArgs) -> crate::Result<u8> {
    use crate::preflight::{self, BatchSpec, ForecastOptions, PreflightOptions};
    let target = args
        .target
        .as_deref()
        .map(|t| {
            preflight::Version::parse(t).ok_or_else(|| {
                Error::input(format!(
                    "--target {t}: expected a Kubernetes version like 1.29.4"
                ))
            })
        })
        .transpose()?;
    let batch = args
        .batch
        .as_deref()
        .map(BatchSpec::parse)
        .transpose()
        .map_err(Error::input)?;
    for (flag, value) in [
        ("--upgrade-time", args.upgrade_time),
        ("--startup-delay", args.startup_delay),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(Error::input(format!(
                "{flag} {value}: expected seconds, 0 or more"
            )));
        }
    }
    let snapshot_max_age = duration("--snapshot-max-age", &args.snapshot_max_age)?;
    let inventory = Arc::new(match &args.inventory {
        Some(path) => Inventory::load(path)?,
        None => Inventory::default(),
    });
    let options = PreflightOptions {
        target,
        critical: args.critical.clone(),
        manifests: args.manifests.clone(),
        nodes: args.nodes.clone(),
        apiservers: args.apiservers.clone(),
        etcd: preflight::EtcdCheck {
            skip: args.skip_etcd,
            snapshot: args.snapshot.clone(),
            snapshot_max_age,
            take_snapshot: args.take_snapshot.clone(),
        },
        certs: preflight::CertCheck {
            skip: args.skip_certs,
            days: args.cert_days,
        },
        lb: preflight::LbCheck {
            nodes: args.lb.clone(),
            configs: args.lb_config.clone(),
        },
    };
    for name in &args.lb {
        inventory
            .node(name)
            .map_err(|e| Error::input(format!("--lb {name}: {}", e.message)))?;
    }
    for path in &args.lb_config {
        if !path.starts_with('/') {
            return Err(Error::input(format!(
                "--lb-config {path}: expected an absolute path on the load-balancer nodes, like /etc/haproxy/haproxy.cfg"
            )));
        }
    }
    // Preflight only reads (or takes the snapshot it is asked to take): a live boundary whose
    // record is not journaled.
    let recorder = Arc::new(Recorder::new());
    let run = recorder.add_run("preflight", None);
    let wired = Wiring {
        inventory: Arc::clone(&inventory),
        cluster: args.cluster.options(),
        rehearse: args.rehearse.clone(),
        mode: Mode::Live,
        ssh: SshConfig {
            connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
            accept_new_host_keys: args.accept_new_host_keys,
        },
    }
    .wire(recorder, CancellationToken::new(), None)
    .await?;
    let steps = preflight::Steps {
        effects: Arc::clone(&wired.effects),
        run,
        origin: crate::plan::Origin::default(),
    };
    let checked = {
        let inventory = Arc::clone(&inventory);
        // The steps block on the runtime, as a playbook's do.
        tokio::task::spawn_blocking(move || preflight::check(&steps, &inventory, &options))
            .await
            .map_err(|e| Error::runtime(format!("the preflight checks failed: {e}")))?
    };
    wired.close().await;
    let (survey, mut findings) = checked.map_err(|failure| Error {
        kind: failure.kind,
        message: format!("preflight: {}", preflight::failure_reason(&failure)),
    })?;
    let view = &survey.view;
    let mut unmatched = preflight::accept(&mut findings, &args.accept);
    let forecast = batch.map(|spec| {
        let nodes: Vec<String> = if args.nodes.is_empty() {
            view.nodes
                .iter()
                .filter(|n| {
                    let labels = n.metadata.labels.clone().unwrap_or_default();
                    !labels.contains_key("node-role.kubernetes.io/control-plane")
                        && !labels.contains_key("node-role.kubernetes.io/master")
                })
                .filter_map(|n| n.metadata.name.clone())
                .collect()
        } else {
            args.nodes.clone()
        };
        let mut forecast = preflight::batches::plan(
            view,
            &args.critical,
            &nodes,
            spec,
            &ForecastOptions {
                startup_seconds: args.startup_delay,
                upgrade_seconds: args.upgrade_time,
                force: args.force,
                keep_replica: !args.no_keep_replica,
            },
        );
        if args.accept.iter().any(|a| a == "forecast") {
            unmatched.retain(|a| a != "forecast");
            if forecast.blocked() {
                tracing::warn!(
                    "preflight: accepted the disruption forecast's block (--accept forecast): {}",
                    forecast.verdict
                );
            }
            forecast.accepted = true;
        }
        forecast
    });
    for name in &args.nodes {
        if !view
            .nodes
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(name))
        {
            return Err(Error::input(format!(
                "--node {name}: the cluster has no such node"
            )));
        }
    }
    for a in &unmatched {
        tracing::warn!("--accept {a} matches no finding");
    }
    let report = preflight::Report {
        cluster_version: view.server_version.clone(),
        target: target.map(|t| t.to_string()),
        findings,
        forecast,
    };
    if let Some(path) = &args.report {
        let context = preflight::html::PageContext {
            command: command_line(),
            generated_at: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            cluster: match &args.rehearse {
                Some(snapshot) => format!(
                    "the snapshot {} (rehearsed in the simulator)",
                    snapshot.display()
                ),
                None => cluster_source(&args.cluster.options()),
            },
            krun_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        std::fs::write(path, preflight::html::page(&report, &context)).map_err(|e| {
            Error::runtime(format!("cannot write the report {}: {e}", path.display()))
        })?;
    }
    let document = Judged {
        verdict: verdict(&report),
        report: &report,
    };
    match crate::output::document(args.output, crate::output::PREFLIGHT_SCHEMA, &document)? {
        Some(text) => print(&text),
        None => print(&preflight::render::report(&report, Paint::stdout())),
    }
    Ok(if report.blocked() {
        crate::error::Kind::Refused.exit_code()
    } else {
        0
    })
}

/// The live cluster judged, as the report names it: the context and the kubeconfig it is in.
fn cluster_source(options: &crate::kube::ClientOptions) -> String {
    use crate::kube::client::{Environment, Source, choose_source};
    match choose_source(options, &Environment::current()) {
        Ok(Source::Kubeconfig { kubeconfig, files }) => {
            let context = options
                .context
                .clone()
                .or_else(|| kubeconfig.current_context.clone())
                .unwrap_or_else(|| "(none)".to_owned());
            let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            format!("context {context} of {}", files.join(", "))
        }
        Ok(Source::InCluster) => "the cluster krun runs in (its service account)".to_owned(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// This process's command line as the operator would type it again.
fn command_line() -> String {
    let mut argv: Vec<String> = std::env::args().collect();
    if let Some(first) = argv.first_mut() {
        *first = "krun".to_owned();
    }
    crate::quote::join(&argv)
}

/// The preflight document: the verdict first, then the report.
#[derive(serde::Serialize)]
struct Judged<'a> {
    verdict: Verdict,
    #[serde(flatten)]
    report: &'a crate::preflight::Report,
}

/// Whether the upgrade may go on, as a program reads it.
#[derive(serde::Serialize)]
struct Verdict {
    /// `ok` or `refused`.
    outcome: &'static str,
    exit_code: u8,
    /// What refuses: finding ids, and `forecast` when the forecast blocks.
    blocking: Vec<String>,
    /// Blocks accepted with `--accept`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    accepted: Vec<String>,
}

fn verdict(report: &crate::preflight::Report) -> Verdict {
    let mut blocking: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.blocks())
        .map(|f| f.id.clone())
        .collect();
    let mut accepted: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.accepted)
        .map(|f| f.id.clone())
        .collect();
    if let Some(forecast) = &report.forecast {
        if forecast.blocked() {
            blocking.push("forecast".to_owned());
        } else if forecast.accepted && !forecast.verdict.blocking.is_empty() {
            accepted.push("forecast".to_owned());
        }
    }
    let refused = report.blocked();
    Verdict {
        outcome: if refused { "refused" } else { "ok" },
        exit_code: if refused {
            crate::error::Kind::Refused.exit_code()
        } else {
            0
        },
        blocking,
        accepted,
    }
}
