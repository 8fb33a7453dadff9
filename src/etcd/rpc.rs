//! The etcd v3 gRPC calls krun makes, with their messages written out as `prost` types.
//!
//! Why by hand: generated bindings need `protoc` when krun is built (that is what made
//! `cargo install` fail on a machine with only Rust), or a generated file plus a regeneration
//! script to keep in step. krun makes eight calls; their messages are short and frozen by etcd's
//! compatibility promise (fields are only ever added, with new numbers), so each is written here
//! with only the fields krun reads or sends. Fields left out are skipped by the decoder, as
//! protobuf requires.
//!
//! Every field name and number below is etcd's, from `api/etcdserverpb/rpc.proto` and
//! `api/mvccpb/kv.proto` (etcd v3.5; the same numbers in 3.4, which added the learner fields).
//! The service paths are `/etcdserverpb.<Service>/<Method>` as declared in `rpc.proto`.

use http::uri::PathAndQuery;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `etcdserverpb.RangeRequest`: krun sends only `key` and `count_only` (a health read).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bool, tag = "9")]
    pub count_only: bool,
}

/// `etcdserverpb.RangeResponse`: only the count is read.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(int64, tag = "4")]
    pub count: i64,
}

/// `etcdserverpb.Member`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Member {
    /// `ID`
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    /// `peerURLs`
    #[prost(string, repeated, tag = "3")]
    pub peer_urls: Vec<String>,
    /// `clientURLs`
    #[prost(string, repeated, tag = "4")]
    pub client_urls: Vec<String>,
    /// `isLearner` (etcd 3.4+)
    #[prost(bool, tag = "5")]
    pub is_learner: bool,
}

/// `etcdserverpb.MemberListRequest`; `linearizable` (3.5+) stays false, as etcdctl sends it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberListRequest {}

/// `etcdserverpb.MemberListResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberListResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<Member>,
}

/// `etcdserverpb.MemberAddRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberAddRequest {
    /// `peerURLs`
    #[prost(string, repeated, tag = "1")]
    pub peer_urls: Vec<String>,
    /// `isLearner` (etcd 3.4+)
    #[prost(bool, tag = "2")]
    pub is_learner: bool,
}

/// `etcdserverpb.MemberAddResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberAddResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// The member added, with the id etcd gave it.
    #[prost(message, optional, tag = "2")]
    pub member: Option<Member>,
    /// The membership after the change.
    #[prost(message, repeated, tag = "3")]
    pub members: Vec<Member>,
}

/// `etcdserverpb.MemberRemoveRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberRemoveRequest {
    /// `ID`
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// `etcdserverpb.MemberRemoveResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberRemoveResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<Member>,
}

/// `etcdserverpb.MemberPromoteRequest` (etcd 3.4+).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberPromoteRequest {
    /// `ID`
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// `etcdserverpb.MemberPromoteResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MemberPromoteResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<Member>,
}

/// `etcdserverpb.StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusRequest {}

/// `etcdserverpb.StatusResponse` (fields 7–10 are etcd 3.4+).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, tag = "2")]
    pub version: String,
    /// `dbSize`
    #[prost(int64, tag = "3")]
    pub db_size: i64,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
    /// `raftIndex`
    #[prost(uint64, tag = "5")]
    pub raft_index: u64,
    /// `raftTerm`
    #[prost(uint64, tag = "6")]
    pub raft_term: u64,
    /// `raftAppliedIndex`
    #[prost(uint64, tag = "7")]
    pub raft_applied_index: u64,
    #[prost(string, repeated, tag = "8")]
    pub errors: Vec<String>,
    /// `dbSizeInUse`
    #[prost(int64, tag = "9")]
    pub db_size_in_use: i64,
    /// `isLearner`
    #[prost(bool, tag = "10")]
    pub is_learner: bool,
}

/// `etcdserverpb.SnapshotRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotRequest {}

/// `etcdserverpb.SnapshotResponse`: one chunk of the database; the last 32 bytes of the whole
/// stream are its SHA-256.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(uint64, tag = "2")]
    pub remaining_bytes: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub blob: Vec<u8>,
}

/// `etcdserverpb.MoveLeaderRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MoveLeaderRequest {
    /// `targetID`
    #[prost(uint64, tag = "1")]
    pub target_id: u64,
}

/// `etcdserverpb.MoveLeaderResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct MoveLeaderResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// The calls, on one endpoint's channel. Cloning is cheap and shares the channel.
#[derive(Clone)]
pub(crate) struct Rpc {
    grpc: tonic::client::Grpc<Channel>,
}

