//! The one error type that reaches the command line, and the exit code each kind maps to.
//!
//! Scripts depend on the codes: 0 success, 1 a step failed at runtime, 2 invalid input,
//! 3 refused by a safety guard. Modules keep their own typed errors and convert at the edge.

use std::fmt;

/// What kind of failure ended the command; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A step failed while running (exit 1).
    Runtime,
    /// The input was invalid: usage, a playbook that does not compile, a bad inventory (exit 2).
    Input,
    /// A safety guard refused the operation (exit 3).
    Refused,
    /// The operator interrupted the run (Ctrl-C, SIGTERM): exit 130, as shells report SIGINT.
    Interrupted,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Runtime => 1,
            Kind::Input => 2,
            Kind::Refused => 3,
            Kind::Interrupted => 130,
        }
    }
}

/// An error with its kind and a message meant for the operator.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Runtime,
            message: message.into(),
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Input,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Refused,
            message: message.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
