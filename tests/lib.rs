//! krun's integration tests: one binary, shared fixtures.

mod etcd;
mod support;
