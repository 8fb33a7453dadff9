//! Kubernetes operations against the in-process simulator, with real kubectl as the reference.

mod bench;
mod drain;
mod lock;
mod nodes;
mod parity;
mod playbook;
mod support;
mod verify;
