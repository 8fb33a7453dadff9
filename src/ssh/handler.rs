//! Host-key verification during the ssh handshake: known_hosts as OpenSSH reads it, and
//! `accept-new` that records an unknown key (never a changed one).

use russh::client;
use russh::keys::PublicKeyOrCertificate;

use super::known_hosts::{self, KnownHosts, Verdict};
use super::{Endpoint, HostKeyError, SshError};

/// Checks the server's host key during the handshake.
pub(crate) struct ClientHandler {
    pub(crate) endpoint: Endpoint,
    pub(crate) accept_new: bool,
    pub(crate) known: KnownHosts,
}

#[derive(Debug)]
pub(crate) enum HandlerError {
    Ssh(russh::Error),
    Refused(Box<SshError>),
}

impl From<russh::Error> for HandlerError {
    fn from(error: russh::Error) -> Self {
        Self::Ssh(error)
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = server_key.public_key();
        let endpoint = &self.endpoint;
        let (host, port) = (endpoint.host.as_str(), endpoint.port);
        let refuse = |error: SshError| Err(HandlerError::Refused(Box::new(error)));
        let refuse_key = |error: HostKeyError| refuse(error.into());
        match self.known.check(host, port, &key) {
            Verdict::Known => Ok(true),
            Verdict::Unknown { .. } if self.accept_new => {
                if let Err(source) = known_hosts::append(&endpoint.known_hosts, host, port, &key) {
                    return refuse(SshError::KnownHostsWrite {
                        node: endpoint.name.clone(),
                        addr: endpoint.address(),
                        path: endpoint.known_hosts.clone(),
                        source,
                    });
                }
                tracing::warn!(
                    node = %endpoint.name,
                    "permanently added {} ({} {}) to {}",
                    known_hosts::host_pattern(host, port),
                    known_hosts::key_type(&key),
                    known_hosts::fingerprint(&key),
                    endpoint.known_hosts.display()
                );
                Ok(true)
            }
            Verdict::Unknown { other_types } => refuse_key(HostKeyError::Unknown {
                node: endpoint.name.clone(),
                addr: endpoint.address(),
                key_type: known_hosts::key_type(&key),
                fingerprint: known_hosts::fingerprint(&key),
                known_hosts: endpoint.known_hosts.clone(),
                other_types,
            }),
            Verdict::Changed {
                line,
                old_fingerprint,
                entry,
            } => refuse_key(HostKeyError::Changed {
                node: endpoint.name.clone(),
                addr: endpoint.address(),
                key_type: known_hosts::key_type(&key),
                old_fingerprint,
                new_fingerprint: known_hosts::fingerprint(&key),
                known_hosts: endpoint.known_hosts.clone(),
                line,
                entry,
            }),
            Verdict::Revoked { line } => refuse_key(HostKeyError::Revoked {
                node: endpoint.name.clone(),
                addr: endpoint.address(),
                key_type: known_hosts::key_type(&key),
                fingerprint: known_hosts::fingerprint(&key),
                known_hosts: endpoint.known_hosts.clone(),
                line,
            }),
        }
    }
}
