//! ssh to nodes: one reused connection per node, verified host keys, keys and agent, jump hosts.
//! (Interface placeholder; the implementation lands with the ssh transport.)

use std::path::PathBuf;
use std::time::Duration;

pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub jump: Option<Box<Endpoint>>,
}

pub struct SshConfig {
    pub connect_timeout: Duration,
    pub accept_new_host_keys: bool,
}

#[derive(Clone)]
pub struct SshPool;

pub enum OutputStream {
    Stdout,
    Stderr,
}

pub struct ExecRequest<'a> {
    pub command: &'a str,
    pub stdin: Option<&'a [u8]>,
    pub timeout: Option<Duration>,
    pub cancel: tokio_util::sync::CancellationToken,
    pub on_output: &'a (dyn Fn(OutputStream, &str) + Send + Sync),
}

pub struct ExecOutput {
    pub exit_code: Option<u32>,
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("ssh to {node} is not implemented yet")]
    Unimplemented { node: String },
}

impl SshPool {
    pub fn new(_config: SshConfig) -> Self {
        Self
    }

    pub async fn exec(
        &self,
        endpoint: &Endpoint,
        _request: ExecRequest<'_>,
    ) -> Result<ExecOutput, SshError> {
        Err(SshError::Unimplemented {
            node: endpoint.name.clone(),
        })
    }

    pub async fn close(&self) {}
}
