//! Runs one command on many nodes at once, or many times on one node, through `SshPool`.
//!
//! Used by `scripts/bench-ssh.sh` to measure the ssh transport until the `krun` command line
//! can run the equivalent playbooks.
//!
//! ```text
//! ssh_fanout --hosts HOSTS --identity KEY --known-hosts FILE [--user root] [--repeat N] -- uname -r
//! ```
//! `HOSTS` has one node per line: `name host port`. With `--repeat N` the command runs N times,
//! one after the other, on the first node only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use krun::ssh::{Endpoint, ExecRequest, SshConfig, SshPool};

#[derive(Parser)]
struct Args {
    /// File with one `name host port` per line.
    #[arg(long)]
    hosts: PathBuf,
    #[arg(long)]
    identity: Option<PathBuf>,
    #[arg(long)]
    known_hosts: PathBuf,
    #[arg(long, default_value = "root")]
    user: String,
    /// Run the command this many times in sequence on the first node instead of once everywhere.
    #[arg(long)]
    repeat: Option<usize>,
    /// The remote command.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let text = match std::fs::read_to_string(&args.hosts) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("cannot read {}: {error}", args.hosts.display());
            return ExitCode::from(2);
        }
    };
    let endpoints: Vec<Endpoint> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some(Endpoint {
                name: fields.next()?.to_string(),
                host: fields.next()?.to_string(),
                port: fields.next()?.parse().ok()?,
                user: args.user.clone(),
                identity: args.identity.clone(),
                known_hosts: args.known_hosts.clone(),
                jump: None,
            })
        })
        .collect();
    let pool = SshPool::new(SshConfig {
        connect_timeout: Duration::from_secs(30),
        accept_new_host_keys: false,
    });
    let command = args.command.join(" ");

    let mut failures = 0;
    if let Some(times) = args.repeat {
        let Some(endpoint) = endpoints.first() else {
            eprintln!("no nodes in {}", args.hosts.display());
            return ExitCode::from(2);
        };
        for _ in 0..times {
            failures += report(
                endpoint,
                pool.exec(endpoint, ExecRequest::new(&command)).await,
            );
        }
    } else {
        let results = futures::future::join_all(
            endpoints
                .iter()
                .map(|endpoint| pool.exec(endpoint, ExecRequest::new(&command))),
        )
        .await;
        for (endpoint, result) in endpoints.iter().zip(results) {
            failures += report(endpoint, result);
        }
    }
    pool.close().await;
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failures} command(s) failed");
        ExitCode::FAILURE
    }
}

fn report(
    endpoint: &Endpoint,
    result: Result<krun::ssh::ExecOutput, krun::ssh::SshError>,
) -> usize {
    match result {
        Ok(output) if output.success() => {
            println!("{}: {}", endpoint.name, output.stdout_lossy().trim_end());
            0
        }
        Ok(output) => {
            eprintln!(
                "{}: exit {:?}: {}",
                endpoint.name,
                output.exit_code,
                output.stderr_lossy().trim_end()
            );
            1
        }
        Err(error) => {
            eprintln!("{error}");
            1
        }
    }
}
