//! Running a playbook (`krun PLAYBOOK …`): the validated settings, the wiring for the run's mode,
//! and the report printed once.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::app::{color, duration, print};
use crate::cli::{OutputFormat, RunArgs};
use crate::inventory::Inventory;
use crate::plan::Recorder;
use crate::runtime::run::{self, RunSettings};
use crate::ssh::SshConfig;
use crate::ui::Ui;
use crate::wiring::{Mode, Wiring};

/// The process's arguments with the values of `--set-secret` masked, for the journal.
fn masked_argv() -> Vec<String> {
    let mut masked = Vec::new();
    let mut secret_next = false;
    for arg in std::env::args() {
        let shown = if secret_next {
            arg.split_once('=')
                .map_or_else(|| "***".to_owned(), |(k, _)| format!("{k}=***"))
        } else if let Some(rest) = arg.strip_prefix("--set-secret=") {
            rest.split_once('=').map_or_else(
                || "--set-secret=***".to_owned(),
                |(k, _)| format!("--set-secret={k}=***"),
            )
        } else {
            arg.clone()
        };
        secret_next = arg == "--set-secret";
        masked.push(shown);
    }
    masked
}

pub fn settings(args: RunArgs) -> crate::Result<RunSettings> {
    let playbook = args
        .playbook
        .ok_or_else(|| Error::input("no playbook given (see krun --help)"))?;
    if !playbook.is_file() {
        return Err(Error::input(format!(
            "playbook {} does not exist or is not a file",
            playbook.display()
        )));
    }
    let dry_run = args.dry_run || args.rehearse.is_some();
    let batch_spec = crate::preflight::BatchSpec::parse(&args.batch).map_err(Error::input)?;
    if args.offline && !dry_run {
        return Err(Error::input("--offline only makes sense with --dry-run"));
    }
    let (params, secret_params) = crate::params::parse_with_secrets(&args.set, &args.set_secret)?;
    let libraries = super::lib::libraries_for(&playbook, args.locked, args.offline && dry_run)?;
    let inventory = match &args.inventory {
        Some(path) => Inventory::load(path)?,
        None => Inventory::default(),
    };
    let mut nodes = Vec::new();
    for name in &args.nodes {
        if nodes
            .iter()
            .any(|n: &crate::inventory::NodeSpec| &n.name == name)
        {
            return Err(Error::input(format!("--node {name} is given twice")));
        }
        match inventory.node(name) {
            Ok(spec) => nodes.push(spec.clone()),
            // Maybe a node of the cluster: looked up once the run connects to it.
            Err(_) => nodes.push(crate::inventory::NodeSpec {
                host: String::new(),
                ..inventory.discovered(name, "")
            }),
        }
    }
    Ok(RunSettings {
        playbook,
        nodes,
        params,
        secret_params,
        inventory: Arc::new(inventory),
        libs: args.libs,
        allow_local: args.allow_local,
        state_dir: args.state_dir,
        kube: args.cluster.options(),
        batch: batch_spec.size(args.nodes.len()),
        batch_spec,
        accept: args.accept,
        dry_run,
        offline: args.offline,
        strict_skew: args.strict_skew,
        rehearse: args.rehearse,
        accept_new_host_keys: args.accept_new_host_keys,
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        command_timeout: duration("--command-timeout", &args.command_timeout)?,
        overall_timeout: args
            .timeout
            .as_deref()
            .map(|t| duration("--timeout", t))
            .transpose()?,
        argv: masked_argv(),
        resume: None,
        lock: if args.no_lock {
            None
        } else {
            Some(crate::kube::lock::LockName::parse(&args.lock).map_err(Error::input)?)
        },
        libraries,
    })
}

pub fn run_playbook(
    runtime: &tokio::runtime::Runtime,
    args: RunArgs,
    verbose: u8,
    quiet: bool,
) -> crate::Result<u8> {
    let output = args.output;
    let ui = Ui::new(output == OutputFormat::Text && !quiet);
    ui.init_logging(verbose, quiet);
    let settings = settings(args)?;
    execute(runtime, settings, output, &ui)
}

pub fn execute(
    runtime: &tokio::runtime::Runtime,
    settings: RunSettings,
    output: OutputFormat,
    ui: &Ui,
) -> crate::Result<u8> {
    let recorder = Arc::new(Recorder::with_secrets(Arc::clone(ui.secrets())));
    ui.follow(&recorder);
    let mode = match (settings.dry_run, settings.offline) {
        (false, _) => Mode::Live,
        (true, false) => Mode::DryRun,
        (true, true) => Mode::Offline,
    };
    let wiring = Wiring {
        inventory: Arc::clone(&settings.inventory),
        cluster: settings.kube.clone(),
        rehearse: settings.rehearse.clone(),
        mode,
        ssh: SshConfig {
            connect_timeout: settings.connect_timeout,
            accept_new_host_keys: settings.accept_new_host_keys,
        },
    };
    let replay = settings
        .resume
        .as_ref()
        .map(|(_, replay)| Arc::clone(replay));
    let report = runtime.block_on(async {
        let wired = wiring
            .wire(recorder, CancellationToken::new(), replay)
            .await?;
        let report = run::execute(settings, Arc::clone(&wired.effects)).await;
        wired.close().await;
        report
    })?;
    let color = color();
    for diagnostic in &report.diagnostics {
        let _ = write!(std::io::stderr(), "{}", diagnostic.render(color));
    }
    match output {
        OutputFormat::Json => {
            let json =
                serde_json::to_string_pretty(&report).map_err(|e| Error::runtime(e.to_string()))?;
            print(&format!("{json}\n"));
        }
        OutputFormat::Text => {
            if !report.findings.is_empty() {
                print(&format!(
                    "preflight of this run's nodes and target:\n{}",
                    crate::preflight::render::findings(&report.findings)
                ));
            }
            if let Some(forecast) = &report.forecast {
                print(&crate::preflight::render::forecast(forecast));
            }
            if !report.nodes.is_empty() {
                print(&crate::output::text(&report));
            }
        }
    }
    Ok(report.exit_code)
}
