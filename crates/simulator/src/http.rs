//! Shared HTTP plumbing for the simulators: the accept loop (hyper-util auto builder, HTTP/1.1
//! keep-alive and h2c, graceful shutdown), the background handle [`RunningSimulator`], and
//! small body, path and response helpers.
//!
//! Knows nothing about any legacy app: a simulator plugs in through [`Handler`]. Depends on
//! nothing else in the crate.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The body type of every simulator answer.
pub(crate) type Body = Full<Bytes>;

/// Returned by a [`Handler`] to close the connection without answering (hyper aborts the
/// connection when a service fails).
#[derive(Debug, thiserror::Error)]
#[error("connection closed on purpose by an injected failure")]
pub(crate) struct DropConnection;

/// One simulator's request handling, cloned into every connection.
pub(crate) trait Handler: Clone + Send + Sync + 'static {
    /// Answers one request, or drops the connection.
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Body>, DropConnection>> + Send;
}

/// Accepts connections on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the open connections to finish their in-flight requests (idle keep-alive connections
/// are closed at once).
pub(crate) async fn serve<H: Handler>(
    handler: H,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Per-connection failures (aborted handshakes, descriptor exhaustion)
                        // must not end the server; back off a little and go on.
                        tracing::debug!(%error, "simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Nagle only adds latency to small JSON answers.
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { handler.handle(request).await }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "simulator connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A simulator serving in a background task. Dropping the handle stops it (in-flight requests
/// still finish); [`RunningSimulator::stop`] also waits until it has stopped.
#[derive(Debug)]
pub struct RunningSimulator {
    addr: SocketAddr,
    base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl RunningSimulator {
    /// Binds `127.0.0.1:0` and serves `handler` in a background task; `base_path` (already
    /// normalized, see [`normalize_base_path`]) only goes into [`RunningSimulator::base_url`].
    pub(crate) async fn spawn<H: Handler>(handler: H, base_path: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender also means "stop".
            let _ = rx.await;
        };
        let task = tokio::spawn(serve(handler, listener, shutdown));
        Ok(Self {
            addr,
            base_url: format!("http://{addr}{base_path}"),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The URL the legacy client is configured with, e.g. `http://127.0.0.1:PORT/api/v1`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The socket address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits until in-flight requests have finished.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "simulator stopped with an error"),
                Err(error) => tracing::debug!(%error, "simulator task failed"),
            }
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `""` for the root, otherwise `/seg/seg` without a trailing slash: `"api/v1/"` becomes
/// `"/api/v1"`.
pub(crate) fn normalize_base_path(base_path: &str) -> String {
    let trimmed = base_path.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// The percent-decoded segments of `path` below `base` (normalized), or `None` when the path
/// is not below `base`, has an empty segment (`//`, a trailing `/`) or decodes to invalid
/// UTF-8.
pub(crate) fn segments_below(path: &str, base: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix(base)?.strip_prefix('/')?;
    rest.split('/')
        .map(|segment| {
            if segment.is_empty() {
                return None;
            }
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .ok()
                .map(Cow::into_owned)
        })
        .collect()
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The body is larger than allowed.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("the request body could not be read: {0}")]
    Read(String),
}

/// Reads the whole body, refusing more than `limit` bytes. An oversized body is still read
/// to its end (up to 16 times `limit`) and thrown away, so that the refusal reaches the client
/// instead of a reset connection.
pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let drain_limit = limit.saturating_mul(16);
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| BodyError::Read(error.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > drain_limit {
            break;
        }
    }
    if seen > limit {
        Err(BodyError::TooLarge { limit })
    } else {
        Ok(Bytes::from(kept))
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// An answer without a body.
pub(crate) fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalized() {
        assert_eq!(normalize_base_path("/api/v1"), "/api/v1");
        assert_eq!(normalize_base_path("api/v1/"), "/api/v1");
        assert_eq!(normalize_base_path("/"), "");
        assert_eq!(normalize_base_path(""), "");
    }

    #[test]
    fn segments_are_decoded_and_strict() {
        let seg = |p| segments_below(p, "/api/v1");
        assert_eq!(
            seg("/api/v1/groups/G%2F1/members"),
            Some(vec![
                "groups".to_owned(),
                "G/1".to_owned(),
                "members".to_owned()
            ])
        );
        assert_eq!(seg("/api/v1/users/"), None);
        assert_eq!(seg("/api/v1//users"), None);
        assert_eq!(seg("/api/v1"), None);
        assert_eq!(seg("/api/v10/users"), None);
        assert_eq!(seg("/other/users"), None);
        assert_eq!(seg("/api/v1/users/%FF"), None);
        assert_eq!(segments_below("/users", ""), Some(vec!["users".to_owned()]));
    }
}

/// A list query split into its two paging parameters (as given) and the declared filters.
#[derive(Debug, Default)]
pub(crate) struct SplitQuery {
    /// The first paging parameter (page or offset), if sent.
    pub(crate) first: Option<String>,
    /// The second paging parameter (page size or limit), if sent.
    pub(crate) second: Option<String>,
    /// The declared filters that were sent.
    pub(crate) filters: std::collections::HashMap<&'static str, String>,
}

/// A list query refused: an unknown or repeated parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadQuery {
    /// A parameter given twice.
    #[error("query parameter {0:?} is given more than once")]
    Repeated(String),
    /// A parameter the call does not take.
    #[error("unknown query parameter {0:?}")]
    Unknown(String),
}

/// Splits a list query; an unknown or repeated parameter is refused.
pub(crate) fn split_list_query(
    query: Option<&str>,
    paging: [&str; 2],
    filters: &[&'static str],
) -> Result<SplitQuery, BadQuery> {
    let mut out = SplitQuery::default();
    let repeated = |name: &str| BadQuery::Repeated(name.to_owned());
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = if name == paging[0] {
            &mut out.first
        } else if name == paging[1] {
            &mut out.second
        } else if let Some(filter) = filters.iter().find(|f| **f == name) {
            if out.filters.insert(filter, value.into_owned()).is_some() {
                return Err(repeated(filter));
            }
            continue;
        } else {
            return Err(BadQuery::Unknown(name.into_owned()));
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(repeated(&name));
        }
    }
    Ok(out)
}

/// Test support shared by the simulators' socket tests.
#[cfg(test)]
pub(crate) mod testing {
    use bytes::Bytes;
    use http::{HeaderMap, Method, Request, StatusCode, header};
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use serde_json::Value;

    /// Sends one request with exactly `headers` (plus a JSON content type when there is a
    /// body) and reads the whole answer: status, headers, JSON body (`Null` when empty).
    pub(crate) async fn send(
        client: &Client<HttpConnector, Full<Bytes>>,
        url: String,
        method: Method,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<(StatusCode, HeaderMap, Value), hyper_util::client::legacy::Error> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default()));
        let response = client.request(request.body(body).unwrap()).await?;
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Ok((status, headers, body))
    }
}
