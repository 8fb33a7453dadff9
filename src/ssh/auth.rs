//! Logging in: an explicit identity file, or the ssh agent and then the default key files.
//!
//! Every attempt is written down, because "permission denied" alone is useless at 2 a.m.: the
//! error lists the user and each key that was offered or skipped, and why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::handler::ClientHandler;
use super::known_hosts::fingerprint;
use super::{Endpoint, SshError};

type Agent = AgentClient<tokio::net::UnixStream>;

/// Logs `endpoint.user` in on an established handshake.
pub(crate) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    endpoint: &Endpoint,
    agent_socket: Option<&Path>,
) -> Result<(), SshError> {
    let mut login = Login {
        handle,
        endpoint,
        agent_socket,
        tried: Vec::new(),
        rsa_hash: None,
        offered: Vec::new(),
    };
    let logged_in = match &endpoint.identity {
        Some(path) => login.with_identity_file(path).await?,
        None => login.with_defaults().await?,
    };
    if logged_in {
        return Ok(());
    }
    let Login { tried, offered, .. } = login;
    if offered.is_empty() {
        return Err(SshError::NoIdentity {
            node: endpoint.name.clone(),
            user: endpoint.user.clone(),
            addr: endpoint.address(),
            tried,
        });
    }
    Err(SshError::AuthFailed {
        node: endpoint.name.clone(),
        user: endpoint.user.clone(),
        addr: endpoint.address(),
        tried,
    })
}

struct Login<'a> {
    handle: &'a mut Handle<ClientHandler>,
    endpoint: &'a Endpoint,
    agent_socket: Option<&'a Path>,
    /// Human-readable record of every candidate, for the error.
    tried: Vec<String>,
    /// Negotiated once, on the first RSA key.
    rsa_hash: Option<Option<HashAlg>>,
    /// Public keys already offered to the server, so the agent and a file never offer one twice.
    offered: Vec<PublicKey>,
}

enum KeyFile {
    Plain(Box<PrivateKey>),
    Encrypted(PublicKey),
}

