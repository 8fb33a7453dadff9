//! What each endpoint reports: its server status, and whether it serves a linearizable read.

use std::time::Duration;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use super::error::EtcdError;
use super::member::MemberId;

/// One member's view of itself and the cluster, from the Maintenance Status call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    /// The member that answered.
    pub member_id: MemberId,
    /// etcd server version, e.g. `3.4.23`.
    pub version: String,
    /// The leader this member follows; 0 when it knows none.
    pub leader: MemberId,
    pub raft_index: u64,
    pub raft_term: u64,
    pub raft_applied_index: u64,
    /// Backend database size in bytes (including free pages).
    pub db_size: i64,
    /// Bytes of the database actually in use.
    pub db_size_in_use: i64,
    pub is_learner: bool,
    /// Alarms and other problems the member reports about itself (e.g. NOSPACE).
    pub errors: Vec<String>,
}

impl ServerStatus {
    pub(crate) fn from_response(response: super::rpc::StatusResponse) -> Self {
        ServerStatus {
            member_id: MemberId(response.header.map_or(0, |h| h.member_id)),
            version: response.version,
            leader: MemberId(response.leader),
            raft_index: response.raft_index,
            raft_term: response.raft_term,
            raft_applied_index: response.raft_applied_index,
            db_size: response.db_size,
            db_size_in_use: response.db_size_in_use,
            is_learner: response.is_learner,
            errors: response.errors,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

/// The status of one endpoint, or why it could not be had.
#[derive(Debug)]
pub struct EndpointStatus {
    pub endpoint: String,
    pub result: Result<ServerStatus, EtcdError>,
}

impl Serialize for EndpointStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("EndpointStatus", 3)?;
        s.serialize_field("endpoint", &self.endpoint)?;
        s.serialize_field("status", &self.result.as_ref().ok())?;
        s.serialize_field(
            "error",
            &self.result.as_ref().err().map(ToString::to_string),
        )?;
        s.end()
    }
}

/// Whether one endpoint answers like `etcdctl endpoint health`: a linearizable read (which
/// needs a leader and a quorum) and no alarms. Learners do not serve linearizable reads, so for
/// them a status answer counts.
#[derive(Debug)]
pub struct EndpointHealth {
    pub endpoint: String,
    /// The member behind the endpoint, when it answered at all.
    pub member_id: Option<MemberId>,
    pub is_learner: bool,
    pub result: Result<(), EtcdError>,
    /// How long the check took (shown, never asserted on).
    pub took: Duration,
}

impl EndpointHealth {
    pub fn is_healthy(&self) -> bool {
        self.result.is_ok()
    }
}

impl Serialize for EndpointHealth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("EndpointHealth", 6)?;
        s.serialize_field("endpoint", &self.endpoint)?;
        s.serialize_field("member_id", &self.member_id)?;
        s.serialize_field("is_learner", &self.is_learner)?;
        s.serialize_field("healthy", &self.is_healthy())?;
        s.serialize_field(
            "error",
            &self.result.as_ref().err().map(ToString::to_string),
        )?;
        s.serialize_field(
            "took_ms",
            &u64::try_from(self.took.as_millis()).unwrap_or(u64::MAX),
        )?;
        s.end()
    }
}
