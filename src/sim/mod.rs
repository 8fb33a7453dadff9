//! `krun sim`: a simulated Kubernetes cluster that real kubectl accepts.
//!
//! No kube-apiserver can run on the machines krun is built and tested on, yet krun's value is
//! in what it does to a live cluster. The simulator serves the part of the Kubernetes API an
//! upgrade touches (discovery, nodes, pods, namespaces, PDBs, workloads, leases, evictions,
//! watches) over a snapshot taken with `kubectl get … -o yaml`, and runs enough of the
//! controllers (scheduler, kubelet, ReplicaSet/StatefulSet/DaemonSet/Deployment, disruption)
//! that a drain behaves as on a real cluster. It backs krun's tests, the bundled lab, and
//! rehearsals of an upgrade against a copy of a production cluster; it runs in-process
//! ([`Server::start`]) or as `krun sim serve`.

mod api;
mod apply;
mod cells;
mod clock;
mod control;
mod controllers;
mod defaults;
mod discovery;
mod error;
mod faults;
mod format;
mod generator;
mod load;
mod object;
mod openapi;
mod ops;
mod pages;
mod patch;
mod protobuf;
mod resource;
mod selector;
mod server;
mod shared;
mod status;
mod table;
mod value;
mod version;
mod watch;
mod world;
mod yaml;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use control::SimHandle;
pub use error::{ControlError, LoadError, SimError};
pub use faults::{Fault, Latency};
pub use generator::{GenOptions, generate};
pub use load::Cluster;
pub use server::{Server, SimOptions, kubeconfig};

/// Subcommands of `krun sim`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve a cluster snapshot over the Kubernetes API until interrupted.
    ///
    /// The first line printed is the server's base URL.
    Serve(ServeArgs),
    /// Print a synthetic cluster as the List `kubectl get … -A -o yaml` prints.
    Gen(GenArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The snapshot: `kubectl get nodes,pods,pdb,deployments,replicasets,statefulsets,daemonsets,namespaces -A -o yaml`
    /// output, or a multi-document YAML of such objects.
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Write a kubeconfig pointing at the server to this path.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Cluster seconds per real second: 100 ends a 30 s grace period in 0.3 s.
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub time_scale: f64,
    /// Cluster seconds from a pod being scheduled to it being Running and Ready.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub startup_delay: f64,
    /// Seed for generated names and uids.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Play this Kubernetes version (`v1.20.15`) instead of the one the snapshot's control
    /// plane runs: discovery, group versions and behaviours follow it (1.14 to 1.33).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of nodes (control plane included).
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Number of pods.
    #[arg(long, default_value_t = 100)]
    pub pods: usize,
    /// Seed; the same seed always prints the same cluster.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Control-plane nodes (default: 3 from 5 nodes up, else 1).
    #[arg(long, value_name = "N")]
    pub control_planes: Option<usize>,
    /// Availability zones the nodes are spread over.
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    /// Kubernetes version of the control plane and the kubelets.
    #[arg(long, default_value = "v1.28.9")]
    pub version: String,
}

/// Runs a `krun sim` subcommand.
pub async fn run(command: SimCommand) -> crate::Result<()> {
    match command {
        SimCommand::Serve(args) => serve(args).await.map_err(Into::into),
        SimCommand::Gen(args) => {
            let text = generate(&GenOptions {
                nodes: args.nodes,
                pods: args.pods,
                seed: args.seed,
                control_planes: args.control_planes.unwrap_or(0),
                zones: args.zones,
                version: args.version,
            });
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .map_err(|e| crate::Error::from(SimError::Stdout(e)))
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), SimError> {
    // The text goes once loaded: a 20,000-pod snapshot is 72 MiB the server never reads again.
    let cluster = {
        let text =
            std::fs::read_to_string(&args.cluster).map_err(|source| SimError::ReadCluster {
                path: args.cluster.clone(),
                source,
            })?;
        Cluster::load(&text).map_err(|source| SimError::Load {
            path: args.cluster.clone(),
            source,
        })?
    };
    if !(args.startup_delay.is_finite() && args.startup_delay >= 0.0) {
        return Err(SimError::StartupDelay(args.startup_delay));
    }
    if let Some(version) = &args.version {
        let minor = version::Version::of(version).map(|v| v.minor);
        if !minor.is_some_and(|m| (version::OLDEST_MINOR..=version::NEWEST_MINOR).contains(&m))
            || !version.starts_with('v')
            || version.split('.').count() != 3
        {
            return Err(SimError::Version(version.clone()));
        }
    }
    let options = SimOptions {
        listen: args.listen,
        time_scale: args.time_scale,
        startup_delay: Duration::from_secs_f64(args.startup_delay),
        seed: args.seed,
        version: args.version,
        ..SimOptions::default()
    };
    let server = Server::start(cluster, options).await?;
    if let Some(path) = &args.kubeconfig_out {
        server.write_kubeconfig(path)?;
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", server.url())
            .and_then(|()| stdout.flush())
            .map_err(SimError::Stdout)?;
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(SimError::Signal)?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map_err(SimError::Signal)?,
        _ = terminate.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
