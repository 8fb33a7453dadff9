//! The transport seam: endpoints reached through a caller-supplied dialer (as an ssh tunnel
//! does), with TLS and gRPC on top unchanged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use krun::etcd::{Client, Config, DialFuture, Dialer, Stream};

use super::healthy_cluster;

/// Resolves made-up host names to the loopback ports of the test members, like a tunnel
/// resolving names on the far side, and counts what it dials.
struct NamedHosts {
    ports: HashMap<String, u16>,
    dials: AtomicUsize,
}

impl Dialer for NamedHosts {
    fn dial(&self, host: &str, port: u16) -> DialFuture {
        self.dials.fetch_add(1, Ordering::SeqCst);
        let target = self.ports.get(host).copied().filter(|_| port == 2379);
        let host = host.to_owned();
        Box::pin(async move {
            let Some(local) = target else {
                return Err(std::io::Error::other(format!("no route to {host}:{port}")));
            };
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", local)).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_reached_through_the_callers_dialer() {
    let Some((cluster, _)) = healthy_cluster(3).await else {
        return;
    };
    let mut ports = HashMap::new();
    let mut endpoints = Vec::new();
    for member in &cluster.members {
        let host = format!("{}.etcd.invalid", member.name);
        let port = member
            .client_url
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        endpoints.push(format!("http://{host}:2379"));
        ports.insert(host, port);
    }
    let dialer = Arc::new(NamedHosts {
        ports,
        dials: AtomicUsize::new(0),
    });

    let client = Client::connect_with(Config::new(endpoints.clone()), dialer.clone())
        .await
        .unwrap();
    assert_eq!(client.members().await.unwrap().len(), 3);
    let health = client.health().await;
    assert!(health.iter().all(|h| h.is_healthy()), "{health:?}");
    assert_eq!(
        health
            .iter()
            .map(|h| h.endpoint.clone())
            .collect::<Vec<_>>(),
        endpoints
    );
    assert!(client.cluster_view().await.unwrap().is_fully_healthy());
    assert!(
        dialer.dials.load(Ordering::SeqCst) >= 3,
        "every endpoint was dialled through the seam"
    );

    // The same names over plain TCP do not resolve: the dialer is what reached etcd.
    let direct = Client::connect(Config::new(endpoints.clone()))
        .await
        .unwrap();
    let err = direct.members().await.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "etcd: member list failed on every endpoint: etcd endpoint http://m0.etcd.invalid:2379"
        ),
        "{err}"
    );
}
