//! The command line's edge: parse, dispatch to the subcommand, print once, and map to an exit
//! code. Each subcommand lives in [`crate::cmd`].

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Parser;

use crate::Error;
use crate::cli::{Cli, Command};
use crate::cmd;
use crate::ui::Ui;

/// Runs krun with the process's arguments; returns the exit code.
pub fn main() -> u8 {
    // A bare `krun` gets the help, whatever KRUN_* variables the environment sets.
    if std::env::args_os().len() == 1 {
        use clap::CommandFactory;
        let _ = writeln!(std::io::stderr(), "{}", Cli::command().render_help());
        return crate::error::Kind::Input.exit_code();
    }
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
        Some(Command::Check(args)) => cmd::check::check(&runtime, &args),
        Some(Command::Doc(args)) => cmd::check::doc(&runtime, &args),
        Some(Command::Describe(args)) => cmd::check::describe(&runtime, &args),
        Some(Command::Runs(args)) => cmd::runs::runs(&args),
        Some(Command::Resume(args)) => {
            cmd::resume::resume(&runtime, args, cli.verbosity.verbose, cli.verbosity.quiet)
        }
        Some(Command::Unlock(args)) => {
            Ui::new(false).init_logging(cli.verbosity.verbose, cli.verbosity.quiet);
            runtime.block_on(cmd::unlock::unlock(args))
        }
        Some(Command::Preflight(args)) => {
            Ui::new(false).init_logging(cli.verbosity.verbose, cli.verbosity.quiet);
            runtime.block_on(cmd::preflight::preflight(*args))
        }
        Some(Command::Lib(args)) => {
            Ui::new(false).init_logging(cli.verbosity.verbose, cli.verbosity.quiet);
            cmd::lib::run(&args)
        }
        Some(Command::Init(args)) => cmd::init::run(&args),
        Some(Command::Completions(args)) => cmd::completions::completions(&args),
        Some(Command::Man(args)) => cmd::completions::man(&args),
        Some(Command::Sim(command)) => {
            Ui::new(false).init_logging(cli.verbosity.verbose, cli.verbosity.quiet);
            runtime.block_on(crate::sim::run(command)).map(|()| 0)
        }
        None => cmd::run::run_playbook(
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
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn duration(flag: &str, text: &str) -> crate::Result<Duration> {
    humantime::parse_duration(text.trim())
        .or_else(|_| text.trim().parse::<u64>().map(Duration::from_secs))
        .map_err(|_| {
            Error::input(format!(
                "{flag} `{text}`: expected a duration such as 30s, 10m or 1h"
            ))
        })
}
