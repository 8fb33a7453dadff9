//! The in-process simulator as the tests use it: a server with its kubeconfig, clients for it
//! (kube-rs, krun's own, plain HTTP), and the real kubectl binaries pointed at it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use krun::kube::Kube;
use krun::sim::{Cluster, Server, SimHandle, SimOptions};
use tempfile::TempDir;

use super::in_ci;

/// The small cluster most tests use: control plane cp-1, workers 1–3. shop/web: a Deployment
/// of 3 with emptyDir, PDB minAvailable 2, two replicas on worker-1. shop/db: a StatefulSet,
/// PDB maxUnavailable 1. kube-proxy as a DaemonSet on every node; a bare pod default/debug on
/// worker-3.
pub const DRAIN_CLUSTER: &str = include_str!("../data/sim/drain.yaml");

/// A running simulator and a directory holding its kubeconfig.
pub struct Sim {
    pub server: Server,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
}

impl Sim {
    /// Serves `yaml` with cluster time running `time_scale` times faster than real time.
    pub async fn start(yaml: &str, time_scale: f64) -> Sim {
        Sim::start_as(yaml, time_scale, None).await
    }

    /// Serves `yaml` as Kubernetes `version` (`v1.20.15`) plays it, whatever the snapshot says.
    pub async fn start_as(yaml: &str, time_scale: f64, version: Option<&str>) -> Sim {
        let cluster = Cluster::load(yaml).expect("the fixture loads");
        let options = SimOptions {
            time_scale,
            startup_delay: Duration::from_secs(10),
            bookmark_interval: Duration::from_millis(200),
            version: version.map(str::to_string),
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

    /// A kube-rs client for the simulator.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.server.kube_config()).expect("a kube client")
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

/// Where `.ci/run` unpacks Debian's `kubernetes-client` (kubectl 1.20).
pub const DEBIAN_KUBECTL: &str = "/opt/kubernetes-client/usr/bin/kubectl";

/// `kubectl.<version>` beside the `kubectl` dispatcher on PATH, or for `1.20` Debian's
/// kubectl as `.ci/run` unpacks it. A missing binary fails the test under `CI=true` and skips
/// it, with a message, elsewhere.
pub fn kubectl_binary(version: &str) -> Option<PathBuf> {
    if version == "1.20" {
        let path = PathBuf::from(DEBIAN_KUBECTL);
        if path.is_file() {
            return Some(path);
        }
        let message = format!(
            "{DEBIAN_KUBECTL} is missing (apt-get download kubernetes-client; dpkg-deb -x kubernetes-client_*.deb /opt/kubernetes-client)"
        );
        assert!(!in_ci(), "{message}");
        eprintln!("SKIPPED: {message}");
        return None;
    }
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
        let message = format!("kubectl.{version} was not found beside the kubectl on PATH");
        assert!(!in_ci(), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    found
}

/// One kubectl binary bound to the simulator's kubeconfig.
pub struct Kubectl {
    pub binary: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

/// What a kubectl run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless kubectl exited 0.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "kubectl failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().await.expect("kubectl runs");
        Run::from(output)
    }

    /// Starts kubectl in the background (for `get -w`), its stdout piped.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl starts")
    }
}

/// A plain HTTP/1.1 request to the simulator; returns the status code and the body.
pub async fn http(sim: &Sim, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(sim.server.address())
        .await
        .expect("the simulator accepts connections");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (code, body.to_string())
}
