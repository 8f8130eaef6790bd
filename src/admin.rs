//! The admin listener: `/healthz`, `/readyz`, `/metrics`, `/admin/log` and `/admin/`.
//!
//! Served on its own address (`server.admin_listen`, default `127.0.0.1:9464`) so that it is
//! never exposed with the SCIM port. Probes and metrics are open; the provisioning log
//! (`/admin/…`, which shows userNames) takes the optional admin token, as a bearer token or
//! as the password of HTTP Basic authentication (what a browser asks for).
//!
//! Glue like `app`: reads the shared state, the xref, the provisioning log and the tenants'
//! gateways (the legacy probe is `Gateway::probe`).

mod page;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::Service;

use crate::credentials::{Presented, presented};
use crate::gateway::ProbeError;
use crate::provisioning::{self, Entry, LogError, Query, SinceError};
use crate::tenant::{State, Tenant};

/// Longest a readiness check waits for the xref writer or a legacy probe (they run at once).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a legacy probe's outcome answers readiness checks.
const PROBE_REUSE: Duration = Duration::from_secs(5);

/// What a readiness check found: what is up, or why it is not.
type Check = Result<String, NotReady>;

/// Why a readiness check fails.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotReady {
    /// The cross-reference cannot be written.
    #[error("{0}")]
    Xref(String),
    /// The legacy app does not answer (or answers a server error).
    #[error(transparent)]
    Legacy(#[from] ProbeError),
    /// A check got no answer in time.
    #[error("{what} did not answer within {limit:?}")]
    Slow {
        /// What was checked.
        what: &'static str,
        /// How long it was given.
        limit: Duration,
    },
}

/// The last legacy probe of one tenant: when, and what it found.
type ProbeSlot = tokio::sync::Mutex<Option<(std::time::Instant, Check)>>;
/// Most entries `/admin/log` answers at once.
const MAX_LOG_ENTRIES: usize = 1000;

/// What the admin listener serves from.
pub struct Admin {
    /// The sidecar's shared state.
    pub state: Arc<State>,
    /// Every tenant.
    pub tenants: Vec<Arc<Tenant>>,
    /// A legacy answer this recent makes the legacy app count as up without a probe.
    pub ready_window: Duration,
    /// SHA-256 of the admin token; `None`: `/admin/` is open (loopback use).
    pub token_digest: Option<[u8; 32]>,
    probes: std::collections::HashMap<String, ProbeSlot>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

/// The admin listener's service.
#[derive(Clone, Debug)]
pub struct AdminService {
    admin: Arc<Admin>,
}

impl AdminService {
    /// Serves `admin`.
    pub fn new(admin: Arc<Admin>) -> Self {
        Self { admin }
    }
}

impl<B: Send + 'static> Service<Request<B>> for AdminService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let admin = Arc::clone(&self.admin);
        Box::pin(async move { Ok(admin.answer(req).await) })
    }
}

impl Admin {
    /// What the admin listener serves from.
    pub fn new(
        state: Arc<State>,
        tenants: Vec<Arc<Tenant>>,
        ready_window: Duration,
        token_digest: Option<[u8; 32]>,
    ) -> Self {
        let probes = tenants
            .iter()
            .map(|t| (t.id.as_str().to_owned(), ProbeSlot::default()))
            .collect();
        Self {
            state,
            tenants,
            ready_window,
            token_digest,
            probes,
        }
    }

