//! krun runs Rhai upgrade playbooks against self-managed Kubernetes nodes.
//!
//! Data flows one way: the command line (`cli`, validated in `app`) starts a `run`; each run
//! evaluates the playbook in a sandboxed Rhai `engine` whose `primitives` turn calls into
//! effects; every effect crosses the one `effects` boundary (live or dry-run) into the
//! `transport` (ssh) and is recorded in the `plan`.

pub mod app;
pub mod check;
pub mod cli;
pub mod containerd;
pub mod diagnostic;
pub mod doc;
pub mod effects;
pub mod engine;
pub mod error;
pub mod etcd;
pub mod etcd_ops;
pub mod inventory;
pub mod journal;
pub mod kube;
pub mod kube_ops;
pub mod kubelet_config;
pub mod lock;
pub mod model;
pub mod node;
pub mod output;
pub mod params;
pub mod plan;
pub mod preflight;
pub mod primitives;
pub mod quote;
pub mod resume;
pub mod run;
pub mod sim;
pub mod skew;
pub mod ssh;
pub mod suggest;
pub mod transport;
pub mod ui;
pub mod versions;

pub use error::{Error, Result};
