//! Assembles the shared state (tenants, their mappings and legacy clients, the xref) and the
//! tower stack in front of the handlers. Knows nothing about any mapping's contents.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::error::ScimError;
use crate::handlers::{self, Ctx};
use crate::ids::TenantId;
use crate::legacy::{LegacyClient, LegacyError};
use crate::mapping::Mapping;
use crate::metrics::Metrics;
use crate::middleware::{AuthLayer, ContentTypeLayer, ObserveLayer, TokenTable};
use crate::provisioning::ProvisioningLog;
use crate::router::{self, Route};
use crate::server::TlsTerminated;
use crate::telemetry::RequestNote;
use crate::xref::Store;

/// One tenant (storefront customer) as the request path sees it.
pub struct Tenant {
    /// Tenant name from the configuration.
    pub id: TenantId,
    /// The customer id sent to the legacy app.
    pub customer_id: String,
    api_key: String,
    /// The compiled mapping in force; swapped whole on reload (see [`Tenant::mapping`]).
    mapping: RwLock<Arc<Mapping>>,
    /// The mapping file, for reloads (`None` for a built-in mapping).
    pub mapping_path: Option<PathBuf>,
    /// The legacy client stack.
    pub legacy: LegacyClient,
    /// Concurrency of group member calls.
    pub member_concurrency: usize,
    /// The process's metrics (mapping reloads are counted per tenant).
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl crate::middleware::auth::Named for Arc<Tenant> {
    fn name(&self) -> &str {
        self.id.as_str()
    }
}

impl Tenant {
    /// The mapping in force now. A request takes it once, at its start, and keeps it to the
    /// end: a reload never changes the mapping under a request in flight.
    pub fn mapping(&self) -> Arc<Mapping> {
        match self.mapping.read() {
            Ok(m) => Arc::clone(&m),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a new mapping in force for the requests that start from now on.
    pub fn set_mapping(&self, mapping: Arc<Mapping>) {
        match self.mapping.write() {
            Ok(mut m) => *m = mapping,
            Err(poisoned) => *poisoned.into_inner() = mapping,
        }
    }

    /// The legacy API key (for the mapping's `{secret.api_key}`).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
}

/// What it takes to set up one tenant.
pub struct TenantSettings {
    /// Tenant name.
    pub id: TenantId,
    /// Customer id.
    pub customer_id: String,
    /// Legacy base URL.
    pub legacy_base_url: String,
    /// Legacy API key.
    pub api_key: String,
    /// SHA-256 digests of the SCIM bearer tokens.
    pub token_digests: Vec<[u8; 32]>,
    /// Compiled mapping.
    pub mapping: Mapping,
    /// The mapping file it was compiled from, for reloads.
    pub mapping_path: Option<PathBuf>,
    /// Per-call legacy timeout.
    pub legacy_timeout: Duration,
    /// Legacy calls in flight at most.
    pub legacy_concurrency: usize,
    /// Group member calls in flight at most, per request.
    pub member_concurrency: usize,
}

/// Shared state of the running sidecar.
pub struct State {
    /// The cross-reference store.
    pub xref: Store,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time limit for answering one SCIM request.
    pub request_timeout: Duration,
    /// The SCIM base URL for `Location` and `meta.location`, when configured; otherwise it
    /// is taken from each request.
    pub public_base_url: Option<String>,
    /// When each tenant last scanned the legacy app for an unknown id (rate limit).
    pub rescans: std::sync::Mutex<std::collections::HashMap<TenantId, std::time::Instant>>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Where write operations are recorded (none: not recorded).
    pub provisioning: Option<ProvisioningLog>,
    /// Set once shutdown began: readiness answers 503 from then on.
    pub draining: AtomicBool,
    /// SCIM requests being handled (shutdown waits for them before closing the files).
    pub in_flight: InFlight,
}

/// A count of requests in flight that can be waited on until it is zero.
#[derive(Debug, Default)]
pub struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Holds one request in [`InFlight`] until dropped.
#[derive(Debug)]
pub struct InFlightGuard<'a>(&'a InFlight);

impl InFlight {
    /// Counts a request until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard<'_> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlightGuard(self)
    }

