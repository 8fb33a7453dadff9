//! krun runs Rhai upgrade playbooks against self-managed Kubernetes nodes.
//!
//! The crate reads top-down, one layer per group below; each layer imports only from the layers
//! under it (a test, `tests/architecture.rs`, holds the code to that). Data flows one way: the
//! command line is validated at the edge, which wires the services and the performer once and
//! starts a run; each run evaluates the playbook in a sandboxed Rhai engine whose primitives
//! turn calls into effects; every effect crosses the one effects boundary (live, dry-run or
//! rehearsal) into the nodes over ssh or a cluster service, and is recorded in the plan and the
//! journal on the way.

// The edge: the command line, what it prints, and the one place that wires services.
pub mod app;
pub mod cli;
pub mod cmd;
pub mod output;
pub mod ui;
pub mod wiring;

// The runtime: the Rhai engine, `krun check` and `krun doc`, diagnostics, running a playbook.
pub mod runtime;

// The primitives: thin Rhai registrations, one file per namespace.
pub mod primitives;

// Judgement: preflight's findings and the disruption forecast, over what was read.
pub mod preflight;

// The effects boundary: effects, performers, the services they call, the ssh transport.
pub mod effects;

// Clients and domain: the Kubernetes API, etcd, ssh, the cluster simulator, what krun knows
// of nodes (packages, kubelet and containerd configuration) and of Kubernetes versions, and
// the playbook libraries a repository locks (git, versions, vendoring).
pub mod etcd;
pub mod host;
pub mod kube;
pub mod library;
pub mod model;
pub mod sim;
pub mod ssh;
pub mod versions;

// Base: the inventory, the plan and its journal, parameters, the local files a playbook may
// read, quoting, secrets, colours, errors.
pub mod error;
pub mod inventory;
pub mod journal;
pub mod local;
pub mod paint;
pub mod params;
pub mod plan;
pub mod quote;
pub mod secrets;
pub mod suggest;

pub use error::{Error, Result};
