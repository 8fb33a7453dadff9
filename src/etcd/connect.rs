//! Channels to etcd endpoints, and the seam for reaching them other than by direct TCP.
//!
//! etcd often listens only on the control-plane nodes' addresses, so krun may have to reach
//! it through the ssh connection it already holds to a node. Rather than a local port forward
//! (which would make TLS verify the certificate against `127.0.0.1`), the transport is a
//! [`Dialer`]: it opens a byte stream to the endpoint's own `host:port`, and TLS and gRPC run
//! over that stream unchanged, still checking the certificate against the real host name. The
//! ssh module implements a dialer with a direct-tcpip channel; the default dials TCP.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::config::{Config, TlsFiles, validate_endpoint};
use super::error::EtcdError;
use super::rpc::Rpc;

/// A byte stream to an etcd endpoint.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Stream>>> + Send>>;

/// Opens byte streams to etcd endpoints.
pub trait Dialer: Send + Sync + 'static {
    /// Connects to `host:port` (a host name, an IPv4 address, or an IPv6 address without
    /// brackets), as seen from wherever this dialer reaches the network.
    fn dial(&self, host: &str, port: u16) -> DialFuture;
}

/// Dials endpoints directly over TCP from this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn dial(&self, host: &str, port: u16) -> DialFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }
}

/// Adapts a [`Dialer`] to the connector tonic expects.
#[derive(Clone)]
struct DialService(Arc<dyn Dialer>);

impl tower_service::Service<Uri> for DialService {
    type Response = TokioIo<Box<dyn Stream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(2379);
        let dial = self.0.dial(host, port);
        Box::pin(async move { dial.await.map(TokioIo::new) })
    }
}

/// A lazily connecting gRPC client for one endpoint; nothing is dialled until the first call.
pub(crate) async fn client(
    url: &str,
    config: &Config,
    dialer: &Arc<dyn Dialer>,
) -> Result<Rpc, EtcdError> {
    validate_endpoint(url, config.tls.is_some())?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        EtcdError::Config(format!("endpoint {url:?}: {what}: {e}"))
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| bad("not a URL", &e))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true);
    if url.starts_with("https://")
        && let Some(tls) = &config.tls
    {
        let tls = tls_config(tls, config.tls_server_name.as_deref());
        endpoint = endpoint.tls_config(tls).map_err(|e| bad("TLS setup", &e))?;
    }
    let channel = endpoint.connect_with_connector_lazy(DialService(dialer.clone()));
    Ok(Rpc::new(channel))
}

fn tls_config(tls: &TlsFiles, server_name: Option<&str>) -> ClientTlsConfig {
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca));
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    if let Some(name) = server_name {
        config = config.domain_name(name);
    }
    config
}
