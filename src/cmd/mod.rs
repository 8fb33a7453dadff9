//! The subcommands, one file each; [`crate::app`] dispatches to them.

pub mod check;
pub mod completions;
pub mod confirm;
pub mod init;
pub mod lib;
pub mod preflight;
pub mod resume;
pub mod run;
pub mod runs;
pub mod unlock;
