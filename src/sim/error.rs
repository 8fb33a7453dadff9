//! Errors of the simulator as a library: loading a snapshot, serving it, driving it.
//!
//! Errors of the simulated API itself are not Rust errors but Kubernetes `Status` bodies; they
//! live in `status.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A cluster snapshot that cannot be loaded. Names the document and field so an operator can
/// fix the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not valid YAML in {document}: {message}")]
    Syntax { document: String, message: String },
    #[error("{document}: field `{field}`: {message}")]
    Field {
        document: String,
        field: String,
        message: String,
    },
    #[error("{document}: {kind} {name:?} appears twice in the snapshot")]
    Duplicate {
        document: String,
        kind: String,
        name: String,
    },
}

impl LoadError {
    pub(crate) fn field(
        document: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        LoadError::Field {
            document: document.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Failures of `krun sim` and of the in-process server.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read the cluster file {path}: {source}")]
    ReadCluster {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot load the cluster file {path}: {source}")]
    Load { path: PathBuf, source: LoadError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig {path}: {source}")]
    WriteKubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid time scale {0}: it must be a positive, finite number (1 = real time)")]
    TimeScale(f64),
    #[error("invalid startup delay {0}: it must be a non-negative number of seconds")]
    StartupDelay(f64),
    #[error(
        "invalid version {0:?}: give a Kubernetes version like v1.20.15, from v1.14.0 to v1.33.x"
    )]
    Version(String),
    #[error("cannot wait for a shutdown signal: {0}")]
    Signal(std::io::Error),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

/// A request to the control API (`/sim/…` or [`crate::sim::SimHandle`]) that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the simulated cluster has no node named {0:?}")]
    NoSuchNode(String),
    #[error("invalid control request: {0}")]
    Invalid(String),
}

impl From<SimError> for crate::Error {
    fn from(error: SimError) -> Self {
        match error {
            SimError::Load { .. }
            | SimError::TimeScale(_)
            | SimError::StartupDelay(_)
            | SimError::Version(_)
            | SimError::ReadCluster { .. } => crate::Error::input(error.to_string()),
            _ => crate::Error::runtime(error.to_string()),
        }
    }
}
