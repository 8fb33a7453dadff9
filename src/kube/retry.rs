//! Retrying what is safe to repeat. A request that only reads (GET: a get, a list, the start
//! of a watch) and was answered "try again" (429, 500, 502, 503, 504), or never got an answer
//! (the connection failed), is sent again a few times with a growing pause: an API server
//! that hiccups (a leader election in etcd, a restarting apiserver behind the load balancer)
//! must not fail an upgrade that is half done.
//!
//! Writes are never retried here, because only the caller knows whether doing one twice is
//! harmless: the eviction loop retries evictions with the budget in view, and cordon and
//! uncordon read the node again before they write (see `node.rs`).

use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;

/// Retries after the first attempt.
const RETRIES: u32 = 4;
/// The first pause; each next one doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// The longest `Retry-After` honoured; a server asking for more is retried at this pace.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The policy of the kube client's retry layer (one state per request).
#[derive(Debug, Clone, Default)]
pub struct ReadRetry {
    attempts: u32,
}

/// Whether an answer with this status may change when asked again.
pub fn transient(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Whether a failed request could succeed when made again: answered "try again", or never
/// answered at all.
pub fn transient_error(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => transient(status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

impl ReadRetry {
    fn pause(&self, retry_after: Option<Duration>) -> Duration {
        let doubled = FIRST_PAUSE.saturating_mul(1 << (self.attempts - 1).min(8));
        retry_after.map_or(doubled.min(MAX_PAUSE), |asked| asked.min(MAX_RETRY_AFTER))
    }
}

impl<B, E: std::fmt::Display> tower::retry::Policy<Request<Body>, Response<B>, E> for ReadRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut Request<Body>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        if request.method() != Method::GET || self.attempts >= RETRIES {
            return None;
        }
        let (why, retry_after) = match result {
            Ok(response) if transient(response.status().as_u16()) => {
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                (response.status().to_string(), retry_after)
            }
            Ok(_) => return None,
            Err(error) => (error.to_string(), None),
        };
        self.attempts += 1;
        let pause = self.pause(retry_after);
        tracing::debug!(
            "GET {} answered {why}; asking again in {} ms (retry {} of {RETRIES})",
            request.uri(),
            pause.as_millis(),
            self.attempts
        );
        Some(tokio::time::sleep(pause))
    }

    fn clone_request(&mut self, request: &Request<Body>) -> Option<Request<Body>> {
        if request.method() != Method::GET {
            return None;
        }
        let mut copy = Request::builder()
            .method(Method::GET)
            .uri(request.uri().clone())
            .version(request.version())
            .body(request.body().try_clone()?)
            .ok()?;
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use tower::retry::Policy;

    use super::*;

    fn request(method: Method) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri("/api/v1/nodes/n1")
            .body(Body::empty())
            .unwrap()
    }

    fn answer(code: u16) -> Result<Response<()>, String> {
        Ok(Response::builder().status(code).body(()).unwrap())
    }

    #[tokio::test]
    async fn reads_are_retried_on_transient_answers_only() {
        let mut policy = ReadRetry::default();
        let mut get = request(Method::GET);
        assert!(policy.retry(&mut get, &mut answer(503)).is_some());
        assert!(policy.retry(&mut get, &mut answer(404)).is_none());
        assert!(policy.retry(&mut get, &mut answer(200)).is_none());
        assert!(policy.retry(&mut get, &mut answer(403)).is_none());
        let mut refused: Result<Response<()>, String> = Err("connection refused".into());
        assert!(policy.retry(&mut get, &mut refused).is_some());
        assert!(Policy::<_, Response<()>, String>::clone_request(&mut policy, &get).is_some());
    }

    #[test]
    fn writes_are_never_retried() {
        let mut policy = ReadRetry::default();
        for method in [Method::POST, Method::PATCH, Method::PUT, Method::DELETE] {
            let mut write = request(method);
            assert!(policy.retry(&mut write, &mut answer(503)).is_none());
            assert!(
                Policy::<_, Response<()>, String>::clone_request(&mut policy, &write).is_none()
            );
        }
    }

    #[tokio::test]
    async fn retries_are_bounded_and_back_off() {
        let mut policy = ReadRetry::default();
        let mut get = request(Method::GET);
        let mut pauses = Vec::new();
        while policy.retry(&mut get, &mut answer(500)).is_some() {
            pauses.push(policy.pause(None));
        }
        assert_eq!(
            pauses,
            [200, 400, 800, 1600].map(Duration::from_millis).to_vec()
        );
        let asked = ReadRetry { attempts: 1 };
        assert_eq!(asked.pause(Some(Duration::from_secs(60))), MAX_RETRY_AFTER);
    }
}
