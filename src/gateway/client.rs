//! The innermost service of a gateway: one attempt of one call over a pooled hyper-util
//! client, its answer read whole (bounded) and its retry hint read once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mapping::RetryAfterFormat;
use tower::{BoxError, Service};

/// Largest legacy answer read; a larger one is an error (a misbehaving upstream cannot
/// exhaust the sidecar's memory).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One call, as the stack carries it: cheap to clone (the retry layer keeps a copy to send
/// it again), the request itself built anew for each attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// What is sent, the same for every attempt.
    pub call: Arc<Call>,
    /// When the first attempt started (retries stop when their waits no longer fit).
    pub started: Instant,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// A call as the legacy app receives it.
#[derive(Debug)]
pub struct Call {
    /// The call's name in logs and metrics (`users.get`).
    pub name: String,
    /// HTTP method.
    pub method: Method,
    /// Full URI.
    pub uri: Uri,
    /// Headers (secret values marked sensitive).
    pub headers: HeaderMap,
    /// JSON body, empty for none.
    pub body: Bytes,
    /// Whether the call may be sent again after a failure.
    pub idempotent: bool,
    /// The response header holding the legacy app's retry hint, and how it is written.
    pub retry_hint: Option<(String, RetryAfterFormat)>,
}

/// An answer from the legacy app, body fully read.
#[derive(Debug, Clone)]
pub struct LegacyResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// The retry hint of the answer, in seconds, when the mapping names its header and the
    /// answer has one.
    pub retry_after: Option<u64>,
    /// Body bytes.
    pub body: Bytes,
    /// The target of the answer's `Link: <…>; rel="next"` header, if it has one.
    pub link_next: Option<String>,
    /// The answer's `ETag` header (the record's version, for `If-Match`), if it has one.
    pub etag: Option<String>,
}

/// Sends one attempt.
#[derive(Clone, Debug)]
pub struct SendOnce {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl SendOnce {
    /// Over a pool of at most `idle` idle connections; connecting gives up after `timeout`.
    pub fn new(idle: usize, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(idle.max(1))
            .build(connector);
        SendOnce { client }
    }
}

impl Service<Attempt> for SendOnce {
    type Response = LegacyResponse;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<LegacyResponse, BoxError>> + std::marker::Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, a: Attempt) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let a = &a.call;
            let mut req = Request::builder()
                .method(a.method.clone())
                .uri(a.uri.clone())
                .body(Full::new(a.body.clone()))?;
            *req.headers_mut() = a.headers.clone();
            // RFC 9110 §8.6: a request whose method expects content says when it has none
            // (some servers, WEBrick among them, answer 411 otherwise).
            if a.body.is_empty() && matches!(a.method, Method::POST | Method::PUT | Method::PATCH) {
                req.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            }
            let resp: Response<hyper::body::Incoming> = client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let retry_after = a.retry_hint.as_ref().and_then(|(name, format)| {
                let value = parts.headers.get(name.as_str())?.to_str().ok()?;
                format.seconds(value, unix_now())
            });
            let link_next = parts
                .headers
                .get_all(http::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(mapping::apply::link_next);
            let etag = (parts.headers.get(http::header::ETAG))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok(LegacyResponse {
                status: parts.status,
                retry_after,
                body,
                link_next,
                etag,
            })
        })
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// The request head the legacy app receives for a call without a body, over a real socket.
    async fn head_of(method: Method) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "the connection closed before the head ended");
                head.extend_from_slice(&buf[..n]);
            }
            sock.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap().to_ascii_lowercase()
        });
        let call = Call {
            name: "users.deactivate".into(),
            method,
            uri: format!("http://{addr}/users/7/lock").parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            idempotent: true,
            retry_hint: None,
        };
        let answer = SendOnce::new(1, Duration::from_secs(30))
            .call(Attempt {
                call: Arc::new(call),
                started: Instant::now(),
                attempt: 1,
            })
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        server.await.unwrap()
    }

    #[tokio::test]
    async fn a_write_without_a_body_says_content_length_0_and_a_read_does_not() {
        for method in [Method::POST, Method::PUT, Method::PATCH] {
            let head = head_of(method.clone()).await;
            assert!(
                head.contains("\r\ncontent-length: 0\r\n"),
                "{method}: {head}"
            );
        }
        for method in [Method::GET, Method::DELETE] {
            let head = head_of(method.clone()).await;
            assert!(!head.contains("content-length"), "{method}: {head}");
        }
    }
}
