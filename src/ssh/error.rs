//! Everything that can go wrong between krun and a node's sshd, phrased for the operator.
//!
//! Every variant names the node; the ones about a command name the command too, so a failed
//! step can be reported without the caller adding context.

use std::path::PathBuf;
use std::time::Duration;

/// Why a node could not be reached or a command did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{node}: cannot connect to {addr}: {source}")]
    Connect {
        node: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{node}: no ssh session with {addr} within {}s (connect timeout; is the host up and sshd running?)",
        timeout.as_secs_f64()
    )]
    ConnectTimeout {
        node: String,
        addr: String,
        timeout: Duration,
    },

    #[error("{node}: ssh handshake with {addr} failed: {source}")]
    Handshake {
        node: String,
        addr: String,
        #[source]
        source: Box<russh::Error>,
    },

    /// The node's host key was refused: unknown, changed or revoked.
    #[error(transparent)]
    HostKey(Box<HostKeyError>),

    #[error("{node}: cannot read known_hosts file {}: {source}", path.display())]
    KnownHostsRead {
        node: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{node}: cannot record the host key of {addr} in {}: {source}", path.display())]
    KnownHostsWrite {
        node: String,
        addr: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{node}: identity {path} is encrypted and {agent}; load it with `ssh-add {path}` \
         (and export SSH_AUTH_SOCK) or use an unencrypted key",
        path = path.display(),
        agent = if *agent_reachable { "the ssh agent does not hold it" } else { "no ssh agent is reachable (SSH_AUTH_SOCK)" }
    )]
    EncryptedKey {
        node: String,
        path: PathBuf,
        agent_reachable: bool,
    },

    #[error("{node}: cannot use identity {}: {reason}", path.display())]
    Identity {
        node: String,
        path: PathBuf,
        reason: String,
    },

    #[error("{node}: {user}@{addr} refused every key krun tried: {}", tried.join("; "))]
    AuthFailed {
        node: String,
        user: String,
        addr: String,
        /// One entry per attempt or skipped candidate, e.g. `key file ~/.ssh/id_rsa (RSA SHA256:..)`.
        tried: Vec<String>,
    },

    #[error(
        "{node}: no key to log in as {user}@{addr}: {}",
        if tried.is_empty() {
            "no ssh agent (SSH_AUTH_SOCK) and none of ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa, ~/.ssh/id_rsa exist; set `identity` in the inventory".to_string()
        } else {
            tried.join("; ")
        }
    )]
    NoIdentity {
        node: String,
        user: String,
        addr: String,
        tried: Vec<String>,
    },

    #[error("{node}: cannot reach jump host: {source}")]
    JumpHost {
        node: String,
        #[source]
        source: Box<SshError>,
    },

    #[error("{node}: jump host {jump} could not open a tunnel to {addr}: {source}")]
    Tunnel {
        node: String,
        jump: String,
        addr: String,
        #[source]
        source: Box<russh::Error>,
    },

    #[error(
        "{node}: cannot open an ssh channel to run `{}`: {source}",
        short(command)
    )]
    Channel {
        node: String,
        command: String,
        #[source]
        source: Box<russh::Error>,
    },

    #[error("{node}: sshd refused to run `{}`", short(command))]
    ExecRefused { node: String, command: String },

    #[error(
        "{node}: connection lost while running `{}`; it may or may not have completed on the node",
        short(command)
    )]
    ConnectionLost { node: String, command: String },

    #[error(
        "{node}: `{}` did not finish within {}s (command timeout); {}",
        short(command),
        timeout.as_secs_f64(),
        stop_note(*root_login)
    )]
    Timeout {
        node: String,
        command: String,
        timeout: Duration,
        /// sshd ignores signal requests on root logins, so the command may live on.
        root_login: bool,
    },

    #[error("{node}: `{}` was cancelled; {}", short(command), stop_note(*root_login))]
    Cancelled {
        node: String,
        command: String,
        /// sshd ignores signal requests on root logins, so the command may live on.
        root_login: bool,
    },
}

