//! Real git repositories for the library tests: made with the `git` command in temp dirs,
//! served over `file://` and by a real `git daemon` on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::process::{kill_tree, spawn_tied};

/// `git` on PATH, and `git daemon` (Debian's `git` package carries it).
pub fn require_git() -> bool {
    if !super::require(&["git"], false) {
        return false;
    }
    let exec_path = git(Path::new("/"), &["--exec-path"]);
    super::require(&[&format!("{exec_path}/git-daemon")], false)
}

/// Runs git in `dir`, with a fixed identity and no user or system configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Platform Team")
        .env("GIT_AUTHOR_EMAIL", "platform@example.org")
        .env("GIT_COMMITTER_NAME", "Platform Team")
        .env("GIT_COMMITTER_EMAIL", "platform@example.org")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A library repository a platform team publishes from.
pub struct LibraryRepo {
    pub name: String,
    pub dir: PathBuf,
}

impl LibraryRepo {
    /// `git init` in `parent/name.git` (a non-bare repository; served as is).
    pub fn create(parent: &Path, name: &str) -> Self {
        let dir = parent.join(format!("{name}.git"));
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        LibraryRepo {
            name: name.to_owned(),
            dir,
        }
    }

    /// Writes `krun.toml` for `version` with these dependency lines and the given modules,
    /// commits, and returns the commit id.
    pub fn release(&self, version: &str, dependencies: &str, modules: &[(&str, &str)]) -> String {
        let manifest = format!(
            "[package]\nname = \"{}\"\nversion = \"{version}\"\n\n[dependencies]\n{dependencies}",
            self.name
        );
        std::fs::write(self.dir.join("krun.toml"), manifest).unwrap();
        for (file, text) in modules {
            let path = self.dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        git(&self.dir, &["add", "-A"]);
        git(
            &self.dir,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("release {version}"),
            ],
        );
        git(&self.dir, &["rev-parse", "HEAD"])
    }

    /// An annotated release tag on HEAD (what `git tag -a` makes); `force` moves an existing one.
    pub fn tag(&self, tag: &str, force: bool) {
        let mut args = vec!["tag", "-a", "-m", tag];
        if force {
            args.push("-f");
        }
        args.push(tag);
        git(&self.dir, &args);
    }

    /// A lightweight tag on HEAD.
    pub fn light_tag(&self, tag: &str) {
        git(&self.dir, &["tag", tag]);
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    pub fn head(&self) -> String {
        git(&self.dir, &["rev-parse", "HEAD"])
    }
}

/// A `git daemon` serving every repository under a directory, on 127.0.0.1.
pub struct GitDaemon {
    pub port: u16,
    child: Option<Child>,
}

impl GitDaemon {
    pub fn serve(base: &Path) -> Self {
        let port = super::etcd::free_port();
        let mut command = Command::new("git");
        command
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                &base.display().to_string(),
            ])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = spawn_tied(command).expect("git daemon starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon {
            port,
            child: Some(child),
        }
    }

    /// The URL of `name.git` under the served directory.
    pub fn url(&self, repo: &LibraryRepo) -> String {
        format!("git://127.0.0.1:{}/{}.git", self.port, repo.name)
    }

    /// Stops the daemon: the remotes are gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(child.id());
            let _ = child.wait();
        }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}
