//! A real image registry on loopback (Debian's `docker-registry`, the CNCF distribution
//! registry 2.8) that machines' containerd pulls from, tiny images pushed into it through the
//! registry API, and a proxy in front of it that answers 404 to manifests asked for by digest,
//! as the old registry of the field report did (containerd resolves a tag, then fetches the
//! manifest by digest: Docker pulled from it, containerd could not).

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::fleet::{HOST, free_port};
use crate::support::process::{kill_tree, spawn_tied};
use crate::support::require;

/// A running registry; dropping it stops it and removes its storage.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts an empty registry; `None` (after saying why) when it is missing outside CI.
    pub fn start() -> Option<Registry> {
        if !require(&["docker-registry", "curl", "tar", "gzip"], false) {
            return None;
        }
        let dir = tempfile::tempdir().expect("a registry directory");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {HOST}:{port}\n",
            dir.path().join("storage").display()
        );
        fs::write(dir.path().join("config.yml"), config).expect("write the registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("create registry.log");
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log);
        let child = spawn_tied(command).expect("start docker-registry");
        wait_listening(port, &dir.path().join("registry.log"));
        Some(Registry { child, port, dir })
    }

    /// `127.0.0.1:PORT`, the registry part of its image references.
    pub fn host(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    /// Pushes a one-layer image `name:tag` (its layer a file saying `name:tag`) and returns its
    /// reference, `127.0.0.1:PORT/name:tag`.
    pub fn push(&self, name: &str, tag: &str) -> String {
        let work = tempfile::tempdir().expect("an image directory");
        let root = work.path().join("rootfs");
        fs::create_dir_all(&root).expect("mkdir rootfs");
        fs::write(root.join("hello.txt"), format!("{name}:{tag}\n")).expect("write the layer file");
        let tar = work.path().join("layer.tar");
        run(Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-cf"])
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .arg("."));
        let diff_id = sha256_file(&tar);
        run(Command::new("gzip").args(["-n", "-k"]).arg(&tar));
        let layer = fs::read(work.path().join("layer.tar.gz")).expect("read the layer");
        let config = format!(
            "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"sha256:{diff_id}\"]}}}}"
        );
        let layer_digest = self.upload_blob(name, &layer);
        let config_digest = self.upload_blob(name, config.as_bytes());
        let manifest = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\
             \"config\":{{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":{},\"digest\":\"{config_digest}\"}},\
             \"layers\":[{{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":{},\"digest\":\"{layer_digest}\"}}]}}",
            config.len(),
            layer.len()
        );
        let path = work.path().join("manifest.json");
        fs::write(&path, manifest).expect("write the manifest");
        run(Command::new("curl")
            .args(["-sS", "-f", "-X", "PUT", "-H"])
            .arg("Content-Type: application/vnd.docker.distribution.manifest.v2+json")
            .arg("--data-binary")
            .arg(format!("@{}", path.display()))
            .arg(format!("http://{}/v2/{name}/manifests/{tag}", self.host())));
        format!("{}/{name}:{tag}", self.host())
    }

    fn upload_blob(&self, name: &str, content: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(content)));
        let output = Command::new("curl")
            .args(["-sS", "-f", "-X", "POST", "-D", "-", "-o", "/dev/null"])
            .arg(format!("http://{}/v2/{name}/blobs/uploads/", self.host()))
            .output()
            .expect("curl runs");
        assert!(output.status.success(), "start a blob upload: {output:?}");
        let headers = String::from_utf8_lossy(&output.stdout);
        let location = headers
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                key.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_string())
            })
            .expect("the upload has a Location");
        let location = if location.starts_with('/') {
            format!("http://{}{location}", self.host())
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let file = tempfile::NamedTempFile::new().expect("a blob file");
        fs::write(file.path(), content).expect("write the blob");
        run(Command::new("curl")
            .args([
                "-sS",
                "-f",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", file.path().display()))
            .arg(format!("{location}{separator}digest={digest}")));
        digest
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        kill_tree(self.child.id());
        let _ = self.child.wait();
    }
}

/// A proxy in front of a registry that answers `GET|HEAD /v2/<name>/manifests/sha256:…` with
/// 404 MANIFEST_UNKNOWN and passes every other request through. It lives as long as the test
/// process (one thread per connection).
pub struct DigestRefusingProxy {
    port: u16,
}

impl DigestRefusingProxy {
    pub fn start(registry: &Registry) -> DigestRefusingProxy {
        let listener = TcpListener::bind((HOST, 0)).expect("bind the proxy");
        let port = listener.local_addr().expect("its address").port();
        let upstream = registry.host();
        std::thread::Builder::new()
            .name("registry-proxy".into())
            .spawn(move || {
                for client in listener.incoming().flatten() {
                    let upstream = upstream.clone();
                    std::thread::spawn(move || serve(client, &upstream));
                }
            })
            .expect("start the proxy thread");
        DigestRefusingProxy { port }
    }

    pub fn host(&self) -> String {
        format!("{HOST}:{}", self.port)
    }
}

fn serve(mut client: TcpStream, upstream: &str) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    loop {
        let Some(head) = read_head(&mut client) else {
            return;
        };
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let by_digest = path.starts_with("/v2/") && path.contains("/manifests/sha256:");
        if by_digest && (method == "GET" || method == "HEAD") {
            let body =
                "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}";
            let response = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                if method == "HEAD" { "" } else { body }
            );
            if client.write_all(response.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        // One request per upstream connection: the client's keep-alive ends with it.
        let Ok(mut server) = TcpStream::connect(upstream) else {
            return;
        };
        let head: String = head
            .split("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .filter(|l| !l.is_empty())
            .map(|l| format!("{l}\r\n"))
            .collect();
        if server
            .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
            .is_err()
        {
            return;
        }
        let mut buffer = [0u8; 16384];
        loop {
            match server.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if client.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
}

/// A request head (GET/HEAD carry no body), or None at the end of the connection.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn wait_listening(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect((HOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "docker-registry did not listen on {port}:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read a file to hash")))
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
