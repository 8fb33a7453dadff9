//! krun's integration tests: one binary, shared fixtures.

mod cli;
mod e2e;
mod etcd;
mod sim;
mod ssh;
mod support;
