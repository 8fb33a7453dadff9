//! The simulator as a running server: binds a loopback port, serves the API and `/sim/`, and
//! runs the controllers on cluster time in the background.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::control::SimHandle;
use super::error::SimError;
use super::faults::ControlState;
use super::load::Cluster;
use super::shared::Shared;
use super::world::{Behaviour, World};

/// How the simulator runs.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Cluster seconds per real second (100 runs a 30 s grace period in 0.3 s).
    pub time_scale: f64,
    /// Cluster time from a pod being scheduled to it being Running and Ready.
    pub startup_delay: Duration,
    /// Real time between watch bookmarks for clients that ask for them.
    pub bookmark_interval: Duration,
    /// Seed for generated names and uids, so runs are reproducible.
    pub seed: u64,
    /// The Kubernetes version to play (`v1.20.15`) instead of the snapshot's.
    pub version: Option<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            time_scale: 1.0,
            startup_delay: Duration::from_secs(10),
            bookmark_interval: Duration::from_secs(5),
            seed: 0,
            version: None,
        }
    }
}

/// A running simulator.
pub struct Server {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads `cluster` and starts serving it.
    pub async fn start(cluster: Cluster, options: SimOptions) -> Result<Server, SimError> {
        if !(options.time_scale.is_finite() && options.time_scale > 0.0) {
            return Err(SimError::TimeScale(options.time_scale));
        }
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: options.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| SimError::Bind {
            addr: options.listen,
            source,
        })?;
        let clock = Arc::new(Clock::new(options.time_scale));
        let behaviour = Behaviour {
            startup_delay: chrono::Duration::milliseconds(options.startup_delay.as_millis() as i64),
            version: options.version.clone(),
        };
        let mut world = World::new(cluster, clock.clone(), behaviour, options.seed);
        world.settle();
        release_freed_memory();
        let rv = world.rv;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            clock,
            control: Mutex::new(ControlState::default()),
            changes: watch::Sender::new(rv),
            drops: watch::Sender::new(0),
            controllers: Notify::new(),
            shutdown: CancellationToken::new(),
            bookmark_interval: options.bookmark_interval,
            address,
            time_scale: options.time_scale,
        });
        let router = Router::new()
            .fallback(super::api::handle)
            .with_state(shared.clone());
        let stop = shared.shutdown.clone();
        let serve = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(%error, "the simulated API server stopped");
            }
        });
        let controllers = tokio::spawn(run_controllers(shared.clone()));
        Ok(Server {
            shared,
            tasks: vec![serve, controllers],
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.address)
    }

    /// Drives the simulator from the inside.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            shared: self.shared.clone(),
        }
    }

    /// A kubeconfig pointing at this server (plain HTTP, no credentials).
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        std::fs::write(path, self.kubeconfig()).map_err(|source| SimError::WriteKubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A kube-rs client configuration for this server. Retries of 429/5xx are off, so a
    /// PDB-blocked eviction reaches the caller at once.
    pub fn kube_config(&self) -> kube::Config {
        let mut config =
            kube::Config::new(self.url().parse().expect("the server URL is a valid URI"));
        config.default_retry = false;
        config
    }

    /// Stops serving: open watches end, then the listener closes.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// The kubeconfig for a server at `url`.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: krun-sim
  cluster:
    server: {url}
contexts:
- name: krun-sim
  context:
    cluster: krun-sim
    user: krun-sim
    namespace: default
current-context: krun-sim
users:
- name: krun-sim
  user: {{}}
preferences: {{}}
"
    )
}

/// Gives the memory that loading freed back to the system. glibc keeps freed memory in the
/// heap of the thread that used it, and the parse threads free most of what they allocate:
/// on 20,000 pods about 100 MiB would otherwise stay resident for the server's lifetime.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's heaps to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn run_controllers(shared: Arc<Shared>) {
    loop {
        let wait = shared.tick().unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.controllers.notified() => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}
