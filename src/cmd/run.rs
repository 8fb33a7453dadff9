//! Running a playbook (`krun PLAYBOOK …`): the validated settings, the wiring for the run's mode,
//! and the report printed once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::app::{color, duration, print};
use crate::cli::{OutputFormat, RunArgs};
use crate::inventory::Inventory;
use crate::paint::Paint;
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

/// Why `path` cannot be run: a mistyped subcommand (`krun preflght`) gets its suggestion.
fn not_a_playbook(path: &Path) -> String {
    use clap::CommandFactory;
    let name = path.display().to_string();
    let command = crate::cli::Cli::command();
    let subcommands: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
    let bare = !name.contains('/') && !name.ends_with(".rhai");
    match crate::suggest::closest(&name, subcommands.iter().copied()) {
        Some(close) if bare => format!(
            "`{name}` is neither a subcommand nor a playbook file; did you mean `krun {close}`?"
        ),
        _ if bare => format!(
            "`{name}` is neither a subcommand ({}) nor a playbook file",
            subcommands.join(", ")
        ),
        _ => format!("playbook {name} does not exist or is not a file"),
    }
}

pub fn settings(args: RunArgs) -> crate::Result<RunSettings> {
    let playbook = args
        .playbook
        .ok_or_else(|| Error::input("no playbook given (see krun --help)"))?;
    if !playbook.is_file() {
        return Err(Error::input(not_a_playbook(&playbook)));
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
        journal: true,
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
    let yes = args.yes;
    let ui = Ui::new(output == OutputFormat::Text && !quiet);
    ui.init_logging(verbose, quiet);
    let settings = settings(args)?;
    let plan = super::confirm::wanted(&settings, yes).then(|| super::confirm::plan_of(&settings));
    execute(runtime, settings, plan, &Shown { output, quiet }, &ui)
}

/// How the result is shown.
pub struct Shown {
    pub output: OutputFormat,
    /// `-q`: the summary only.
    pub quiet: bool,
}

/// Runs the playbook and prints the report once. With `plan` (a dry-run of the same run), the
/// plan is made first and, when the run would cordon, drain or destroy, the operator is asked.
pub fn execute(
    runtime: &tokio::runtime::Runtime,
    settings: RunSettings,
    plan: Option<RunSettings>,
    shown: &Shown,
    ui: &Ui,
) -> crate::Result<u8> {
    if let Some(plan) = plan {
        let planned = perform(runtime, plan, ui)?;
        if planned.exit_code != 0 || !planned.diagnostics.is_empty() {
            tracing::error!(
                "the plan of this run stops (exit {}); nothing was changed",
                planned.exit_code
            );
            return show(&planned, None, shown);
        }
        if !super::confirm::ask(&planned)? {
            return Err(Error::refused(
                "not confirmed: nothing was changed (--yes runs without asking)",
            ));
        }
    }
    let state_dir = settings.state_dir.clone();
    let report = perform(runtime, settings, ui)?;
    show(&report, Some(&state_dir), shown)
}

/// One pass of the run through a boundary wired for its mode.
fn perform(
    runtime: &tokio::runtime::Runtime,
    settings: RunSettings,
    ui: &Ui,
) -> crate::Result<run::Report> {
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
    });
    ui.finish();
    report
}

/// Prints the report once: diagnostics on stderr, the plan or the run on stdout.
fn show(report: &run::Report, state_dir: Option<&Path>, shown: &Shown) -> crate::Result<u8> {
    let color = color();
    for diagnostic in &report.diagnostics {
        let _ = write!(std::io::stderr(), "{}", diagnostic.render(color));
    }
    if let Some(document) =
        crate::output::document(shown.output, crate::output::RUN_SCHEMA, report)?
    {
        print(&document);
        return Ok(report.exit_code);
    }
    let paint = Paint::stdout();
    if !report.findings.is_empty() && !shown.quiet {
        print(&format!(
            "preflight of this run's nodes and target:\n{}",
            crate::preflight::render::findings(&report.findings, paint)
        ));
    }
    if let Some(forecast) = &report.forecast
        && !shown.quiet
    {
        print(&crate::preflight::render::forecast(forecast, paint));
    }
    if !report.nodes.is_empty() {
        let stopped = report
            .nodes
            .iter()
            .any(|n| n.status != crate::plan::RunStatus::Ok);
        let resume = match (&report.run_id, state_dir) {
            (Some(id), Some(dir)) if stopped && !report.dry_run => Some(resume_command(id, dir)),
            _ => None,
        };
        let options = crate::output::TextOptions {
            paint,
            quiet: shown.quiet,
            resume,
        };
        print(&crate::output::text(report, &options));
    }
    Ok(report.exit_code)
}

/// The exact command that resumes run `id`: `--state-dir` too when the journals are not where
/// `krun resume` looks by default.
pub fn resume_command(id: &str, state_dir: &Path) -> String {
    let default =
        std::env::var_os("KRUN_STATE_DIR").map_or_else(|| PathBuf::from(".krun"), PathBuf::from);
    let same = |a: &Path, b: &Path| std::path::absolute(a).ok() == std::path::absolute(b).ok();
    if same(state_dir, &default) {
        format!("krun resume {}", crate::quote::quote(id))
    } else {
        format!(
            "krun resume {} --state-dir {}",
            crate::quote::quote(id),
            crate::quote::quote(&state_dir.display().to_string())
        )
    }
}
