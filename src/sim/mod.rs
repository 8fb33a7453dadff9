//! `krun sim`: a simulated Kubernetes cluster that real kubectl accepts.

use clap::Subcommand;

/// Subcommands of `krun sim`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {}

/// Runs a `krun sim` subcommand.
pub async fn run(command: SimCommand) -> crate::Result<()> {
    match command {}
}
