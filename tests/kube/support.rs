//! The simulator fixture shared with the other test areas.

pub use crate::support::sim::*;
