//! The tower client stack over a pooled hyper-util client.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use super::LegacyError;
use crate::mapping::PreparedCall;

/// An answer from the legacy app, body fully read.
#[derive(Debug, Clone)]
pub struct LegacyResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

/// Largest legacy answer read; a larger one is an error (a misbehaving upstream cannot
/// exhaust the sidecar's memory).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

type Inner = BoxCloneSyncService<Request<Full<Bytes>>, LegacyResponse, tower::BoxError>;

/// A client for one tenant's legacy base URL.
#[derive(Clone)]
pub struct LegacyClient {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    base_path: String,
    timeout: Duration,
    svc: Inner,
}

impl std::fmt::Debug for LegacyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyClient")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

impl LegacyClient {
    /// A client for `base_url` (plain `http://`; the legacy app runs on the same host or pod),
    /// with a per-call `timeout` and at most `concurrency` calls in flight.
    pub fn new(base_url: &str, timeout: Duration, concurrency: usize) -> Result<Self, LegacyError> {
        let uri: Uri = base_url
            .parse()
            .map_err(|e| LegacyError::BaseUrl(format!("{e}")))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| {
            LegacyError::BaseUrl(format!("{base_url:?} has no scheme (http://...)"))
        })?;
        if scheme != http::uri::Scheme::HTTP {
            return Err(LegacyError::BaseUrl(format!(
                "{base_url:?}: only http:// is supported (the legacy app is reached on the same host or pod)"
            )));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| LegacyError::BaseUrl(format!("{base_url:?} has no host")))?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(concurrency.max(1))
            .build(connector);
        let send = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let client = client.clone();
            async move {
                let resp: Response<hyper::body::Incoming> = client.request(req).await?;
                let (parts, body) = resp.into_parts();
                let body = Limited::new(body, MAX_ANSWER_BYTES)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, tower::BoxError>(LegacyResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            }
        });
        let svc = ServiceBuilder::new()
            .concurrency_limit(concurrency.max(1))
            .timeout(timeout)
            .service(send);
        Ok(Self {
            scheme,
            authority,
            base_path,
            timeout,
            svc: BoxCloneSyncService::new(svc),
        })
    }

    /// Sends a prepared call; `request_id` is forwarded as `X-Request-Id`.
    pub async fn send(
        &self,
        call: PreparedCall,
        request_id: Option<&str>,
    ) -> Result<LegacyResponse, LegacyError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}", self.base_path, call.path_and_query))
            .build()
            .map_err(|e| LegacyError::Request(e.to_string()))?;
        let mut req = Request::builder().method(call.method).uri(uri);
        if let Some(headers) = req.headers_mut() {
            for (name, value, secret) in call.headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| LegacyError::Request(format!("bad header name {name:?}")))?;
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    LegacyError::Request(format!("header {name} has a value that is not text"))
                })?;
                value.set_sensitive(secret);
                headers.insert(name, value);
            }
            if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
                headers.insert(HeaderName::from_static("x-request-id"), id);
            }
            headers.insert(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
        }
        let body = match call.body {
            Some(json) => {
                if let Some(h) = req.headers_mut() {
                    h.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| LegacyError::Request(e.to_string()))?;
        self.svc.clone().oneshot(req).await.map_err(|e| {
            if e.is::<tower::timeout::error::Elapsed>() {
                LegacyError::Timeout(self.timeout)
            } else {
                LegacyError::Unavailable(error_chain(e.as_ref()))
            }
        })
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
