//! ssh to nodes: one reused connection per node, verified host keys, keys and agent, jump hosts.
//!
//! A playbook step is usually one short command, and a run has hundreds of them. Paying a full
//! handshake for each one is what makes per-step ssh tools slow, so [`SshPool`] keeps one
//! authenticated connection per node for the whole run and opens a channel per command.
//!
//! Safety lives here rather than in callers: host keys are always checked against known_hosts
//! (an unknown key is refused unless the operator opted in, a changed key is refused always),
//! and a command that cannot finish cleanly (timeout, Ctrl-C, dead connection) comes back as a
//! typed [`SshError`] naming the node and the command, never as a hang.

mod auth;
mod error;
mod exec;
mod handler;
mod known_hosts;
mod pool;

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::{HostKeyError, SshError, short as short_command};
pub use pool::SshPool;

/// How to reach one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The node's name from the inventory; every error names it.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key to log in with. `None`: the ssh agent (`SSH_AUTH_SOCK`), then
    /// `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
    pub identity: Option<PathBuf>,
    pub known_hosts: PathBuf,
    /// Reach this node through a tunnel (direct-tcpip) over the jump node's own connection.
    pub jump: Option<Box<Endpoint>>,
}

impl Endpoint {
    /// `host:port` as the operator would type it; `[host]:port` for IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Settings shared by every connection of a run.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Limit for TCP connect, handshake and login together, per hop.
    pub connect_timeout: Duration,
    /// Record host keys of hosts missing from known_hosts, like OpenSSH's
    /// `StrictHostKeyChecking=accept-new`. A changed key is refused regardless.
    pub accept_new_host_keys: bool,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            accept_new_host_keys: false,
        }
    }
}

/// One command to run on a node.
pub struct ExecRequest<'a> {
    /// The remote command line, already shell-quoted by the caller (sudo included).
    pub command: &'a str,
    /// Written to the command's stdin, followed by EOF. Without it the command sees EOF at once.
    pub stdin: Option<&'a [u8]>,
    /// Give up (and close the channel) when the command runs longer than this.
    pub timeout: Option<Duration>,
    /// Cancelling closes the channel and returns [`SshError::Cancelled`].
    pub cancel: CancellationToken,
    /// Called for every complete output line (without its newline), for live logs.
    pub on_output: &'a (dyn Fn(OutputStream, &str) + Send + Sync),
}

impl<'a> ExecRequest<'a> {
    /// A request with no stdin, no timeout, a fresh cancellation token and no live output.
    pub fn new(command: &'a str) -> Self {
        Self {
            command,
            stdin: None,
            timeout: None,
            cancel: CancellationToken::new(),
            on_output: &|_, _| {},
        }
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code; `None` when the command was killed by a signal.
    pub exit_code: Option<u32>,
    /// The signal that killed the command (`TERM`, `KILL`, ...), if any.
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// True when the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}