    async fn answer<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let query = req.uri().query().unwrap_or("");
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let mut resp = match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => self.readyz().await,
            "/metrics" => self.metrics().await,
            "/admin" => {
                let mut r = text(StatusCode::PERMANENT_REDIRECT, "");
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/admin/"));
                r
            }
            "/admin/" | "/admin/log" => match self.authorized(&req) {
                false => unauthorized(),
                true if path == "/admin/log" => self.log(query).await,
                true => self.page(query).await,
            },
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        };
        if req.method() == Method::HEAD {
            *resp.body_mut() = Full::new(Bytes::new());
        }
        resp
    }

    /// Whether the request carries the admin token (when one is configured).
    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(want) = self.token_digest else {
            return true;
        };
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        // The token as a bearer token, alone, or as Basic's password (any username).
        let got: [u8; 32] = match presented(value.as_bytes()) {
            Presented::Token(_, token) => Sha256::digest(token).into(),
            Presented::Basic { password, .. } => Sha256::digest(&password).into(),
            Presented::Malformed => return false,
        };
        subtle::ConstantTimeEq::ct_eq(&got[..], &want[..]).into()
    }

    async fn readyz(&self) -> Response<Full<Bytes>> {
        let report = self.readiness().await;
        let status = if report["ready"] == Value::Bool(true) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, &report)
    }

    /// `{ready, draining, xref, store: {engine, location, pool}, tenants: {name: {legacy_app,
    /// legacy, auth}}}` (`auth`: the modes the identity provider may use, never a secret). Every check runs at
    /// once, within [`CHECK_TIMEOUT`] in all.
    pub async fn readiness(&self) -> Value {
        let draining = self.state.draining.load(Ordering::Acquire);
        let xref = async {
            match tokio::time::timeout(CHECK_TIMEOUT, self.state.xref.check_writable()).await {
                Ok(Ok(())) => Ok("writable".to_owned()),
                Ok(Err(e)) => Err(NotReady::Xref(e.to_string())),
                Err(_) => Err(NotReady::Slow {
                    what: "the xref writer",
                    limit: CHECK_TIMEOUT,
                }),
            }
        };
        let legacy = futures_util::future::join_all(self.tenants.iter().map(|t| self.legacy_up(t)));
        let (xref, legacy) = futures_util::future::join(xref, legacy).await;
        let mut ready = !draining && xref.is_ok();
        let mut tenants = serde_json::Map::new();
        for (t, legacy) in self.tenants.iter().zip(legacy) {
            ready &= legacy.is_ok();
            tenants.insert(
                t.id.as_str().to_owned(),
                json!({
                    "legacy_app": t.mapping().legacy.name,
                    "legacy": check_json(&legacy),
                    "auth": t.auth_modes,
                }),
            );
        }
        json!({
            "ready": ready,
            "draining": draining,
            "xref": check_json(&xref),
            "store": self.store_json(),
            "tenants": tenants,
        })
    }

    /// Which store the state is in: `sqlite` (its file) or `postgresql` (the server, without
    /// the password, and the pool).
    fn store_json(&self) -> Value {
        let xref = &self.state.xref;
        match xref.pg() {
            None => json!({ "engine": "sqlite", "location": xref.location() }),
            Some(pg) => {
                let s = pg.status();
                json!({
                    "engine": "postgresql",
                    "location": xref.location(),
                    "pool": { "max": s.max_size, "open": s.open, "idle": s.idle, "waiting": s.waiting },
                })
            }
        }
    }

    /// The legacy app answered recently, or answers a probe now. One probe per tenant at a
    /// time, and its outcome serves the checks of the next [`PROBE_REUSE`] (or the ready
    /// window, if shorter): however often `/readyz` is asked, the legacy app sees at most one
    /// probe call per tenant that often.
    async fn legacy_up(&self, t: &Tenant) -> Check {
        if let Some(at) = t.gateway.last_answer() {
            let age = at.elapsed();
            if age <= self.ready_window {
                return Ok(format!("answered {} s ago", age.as_secs()));
            }
        }
        let mut last = match self.probes.get(t.id.as_str()) {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        // A probe that got an answer also refreshed `last_answer`; this reuse matters for
        // failures, which are not probed again for a while.
        if let Some(Some((at, outcome))) = last.as_deref()
            && at.elapsed() < PROBE_REUSE.min(self.ready_window)
        {
            return outcome.clone();
        }
        let mapping = t.mapping();
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, t.gateway.probe(&mapping)).await {
            Ok(Ok(status)) => Ok(format!("probe answered {status}")),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(NotReady::Slow {
                what: "the legacy probe",
                limit: CHECK_TIMEOUT,
            }),
        };
        if let Some(last) = last.as_deref_mut() {
            *last = Some((std::time::Instant::now(), outcome.clone()));
        }
        outcome
    }

    async fn metrics(&self) -> Response<Full<Bytes>> {
        // Entries queued before this scrape are counted as written (or dropped) in it.
        if let Some(log) = &self.state.provisioning {
            log.flush().await;
        }
        for t in &self.tenants {
            self.state
                .metrics
                .circuit(t.id.as_str(), t.gateway.circuit_open());
        }
        if let Some(pg) = self.state.xref.pg() {
            let s = pg.status();
            self.state.metrics.store_pool(&[
                ("max", s.max_size),
                ("open", s.open),
                ("idle", s.idle),
                ("waiting", s.waiting),
            ]);
        }
        match self.state.xref.all_counts().await {
            Ok(rows) => {
                for (tenant, resource, live, dead) in rows {
                    self.state
                        .metrics
                        .xref_rows(tenant.as_str(), &resource, live, dead);
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count xref rows"),
        }
        self.event_queues().await;
        let mut resp = Response::new(Full::new(Bytes::from(self.state.metrics.encode())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        );
        resp
    }

    /// (tenant, endpoint) of every configured webhook endpoint.
    fn endpoints(&self) -> Vec<(String, String)> {
        (self.tenants.iter())
            .flat_map(|t| {
                (t.webhooks.0.iter()).map(move |e| (t.id.as_str().to_owned(), e.name.clone()))
            })
            .collect()
    }

    /// The page's events part: `None` when no tenant has an endpoint and no queue is left.
    async fn events_view(&self) -> Option<Result<page::EventsView, crate::xref::StoreError>> {
        let configured = self.endpoints();
        let read = async {
            let stats = self.state.xref.outbox_stats().await?;
            let queues = queues(&configured, stats);
            if queues.is_empty() {
                return Ok(None);
            }
            let dead = (self.state.xref)
                .outbox_list(crate::xref::OutboxFilter {
                    tenant: None,
                    state: Some(crate::xref::RowState::Dead),
                    limit: 50,
                })
                .await?;
            Ok(Some(page::EventsView {
                endpoints: queues,
                dead,
            }))
        };
        read.await.transpose()
    }

    /// Sets the event queue gauges of every configured endpoint (zero when nothing waits)
    /// and of every endpoint no longer configured whose events wait or are dead.
    async fn event_queues(&self) {
        let configured = self.endpoints();
        let stats = match self.state.xref.outbox_stats().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the event outbox");
                return;
            }
        };
        let now = crate::events::now_ms();
        for queue in queues(&configured, stats) {
            let (pending, dead, oldest) = queue.stats.map_or((0, 0, 0), |q| {
                let age = q.oldest_pending_ms.map_or(0, |at| (now - at).max(0) / 1000);
                (q.pending, q.dead, u64::try_from(age).unwrap_or(0))
            });
            self.state
                .metrics
                .event_queue(&queue.tenant, &queue.endpoint, pending, dead, oldest);
        }
    }

    async fn entries(&self, q: Query) -> Result<Vec<Entry>, LogError> {
        match &self.state.provisioning {
            Some(log) => log.read(q).await,
            None => Ok(Vec::new()),
        }
    }

    /// `/admin/log?failed=true&since=24h&tenant=acme&q=ada&limit=100`: JSON, newest first.
    async fn log(&self, query: &str) -> Response<Full<Bytes>> {
        let q = match parse_query(query) {
            Ok(q) => q,
            Err(e) => {
                return json_response(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() }));
            }
        };
        match self.entries(q).await {
            Ok(entries) => json_response(StatusCode::OK, &json!({ "entries": entries })),
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": e.to_string() }),
            ),
        }
    }

    /// `/admin/`: failures first, then recent operations, and the xref counts.
    async fn page(&self, query: &str) -> Response<Full<Bytes>> {
        let q = match parse_query(query) {
            Ok(q) => q,
            Err(e) => return html(StatusCode::BAD_REQUEST, page::error(&e.to_string())),
        };
        let failures = self
            .entries(Query {
                failed_only: true,
                ..q.clone()
            })
            .await;
        let recent = self.entries(q.clone()).await;
        let counts = self.state.xref.all_counts().await;
        let view = page::View {
            query: &q,
            raw: page::Filters::from_query(query),
            draining: self.state.draining.load(Ordering::Acquire),
            tenants: self
                .tenants
                .iter()
                .map(|t| t.id.as_str().to_owned())
                .collect(),
            auth: self
                .tenants
                .iter()
                .map(|t| {
                    let legacy = t.mapping().legacy.name.clone();
                    (t.id.as_str().to_owned(), legacy, t.auth_modes.clone())
                })
                .collect(),
            failures,
            recent,
            counts,
            events: self.events_view().await,
            now_ms: provisioning::now_ms(),
        };
        html(StatusCode::OK, page::render(&view))
    }
}

