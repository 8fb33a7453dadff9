//! The runtime: the sandboxed Rhai engine, `krun check` and `krun doc`, playbook diagnostics,
//! and running a playbook once per node in batches.

pub mod check;
pub mod diagnostic;
pub mod doc;
pub mod engine;
pub mod run;
pub mod settings;
pub mod setup;
pub mod shape;
