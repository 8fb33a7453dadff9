//! The run journal: a durable record of every effect, so a crash leaves no mystery.
//!
//! Each run gets an id and a directory `<state-dir>/runs/<id>/` holding `journal.jsonl`: a header
//! (playbook, its content hash, parameters, nodes, krun version), then per step an `intent` line
//! written and synced to disk *before* the effect starts and a `done` line after it. A step with
//! an intent and no done is the one whose outcome is unknown. The recorder writes the journal at
//! the effects boundary, after redaction, so no primitive can forget it or leak a secret into it.
//!
//! The journal is a precondition of every change: when a record cannot be written (a full or
//! read-only disk), the journal is marked broken, nothing more is appended (so no torn record
//! sits in the middle), and the boundary refuses every later step. A crash can still leave a
//! torn last line; [`view::JournalView`] reports it.

pub mod backup;
pub mod view;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{Value, json};

/// What a run is, recorded first.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub playbook: String,
    pub playbook_sha256: String,
    pub params: std::collections::BTreeMap<String, Value>,
    pub nodes: Vec<String>,
    pub dry_run: bool,
    pub krun_version: String,
    pub user: String,
    pub host: String,
    pub started_at: String,
    /// The command line, secrets masked, and where it ran: what `krun resume` runs again.
    pub argv: Vec<String>,
    pub cwd: String,
    /// Names of `--set-secret` parameters, which resume needs again.
    pub secret_params: Vec<String>,
    /// The run this one resumes, if any.
    pub resumes: Option<String>,
    /// The libraries the playbook could import, exactly: name, version, commit, content hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<Provenance>,
}

/// Which library code a run used: recorded in the journal and the JSON plan, so `krun runs ID`
/// says exactly what ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    pub name: String,
    pub version: String,
    /// The git URL or the path it came from.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// `sha256:` of the files krun loads from it.
    pub hash: String,
    /// Where the files were read: `vendor`, `cache` or `path`.
    pub from: String,
}

/// An open journal.
pub struct Journal {
    id: String,
    dir: PathBuf,
    file: Mutex<BufWriter<File>>,
    /// Set by the first failed write: the file may end in a torn record, so nothing more is
    /// written, and every later step is refused.
    broken: AtomicBool,
}

impl Journal {
    /// Creates `<state_dir>/runs/<id>/journal.jsonl` and writes the header.
    pub fn create(state_dir: &Path, header: &Header) -> std::io::Result<Self> {
        let id = new_id();
        let dir = state_dir.join("runs").join(&id);
        std::fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join("journal.jsonl"))?;
        // The new file's name must survive a crash too, not only its content.
        File::open(&dir)?.sync_all()?;
        if let Some(runs) = dir.parent() {
            File::open(runs)?.sync_all()?;
        }
        let journal = Self {
            id,
            dir,
            file: Mutex::new(BufWriter::new(file)),
            broken: AtomicBool::new(false),
        };
        let mut record = serde_json::to_value(header).unwrap_or_default();
        record["type"] = "header".into();
        record["run_id"] = journal.id.clone().into();
        journal.write(&record, true)?;
        Ok(journal)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record; `sync` forces it to disk before returning (intents). The whole line
    /// is formatted first and written at once, so a failure leaves at most one torn line, at
    /// the end.
    pub fn write(&self, record: &Value, sync: bool) -> std::io::Result<()> {
        if self.is_broken() {
            return Err(std::io::Error::other(
                "an earlier record could not be written",
            ));
        }
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut file = self.file.lock().expect("journal lock");
        let written = file
            .write_all(&line)
            .and_then(|()| file.flush())
            .and_then(|()| {
                if sync {
                    file.get_ref().sync_data()
                } else {
                    Ok(())
                }
            });
        if written.is_err() {
            self.broken.store(true, Ordering::SeqCst);
        }
        written
    }

    /// [`Journal::write`], with the error as the message that stops the run.
    pub fn record(&self, record: Value, sync: bool) -> Result<(), String> {
        self.write(&record, sync).map_err(|e| {
            let message = format!(
                "cannot write the run journal {}: {e}",
                self.dir.join("journal.jsonl").display()
            );
            tracing::error!("{message}");
            message
        })
    }

    /// Whether a write failed: no further step may run.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }
}

/// `20261122T201700Z-4f2a9c`: sortable by time, unique enough for one operator's machine.
fn new_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    let salt = (nanos ^ std::process::id().rotate_left(16)) & 0xff_ffff;
    format!("{}-{salt:06x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// This machine's host name, for the journal and the cluster lock.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A hex SHA-256 of a playbook's text.
pub fn content_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A record in the journal's schema.
pub fn entry(kind: &str, run: &str, fields: Value) -> Value {
    let mut record = json!({ "type": kind, "run": run, "at": chrono::Utc::now().to_rfc3339() });
    if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields) {
        record.extend(fields);
    }
    record
}
