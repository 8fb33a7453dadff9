//! `krun sim`: a simulated Kubernetes cluster that real kubectl accepts.

mod api;
mod clock;
mod control;
mod controllers;
mod discovery;
mod disruption;
mod error;
mod load;
mod object;
mod ops;
mod patch;
mod resource;
mod selector;
mod server;
mod status;
mod table;
mod watch;
mod world;

pub use error::{ControlError, LoadError, SimError};
pub use control::{Fault, Latency, SimHandle};
pub use load::Cluster;
pub use server::{Server, SimOptions, kubeconfig};

use clap::Subcommand;

/// Subcommands of `krun sim`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {}

/// Runs a `krun sim` subcommand.
pub async fn run(command: SimCommand) -> crate::Result<()> {
    match command {}
}
