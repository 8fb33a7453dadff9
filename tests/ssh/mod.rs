//! The ssh transport against real OpenSSH servers (see `tests/support`).

mod auth;
mod exec;
mod failures;
mod host_keys;
mod jump;
mod shims;

use std::sync::Mutex;
use std::time::Duration;

use krun::ssh::{
    Endpoint, ExecOutput, ExecRequest, HostKeyError, OutputStream, SshConfig, SshError, SshPool,
};

/// A pool with no agent, whatever the environment says.
fn pool() -> SshPool {
    pool_with(false)
}

fn pool_with(accept_new_host_keys: bool) -> SshPool {
    SshPool::with_agent(
        SshConfig {
            connect_timeout: Duration::from_secs(10),
            accept_new_host_keys,
        },
        None,
    )
}

/// Runs `command`, panicking with the error when it cannot run.
async fn run(pool: &SshPool, endpoint: &Endpoint, command: &str) -> ExecOutput {
    try_run(pool, endpoint, command)
        .await
        .unwrap_or_else(|e| panic!("`{command}` on {}: {e}", endpoint.name))
}

async fn try_run(
    pool: &SshPool,
    endpoint: &Endpoint,
    command: &str,
) -> Result<ExecOutput, SshError> {
    pool.exec(endpoint, ExecRequest::new(command)).await
}

/// Runs `command` and returns its trimmed stdout, asserting exit code 0.
async fn stdout_of(pool: &SshPool, endpoint: &Endpoint, command: &str) -> String {
    let output = run(pool, endpoint, command).await;
    assert_eq!(
        output.exit_code,
        Some(0),
        "`{command}` on {} failed: {}",
        endpoint.name,
        output.stderr_lossy()
    );
    output.stdout_lossy().trim().to_string()
}

/// The host key refusal inside `error`; panics when it is something else.
fn host_key_refusal(error: &SshError) -> &HostKeyError {
    match error {
        SshError::HostKey(refusal) => refusal,
        other => panic!("expected a host key refusal, got: {other}"),
    }
}

/// Collects live output lines.
#[derive(Default)]
struct Lines(Mutex<Vec<(OutputStream, String)>>);

impl Lines {
    fn sink(&self) -> impl Fn(OutputStream, &str) + Send + Sync + '_ {
        |stream, line| self.0.lock().unwrap().push((stream, line.to_string()))
    }

    fn take(&self) -> Vec<(OutputStream, String)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// Processes on this machine whose command line is exactly `cmdline` (nodes share the kernel).
fn processes_running(cmdline: &str) -> usize {
    let wanted: Vec<u8> = cmdline
        .split(' ')
        .flat_map(|a| a.bytes().chain([0]))
        .collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
        .count()
}

/// Waits (bounded) until no process runs `cmdline`; returns whether that happened.
async fn gone(cmdline: &str) -> bool {
    for _ in 0..100 {
        if processes_running(cmdline) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
