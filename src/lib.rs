//! krun runs Rhai upgrade playbooks against self-managed Kubernetes nodes.

pub mod error;
pub mod etcd;
pub mod sim;
pub mod ssh;

pub use error::{Error, Result};
