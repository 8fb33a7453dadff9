//! How krun reaches etcd: the resolved connection config.
//!
//! The inventory's `[etcd]` section ([`crate::inventory::EtcdSection`]) names certificate files
//! by path, and those paths usually exist only on the control-plane nodes (kubeadm writes them
//! under `/etc/kubernetes/pki/etcd`). So the section stays paths, and [`Config`] takes the file
//! contents as bytes: the caller reads them wherever they live (locally, or over ssh from the
//! node named by `via`) and this module never touches the operator's disk for them.

use std::fmt;
use std::time::Duration;

use super::error::EtcdError;

/// PEM contents of the CA and the client certificate and key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Vec<u8>,
    /// Client certificate and key; etcd with `--client-cert-auth` requires them.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsFiles {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca", &format_args!("{} bytes", self.ca.len()))
            .field(
                "identity",
                &self
                    .identity
                    .as_ref()
                    .map(|_| "<client certificate and key>"),
            )
            .finish()
    }
}

/// Everything needed to talk to one etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `http://host:port` or `https://host:port`, one per member krun should ask.
    pub endpoints: Vec<String>,
    pub tls: Option<TlsFiles>,
    /// The name to verify server certificates against, when it differs from the endpoint's
    /// host (an endpoint that is a local port forward to the real member).
    pub tls_server_name: Option<String>,
    /// How long one request may take before krun gives up on that endpoint.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Config {
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Config {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            tls_server_name: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }

    pub fn with_tls(mut self, tls: TlsFiles) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Rejects endpoints that cannot work before any connection is tried.
    pub fn validate(&self) -> Result<(), EtcdError> {
        if self.endpoints.is_empty() {
            return Err(EtcdError::Config("no endpoints given".to_owned()));
        }
        for endpoint in &self.endpoints {
            validate_endpoint(endpoint, self.tls.is_some())?;
        }
        Ok(())
    }
}

pub(crate) fn validate_endpoint(endpoint: &str, have_tls: bool) -> Result<(), EtcdError> {
    let bad = |why: &str| EtcdError::Config(format!("endpoint {endpoint:?}: {why}"));
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| bad(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") if have_tls => {}
        Some("https") => return Err(bad("https needs the etcd CA (the `ca` file)")),
        _ => return Err(bad("must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if uri.port_u16().is_none() {
        return Err(bad("has no port (etcd clients use 2379)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_before_connecting() {
        assert!(Config::new(["http://127.0.0.1:2379"]).validate().is_ok());
        let msg = |c: Config| c.validate().unwrap_err().to_string();
        assert_eq!(
            msg(Config::new(Vec::<String>::new())),
            "etcd configuration: no endpoints given"
        );
        assert_eq!(
            msg(Config::new(["https://10.0.0.1:2379"])),
            "etcd configuration: endpoint \"https://10.0.0.1:2379\": https needs the etcd CA (the `ca` file)"
        );
        assert!(
            msg(Config::new(["10.0.0.1:2379"])).contains("must start with http:// or https://")
        );
        assert!(msg(Config::new(["http://10.0.0.1"])).contains("has no port"));
        let tls = TlsFiles {
            ca: b"pem".to_vec(),
            identity: None,
        };
        assert!(
            Config::new(["https://10.0.0.1:2379"])
                .with_tls(tls)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let tls = TlsFiles {
            ca: b"ca".to_vec(),
            identity: Some((
                b"cert".to_vec(),
                b"-----BEGIN PRIVATE KEY----- secret".to_vec(),
            )),
        };
        let shown = format!("{:?}", Config::new(["https://h:2379"]).with_tls(tls));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<client certificate and key>"), "{shown}");
    }
}
