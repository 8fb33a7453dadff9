//! The `krun` binary as a user runs it: arguments in, exit code and output out.

mod build;
mod check;
mod completions;
mod confirm;
mod describe;
mod doc;
mod dry_run;
mod input;
mod output;
mod playbooks;
mod report;
mod runs;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (tests run with it as working directory unless told otherwise).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where test runs keep their journals (not in the repository).
pub fn state_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("state tempdir"))
        .path()
}

/// A krun invocation, built fluently: `Krun::new().args([..]).run().code(2)`, or with a
/// playbook and an inventory of its own:
/// `Krun::new().playbook("log(1);").inventory(TOML).args(["--dry-run"]).run()`.
pub struct Krun {
    command: Command,
    /// Holds the playbook and inventory files the invocation was given as text.
    files: Option<tempfile::TempDir>,
    playbook: Option<PathBuf>,
    args: Vec<std::ffi::OsString>,
}

impl Krun {
    pub fn new() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_krun"));
        command
            .current_dir(root())
            .env_remove("KRUN_PATH")
            .env_remove("KRUN_INVENTORY")
            .env("NO_COLOR", "1")
            .env("KRUN_STATE_DIR", state_dir());
        Self {
            command,
            files: None,
            playbook: None,
            args: Vec::new(),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The directory that holds the files given as text.
    pub fn dir(&mut self) -> &Path {
        self.files
            .get_or_insert_with(|| tempfile::tempdir().expect("tempdir"))
            .path()
    }

    /// Runs `text` as the playbook (`play.rhai`, the first argument).
    pub fn playbook(mut self, text: &str) -> Self {
        let path = self.dir().join("play.rhai");
        std::fs::write(&path, text).expect("write the playbook");
        self.playbook = Some(path);
        self
    }

    /// Passes `toml` as the inventory (`--inventory inventory.toml`).
    pub fn inventory(mut self, toml: &str) -> Self {
        let path = self.dir().join("inventory.toml");
        std::fs::write(&path, toml).expect("write the inventory");
        self.args(["--inventory".as_ref(), path.as_os_str()])
    }

    /// One argument that is a path.
    pub fn arg_path(self, path: &Path) -> Self {
        self.args([path.as_os_str()])
    }

    /// Colours on, as on a terminal (`CLICOLOR_FORCE`), for what goes to a pipe.
    pub fn colored(mut self) -> Self {
        self.command
            .env_remove("NO_COLOR")
            .env("CLICOLOR_FORCE", "1");
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Starts krun without waiting for it (to act on the cluster or the nodes while it runs);
    /// its output goes to files, so a long run never blocks on a full pipe.
    pub fn spawn(mut self) -> Running {
        if let Some(playbook) = &self.playbook {
            self.command.arg(playbook);
        }
        self.command.args(&self.args);
        let dir = tempfile::tempdir().expect("a directory for krun's output");
        let stdout = std::fs::File::create(dir.path().join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let child = self
            .command
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("krun binary starts");
        Running {
            child,
            output: dir,
            _files: self.files,
        }
    }

    pub fn run(mut self) -> Output {
        if let Some(playbook) = &self.playbook {
            self.command.arg(playbook);
        }
        self.command.args(&self.args);
        let output = self.command.output().expect("krun binary runs");
        drop(self.files);
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A krun started with [`Krun::spawn`].
pub struct Running {
    child: std::process::Child,
    output: tempfile::TempDir,
    _files: Option<tempfile::TempDir>,
}

impl Running {
    /// Waits for krun to exit.
    pub fn wait(mut self) -> Output {
        let status = self.child.wait().expect("wait for krun");
        let read = |name: &str| {
            String::from_utf8_lossy(
                &std::fs::read(self.output.path().join(name)).unwrap_or_default(),
            )
            .into_owned()
        };
        Output {
            code: status.code().unwrap_or(-1),
            stdout: read("stdout"),
            stderr: read("stderr"),
        }
    }
}

/// What a krun invocation produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Writes a playbook into a fresh temporary directory and returns (dir, path).
pub fn playbook(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("play.rhai");
    std::fs::write(&path, text).expect("write playbook");
    (dir, path)
}
