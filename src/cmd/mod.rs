//! The subcommands, one file each; [`crate::app`] dispatches to them.

pub mod check;
pub mod confirm;
pub mod preflight;
pub mod resume;
pub mod run;
pub mod runs;
pub mod unlock;