    /// Requests in flight now.
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until no request is in flight, or `limit` passed; returns how many remain.
    pub async fn wait_idle(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read: a last guard dropped in between wakes it.
            idle.as_mut().enable();
            if self.count() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.count();
            }
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

impl State {
    /// State over an opened xref store, with its own metrics and no provisioning log.
    pub fn new(xref: Store, max_body_bytes: usize, request_timeout: Duration) -> Self {
        Self {
            xref,
            max_body_bytes,
            request_timeout,
            public_base_url: None,
            rescans: Default::default(),
            metrics: Arc::default(),
            provisioning: None,
            draining: AtomicBool::new(false),
            in_flight: InFlight::default(),
        }
    }
}

/// The tenants, and the token table that finds them.
pub struct Tenants {
    /// Token digest → tenant.
    pub tokens: TokenTable<Arc<Tenant>>,
    /// Every tenant once.
    pub all: Vec<Arc<Tenant>>,
}

/// Builds tenants and the token table; their legacy clients report into `metrics`.
pub fn tenants(
    settings: Vec<TenantSettings>,
    metrics: &Arc<Metrics>,
) -> Result<Tenants, LegacyError> {
    let mut entries = Vec::new();
    let mut all = Vec::new();
    for s in settings {
        let legacy = LegacyClient::new(&s.legacy_base_url, s.legacy_timeout, s.legacy_concurrency)?
            .observed(Arc::clone(metrics), s.id.as_str());
        let tenant = Arc::new(Tenant {
            id: s.id,
            customer_id: s.customer_id,
            api_key: s.api_key,
            mapping: RwLock::new(Arc::new(s.mapping)),
            mapping_path: s.mapping_path,
            legacy,
            member_concurrency: s.member_concurrency.max(1),
            metrics: Arc::clone(metrics),
        });
        for d in s.token_digests {
            entries.push((d, Arc::clone(&tenant)));
        }
        all.push(tenant);
    }
    Ok(Tenants {
        tokens: TokenTable::new(entries),
        all,
    })
}

/// The whole SCIM service: tracing, request ids, sensitive headers, auth, then the handlers.
pub fn service(
    state: Arc<State>,
    tokens: Arc<TokenTable<Arc<Tenant>>>,
) -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Response<
        impl Body<Data = Bytes, Error = impl Into<tower::BoxError>> + Send + 'static,
    >,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<hyper::body::Incoming>| {
            let id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|r| r.header_value().to_str().ok())
                .unwrap_or("-")
                .to_owned();
            tracing::info_span!(
                "scim",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %id,
                tenant = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_response(())
        .on_failure(());
    let observe = ObserveLayer::new(Arc::clone(&state.metrics), state.provisioning.clone());
    ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(observe)
        .layer(AuthLayer::new(tokens))
        .layer(ContentTypeLayer)
        .service(ScimService { state })
}

/// The innermost service: routes and calls the handlers.
#[derive(Clone)]
pub struct ScimService {
    state: Arc<State>,
}

impl<B> Service<Request<B>> for ScimService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower::BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let _in_flight = state.in_flight.enter();
            let limit = state.request_timeout;
            // Set by the observe layer; made here when the service runs without it.
            let note = req
                .extensions()
                .get::<Arc<RequestNote>>()
                .cloned()
                .unwrap_or_default();
            let route = match req.extensions().get::<Route>() {
                Some(r) => r.clone(),
                None => router::route(req.method(), req.uri().path()),
            };
            let handled = handle(&state, req, route, note);
            Ok(match tokio::time::timeout(limit, handled).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => e.into_response(),
                Err(_) => ScimError::request_timeout(limit).into_response(),
            })
        })
    }
}

