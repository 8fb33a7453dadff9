//! Running commands on nodes: the one place that turns a node and a command into ssh.
//!
//! Every command records its process group on the node (`/tmp/.krun-<token>.pgid`, removed
//! when it ends), because sshd does not deliver signals to root sessions: when a command is
//! cancelled (Ctrl-C) or runs out of time, krun kills that process group over a second channel
//! (TERM, then KILL), and the error says whether the command is gone or may still run there.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::Outcome;
use crate::inventory::{Inventory, NodeSpec};
use crate::ssh::{Endpoint, ExecRequest, OutputStream, SshPool};

/// Why a command could not be run (as opposed to running and failing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub node: String,
    pub message: String,
    /// The node could not be reached at all (connect, handshake, host key, auth): no command ran.
    pub unreachable: bool,
    /// The command was stopped because the run was interrupted.
    pub cancelled: bool,
}

impl TransportError {
    pub fn is_unreachable(&self) -> bool {
        self.unreachable
    }
}

/// Runs commands on nodes.
pub trait Transport: Send + Sync {
    #[allow(clippy::too_many_arguments)]
    fn exec<'a>(
        &'a self,
        node: &'a NodeSpec,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        timeout: Option<Duration>,
        cancel: &'a CancellationToken,
        on_output: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Outcome, TransportError>>;
}

/// The real transport: one pooled ssh connection per node.
pub struct SshTransport {
    pool: SshPool,
    inventory: Arc<Inventory>,
}

impl SshTransport {
    pub fn new(pool: SshPool, inventory: Arc<Inventory>) -> Self {
        Self { pool, inventory }
    }

    pub fn pool(&self) -> &SshPool {
        &self.pool
    }

    fn endpoint(&self, node: &NodeSpec) -> Endpoint {
        endpoint(&self.inventory, node)
    }
}

/// How to reach a node over ssh, jump hosts included.
pub fn endpoint(inventory: &Inventory, node: &NodeSpec) -> Endpoint {
    let jump = node
        .proxy_jump
        .as_deref()
        .and_then(|name| inventory.nodes.get(name))
        .map(|jump| Box::new(endpoint(inventory, jump)));
    Endpoint {
        name: node.name.clone(),
        host: node.host.clone(),
        port: node.port,
        user: node.user.clone(),
        identity: node.identity.clone(),
        known_hosts: node.known_hosts.clone(),
        jump,
    }
}

/// Wraps a command in `sudo -n` when the node asks for it and the user is not root.
pub fn with_privileges(node: &NodeSpec, command: &str) -> String {
    if node.sudo && node.user != "root" {
        format!("sudo -n -- sh -c {}", crate::quote::quote(command))
    } else {
        command.to_owned()
    }
}

impl Transport for SshTransport {
    fn exec<'a>(
        &'a self,
        node: &'a NodeSpec,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        timeout: Option<Duration>,
        cancel: &'a CancellationToken,
        on_output: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<Outcome, TransportError>> {
        Box::pin(async move {
            let endpoint = self.endpoint(node);
            let marker = format!("/tmp/.krun-{}.pgid", token());
            let wrapped = format!(
                "echo $$ >{marker}; trap 'rm -f {marker}' EXIT; {}",
                with_privileges(node, command)
            );
            let forward = |_stream: OutputStream, line: &str| on_output(line);
            let request = ExecRequest {
                command: &wrapped,
                stdin,
                timeout,
                cancel: cancel.clone(),
                on_output: &forward,
            };
            let output = match self.pool.exec(&endpoint, request).await {
                Ok(output) => output,
                Err(e) if e.is_cancelled() || e.is_timeout() => {
                    let what = if e.is_cancelled() {
                        "was cancelled".to_owned()
                    } else {
                        format!(
                            "did not finish within {} (command timeout)",
                            humantime::format_duration(timeout.unwrap_or_default())
                        )
                    };
                    let note = self.stop(node, &endpoint, &marker).await;
                    return Err(TransportError {
                        node: node.name.clone(),
                        message: format!(
                            "{}: `{}` {what}; {note}",
                            node.name,
                            crate::ssh::short_command(command)
                        ),
                        unreachable: false,
                        cancelled: e.is_cancelled(),
                    });
                }
                Err(e) => return Err(ssh_error(node, e)),
            };
            let exit_code = match (output.exit_code, &output.signal) {
                (Some(code), _) => code as i32,
                (None, _) => 255,
            };
            let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if let Some(signal) = &output.signal {
                stderr.push_str(&format!("\n(killed by signal {signal})"));
            }
            Ok(Outcome {
                detail: None,
                data: serde_json::Value::Null,
                exit_code,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr,
                observed: true,
            })
        })
    }
}

impl SshTransport {
    /// Kills the process group a cancelled or timed-out command left on the node; says what
    /// became of it.
    async fn stop(&self, node: &NodeSpec, endpoint: &Endpoint, marker: &str) -> String {
        // TERM to the group, up to 2 s for it to go, then KILL; exit 3 when nothing was left.
        let kill = format!(
            "pg=$(cat {marker} 2>/dev/null) || exit 3; rm -f {marker}; \
             kill -TERM -- -$pg 2>/dev/null || exit 3; \
             for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- -$pg 2>/dev/null || exit 0; sleep 0.2; done; \
             kill -KILL -- -$pg 2>/dev/null; exit 0"
        );
        let kill = with_privileges(node, &kill);
        let request = ExecRequest {
            timeout: Some(Duration::from_secs(15)),
            ..ExecRequest::new(&kill)
        };
        match self.pool.exec(endpoint, request).await {
            Ok(output) if output.exit_code == Some(0) => {
                "krun stopped it on the node (TERM, then KILL, to its process group)".to_owned()
            }
            Ok(output) if output.exit_code == Some(3) => {
                "none of its processes was left on the node".to_owned()
            }
            Ok(output) => format!(
                "krun could not stop it on the node ({}): it may still be running there",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(e) => format!(
                "krun could not reach the node to stop it ({e}): it may still be running there"
            ),
        }
    }
}

/// A name for one command's process-group record.
fn token() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

fn ssh_error(node: &NodeSpec, error: crate::ssh::SshError) -> TransportError {
    TransportError {
        node: node.name.clone(),
        message: error.to_string(),
        // A refused host key is not "unreachable": a dry-run must not quietly plan past it.
        unreachable: error.is_unreachable() && !error.host_key_refused(),
        cancelled: error.is_cancelled(),
    }
}
