//! Snapshots streamed from a member, verified by etcd's own checksum.
//!
//! etcd ends the snapshot stream with the SHA-256 of the database. Checking it catches a
//! truncated or corrupted transfer before anyone trusts the file as the backup taken "before
//! touching etcd". Writing to a file goes through a temporary name in the same directory, an
//! fsync and a rename, so a crash never leaves half a snapshot under the final name.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::error::{EtcdError, describe};
use super::member::MemberId;

/// A snapshot that was received completely and matched its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// The endpoint it was streamed from.
    pub endpoint: String,
    /// The member behind the endpoint.
    pub member_id: Option<MemberId>,
    /// Where it was written, when written to a file.
    pub path: Option<PathBuf>,
    /// Bytes written, including etcd's trailing 32-byte checksum (as `etcdctl snapshot save`).
    pub size: u64,
    /// SHA-256 of the database, hex, as etcd sent it.
    pub sha256: String,
}

/// Why streaming failed, and whether anything was written yet.
pub(crate) enum StreamFailure {
    /// Nothing was received or written; another endpoint may be tried.
    BeforeData(EtcdError),
    /// Part of the snapshot was written; the output is unusable.
    Midway(EtcdError),
}

const CHECKSUM_LEN: usize = 32;

/// Hashes everything but the last 32 bytes, which it keeps to compare at the end.
struct Checksum {
    hasher: Sha256,
    tail: Vec<u8>,
    total: u64,
}

impl Checksum {
    fn new() -> Self {
        Checksum {
            hasher: Sha256::new(),
            tail: Vec::with_capacity(2 * CHECKSUM_LEN),
            total: 0,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > CHECKSUM_LEN {
            let settled = self.tail.len() - CHECKSUM_LEN;
            self.hasher.update(&self.tail[..settled]);
            self.tail.drain(..settled);
        }
    }

    fn verify(self) -> Result<String, String> {
        if self.tail.len() < CHECKSUM_LEN {
            return Err(format!(
                "stream ended after {} bytes, before etcd's checksum; the snapshot is incomplete",
                self.total
            ));
        }
        let digest = self.hasher.finalize();
        if digest.as_slice() != self.tail.as_slice() {
            return Err(format!(
                "checksum mismatch: etcd sent {}, the received data hashes to {}",
                hex::encode(&self.tail),
                hex::encode(digest)
            ));
        }
        Ok(hex::encode(digest))
    }
}

/// Checks a snapshot file's content as etcd wrote it (the database followed by its SHA-256),
/// before anyone restores a cluster from it; returns the hex digest.
pub fn verify(content: &[u8]) -> Result<String, String> {
    let mut checksum = Checksum::new();
    checksum.update(content);
    checksum.verify()
}

/// Streams one member's snapshot into `out`, verifying the checksum at the end.
pub(crate) async fn stream<W: AsyncWrite + Unpin>(
    mut client: super::rpc::Rpc,
    endpoint: &str,
    out: &mut W,
    idle_timeout: Duration,
) -> Result<SnapshotInfo, StreamFailure> {
    let fail = |detail: String| EtcdError::Request {
        endpoint: endpoint.to_owned(),
        operation: "snapshot",
        detail,
    };
    let timed_out = || EtcdError::Timeout {
        endpoint: endpoint.to_owned(),
        operation: "snapshot",
        after: idle_timeout,
    };
    let mut responses = match tokio::time::timeout(idle_timeout, client.snapshot()).await {
        Err(_) => return Err(StreamFailure::BeforeData(timed_out())),
        Ok(Err(e)) => return Err(StreamFailure::BeforeData(fail(describe(&e)))),
        Ok(Ok(responses)) => responses,
    };
    let mut checksum = Checksum::new();
    let mut info = SnapshotInfo {
        endpoint: endpoint.to_owned(),
        member_id: None,
        path: None,
        size: 0,
        sha256: String::new(),
    };
    let mut first = true;
    loop {
        let next = match tokio::time::timeout(idle_timeout, responses.message()).await {
            Err(_) if first => return Err(StreamFailure::BeforeData(timed_out())),
            Err(_) => return Err(StreamFailure::Midway(timed_out())),
            Ok(Err(e)) if first => return Err(StreamFailure::BeforeData(fail(describe(&e)))),
            Ok(Err(e)) => return Err(StreamFailure::Midway(fail(describe(&e)))),
            Ok(Ok(next)) => next,
        };
        let Some(response) = next else { break };
        first = false;
        checksum.update(&response.blob);
        out.write_all(&response.blob)
            .await
            .map_err(|e| StreamFailure::Midway(fail(format!("writing failed: {e}"))))?;
    }
    if first {
        return Err(StreamFailure::BeforeData(fail(
            "the stream was empty".to_owned(),
        )));
    }
    out.flush()
        .await
        .map_err(|e| StreamFailure::Midway(fail(format!("writing failed: {e}"))))?;
    info.size = checksum.total;
    info.sha256 = checksum
        .verify()
        .map_err(|e| StreamFailure::Midway(fail(e)))?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(db: &[u8]) -> Vec<u8> {
        let mut data = db.to_vec();
        data.extend_from_slice(&Sha256::digest(db));
        data
    }

    #[test]
    fn checksum_holds_however_the_stream_is_chunked() {
        let db: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let data = stream_of(&db);
        for chunk in [1, 7, 31, 32, 33, 1000, data.len()] {
            let mut sum = Checksum::new();
            data.chunks(chunk).for_each(|c| sum.update(c));
            assert_eq!(
                sum.verify().unwrap(),
                hex::encode(Sha256::digest(&db)),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn corrupt_or_truncated_streams_are_rejected() {
        let mut data = stream_of(b"database pages");
        data[3] ^= 1;
        let mut sum = Checksum::new();
        sum.update(&data);
        assert!(sum.verify().unwrap_err().starts_with("checksum mismatch"));

        let mut sum = Checksum::new();
        sum.update(&[0; 20]);
        assert_eq!(
            sum.verify().unwrap_err(),
            "stream ended after 20 bytes, before etcd's checksum; the snapshot is incomplete"
        );
    }
}
