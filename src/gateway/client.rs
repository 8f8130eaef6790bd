//! The innermost service of a gateway: one attempt of one call over a kept-alive connection
//! (`pool`), its answer read whole (bounded) and its retry hint read once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use mapping::RetryAfterFormat;
use tower::{BoxError, Service};

use super::pool::Pool;

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
    pub name: Arc<str>,
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
    pub retry_hint: Option<(Arc<str>, RetryAfterFormat)>,
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
    pool: Pool,
}

impl SendOnce {
    /// Over a pool of at most `idle` idle connections per host, each closed after 30 s
    /// unused; connecting gives up after `timeout`.
    pub fn new(idle: usize, timeout: Duration) -> Self {
        SendOnce {
            pool: Pool::new(idle, Duration::from_secs(30), timeout),
        }
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
        let pool = self.pool.clone();
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
            let (resp, lent) = pool.send(req).await?;
            let (parts, body): (_, hyper::body::Incoming) = resp.into_parts();
            let retry_after = a.retry_hint.as_ref().and_then(|(name, format)| {
                let value = parts.headers.get(&**name)?.to_str().ok()?;
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
            let body = read_whole(body).await?;
            pool.give_back(lent);
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

/// The whole of an answer's body, at most [`MAX_ANSWER_BYTES`]: an answer that came in one
/// piece, as most do, is that piece, not a copy of it; one in several pieces is copied once
/// into a buffer of its size.
async fn read_whole<B>(body: B) -> Result<Bytes, BoxError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(Limited::new(body, MAX_ANSWER_BYTES));
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        match first {
            None => first = Some(data),
            Some(_) => pieces.push(data),
        }
    }
    let Some(first) = first else {
        return Ok(Bytes::new());
    };
    if pieces.is_empty() {
        return Ok(first);
    }
    let len = first.len() + pieces.iter().map(Bytes::len).sum::<usize>();
    let mut all = bytes::BytesMut::with_capacity(len);
    for piece in std::iter::once(&first).chain(&pieces) {
        all.extend_from_slice(piece);
    }
    Ok(all.freeze())
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
        let answer = send_once(method, format!("http://{addr}/users/7/lock")).await;
        assert_eq!(answer.unwrap().status, StatusCode::NO_CONTENT);
        server.await.unwrap()
    }

    /// One attempt of a call without headers or body to `uri`.
    async fn send_once(method: Method, uri: String) -> Result<LegacyResponse, BoxError> {
        let call = Call {
            name: "users.call".into(),
            method,
            uri: uri.parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            idempotent: true,
            retry_hint: None,
        };
        SendOnce::new(1, Duration::from_secs(30))
            .call(Attempt {
                call: Arc::new(call),
                started: Instant::now(),
                attempt: 1,
            })
            .await
    }

    /// What `SendOnce` makes of an answer written to the socket in `pieces`.
    async fn answer_of(pieces: Vec<Vec<u8>>) -> Result<LegacyResponse, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await.unwrap();
            for piece in pieces {
                if sock.write_all(&piece).await.is_err() {
                    break;
                }
            }
        });
        let answer = send_once(Method::GET, format!("http://{addr}/users/7")).await;
        server.abort();
        answer
    }

    #[tokio::test]
    async fn an_answer_in_pieces_is_read_whole_and_one_too_large_is_refused() {
        let frames = |pieces: &[&'static str]| {
            let frames: Vec<Result<_, std::convert::Infallible>> = pieces
                .iter()
                .map(|p| Ok(hyper::body::Frame::data(Bytes::from_static(p.as_bytes()))))
                .collect();
            http_body_util::StreamBody::new(futures_util::stream::iter(frames))
        };
        let whole = read_whole(frames(&["{\"id\":", "7,\"name\"", ":\"Ada\"}"])).await;
        assert_eq!(
            whole.unwrap(),
            Bytes::from_static(br#"{"id":7,"name":"Ada"}"#)
        );
        assert_eq!(read_whole(frames(&[])).await.unwrap(), Bytes::new());

        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len()).into_bytes();
        let pieces = vec![head, chunk("{\"id\":"), chunk("7}"), b"0\r\n\r\n".to_vec()];
        let answer = answer_of(pieces).await.unwrap();
        assert_eq!(answer.body, Bytes::from_static(br#"{"id":7}"#));

        let one = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        assert_eq!(
            answer_of(vec![one]).await.unwrap().body,
            Bytes::from_static(b"{}")
        );

        let big = MAX_ANSWER_BYTES + 1;
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {big}\r\n\r\n").into_bytes();
        let err = answer_of(vec![head, vec![b' '; big]]).await.unwrap_err();
        assert!(
            err.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some(),
            "{err}"
        );
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