impl Login<'_> {
    /// `identity` from the inventory: only that key, directly or through the agent when it is
    /// encrypted (OpenSSH's IdentitiesOnly; other keys would only burn MaxAuthTries).
    async fn with_identity_file(&mut self, path: &Path) -> Result<bool, SshError> {
        match self.read_key_file(path)? {
            KeyFile::Plain(key) => self.try_key(*key, path).await,
            KeyFile::Encrypted(public) => {
                let Some(mut agent) = self.connect_agent().await else {
                    return Err(self.encrypted(path, false));
                };
                let identities = agent.request_identities().await.unwrap_or_default();
                let Some(identity) = identities
                    .into_iter()
                    .find(|id| id.public_key().key_data() == public.key_data())
                else {
                    return Err(self.encrypted(path, true));
                };
                self.try_agent_identity(&mut agent, identity).await
            }
        }
    }

    /// No identity configured: every agent key, then `~/.ssh/id_{ed25519,ecdsa,rsa}`.
    async fn with_defaults(&mut self) -> Result<bool, SshError> {
        if let Some(mut agent) = self.connect_agent().await {
            match agent.request_identities().await {
                Ok(identities) => {
                    for identity in identities {
                        if matches!(identity, AgentIdentity::Certificate { .. }) {
                            continue;
                        }
                        if self.try_agent_identity(&mut agent, identity).await? {
                            return Ok(true);
                        }
                    }
                }
                Err(error) => self
                    .tried
                    .push(format!("ssh agent (cannot list keys: {error})")),
            }
        }
        for path in default_key_files() {
            if !path.exists() {
                continue;
            }
            match self.read_key_file(&path) {
                Ok(KeyFile::Plain(key)) => {
                    if self.try_key(*key, &path).await? {
                        return Ok(true);
                    }
                }
                Ok(KeyFile::Encrypted(_)) => self.tried.push(format!(
                    "key file {} (encrypted and not in the agent; skipped)",
                    path.display()
                )),
                Err(error) => self
                    .tried
                    .push(format!("key file {} ({error})", path.display())),
            }
        }
        Ok(false)
    }

    async fn try_key(&mut self, key: PrivateKey, path: &Path) -> Result<bool, SshError> {
        let public = key.public_key().clone();
        let label = format!("key file {} ({})", path.display(), describe(&public));
        if self
            .offered
            .iter()
            .any(|k| k.key_data() == public.key_data())
        {
            return Ok(false);
        }
        let hash = self.hash_for(&public).await?;
        self.offered.push(public);
        let result = self
            .handle
            .authenticate_publickey(
                self.endpoint.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await;
        self.record(label, result.map_err(|e| e.to_string()))
    }

    async fn try_agent_identity(
        &mut self,
        agent: &mut Agent,
        identity: AgentIdentity,
    ) -> Result<bool, SshError> {
        let public = identity.public_key().into_owned();
        let label = format!("agent key {}", describe(&public));
        if self
            .offered
            .iter()
            .any(|k| k.key_data() == public.key_data())
        {
            return Ok(false);
        }
        let hash = self.hash_for(&public).await?;
        self.offered.push(public.clone());
        let result = self
            .handle
            .authenticate_publickey_with(self.endpoint.user.clone(), public, hash, agent)
            .await;
        self.record(
            label,
            result.map_err(|e| format!("agent could not sign: {e}")),
        )
    }

    fn record(
        &mut self,
        label: String,
        result: Result<AuthResult, String>,
    ) -> Result<bool, SshError> {
        match result {
            Ok(AuthResult::Success) => Ok(true),
            Ok(AuthResult::Failure { .. }) => {
                self.tried.push(format!("{label}: refused"));
                Ok(false)
            }
            Err(error) => {
                self.tried.push(format!("{label}: {error}"));
                Ok(false)
            }
        }
    }

    /// RSA keys must sign with rsa-sha2-256/512: OpenSSH 8.8+ refuses SHA-1 `ssh-rsa` signatures.
    async fn hash_for(&mut self, key: &PublicKey) -> Result<Option<HashAlg>, SshError> {
        if !key.algorithm().is_rsa() {
            return Ok(None);
        }
        if let Some(hash) = self.rsa_hash {
            return Ok(hash);
        }
        let hash = self
            .handle
            .best_supported_rsa_hash()
            .await
            .map_err(|source| SshError::Handshake {
                node: self.endpoint.name.clone(),
                addr: self.endpoint.address(),
                source: Box::new(source),
            })?
            .flatten();
        self.rsa_hash = Some(hash);
        Ok(hash)
    }

    fn read_key_file(&self, path: &Path) -> Result<KeyFile, SshError> {
        let identity_error = |reason: String| SshError::Identity {
            node: self.endpoint.name.clone(),
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| identity_error(e.to_string()))?;
        if let Ok(key) = PrivateKey::from_openssh(&text) {
            return Ok(if key.is_encrypted() {
                KeyFile::Encrypted(key.public_key().clone())
            } else {
                KeyFile::Plain(Box::new(key))
            });
        }
        // Older PEM and PKCS#8 files.
        match russh::keys::decode_secret_key(&text, None) {
            Ok(key) => Ok(KeyFile::Plain(Box::new(key))),
            Err(russh::keys::Error::KeyIsEncrypted) => Err(identity_error(
                "it is an encrypted PEM key; convert it with `ssh-keygen -p -f FILE` \
                 (OpenSSH format) or load it into the ssh agent"
                    .to_string(),
            )),
            Err(error) => Err(identity_error(format!(
                "not a private key krun can read: {error}"
            ))),
        }
    }

    /// The agent, if one is configured and answers; an unreachable one is noted, not fatal.
    async fn connect_agent(&mut self) -> Option<Agent> {
        let socket = self.agent_socket?;
        match AgentClient::connect_uds(socket).await {
            Ok(agent) => Some(agent),
            Err(error) => {
                self.tried.push(format!(
                    "ssh agent at {} (not reachable: {error})",
                    socket.display()
                ));
                None
            }
        }
    }

    fn encrypted(&self, path: &Path, agent_reachable: bool) -> SshError {
        SshError::EncryptedKey {
            node: self.endpoint.name.clone(),
            path: path.to_path_buf(),
            agent_reachable,
        }
    }
}

fn default_key_files() -> Vec<PathBuf> {
    let Some(home) = std::env::home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .collect()
}

fn describe(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm().as_str(), fingerprint(key))
}
