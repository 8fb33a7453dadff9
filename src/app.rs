//! The command line's edge: parse, validate, dispatch, print once, and map to an exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::Error;
use crate::cli::{CheckArgs, Cli, Command, DocArgs, DocFormat, OutputFormat, RunArgs};
use crate::effects::{DryRun, Effects};
use crate::engine::{self, ModulePath};
use crate::inventory::Inventory;
use crate::plan::{Recorder, RunId};
use crate::primitives::{Host, RunContext};
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
    if args.offline && !args.dry_run {
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
        nodes.push(inventory.node(name)?.clone());
    }
    Ok(RunSettings {
        playbook,
        nodes,
        params,
        secret_params,
        inventory: Arc::new(inventory),
        libs: args.libs,
        state_dir: args.state_dir,
        batch: args.batch as usize,
        dry_run: args.dry_run,
        offline: args.offline,
        accept_new_host_keys: args.accept_new_host_keys,
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        command_timeout: duration("--command-timeout", &args.command_timeout)?,
        overall_timeout: args
            .timeout
            .as_deref()
            .map(|t| duration("--timeout", t))
            .transpose()?,
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
        OutputFormat::Text if report.nodes.is_empty() => {}
        OutputFormat::Text => print(&crate::output::text(&report)),
    }
    Ok(report.exit_code)
}

/// A host for compiling and listing: dry-run, offline, no nodes. Nothing can be executed.
fn inert_context(runtime: &tokio::runtime::Runtime, playbook: PathBuf) -> Arc<RunContext> {
    let effects = Arc::new(Effects::new(
        Box::new(DryRun { transport: None }),
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
