//! A real `ssh-agent` on a private socket, for agent authentication tests.
//!
//! The socket is handed to the code under test explicitly (`SshPool::with_agent`), never through
//! `SSH_AUTH_SOCK`: tests run in parallel threads and the environment is process-wide.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{kill_tree, spawn_tied};
use super::{require, work_dir};

pub struct SshAgent {
    socket: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl SshAgent {
    /// Starts an empty agent; `None` (after saying why) when ssh-agent is missing outside CI.
    pub fn start() -> Option<SshAgent> {
        if !require(&["ssh-agent", "ssh-add"], false) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("agent-")
            .tempdir_in(work_dir())
            .expect("create the agent directory");
        let socket = dir.path().join("agent.sock");
        let mut command = Command::new("ssh-agent");
        command
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied(command).expect("start ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(SshAgent { socket, child, dir })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `ssh-add KEY`; for an encrypted key, `passphrase` is fed through SSH_ASKPASS.
    pub fn add(&self, key: &Path, passphrase: Option<&str>) {
        let mut command = Command::new("ssh-add");
        command
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null());
        if let Some(passphrase) = passphrase {
            let askpass = self.dir.path().join("askpass.sh");
            std::fs::write(
                &askpass,
                format!("#!/bin/sh\nprintf '%s\\n' '{passphrase}'\n"),
            )
            .expect("write askpass");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))
                .expect("chmod askpass");
            command
                .env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0");
        }
        let output = command.output().expect("run ssh-add");
        assert!(
            output.status.success(),
            "ssh-add {} failed: {}",
            key.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        kill_tree(self.child.id());
        let _ = self.child.wait();
    }
}