impl Rpc {
    pub(crate) fn new(channel: Channel) -> Self {
        Rpc {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))
    }

    async fn unary<Req, Resp>(&mut self, path: &'static str, request: Req) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.ready().await?;
        let response = self
            .grpc
            .unary(
                Request::new(request),
                PathAndQuery::from_static(path),
                ProstCodec::default(),
            )
            .await?;
        Ok(response.into_inner())
    }

    /// `KV.Range` with `count_only`: a linearizable read that carries no data.
    pub(crate) async fn count(&mut self, key: &str) -> Result<RangeResponse, Status> {
        let request = RangeRequest {
            key: key.as_bytes().to_vec(),
            count_only: true,
        };
        self.unary("/etcdserverpb.KV/Range", request).await
    }

    pub(crate) async fn member_list(&mut self) -> Result<MemberListResponse, Status> {
        self.unary("/etcdserverpb.Cluster/MemberList", MemberListRequest {})
            .await
    }

    pub(crate) async fn member_add(
        &mut self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<MemberAddResponse, Status> {
        let request = MemberAddRequest {
            peer_urls,
            is_learner,
        };
        self.unary("/etcdserverpb.Cluster/MemberAdd", request).await
    }

    pub(crate) async fn member_remove(&mut self, id: u64) -> Result<MemberRemoveResponse, Status> {
        self.unary(
            "/etcdserverpb.Cluster/MemberRemove",
            MemberRemoveRequest { id },
        )
        .await
    }

    pub(crate) async fn member_promote(
        &mut self,
        id: u64,
    ) -> Result<MemberPromoteResponse, Status> {
        self.unary(
            "/etcdserverpb.Cluster/MemberPromote",
            MemberPromoteRequest { id },
        )
        .await
    }

    pub(crate) async fn status(&mut self) -> Result<StatusResponse, Status> {
        self.unary("/etcdserverpb.Maintenance/Status", StatusRequest {})
            .await
    }

    pub(crate) async fn move_leader(
        &mut self,
        target_id: u64,
    ) -> Result<MoveLeaderResponse, Status> {
        self.unary(
            "/etcdserverpb.Maintenance/MoveLeader",
            MoveLeaderRequest { target_id },
        )
        .await
    }

    /// `Maintenance.Snapshot`: a server stream of database chunks.
    pub(crate) async fn snapshot(&mut self) -> Result<Streaming<SnapshotResponse>, Status> {
        self.ready().await?;
        let response = self
            .grpc
            .server_streaming(
                Request::new(SnapshotRequest {}),
                PathAndQuery::from_static("/etcdserverpb.Maintenance/Snapshot"),
                ProstCodec::default(),
            )
            .await?;
        Ok(response.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Bytes as etcd's Go encoder writes them, built field by field from `rpc.proto`'s numbers:
    /// a hand-written type with a wrong number would decode these into the wrong field.
    #[test]
    fn status_response_decodes_etcd_field_numbers() {
        let mut wire = Vec::new();
        // header (1) { member_id (2) = 7 }
        wire.extend_from_slice(&[0x0a, 0x02, 0x10, 0x07]);
        // version (2) = "3.5.1"
        wire.extend_from_slice(&[0x12, 0x05]);
        wire.extend_from_slice(b"3.5.1");
        // dbSize (3) = 20480, leader (4) = 7, raftIndex (5) = 9, raftTerm (6) = 2
        wire.extend_from_slice(&[0x18, 0x80, 0xa0, 0x01, 0x20, 0x07, 0x28, 0x09, 0x30, 0x02]);
        // raftAppliedIndex (7) = 9, errors (8) = "NOSPACE", dbSizeInUse (9) = 16384,
        // isLearner (10) = true
        wire.extend_from_slice(&[0x38, 0x09, 0x42, 0x07]);
        wire.extend_from_slice(b"NOSPACE");
        wire.extend_from_slice(&[0x48, 0x80, 0x80, 0x01, 0x50, 0x01]);
        // storageVersion (11, 3.6), unknown to krun, must be skipped
        wire.extend_from_slice(&[0x5a, 0x03]);
        wire.extend_from_slice(b"3.6");

        let status = StatusResponse::decode(wire.as_slice()).unwrap();
        assert_eq!(status.header.unwrap().member_id, 7);
        assert_eq!(status.version, "3.5.1");
        assert_eq!(
            (
                status.db_size,
                status.leader,
                status.raft_index,
                status.raft_term
            ),
            (20480, 7, 9, 2)
        );
        assert_eq!(status.raft_applied_index, 9);
        assert_eq!(status.errors, ["NOSPACE"]);
        assert_eq!(status.db_size_in_use, 16384);
        assert!(status.is_learner);
    }

    #[test]
    fn member_add_request_encodes_etcd_field_numbers() {
        let request = MemberAddRequest {
            peer_urls: vec!["https://a:2380".to_owned()],
            is_learner: true,
        };
        let mut expected = vec![0x0a, 14];
        expected.extend_from_slice(b"https://a:2380");
        expected.extend_from_slice(&[0x10, 0x01]);
        assert_eq!(request.encode_to_vec(), expected);
        assert_eq!(
            RangeRequest {
                key: b"health".to_vec(),
                count_only: true
            }
            .encode_to_vec(),
            [&[0x0a, 6][..], b"health", &[0x48, 0x01]].concat()
        );
    }
}