/// A query of `/admin/log` or `/admin/` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `failed` is not a boolean.
    #[error("failed={0:?}: give true or false")]
    Failed(String),
    /// `since` is not a duration or a time.
    #[error(transparent)]
    Since(#[from] SinceError),
    /// `limit` is out of range.
    #[error("limit={0:?}: give a number from 1 to {MAX_LOG_ENTRIES}")]
    Limit(String),
    /// An unknown parameter.
    #[error("unknown parameter {0:?}: use failed, since, tenant, q, limit")]
    Unknown(String),
}

/// Reads `failed`, `since`, `tenant`, `q` and `limit`.
/// One endpoint's event queue, as the page and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queue {
    pub(crate) tenant: String,
    pub(crate) endpoint: String,
    /// Whether the configuration has this endpoint. Rows of an endpoint removed or renamed
    /// wait until an endpoint of that name is configured again.
    pub(crate) configured: bool,
    /// Its rows not delivered, if any.
    pub(crate) stats: Option<crate::xref::QueueStats>,
}

/// Every configured endpoint (in the configuration's order), then every endpoint the
/// configuration no longer has whose events wait or are dead (`stats` as the store lists
/// them).
fn queues(configured: &[(String, String)], stats: Vec<crate::xref::QueueStats>) -> Vec<Queue> {
    let mut out: Vec<Queue> = (configured.iter())
        .map(|(tenant, endpoint)| Queue {
            tenant: tenant.clone(),
            endpoint: endpoint.clone(),
            configured: true,
            stats: None,
        })
        .collect();
    for q in stats {
        match (out.iter_mut())
            .find(|o| o.configured && o.tenant == q.tenant && o.endpoint == q.endpoint)
        {
            Some(o) => o.stats = Some(q),
            None if q.pending > 0 || q.dead > 0 => out.push(Queue {
                tenant: q.tenant.clone(),
                endpoint: q.endpoint.clone(),
                configured: false,
                stats: Some(q),
            }),
            None => {}
        }
    }
    out
}

