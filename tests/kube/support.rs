//! Fixtures for the Kubernetes tests: an in-process simulator with a kubeconfig, a krun client
//! for it, the real kubectl binaries, and cluster state read back for assertions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use krun::kube::Kube;
use krun::sim::{Cluster, Server, SimHandle, SimOptions};
use tempfile::TempDir;

/// Control plane cp-1; workers 1–3. shop/web: Deployment of 3 with emptyDir, PDB minAvailable
/// 2, two replicas on worker-1. shop/db: StatefulSet, PDB maxUnavailable 1. kube-proxy on
/// every node; a bare pod default/debug on worker-3.
pub const DRAIN_CLUSTER: &str = include_str!("../data/sim/drain.yaml");

/// A simulator serving one cluster, and a directory with its kubeconfig.
pub struct Sim {
    pub server: Server,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
}

impl Sim {
    /// Serves `yaml`, cluster time running `time_scale` times faster than real time.
    pub async fn start(yaml: &str, time_scale: f64) -> Sim {
        let cluster = Cluster::load(yaml).expect("the cluster loads");
        let options = SimOptions {
            time_scale,
            startup_delay: Duration::from_secs(10),
            bookmark_interval: Duration::from_millis(500),
            ..SimOptions::default()
        };
        let server = Server::start(cluster, options)
            .await
            .expect("the simulator starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("the kubeconfig is written");
        Sim {
            server,
            dir,
            kubeconfig,
        }
    }

    pub fn handle(&self) -> SimHandle {
        self.server.handle()
    }

    /// A krun client for the simulator.
    pub fn kube(&self) -> Kube {
        Kube::from_url(&self.server.url()).expect("a client for the simulator")
    }

    /// Request counters, e.g. `create pods/eviction`.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.handle().request_counts()
    }

    /// kubectl `version` (e.g. `1.33`) pointed at this simulator.
    pub fn kubectl(&self, version: &str) -> Option<Kubectl> {
        Some(Kubectl {
            binary: kubectl_binary(version)?,
            kubeconfig: self.kubeconfig.clone(),
            home: self.dir.path().to_path_buf(),
        })
    }
}

/// `kubectl.<version>` beside the `kubectl` dispatcher on PATH. A missing binary fails the
/// test under `CI=true`, and skips it with a message elsewhere.
pub fn kubectl_binary(version: &str) -> Option<PathBuf> {
    let dispatcher = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    let found = dispatcher
        .and_then(|d| std::fs::canonicalize(d).ok())
        .and_then(|real| Some(real.parent()?.join(format!("kubectl.{version}"))))
        .filter(|p| p.is_file());
    if found.is_none() {
        let message = format!("kubectl.{version} not found beside the kubectl on PATH");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    found
}

pub struct Kubectl {
    pub binary: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

/// How a kubectl run ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub async fn run(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .output()
            .await
            .expect("kubectl runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
