//! TLS with client certificates, as kubeadm sets etcd up: rustls, IP and DNS names, a PKCS#1
//! client key, and certificates checked against the endpoint's real name through a dialer.

use std::collections::HashMap;
use std::sync::Arc;

use krun::etcd::{Client, Config, DialFuture, Dialer, Stream, TlsFiles};

use super::HEALTHY_WITHIN;
use crate::support::etcd::{EtcdCluster, TestPki};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate() {
    let Some(cluster) = EtcdCluster::start_tls(1) else {
        return;
    };
    let pki = cluster.pki.as_ref().unwrap();
    let url = cluster.member("m0").client_url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let client = Client::connect(cluster.config()).await.unwrap();
    client.wait_healthy(HEALTHY_WITHIN).await.unwrap();
    assert_eq!(
        client.members().await.unwrap()[0].client_urls,
        std::slice::from_ref(&url)
    );
    let dir = tempfile::tempdir().unwrap();
    let info = client.snapshot(&dir.path().join("tls.db")).await.unwrap();
    assert!(info.size > 32);

    // Without a client certificate etcd turns the connection away; the error names the endpoint.
    let no_identity = TlsFiles {
        ca: std::fs::read(&pki.ca).unwrap(),
        identity: None,
    };
    let anonymous = Client::connect(Config::new([url.clone()]).with_tls(no_identity))
        .await
        .unwrap();
    let health = anonymous.health().await;
    let err = health[0].result.as_ref().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("etcd endpoint {url}: status failed"))
            && err.ends_with("(no client certificate is configured; etcd run with --client-cert-auth, as kubeadm sets it up, drops such connections)"),
        "{err}"
    );

    // A server certificate from another CA is rejected.
    let other_dir = tempfile::tempdir().unwrap();
    let Some(other) = TestPki::create(other_dir.path()) else {
        return;
    };
    let stranger = Client::connect(Config::new([url.clone()]).with_tls(other.tls_files()))
        .await
        .unwrap();
    let err = stranger.members().await.unwrap_err().to_string();
    assert!(err.contains("certificate"), "{err}");

    // Through a dialer the certificate is checked against the endpoint's host name
    // (`localhost` is in the certificate; the dialer decides where bytes actually go).
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let dialer = Arc::new(Loopback(HashMap::from([("localhost".to_owned(), port)])));
    let named = Config::new(["https://localhost:2379"]).with_tls(pki.tls_files());
    let tunneled = Client::connect_with(named, dialer.clone()).await.unwrap();
    assert!(tunneled.health().await[0].is_healthy());
    // A name the certificate does not carry fails verification, unless told which to expect.
    let dialer = Arc::new(Loopback(HashMap::from([(
        "etcd-0.invalid".to_owned(),
        port,
    )])));
    let wrong = Config::new(["https://etcd-0.invalid:2379"]).with_tls(pki.tls_files());
    let err = Client::connect_with(wrong.clone(), dialer.clone())
        .await
        .unwrap()
        .members()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    let renamed = Config {
        tls_server_name: Some("localhost".to_owned()),
        ..wrong
    };
    assert!(
        Client::connect_with(renamed, dialer)
            .await
            .unwrap()
            .health()
            .await[0]
            .is_healthy()
    );
}

/// Sends named hosts to loopback ports.
struct Loopback(HashMap<String, u16>);

impl Dialer for Loopback {
    fn dial(&self, host: &str, _port: u16) -> DialFuture {
        let port = self.0.get(host).copied();
        let host = host.to_owned();
        Box::pin(async move {
            let port = port.ok_or_else(|| std::io::Error::other(format!("unknown host {host}")))?;
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }
}
