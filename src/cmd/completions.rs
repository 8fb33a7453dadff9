//! `krun completions SHELL` and `krun man`: shell completions and manual pages generated from
//! the command-line definition itself, so they always match `--help`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::Error;
use crate::cli::Cli;

#[derive(Debug, Args)]
#[command(after_help = "\
Install, for example:
  krun completions bash > ~/.local/share/bash-completion/completions/krun
  krun completions zsh > ~/.zfunc/_krun        # with fpath+=(~/.zfunc) before compinit
  krun completions fish > ~/.config/fish/completions/krun.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  krun man | man -l -
  krun man --dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write krun.1 and a page per subcommand (krun-check.1, krun-lib-add.1, …) into DIR
    /// instead of printing krun.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for a shell.
pub fn completions(args: &CompletionsArgs) -> crate::Result<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "krun", &mut script);
    write_stdout(&script)?;
    Ok(0)
}

/// Prints krun.1, or writes every page into a directory.
pub fn man(args: &ManArgs) -> crate::Result<u8> {
    let command = Cli::command();
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::input(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(command, dir).map_err(|e| {
                Error::runtime(format!(
                    "cannot write manual pages into {}: {e}",
                    dir.display()
                ))
            })?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| Error::runtime(format!("cannot render the manual page: {e}")))?;
            write_stdout(&page)?;
        }
    }
    Ok(0)
}

/// A closed pipe (`krun man | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> crate::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::runtime(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