/// Why a host key was refused. Boxed inside [`SshError::HostKey`]: the details are many and
/// errors travel by value through every `Result`.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "{node}: host key of {addr} is not in {known_hosts}{other}: {key_type} {fingerprint}. \
         Verify the fingerprint on the node (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), \
         then rerun with --accept-new-host-keys to trust it and record it",
        known_hosts = known_hosts.display(),
        other = if other_types.is_empty() {
            String::new()
        } else {
            format!(" (only its {} key is recorded)", other_types.join(", "))
        }
    )]
    Unknown {
        node: String,
        addr: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        /// Key types recorded for this host that the server did not offer.
        other_types: Vec<String>,
    },

    #[error(
        "{node}: HOST KEY CHANGED for {addr}: {known_hosts}:{line} records {key_type} \
         {old_fingerprint}, the server now presents {new_fingerprint}. Refusing to connect: \
         this is either a reinstalled node or someone intercepting the connection. If the \
         change is expected, delete line {line} (`{entry}`) and rerun with --accept-new-host-keys",
        known_hosts = known_hosts.display()
    )]
    Changed {
        node: String,
        addr: String,
        key_type: String,
        old_fingerprint: String,
        new_fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
        /// The known_hosts line that no longer matches, as written in the file.
        entry: String,
    },

    #[error(
        "{node}: host key of {addr} ({key_type} {fingerprint}) is marked @revoked in \
         {known_hosts}:{line}; refusing to connect",
        known_hosts = known_hosts.display()
    )]
    Revoked {
        node: String,
        addr: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },
}

impl HostKeyError {
    pub fn node(&self) -> &str {
        match self {
            Self::Unknown { node, .. }
            | Self::Changed { node, .. }
            | Self::Revoked { node, .. } => node,
        }
    }
}

impl From<HostKeyError> for SshError {
    fn from(error: HostKeyError) -> Self {
        Self::HostKey(Box::new(error))
    }
}

impl SshError {
    /// The node the error is about.
    pub fn node(&self) -> &str {
        match self {
            Self::Connect { node, .. }
            | Self::ConnectTimeout { node, .. }
            | Self::Handshake { node, .. }
            | Self::KnownHostsRead { node, .. }
            | Self::KnownHostsWrite { node, .. }
            | Self::EncryptedKey { node, .. }
            | Self::Identity { node, .. }
            | Self::AuthFailed { node, .. }
            | Self::NoIdentity { node, .. }
            | Self::JumpHost { node, .. }
            | Self::Tunnel { node, .. }
            | Self::Channel { node, .. }
            | Self::ExecRefused { node, .. }
            | Self::ConnectionLost { node, .. }
            | Self::Timeout { node, .. }
            | Self::Cancelled { node, .. } => node,
            Self::HostKey(refusal) => refusal.node(),
        }
    }

    /// True when krun refused the node's host key (unknown, changed or revoked), also when the
    /// refusal happened on the way through a jump host.
    pub fn host_key_refused(&self) -> bool {
        match self {
            Self::HostKey(_) => true,
            Self::JumpHost { source, .. } => source.host_key_refused(),
            _ => false,
        }
    }

    /// True when the command was stopped by its [`CancellationToken`](tokio_util::sync::CancellationToken).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }

    /// True when the command ran into its timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// True when the node could not be reached or logged into, so no command ran at all.
    /// Dry-run uses this to tell "unreachable" from "the probe failed".
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::Handshake { .. }
            | Self::HostKey(_)
            | Self::KnownHostsRead { .. }
            | Self::KnownHostsWrite { .. }
            | Self::EncryptedKey { .. }
            | Self::Identity { .. }
            | Self::AuthFailed { .. }
            | Self::NoIdentity { .. }
            | Self::JumpHost { .. }
            | Self::Tunnel { .. } => true,
            Self::Channel { .. }
            | Self::ExecRefused { .. }
            | Self::ConnectionLost { .. }
            | Self::Timeout { .. }
            | Self::Cancelled { .. } => false,
        }
    }
}

impl From<SshError> for crate::Error {
    fn from(error: SshError) -> Self {
        crate::Error::runtime(error.to_string())
    }
}

/// What stopping a running command achieved. OpenSSH only honours the `signal` channel request
/// in privilege-separated sessions, which root logins are not.
fn stop_note(root_login: bool) -> &'static str {
    if root_login {
        "krun closed its channel, but sshd does not deliver signals to root sessions, \
         so it may still be running on the node"
    } else {
        "krun sent it SIGTERM and closed its channel"
    }
}

/// Long commands (heredocs, scripts) are cut so an error stays readable on one screen.
pub fn short(command: &str) -> String {
    const MAX: usize = 160;
    let one_line = command.lines().next().unwrap_or_default();
    if one_line.len() == command.len() && command.chars().count() <= MAX {
        return command.to_string();
    }
    let cut: String = one_line.chars().take(MAX).collect();
    format!("{cut} …")
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_commands_are_kept_whole() {
        assert_eq!(short("uname -r"), "uname -r");
    }

    #[test]
    fn long_or_multiline_commands_are_cut() {
        assert_eq!(short("cat <<EOF\nsecret\nEOF"), "cat <<EOF …");
        let long = "x".repeat(500);
        assert_eq!(short(&long).chars().count(), 162);
    }
}
