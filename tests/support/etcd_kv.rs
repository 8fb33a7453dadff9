//! A minimal etcd KV client for tests that write and read keys themselves (a writer during a
//! rolling upgrade, the check that no acknowledged key was lost). krun never writes keys, so
//! these messages are here rather than in krun; field numbers are etcd's `rpc.proto` and
//! `kv.proto`.

use std::collections::BTreeSet;
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {}

#[derive(Clone, PartialEq, prost::Message)]
struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    range_end: Vec<u8>,
    #[prost(bool, tag = "8")]
    keys_only: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RangeResponse {
    #[prost(message, repeated, tag = "2")]
    kvs: Vec<KeyValue>,
    #[prost(bool, tag = "3")]
    more: bool,
}

/// One endpoint's KV service over plain http.
#[derive(Clone)]
pub struct Kv {
    grpc: tonic::client::Grpc<Channel>,
}

impl Kv {
    /// A lazy channel to `url`: nothing is dialled before the first request.
    pub fn connect(url: &str, timeout: Duration) -> Self {
        let channel = Endpoint::from_shared(url.to_owned())
            .expect("endpoint URL")
            .timeout(timeout)
            .connect_timeout(timeout)
            .connect_lazy();
        Kv {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    async fn unary<Req, Resp>(&mut self, path: &'static str, request: Req) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
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

    pub async fn put(&mut self, key: &str, value: &str) -> Result<(), Status> {
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        };
        let _: PutResponse = self.unary("/etcdserverpb.KV/Put", request).await?;
        Ok(())
    }

    /// Every key under `prefix`, read linearizably (etcd's default).
    pub async fn keys_with_prefix(&mut self, prefix: &str) -> Result<BTreeSet<String>, Status> {
        let request = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            keys_only: true,
        };
        let response: RangeResponse = self.unary("/etcdserverpb.KV/Range", request).await?;
        assert!(!response.more, "no limit was set, so etcd sends every key");
        Ok(response
            .kvs
            .into_iter()
            .map(|kv| String::from_utf8(kv.key).expect("test keys are text"))
            .collect())
    }
}

/// The keys under `prefix` from the first of `urls` that answers.
pub async fn keys_with_prefix(urls: &[String], prefix: &str) -> BTreeSet<String> {
    let mut failures = Vec::new();
    for url in urls {
        match Kv::connect(url, Duration::from_secs(10))
            .keys_with_prefix(prefix)
            .await
        {
            Ok(keys) => return keys,
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    panic!("no endpoint answered the range read: {failures:?}");
}

/// etcd's end of a prefix range: the prefix with its last byte below 0xff incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
