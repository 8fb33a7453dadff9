//! krun's integration tests: one binary, shared fixtures.

mod architecture;
mod cli;
mod e2e;
mod etcd;
mod etcd_e2e;
mod kube;
mod library;
mod machines;
mod preflight;
mod prims;
mod sim;
mod ssh;
mod support;
mod walkthrough;
