//! Kubernetes operations against the in-process simulator, with real kubectl as the reference.

mod nodes;
mod support;
