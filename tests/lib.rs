//! krun's integration tests: one binary, shared fixtures.

mod cli;
mod e2e;
mod etcd;
mod kube;
mod sim;
mod ssh;
mod support;