fn parse_query(query: &str) -> Result<Query, QueryError> {
    let mut q = Query {
        limit: 100,
        ..Query::default()
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let v = v.trim();
        match k.as_ref() {
            "failed" => {
                q.failed_only = match v {
                    "" | "0" | "false" => false,
                    "1" | "true" | "on" => true,
                    _ => return Err(QueryError::Failed(v.to_owned())),
                }
            }
            "since" if !v.is_empty() => {
                q.since_ms = Some(provisioning::parse_since(v, provisioning::now_ms())?)
            }
            "tenant" if !v.is_empty() => q.tenant = Some(v.to_owned()),
            "q" if !v.is_empty() => q.search = Some(v.to_owned()),
            "limit" if !v.is_empty() => {
                q.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LOG_ENTRIES).contains(n))
                    .ok_or_else(|| QueryError::Limit(v.to_owned()))?
            }
            "since" | "tenant" | "q" | "limit" => {}
            other => return Err(QueryError::Unknown(other.to_owned())),
        }
    }
    Ok(q)
}

fn check_json(r: &Check) -> Value {
    match r {
        Ok(s) => json!({ "ok": true, "detail": s }),
        Err(e) => json!({ "ok": false, "detail": e.to_string() }),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No script, no external resource: only the page's own inline style.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut resp = text(
        StatusCode::UNAUTHORIZED,
        "the provisioning log needs the admin token (server.admin_token)\n",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"scim-sidecar admin\", charset=\"UTF-8\""),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_queries_are_checked() {
        let q = parse_query("failed=true&tenant=acme&q=ada&limit=5&since=1h").unwrap();
        assert!(q.failed_only);
        assert_eq!(q.tenant.as_deref(), Some("acme"));
        assert_eq!(q.search.as_deref(), Some("ada"));
        assert_eq!(q.limit, 5);
        assert!(q.since_ms.is_some());
        let empty = parse_query("tenant=&q=&since=&limit=").unwrap();
        assert_eq!(empty.limit, 100);
        assert_eq!(empty.tenant, None);
        for bad in [
            "failed=maybe",
            "limit=0",
            "limit=5000",
            "since=soon",
            "user=x",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
