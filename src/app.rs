//! The command line's edge: parse, validate, dispatch, print once, and map to an exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::Error;
use crate::cli::{
    CheckArgs, Cli, Command, DocArgs, DocFormat, OutputFormat, ResumeArgs, RunArgs, RunsArgs,
    RunsCommand, UnlockArgs,
};
use crate::effects::{DryRun, Effects};
use crate::engine::{self, ModulePath};
use crate::inventory::Inventory;
use crate::plan::{Recorder, RunId};
use crate::primitives::{Host, RunContext};
use crate::resume::JournalView;
use crate::run::{self, RunSettings};
use crate::ui::Ui;

/// Runs krun with the process's arguments; returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(&Error::runtime(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    let result = match cli.command {
        Some(Command::Check(args)) => check(&runtime, &args),
        Some(Command::Doc(args)) => doc(&runtime, &args),
        Some(Command::Runs(args)) => runs(&args),
        Some(Command::Resume(args)) => {
            resume(&runtime, args, cli.verbosity.verbose, cli.verbosity.quiet)
        }
        Some(Command::Unlock(args)) => {
            Ui::new(false).init_logging(cli.verbosity.verbose, cli.verbosity.quiet);
            runtime.block_on(unlock(args))
        }
        Some(Command::Preflight(args)) => {
            Ui::new(false).init_logging(cli.verbosity.verbose, cli.verbosity.quiet);
            runtime.block_on(preflight(*args))
        }
        Some(Command::Completions(args)) => crate::completions::completions(&args),
        Some(Command::Man(args)) => crate::completions::man(&args),
        Some(Command::Sim(command)) => {
            Ui::new(false).init_logging(cli.verbosity.verbose, cli.verbosity.quiet);
            runtime.block_on(crate::sim::run(command)).map(|()| 0)
        }
        None => run_playbook(
            &runtime,
            cli.run,
            cli.verbosity.verbose,
            cli.verbosity.quiet,
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// `krun unlock`: clears an expired lock, or breaks a live one with `--force`.
async fn unlock(args: UnlockArgs) -> crate::Result<u8> {
    use crate::lock::{LockName, Unlocked};
    let name = LockName::parse(&args.lock).map_err(Error::input)?;
    let kube = crate::kube::Kube::connect(&args.cluster.options()).await?;
    let by = format!(
        "{}@{}",
        crate::inventory::current_user(),
        crate::journal::hostname()
    );
    match crate::lock::unlock(&kube, &name, args.force, &by).await? {
        Unlocked::NotHeld => print(&format!("the lock {name} is not held\n")),
        Unlocked::Expired(was) => {
            tracing::warn!("cleared the expired lock {name}, held by {was}");
            print(&format!(
                "cleared the lock {name} (expired; was held by {was})\n"
            ));
        }
        Unlocked::Broken(was) => {
            tracing::warn!("broke the lock {name} held by {was}");
            print(&format!("broke the lock {name}, held by {was}\n"));
        }
    }
    Ok(0)
}

/// `krun preflight`: findings and, with --batch, the disruption forecast; exit 3 on a block.
async fn preflight(args: crate::cli::PreflightArgs) -> crate::Result<u8> {
    use crate::preflight::{self, BatchSpec, ClusterView, ForecastOptions, PreflightOptions};
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
    let (service, _simulator) = match &args.rehearse {
        Some(file) => {
            let (service, server) = run::rehearsal(file).await?;
            (service, Some(server))
        }
        None => (
            crate::kube_ops::KubeService::new(args.cluster.options()),
            None,
        ),
    };
    let service = Arc::new(service);
    let kube = service
        .client()
        .await
        .map_err(|e| Error::runtime(format!("preflight cannot reach the cluster: {e}")))?;
    let view = ClusterView::read(kube).await?;
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
    let mut findings = preflight::findings(kube, &view, &options).await?;
    findings.extend(node_findings(&args, &inventory, &service, options).await?);
    preflight::sort(&mut findings);
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
            &view,
            &args.critical,
            &nodes,
            spec,
            &ForecastOptions {
                startup_seconds: args.startup_delay,
                upgrade_seconds: args.upgrade_time,
                force: args.force,
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
        std::fs::write(path, preflight::html::page(&report)).map_err(|e| {
            Error::runtime(format!("cannot write the report {}: {e}", path.display()))
        })?;
    }
    match args.output {
        OutputFormat::Json => {
            let json =
                serde_json::to_string_pretty(&report).map_err(|e| Error::runtime(e.to_string()))?;
            print(&format!("{json}\n"));
        }
        OutputFormat::Text => print(&preflight::render::report(&report)),
    }
    Ok(if report.blocked() {
        crate::error::Kind::Refused.exit_code()
    } else {
        0
    })
}

/// etcd and certificates for `krun preflight`: the same steps a playbook's `preflight()`
/// performs, through a live effects boundary of its own (nothing is journaled).
async fn node_findings(
    args: &crate::cli::PreflightArgs,
    inventory: &Arc<Inventory>,
    kube: &Arc<crate::kube_ops::KubeService>,
    options: crate::preflight::PreflightOptions,
) -> crate::Result<Vec<crate::preflight::Finding>> {
    use crate::ssh::{SshConfig, SshPool};
    let pool = SshPool::new(SshConfig {
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        accept_new_host_keys: args.accept_new_host_keys,
    });
    let performer = crate::effects::Live {
        transport: Arc::new(crate::transport::SshTransport::new(
            pool.clone(),
            Arc::clone(inventory),
        )),
        etcd: Arc::new(crate::etcd_ops::EtcdService::new(
            Arc::clone(inventory),
            pool.clone(),
            Some(Arc::clone(kube)),
        )),
        kube: Arc::clone(kube),
    };
    let recorder = Arc::new(Recorder::new());
    let run = recorder.add_run("preflight", None);
    let steps = crate::preflight::Steps {
        effects: Arc::new(Effects::new(
            Box::new(performer),
            recorder,
            tokio_util::sync::CancellationToken::new(),
            tokio::runtime::Handle::current(),
        )),
        run,
        origin: crate::plan::Origin::default(),
    };
    let inventory = Arc::clone(inventory);
    // The steps block on the runtime, as a playbook's do.
    let found = tokio::task::spawn_blocking(move || {
        crate::preflight::node_findings(&steps, &inventory, &options)
    })
    .await
    .map_err(|e| Error::runtime(format!("the etcd and certificate checks failed: {e}")))?;
    pool.close().await;
    Ok(found)
}

fn fail(error: &Error) -> u8 {
    let _ = writeln!(std::io::stderr(), "error: {error}");
    error.exit_code()
}

/// Writes to stdout; a closed pipe (`krun … | head`) is not an error.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn duration(flag: &str, text: &str) -> crate::Result<Duration> {
    humantime::parse_duration(text.trim())
        .or_else(|_| text.trim().parse::<u64>().map(Duration::from_secs))
        .map_err(|_| {
            Error::input(format!(
                "{flag} `{text}`: expected a duration such as 30s, 10m or 1h"
            ))
        })
}

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

