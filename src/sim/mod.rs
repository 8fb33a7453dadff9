//! `krun sim`: a simulated Kubernetes cluster that real kubectl accepts.

mod clock;
mod controllers;
mod disruption;
mod error;
mod load;
mod object;
mod patch;
mod resource;
mod selector;
mod status;
mod world;

pub use error::{ControlError, LoadError, SimError};
pub use load::Cluster;

use clap::Subcommand;

/// Subcommands of `krun sim`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {}

/// Runs a `krun sim` subcommand.
pub async fn run(command: SimCommand) -> crate::Result<()> {
    match command {}
}
