//! Wiring: the one place that builds the services a command talks to (ssh, the Kubernetes API,
//! etcd) and picks the performer at the effects boundary. Runs, resumes, `krun preflight`,
//! `krun check` and `krun doc` all get their boundary here, so what a dry-run or a rehearsal
//! does differently is decided once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::effects::etcd::EtcdService;
use crate::effects::kube::KubeService;
use crate::effects::perform::{DryRun, Live, Rehearse};
use crate::effects::replay::Replay;
use crate::effects::transport::{SshTransport, Transport};
use crate::effects::{Effects, Performer, Services};
use crate::inventory::Inventory;
use crate::kube::ClientOptions;
use crate::plan::Recorder;
use crate::ssh::{SshConfig, SshPool};

/// What a command does with effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything happens.
    Live,
    /// Reads happen, changes are recorded.
    DryRun,
    /// Nothing is contacted (a dry-run that shows reads as not read).
    Offline,
}

/// How to reach what a command talks to.
pub struct Wiring {
    pub inventory: Arc<Inventory>,
    pub cluster: ClientOptions,
    /// Rehearse against an in-process simulator loaded from this snapshot: the Kubernetes side
    /// really happens there.
    pub rehearse: Option<PathBuf>,
    pub mode: Mode,
    pub ssh: SshConfig,
}

/// A command's boundary and the connections behind it.
pub struct Wired {
    pub effects: Arc<Effects>,
    pool: SshPool,
    /// Kept alive for as long as the command runs.
    _simulator: Option<crate::sim::Server>,
}

impl Wired {
    /// Closes the ssh connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Wiring {
    /// Builds the services and the boundary. Nothing is contacted yet (except the rehearsal's
    /// simulator, which starts here).
    pub async fn wire(
        self,
        recorder: Arc<Recorder>,
        cancel: CancellationToken,
        replay: Option<Arc<Replay>>,
    ) -> crate::Result<Wired> {
        let pool = SshPool::new(self.ssh);
        let (kube, simulator) = match &self.rehearse {
            Some(file) => {
                let (service, server) = rehearsal(file).await?;
                (Arc::new(service), Some(server))
            }
            None => (Arc::new(KubeService::new(self.cluster.clone())), None),
        };
        let etcd = Arc::new(EtcdService::new(
            Arc::clone(&self.inventory),
            pool.clone(),
            Some(Arc::clone(&kube)),
        ));
        let transport: Arc<dyn Transport> =
            Arc::new(SshTransport::new(pool.clone(), Arc::clone(&self.inventory)));
        let both = Services::default()
            .with(Arc::clone(&kube) as _)
            .with(etcd.clone() as _);
        let performer: Box<dyn Performer> = match (self.mode, simulator.is_some()) {
            (Mode::Live, _) => Box::new(Live {
                transport,
                services: both,
            }),
            (Mode::DryRun, false) => Box::new(DryRun {
                transport: Some(transport),
                services: both,
            }),
            (Mode::Offline, false) => Box::new(DryRun::offline()),
            (Mode::DryRun, true) => Box::new(Rehearse {
                dry_run: DryRun {
                    transport: Some(transport),
                    services: Services::default().with(etcd as _),
                },
                stand_ins: Services::default().with(Arc::clone(&kube) as _),
            }),
            (Mode::Offline, true) => Box::new(Rehearse {
                dry_run: DryRun::offline(),
                stand_ins: Services::default().with(Arc::clone(&kube) as _),
            }),
        };
        let mut effects = Effects::new(
            performer,
            recorder,
            cancel,
            tokio::runtime::Handle::current(),
        );
        if let Some(replay) = replay {
            effects = effects.with_replay(replay);
        }
        Ok(Wired {
            effects: Arc::new(effects),
            pool,
            _simulator: simulator,
        })
    }
}

/// A boundary that can execute nothing: for compiling and listing (`krun check`, `krun doc`).
pub fn inert(runtime: tokio::runtime::Handle) -> Arc<Effects> {
    Arc::new(Effects::new(
        Box::new(DryRun::offline()),
        Arc::new(Recorder::new()),
        CancellationToken::new(),
        runtime,
    ))
}

/// Starts the in-process simulator a rehearsal runs against.
async fn rehearsal(file: &Path) -> crate::Result<(KubeService, crate::sim::Server)> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        crate::Error::input(format!(
            "cannot read cluster snapshot {}: {e}",
            file.display()
        ))
    })?;
    let cluster = crate::sim::Cluster::load(&text)
        .map_err(|e| crate::Error::input(format!("cluster snapshot {}: {e}", file.display())))?;
    // A failed `kubectl get … > file` leaves an empty file (or an empty List); rehearsing on
    // it would pass. The simulator adds the `default` namespace to any snapshot.
    if cluster.len() <= crate::sim::Cluster::empty().len() {
        return Err(crate::Error::input(format!(
            "cluster snapshot {} holds no objects: nothing to rehearse against (did the \
             `kubectl get … -o yaml > {}` that wrote it fail?)",
            file.display(),
            file.display()
        )));
    }
    let time_scale = 100.0;
    let options = crate::sim::SimOptions {
        time_scale,
        ..crate::sim::SimOptions::default()
    };
    let server = crate::sim::Server::start(cluster, options)
        .await
        .map_err(|e| crate::Error::runtime(format!("cannot start the rehearsal simulator: {e}")))?;
    let kube = crate::kube::Kube::from_url(&server.url())
        .map_err(|e| crate::Error::runtime(format!("cannot reach the rehearsal simulator: {e}")))?;
    tracing::info!(
        "rehearsing against a simulated copy of {} (cluster time runs 100x faster: timeouts too, a 10m drain timeout lasts 6 s)",
        file.display()
    );
    Ok((
        KubeService::rehearsal(kube).on_cluster_time(time_scale),
        server,
    ))
}