fn settings(args: RunArgs) -> crate::Result<RunSettings> {
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
            Some(crate::lock::LockName::parse(&args.lock).map_err(Error::input)?)
        },
    })
}

fn run_playbook(
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

fn execute(
    runtime: &tokio::runtime::Runtime,
    settings: RunSettings,
    output: OutputFormat,
    ui: &Ui,
) -> crate::Result<u8> {
    let recorder = Arc::new(Recorder::new());
    ui.follow(&recorder);
    let report = runtime.block_on(run::execute(settings, recorder))?;
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

/// A host for compiling and listing: dry-run, offline, no nodes. Nothing can be executed.
fn inert_context(runtime: &tokio::runtime::Runtime, playbook: PathBuf) -> Arc<RunContext> {
    let effects = Arc::new(Effects::new(
        Box::new(DryRun {
            transport: None,
            etcd: None,
            kube: None,
            kube_live: false,
        }),
        Arc::new(Recorder::new()),
        tokio_util::sync::CancellationToken::new(),
        runtime.handle().clone(),
    ));
    let host = Host::new(
        effects,
        Arc::new(Inventory::default()),
        BTreeMap::new(),
        playbook,
        Duration::from_secs(60),
    );
    Arc::new(RunContext {
        host: Arc::new(host),
        run: RunId(usize::MAX),
        node: None,
    })
}

fn check(runtime: &tokio::runtime::Runtime, args: &CheckArgs) -> crate::Result<u8> {
    let context = inert_context(runtime, PathBuf::from("."));
    let engine = engine::for_run(ModulePath::default(), &context);
    let diagnostics = crate::check::check_files(&engine, &args.libs, &args.playbooks);
    let color = color();
    for diagnostic in &diagnostics {
        let _ = write!(std::io::stderr(), "{}", diagnostic.render(color));
    }
    if diagnostics.is_empty() {
        print(&format!(
            "ok: {} playbook(s) checked\n",
            args.playbooks.len()
        ));
        Ok(0)
    } else {
        let _ = writeln!(std::io::stderr(), "{} problem(s) found", diagnostics.len());
        Ok(crate::error::Kind::Input.exit_code())
    }
}

fn doc(runtime: &tokio::runtime::Runtime, args: &DocArgs) -> crate::Result<u8> {
    let context = inert_context(runtime, PathBuf::from("."));
    let engine = engine::for_run(ModulePath::default(), &context);
    let reference = crate::doc::reference(&engine);
    match args.format {
        DocFormat::Markdown => print(&crate::doc::markdown(&reference)),
        DocFormat::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&reference).map_err(|e| Error::runtime(e.to_string()))?
        )),
    }
    Ok(0)
}