async fn handle<B>(
    state: &Arc<State>,
    req: Request<B>,
    route: Route,
    note: Arc<RequestNote>,
) -> Result<Response<Full<Bytes>>, ScimError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower::BoxError>,
{
    let (parts, body) = req.into_parts();
    let tenant = parts
        .extensions
        .get::<Arc<Tenant>>()
        .cloned()
        .ok_or_else(ScimError::unauthorized)?;
    tracing::Span::current().record("tenant", tenant.id.as_str());
    note.set_tenant(tenant.id.as_str());
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .and_then(|r| r.header_value().to_str().ok())
        .map(str::to_owned);
    let base_url = match &state.public_base_url {
        Some(url) => url.clone(),
        None => base_url(&parts),
    };
    let has_body = !matches!(
        parts.method,
        http::Method::GET | http::Method::DELETE | http::Method::HEAD
    );
    let body = if has_body {
        let limit = state.max_body_bytes;
        match Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ScimError::payload_too_large(limit));
            }
            Err(e) => {
                return Err(ScimError::invalid_syntax(format!(
                    "could not read the request body: {e}"
                )));
            }
        }
    } else {
        Bytes::new()
    };
    let ctx = Ctx {
        mapping: tenant.mapping(),
        tenant,
        state: Arc::clone(state),
        base_url,
        request_id,
        note,
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let mut resp = handlers::dispatch(&ctx, route, &query, body).await?;
    if parts.method == http::Method::HEAD {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    Ok(resp)
}

/// `http://<host>/scim/v2` from the request: the `Host` header (HTTP/1.1) or the URI's
/// authority (HTTP/2), and the scheme `https` when the sidecar terminated TLS itself, else
/// `X-Forwarded-Proto` from a TLS-terminating proxy. A host that is not a plain host[:port] is
/// not reflected.
fn base_url(parts: &http::request::Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let proto = if parts.extensions.get::<TlsTerminated>().is_some() {
        "https"
    } else {
        parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|p| *p == "https" || *p == "http")
            .unwrap_or("http")
    };
    format!("{proto}://{host}{}", router::SCIM_PREFIX)
}

/// Sets the SCIM content type on a JSON response.
pub fn scim_json(status: http::StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    // A `Value` always serialises (its map keys are strings).
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::error::SCIM_JSON),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::{TlsTerminated, base_url};

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn base_url_from_host_authority_and_proxy() {
        let h1 = http::Request::get("/scim/v2/Users")
            .header("host", "sidecar:8787")
            .body(());
        assert_eq!(base_url(&parts(h1.unwrap())), "http://sidecar:8787/scim/v2");
        // HTTP/2 carries the host as :authority, which lands in the URI.
        let h2 = http::Request::get("http://sidecar.internal:8787/scim/v2/Users").body(());
        assert_eq!(
            base_url(&parts(h2.unwrap())),
            "http://sidecar.internal:8787/scim/v2"
        );
        let proxied = http::Request::get("/scim/v2/Users")
            .header("host", "scim.example.com")
            .header("x-forwarded-proto", "https")
            .body(());
        assert_eq!(
            base_url(&parts(proxied.unwrap())),
            "https://scim.example.com/scim/v2"
        );
        // Over TLS the sidecar terminated itself, the scheme is https whatever a header says.
        let mut direct = http::Request::get("/scim/v2/Users")
            .header("host", "scim.example.com:8443")
            .header("x-forwarded-proto", "http")
            .body(())
            .unwrap();
        direct.extensions_mut().insert(TlsTerminated);
        assert_eq!(
            base_url(&parts(direct)),
            "https://scim.example.com:8443/scim/v2"
        );
        let hostile = http::Request::get("/x")
            .header("host", "evil.com/<script>")
            .body(());
        assert_eq!(
            base_url(&parts(hostile.unwrap())),
            "http://localhost/scim/v2"
        );
    }
}
