//! krun's integration tests: one binary, shared fixtures.

mod cli;
mod kube;
mod sim;
