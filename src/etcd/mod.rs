//! etcd membership, health and snapshots for rolling etcd upgrades, behind a quorum guard.
//!
//! # Why the gRPC API and not `etcdctl -w json`
//!
//! Both speak the same etcd v3 API; the difference is where they run and what comes back.
//!
//! - **Nothing to find on the node.** kubeadm runs etcd as a static pod, so the masters usually
//!   have no `etcdctl` on the host, or one of another version than the server. gRPC from krun
//!   needs only a network path to port 2379, which the ssh connection already provides (see
//!   [`Dialer`]).
//! - **Typed answers, typed failures.** Member ids arrive as `u64`, not as decimal text to be
//!   re-printed in hex for `member remove`; etcd's refusals arrive as gRPC status messages per
//!   endpoint (so "learner not in sync with leader" is matched on etcd's message, not on a CLI's
//!   stderr wording that changed between 3.4 and 3.5).
//! - **Per-endpoint control.** status and health are asked of each member on its own channel
//!   with krun's timeout, so a dead member is reported as that member, and a membership write
//!   goes once, to a member just seen healthy.
//! - **Snapshots stream to krun** and are verified with the checksum etcd appends, then written
//!   atomically, instead of landing on a node's disk for a second copy step.
//! - **Certificates stay in memory.** The CA, cert and key are read (over ssh if need be) and
//!   handed over as bytes; no key file is written on the operator's machine, and none appears on
//!   a command line.
//!
//! The costs: tonic and prost are compiled in; the eight calls krun makes are written out in
//! `rpc.rs` from etcd's `rpc.proto`, so building needs no `protoc`. TLS uses rustls with ring, so
//! no system TLS library is linked.
//!
//! # Shape
//!
//! [`Client`] holds one lazy channel per configured endpoint. Reads (`members`, `status`,
//! `health`, `cluster_view`, `snapshot`) are safe in a dry-run. Membership writes go through the
//! [`guard`]: `plan_remove` / `plan_add` read the cluster and return the guard's [`Approval`]
//! (with the before/after membership and quorum arithmetic), and `apply` carries one out;
//! `remove_member` / `add_member` do both. A refused change is [`EtcdError::Refused`], which
//! becomes exit code 3.

pub mod call;
mod client;
mod config;
mod connect;
mod endpoint;
mod error;
pub mod guard;
mod member;
pub mod restore;
mod rpc;
mod snapshot;

pub use crate::inventory::{EtcdSection, KUBEADM_CA, KUBEADM_CERT, KUBEADM_KEY};
pub use call::Call;
pub use client::{Client, LeaderChange, MembershipChange, Promotion, initial_cluster};
pub use config::{Config, TlsFiles};
pub use connect::{DialFuture, Dialer, Stream, TcpDialer};
pub use endpoint::{EndpointHealth, EndpointStatus, ServerStatus};
pub use error::EtcdError;
pub use guard::{Approval, Arithmetic, ClusterView, GuardMode, Health, MemberState, Refusal};
pub use member::{Member, MemberId};
pub use snapshot::{SnapshotInfo, verify as verify_snapshot};