fn runs(args: &RunsArgs) -> crate::Result<u8> {
    match &args.command {
        Some(RunsCommand::Show { id }) => {
            let view = JournalView::load(&args.state_dir, id)?;
            print(&view.describe());
            if let Some(argv) = view.header["argv"].as_array() {
                let argv: Vec<&str> = argv.iter().filter_map(|a| a.as_str()).collect();
                print(&format!("  command: {}\n", argv.join(" ")));
            }
            let stopped = view.runs.values().any(|r| r.status != "ok");
            if stopped && view.header["dry_run"] != true {
                print(&format!("  resume with: krun resume {id}\n"));
            }
        }
        None => {
            let all = JournalView::list(&args.state_dir);
            if all.is_empty() {
                print(&format!(
                    "no runs recorded under {}\n",
                    args.state_dir.display()
                ));
            }
            for view in all {
                print(&view.describe());
            }
        }
    }
    Ok(0)
}

fn resume(
    runtime: &tokio::runtime::Runtime,
    args: ResumeArgs,
    verbose: u8,
    quiet: bool,
) -> crate::Result<u8> {
    let ui = Ui::new(args.output == OutputFormat::Text && !quiet);
    ui.init_logging(verbose, quiet);
    let state_dir = std::path::absolute(&args.state_dir).unwrap_or(args.state_dir.clone());
    let view = JournalView::load(&state_dir, &args.id)?;
    let header = &view.header;
    if header["dry_run"] == true {
        return Err(Error::input(format!(
            "run {} was a dry-run: there is nothing to resume; run the playbook again",
            args.id
        )));
    }
    let mut argv: Vec<String> = header["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if argv.is_empty() {
        return Err(Error::input(format!(
            "run {} has no recorded command line",
            args.id
        )));
    }
    let needed: Vec<String> = header["secret_params"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let given = crate::params::parse_sets(&args.set_secret)?;
    let missing: Vec<&str> = needed
        .iter()
        .filter(|n| !given.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "run {} used secret parameters, which are never stored: give them again with --set-secret NAME=VALUE for {}",
            args.id,
            missing.join(", ")
        )));
    }
    for arg in &mut argv {
        for (name, value) in &args
            .set_secret
            .iter()
            .filter_map(|s| s.split_once('='))
            .collect::<Vec<_>>()
        {
            if *arg == format!("{name}=***") {
                *arg = format!("{name}={value}");
            } else if *arg == format!("--set-secret={name}=***") {
                *arg = format!("--set-secret={name}={value}");
            }
        }
    }
    if let Some(cwd) = header["cwd"].as_str().filter(|c| !c.is_empty()) {
        std::env::set_current_dir(cwd).map_err(|e| {
            Error::input(format!("run {} ran in {cwd}, which is gone: {e}", args.id))
        })?;
    }
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        Error::input(format!(
            "cannot re-read the command line of run {}: {e}",
            args.id
        ))
    })?;
    let mut run_args = cli.run;
    run_args.state_dir = state_dir;
    run_args.output = args.output;
    let playbook = run_args.playbook.clone().unwrap_or_default();
    let now = std::fs::read_to_string(&playbook)
        .map_err(|e| Error::input(format!("cannot read playbook {}: {e}", playbook.display())))?;
    let then = header["playbook_sha256"].as_str().unwrap_or_default();
    let hash = crate::journal::content_hash(&now);
    if hash != then && !args.allow_changed {
        return Err(Error::input(format!(
            "playbook {} changed since run {} started (sha256 {} then, {} now); \
             review the change, then resume with --allow-changed",
            playbook.display(),
            args.id,
            &then[..then.len().min(12)],
            &hash[..12]
        )));
    }
    if hash != then {
        tracing::warn!(
            "resuming run {} although its playbook changed (--allow-changed)",
            args.id
        );
    }
    let output = run_args.output;
    let mut settings = settings(run_args)?;
    settings.argv = argv_masked(&argv, &needed);
    settings.strict_skew |= args.strict_skew;
    let replay = crate::resume::Replay::new(&view, args.retry_unknown);
    settings.resume = Some((args.id.clone(), Arc::new(replay)));
    tracing::info!(
        "resuming run {}: steps recorded as done are not executed again",
        args.id
    );
    execute(runtime, settings, output, &ui)
}

/// `argv` with the values of the named secret parameters masked again.
fn argv_masked(argv: &[String], secrets: &[String]) -> Vec<String> {
    argv.iter()
        .map(|arg| {
            let (prefix, rest) = arg
                .strip_prefix("--set-secret=")
                .map_or(("", arg.as_str()), |r| ("--set-secret=", r));
            match rest.split_once('=') {
                Some((name, _)) if secrets.iter().any(|s| s == name) => {
                    format!("{prefix}{name}=***")
                }
                _ => arg.clone(),
            }
        })
        .collect()
}
