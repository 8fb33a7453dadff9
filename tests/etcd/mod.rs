//! The etcd operations and quorum guards against real etcd members on loopback.

mod bench;
mod guards;
mod membership;
mod reads;
mod tls;
mod tunnel;
pub(crate) mod upgrade;

use std::time::Duration;

use krun::etcd::Client;

use crate::support::etcd::EtcdCluster;

/// Generous: members share two cores with other builds.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

/// A started, healthy cluster of `size` etcd 3.4 members and a krun client for all of them.
/// `None` means etcd is missing and the test was skipped loudly (never under `CI=true`).
pub async fn healthy_cluster(size: usize) -> Option<(EtcdCluster, Client)> {
    let cluster = EtcdCluster::start(size)?;
    let client = Client::connect(cluster.config())
        .await
        .expect("client config is valid");
    let view = client
        .wait_healthy(HEALTHY_WITHIN)
        .await
        .expect("fresh cluster becomes healthy");
    assert_eq!(view.members.len(), size);
    Some((cluster, client))
}
