//! The connection pool: one authenticated connection per node, shared by every command.
//!
//! Connecting is the expensive part of ssh (key exchange and login cost sshd far more than a
//! channel), so a connection is made once per node and reused. OpenSSH's sshd serves at most
//! `MaxSessions` (default 10) channels per connection, so each connection hands out at most
//! [`SESSIONS_PER_CONNECTION`] at a time and further commands wait for a free one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use russh::client::{self, Handle};
use russh::{Channel, ChannelOpenFailure, Disconnect, Preferred};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::handler::{ClientHandler, HandlerError};
use super::known_hosts::KnownHosts;
use super::{Endpoint, ExecOutput, ExecRequest, SshConfig, SshError, auth, exec};

/// Below OpenSSH's default `MaxSessions` of 10, leaving room for a stray session.
pub(crate) const SESSIONS_PER_CONNECTION: usize = 8;

/// How often, and after what growing pause, a session refused while none of ours is open is
/// asked for again (about 2 s in all): time for sshd to free sessions that just closed.
const LONE_REFUSAL_RETRIES: u32 = 8;
const LONE_REFUSAL_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Connections to nodes, reused for the whole run. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct SshPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    config: SshConfig,
    agent_socket: Option<PathBuf>,
    slots: Mutex<HashMap<String, Slot>>,
}

/// A node's connection, if made; the async lock makes concurrent first commands share one.
type Slot = Arc<tokio::sync::Mutex<SlotState>>;

#[derive(Default)]
struct SlotState {
    connection: Option<Arc<Connection>>,
    /// A connection to the node worked during this run: a failure to connect again is first
    /// taken for sshd restarting (see [`RECONNECT_PAUSE`]).
    reached: bool,
}

/// The first pause before connecting again to a node that was reached before and now refuses
/// (sshd restarting, the node rebooting); it doubles up to [`RECONNECT_MAX_PAUSE`], for as long
/// as the connect timeout. Nothing ran on such a failed connection, so trying again is safe.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
const RECONNECT_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct Connection {
    handle: Handle<ClientHandler>,
    sessions: Arc<Semaphore>,
    /// Permits the semaphore started with, minus those retired after the server said no.
    capacity: AtomicUsize,
    /// Keeps the jump host's connection alive as long as the tunnel through it is used.
    _via: Option<Arc<Connection>>,
}

