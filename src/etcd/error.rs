//! What can go wrong talking to etcd, each naming the endpoint and the operation tried.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

use super::guard::Refusal;
use super::member::MemberId;

/// An etcd operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd configuration: {0}")]
    Config(String),

    #[error("etcd endpoint {endpoint}: {operation} failed: {detail}")]
    Request {
        endpoint: String,
        operation: &'static str,
        detail: String,
    },

    #[error("etcd endpoint {endpoint}: {operation} got no answer within {after:?}")]
    Timeout {
        endpoint: String,
        operation: &'static str,
        after: Duration,
    },

    #[error("etcd: {operation} failed on every endpoint: {}", .attempts.join("; "))]
    NoEndpointAnswered {
        operation: &'static str,
        attempts: Vec<String>,
    },

    #[error("etcd member {name_or_id:?} not found (members: {members})")]
    MemberNotFound { name_or_id: String, members: String },

    #[error(
        "etcd member {name_or_id:?} is ambiguous: it is the name of member {by_name} and the id \
         of member {by_id}; use the hex id"
    )]
    AmbiguousMember {
        name_or_id: String,
        by_name: MemberId,
        by_id: MemberId,
    },

    #[error(transparent)]
    Refused(#[from] Box<Refusal>),

    #[error("etcd: cannot make {member} the leader: {reason}")]
    BadLeaderTarget { member: String, reason: String },

    #[error("etcd: no endpoint reaches the leader {leader} (tried: {tried})")]
    LeaderUnreachable { leader: String, tried: String },

    #[error("etcd: no leader elected (asked {endpoints})")]
    NoLeader { endpoints: String },

    #[error("etcd: promoting {member} did not succeed within {after:?}: {last}")]
    PromoteTimedOut {
        member: String,
        after: Duration,
        last: String,
    },

    #[error("etcd cluster not healthy after {after:?}: {unhealthy}")]
    NotHealthy { after: Duration, unhealthy: String },

    #[error("etcd snapshot to {} failed: {detail}", .path.display())]
    Snapshot { path: PathBuf, detail: String },
}

impl EtcdError {
    pub(crate) fn request(endpoint: &str, operation: &'static str, err: &tonic::Status) -> Self {
        EtcdError::Request {
            endpoint: endpoint.to_owned(),
            operation,
            detail: describe(err),
        }
    }
}

/// A gRPC failure as an operator wants it: etcd's own message, then the transport causes.
pub(crate) fn describe(status: &tonic::Status) -> String {
    let mut text = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_owned()
    };
    let mut source = status.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // tonic wraps causes in an error that only says "transport error": noise here.
        if !text.contains(&cause_text) && cause_text != "transport error" {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The gRPC status message: etcd's own words when the failure came from etcd.
pub(crate) fn server_message(status: &tonic::Status) -> &str {
    status.message()
}

impl From<EtcdError> for crate::Error {
    fn from(err: EtcdError) -> Self {
        let message = err.to_string();
        match err {
            EtcdError::Refused(_) => crate::Error::refused(message),
            EtcdError::Config(_)
            | EtcdError::MemberNotFound { .. }
            | EtcdError::AmbiguousMember { .. }
            | EtcdError::BadLeaderTarget { .. } => crate::Error::input(message),
            _ => crate::Error::runtime(message),
        }
    }
}
