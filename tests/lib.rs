//! krun's integration tests: one binary, shared fixtures.
mod sim;
