//! Running commands on nodes: the one place that turns a node and a command into ssh.

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
            let command = with_privileges(node, command);
            let forward = |_stream: OutputStream, line: &str| on_output(line);
            let request = ExecRequest {
                command: &command,
                stdin,
                timeout,
                cancel: cancel.clone(),
                on_output: &forward,
            };
            let output = self
                .pool
                .exec(&endpoint, request)
                .await
                .map_err(|e| ssh_error(node, e))?;
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

fn ssh_error(node: &NodeSpec, error: crate::ssh::SshError) -> TransportError {
    TransportError {
        node: node.name.clone(),
        message: error.to_string(),
        // A refused host key is not "unreachable": a dry-run must not quietly plan past it.
        unreachable: error.is_unreachable() && !error.host_key_refused(),
        cancelled: error.is_cancelled(),
    }
}