impl SshPool {
    /// A pool that uses the ssh agent named by `SSH_AUTH_SOCK`, if any.
    pub fn new(config: SshConfig) -> Self {
        let agent = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from);
        Self::with_agent(config, agent)
    }

    /// A pool with an explicit agent socket (`None`: no agent), independent of the environment.
    pub fn with_agent(config: SshConfig, agent_socket: Option<PathBuf>) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                config,
                agent_socket,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &SshConfig {
        &self.inner.config
    }

    /// Runs one command on the node, connecting first if this is the node's first command.
    ///
    /// A cached connection found dead before the command starts is replaced once; a connection
    /// that dies while the command runs is reported as [`SshError::ConnectionLost`], never retried,
    /// because the command may already have had its effect.
    pub async fn exec(
        &self,
        endpoint: &Endpoint,
        request: ExecRequest<'_>,
    ) -> Result<ExecOutput, SshError> {
        let cancelled = || SshError::Cancelled {
            node: endpoint.name.clone(),
            command: request.command.to_string(),
            root_login: endpoint.user == "root",
        };
        if request.cancel.is_cancelled() {
            return Err(cancelled());
        }
        // Ctrl-C must also work while a connection is being made or a session slot awaited.
        let opened = tokio::select! {
            biased;
            () = request.cancel.cancelled() => return Err(cancelled()),
            opened = self.open_channel(endpoint, &request) => opened?,
        };
        let (permit, channel) = opened;
        exec::run(channel, permit, endpoint, request).await
    }

    async fn open_channel(
        &self,
        endpoint: &Endpoint,
        request: &ExecRequest<'_>,
    ) -> Result<(OwnedSemaphorePermit, Channel<client::Msg>), SshError> {
        let connection = self.connection(endpoint).await?;
        match connection.open_session().await {
            Ok(opened) => Ok(opened),
            Err(error) if connection.is_dead(&error) => {
                tracing::debug!(node = %endpoint.name, %error, "cached connection is dead, reconnecting");
                self.forget(endpoint, &connection).await;
                let connection = self.connection(endpoint).await?;
                connection
                    .open_session()
                    .await
                    .map_err(|source| channel_error(endpoint, request, source))
            }
            Err(source) => Err(channel_error(endpoint, request, source)),
        }
    }

    /// Connects to the node now (or reuses the connection), without running anything.
    /// Useful to fail fast on host keys and logins before a run starts.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<(), SshError> {
        self.connection(endpoint).await.map(drop)
    }

    /// A TCP stream to `host:port` as seen from the node, carried over the node's pooled
    /// connection (direct-tcpip): how krun reaches services that listen only on a node's
    /// addresses (etcd on the masters).
    pub async fn tunnel(
        &self,
        endpoint: &Endpoint,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<russh::client::Msg>, SshError> {
        let connection = self.connection(endpoint).await?;
        let channel = connection
            .handle
            .channel_open_direct_tcpip(host.to_owned(), u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|source| SshError::Tunnel {
                node: endpoint.name.clone(),
                jump: endpoint.name.clone(),
                addr: format!("{host}:{port}"),
                source: Box::new(source),
            })?;
        Ok(channel.into_stream())
    }

    /// Politely disconnects every node; later commands connect again.
    pub async fn close(&self) {
        let slots: Vec<_> = {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.drain().map(|(_, slot)| slot).collect()
        };
        for slot in slots {
            if let Some(connection) = slot.lock().await.connection.take() {
                let _ = connection
                    .handle
                    .disconnect(Disconnect::ByApplication, "krun run finished", "en")
                    .await;
            }
        }
    }

    fn slot(&self, endpoint: &Endpoint) -> Slot {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(slot_key(endpoint)).or_default().clone()
    }

    /// The node's live connection, made now if there is none. Concurrent callers for the same
    /// node wait on the slot, so a node never gets two connections.
    fn connection<'a>(
        &'a self,
        endpoint: &'a Endpoint,
    ) -> BoxFuture<'a, Result<Arc<Connection>, SshError>> {
        Box::pin(async move {
            let slot = self.slot(endpoint);
            let mut cached = slot.lock().await;
            if let Some(connection) = cached.connection.as_ref().filter(|c| !c.handle.is_closed()) {
                return Ok(connection.clone());
            }
            let connection = if cached.reached {
                self.reopen(endpoint).await?
            } else {
                self.open(endpoint).await?
            };
            let connection = Arc::new(connection);
            cached.connection = Some(connection.clone());
            cached.reached = true;
            Ok(connection)
        })
    }

    /// Connects again to a node whose connection was lost: while it refuses or drops the
    /// connection before login (sshd restarting), asks again until the connect timeout.
    async fn reopen(&self, endpoint: &Endpoint) -> Result<Connection, SshError> {
        let deadline = std::time::Instant::now() + self.inner.config.connect_timeout;
        let mut pause = RECONNECT_PAUSE;
        loop {
            match self.open(endpoint).await {
                Ok(connection) => return Ok(connection),
                Err(error @ (SshError::Connect { .. } | SshError::Handshake { .. }))
                    if std::time::Instant::now() + pause < deadline =>
                {
                    tracing::info!(
                        "{error} (its connection was lost; sshd may be restarting): trying again \
                         in {} ms",
                        pause.as_millis()
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RECONNECT_MAX_PAUSE);
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn forget(&self, endpoint: &Endpoint, dead: &Arc<Connection>) {
        let slot = self.slot(endpoint);
        let mut cached = slot.lock().await;
        if cached
            .connection
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, dead))
        {
            cached.connection = None;
        }
    }

    async fn open(&self, endpoint: &Endpoint) -> Result<Connection, SshError> {
        let timeout = self.inner.config.connect_timeout;
        let via = match &endpoint.jump {
            Some(jump) => {
                Some(
                    self.connection(jump)
                        .await
                        .map_err(|source| SshError::JumpHost {
                            node: endpoint.name.clone(),
                            source: Box::new(source),
                        })?,
                )
            }
            None => None,
        };
        let attempt = self.handshake_and_login(endpoint, via.as_deref());
        let handle = tokio::time::timeout(timeout, attempt).await.map_err(|_| {
            SshError::ConnectTimeout {
                node: endpoint.name.clone(),
                addr: endpoint.address(),
                timeout,
            }
        })??;
        Ok(Connection {
            handle,
            sessions: Arc::new(Semaphore::new(SESSIONS_PER_CONNECTION)),
            capacity: AtomicUsize::new(SESSIONS_PER_CONNECTION),
            _via: via,
        })
    }

    async fn handshake_and_login(
        &self,
        endpoint: &Endpoint,
        via: Option<&Connection>,
    ) -> Result<Handle<ClientHandler>, SshError> {
        let known =
            KnownHosts::load(&endpoint.known_hosts).map_err(|source| SshError::KnownHostsRead {
                node: endpoint.name.clone(),
                path: endpoint.known_hosts.clone(),
                source,
            })?;
        let config = Arc::new(client_config(&known, endpoint));
        let handler = ClientHandler {
            endpoint: endpoint.clone(),
            accept_new: self.inner.config.accept_new_host_keys,
            known,
        };
        let handshake = match via {
            None => {
                let stream =
                    tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                        .await
                        .map_err(|source| SshError::Connect {
                            node: endpoint.name.clone(),
                            addr: endpoint.address(),
                            source,
                        })?;
                // Commands are small request/response exchanges; Nagle would only add latency.
                let _ = stream.set_nodelay(true);
                client::connect_stream(config, stream, handler).await
            }
            Some(jump) => {
                let tunnel = jump
                    .handle
                    .channel_open_direct_tcpip(
                        endpoint.host.clone(),
                        u32::from(endpoint.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|source| SshError::Tunnel {
                        node: endpoint.name.clone(),
                        jump: endpoint
                            .jump
                            .as_ref()
                            .map(|j| j.name.clone())
                            .unwrap_or_default(),
                        addr: endpoint.address(),
                        source: Box::new(source),
                    })?;
                client::connect_stream(config, tunnel.into_stream(), handler).await
            }
        };
        let mut handle = handshake.map_err(|error| match error {
            HandlerError::Refused(refusal) => *refusal,
            HandlerError::Ssh(source) => SshError::Handshake {
                node: endpoint.name.clone(),
                addr: endpoint.address(),
                source: Box::new(source),
            },
        })?;
        auth::authenticate(&mut handle, endpoint, self.inner.agent_socket.as_deref()).await?;
        Ok(handle)
    }
}

impl Connection {
    /// A session channel and the slot it occupies. A server configured with fewer sessions than
    /// we assume (hardened nodes often set `MaxSessions 4`) refuses the extra channel; then this
    /// connection's limit shrinks by one and the open waits for a running command to finish.
    ///
    /// A refusal while nothing else of ours is open is usually sshd still tearing down a session
    /// that just closed (it frees the session after it has read the next request), so the open is
    /// retried a few times with a short pause before the refusal is reported.
    async fn open_session(
        &self,
    ) -> Result<(OwnedSemaphorePermit, Channel<client::Msg>), russh::Error> {
        let mut lone_refusals = 0u32;
        loop {
            let permit = self
                .sessions
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| russh::Error::Disconnect)?;
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok((permit, channel)),
                // OpenSSH answers "connect failed" when MaxSessions is reached; other servers
                // say "prohibited" or "resource shortage".
                Err(russh::Error::ChannelOpenFailure(
                    ChannelOpenFailure::ConnectFailed
                    | ChannelOpenFailure::AdministrativelyProhibited
                    | ChannelOpenFailure::ResourceShortage,
                )) if self.others_in_flight() => {
                    self.capacity.fetch_sub(1, Ordering::SeqCst);
                    permit.forget();
                    tracing::debug!(
                        limit = self.capacity.load(Ordering::SeqCst),
                        "sshd refused another session; lowering this connection's limit"
                    );
                }
                Err(russh::Error::ChannelOpenFailure(
                    ChannelOpenFailure::ConnectFailed
                    | ChannelOpenFailure::AdministrativelyProhibited
                    | ChannelOpenFailure::ResourceShortage,
                )) if lone_refusals < LONE_REFUSAL_RETRIES => {
                    lone_refusals += 1;
                    drop(permit);
                    tracing::debug!(
                        attempt = lone_refusals,
                        "sshd refused a session while none of ours is open; retrying"
                    );
                    tokio::time::sleep(LONE_REFUSAL_PAUSE * lone_refusals).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Whether a channel other than the caller's is open (the caller holds one permit).
    fn others_in_flight(&self) -> bool {
        let capacity = self.capacity.load(Ordering::SeqCst);
        capacity > 1 && capacity - self.sessions.available_permits() > 1
    }

    fn is_dead(&self, error: &russh::Error) -> bool {
        self.handle.is_closed()
            || matches!(error, russh::Error::SendError | russh::Error::Disconnect)
    }
}

fn channel_error(endpoint: &Endpoint, request: &ExecRequest<'_>, source: russh::Error) -> SshError {
    SshError::Channel {
        node: endpoint.name.clone(),
        command: request.command.to_string(),
        source: Box::new(source),
    }
}

/// One connection per node and login; the route matters too (direct and tunnelled differ).
fn slot_key(endpoint: &Endpoint) -> String {
    let mut key = format!(
        "{}|{}@{}:{}|{:?}",
        endpoint.name, endpoint.user, endpoint.host, endpoint.port, endpoint.identity
    );
    if let Some(jump) = &endpoint.jump {
        key.push_str(" via ");
        key.push_str(&slot_key(jump));
    }
    key
}

fn client_config(known: &KnownHosts, endpoint: &Endpoint) -> client::Config {
    let mut preferred = Preferred::default();
    let recorded = known.recorded_algorithms(&endpoint.host, endpoint.port);
    if !recorded.is_empty() {
        let mut keys = recorded;
        for algorithm in Preferred::DEFAULT.key.iter() {
            if !keys.contains(algorithm) {
                keys.push(algorithm.clone());
            }
        }
        preferred.key = Cow::Owned(keys);
    }
    client::Config {
        preferred,
        // Notices a peer that vanished without closing (powered off, network gone) while idle.
        keepalive_interval: Some(std::time::Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        ..client::Config::default()
    }
}
