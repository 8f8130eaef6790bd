//! One gateway per tenant: everything the sidecar does to reach its legacy app. It builds a
//! planned call into an HTTP request (the mapping's templates, the tenant's values), sends it
//! with a slot of the tenant's concurrency limit (a semaphore, held through retries) through a
//! tower stack — retry (`retry`) → circuit breaker (`breaker`) → timeout → one attempt on a
//! kept-alive connection (`client`, `pool`) — and decodes the answer through the mapping. Handlers, `reconcile`, the admin readiness probe all go through it.
//!
//! Knows HTTP and the mapping's call vocabulary, not what a call means: that is the plans'
//! business (`mapping::plan`), which run on a gateway as their [`Exchange`].

pub mod breaker;
pub mod client;
pub mod oauth;
mod pool;
pub mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Uri};
use mapping::plan::{Answer, Exchange, Outbound, Refusal};
use mapping::{Mapping, PreparedCall, TenantValues, TranslateError};
use tower::{ServiceBuilder, ServiceExt};

use self::breaker::{BreakerLayer, BreakerState, CircuitOpen};
pub use self::client::LegacyResponse;
use self::client::{Attempt, SendOnce};
use self::oauth::{TokenCache, TokenError};
pub use self::retry::Resilience;
use self::retry::RetryPolicy;
use crate::metrics::Metrics;
use crate::telemetry::RequestNote;

/// A call that got no usable answer (an answer with an error status is not an error here:
/// the mapping reads it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// The base URL in the configuration is unusable.
    #[error("legacy base URL {0}")]
    BaseUrl(String),
    /// The call could not be built (bad header value, path).
    #[error("legacy request could not be built: {0}")]
    Request(String),
    /// No connection could be made, or it broke before an answer arrived.
    #[error("legacy app unreachable: {0}")]
    Unavailable(String),
    /// No answer within the per-call timeout.
    #[error("legacy app did not answer within {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: no call was made.
    #[error(transparent)]
    CircuitOpen(#[from] CircuitOpen),
    /// The call could not be prepared, or its answer has not the declared shape.
    #[error(transparent)]
    Translate(#[from] TranslateError),
    /// No OAuth 2.0 token could be had for the call.
    #[error("legacy authentication: {0}")]
    Token(#[from] TokenError),
}

impl GatewayError {
    /// A short label for metrics: `timeout`, `unavailable`, `circuit_open` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::Timeout(_) => "timeout",
            GatewayError::Unavailable(_) => "unavailable",
            GatewayError::CircuitOpen(_) => "circuit_open",
            GatewayError::Token(_) => "token",
            GatewayError::BaseUrl(_) | GatewayError::Request(_) | GatewayError::Translate(_) => {
                "error"
            }
        }
    }
}

/// Why a plan run through a gateway gave no result: the plan refused, or a call got no
/// usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The plan refused (its reason decides the SCIM answer).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A call failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl From<TranslateError> for PlanError {
    fn from(e: TranslateError) -> Self {
        PlanError::Refused(Refusal::Translate(e))
    }
}

/// What a gateway is made from.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// `http://host:port/base/path` of the legacy app.
    pub base_url: String,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts in flight at most.
    pub concurrency: usize,
    /// The tenant's values for the mapping's placeholders.
    pub values: TenantValues,
}

/// Retries, the circuit breaker, the time limit of an attempt, then the attempt. Named, not
/// boxed: a call copies it (counts on shared state) without an allocation, and its future
/// is a part of the call's.
type Stack = tower::retry::Retry<RetryPolicy, breaker::Breaker<tower::timeout::Timeout<SendOnce>>>;

/// One tenant's way to its legacy app.
#[derive(Clone)]
pub struct Gateway {
    scheme: Scheme,
    authority: Authority,
    /// `Host` of every call: the authority's host, and its port unless it is 80 (what the
    /// client would otherwise format for each call).
    host: HeaderValue,
    base_path: String,
    timeout: Duration,
    svc: Stack,
    /// The calls in flight at once (`concurrency`): see [`Gateway::oneshot`].
    slots: Arc<tokio::sync::Semaphore>,
    breaker: Arc<BreakerState>,
    values: Arc<TenantValues>,
    /// The OAuth 2.0 token, when the mapping authenticates so.
    tokens: Arc<TokenCache>,
    metrics: Arc<Metrics>,
    tenant: String,
    /// The headers of the calls made, parsed (see [`ParsedHeaders`]).
    parsed: Arc<ParsedHeaders>,
}

/// The headers of the legacy calls, parsed once: a mapping's headers render to the same text
/// on every call of a tenant (its API key, its customer id), and parsing them is a copy of
/// each name and value per call. A header seen again is a clone of the parsed one (a count
/// on shared bytes). Bounded: when full (a header whose value changes with each call) it
/// starts again.
#[derive(Default)]
struct ParsedHeaders(std::sync::Mutex<Vec<(String, String, HeaderName, HeaderValue)>>);

impl std::fmt::Debug for ParsedHeaders {
    // Values carry secrets (the API key): never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedHeaders").finish_non_exhaustive()
    }
}

impl ParsedHeaders {
    const MOST: usize = 16;

    /// The parsed header `name: value`, marked sensitive when it carries a secret.
    fn parse(
        &self,
        name: &str,
        value: &str,
        secret: bool,
    ) -> Result<(HeaderName, HeaderValue), GatewayError> {
        let mut parsed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, n, v)) = parsed
            .iter()
            .find(|(n, v, _, hv)| n == name && v == value && hv.is_sensitive() == secret)
        {
            return Ok((n.clone(), v.clone()));
        }
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| GatewayError::Request(format!("bad header name {name:?}")))?;
        let mut header_value = HeaderValue::from_str(value).map_err(|_| {
            GatewayError::Request(format!("header {name} has a value that is not text"))
        })?;
        header_value.set_sensitive(secret);
        if parsed.len() >= Self::MOST {
            parsed.clear();
        }
        parsed.push((
            name.to_owned(),
            value.to_owned(),
            header_name.clone(),
            header_value.clone(),
        ));
        Ok((header_name, header_value))
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// The gateway of `tenant` (plain `http://`: the legacy app runs on the same host or pod);
    /// retries, circuit changes and `429`s are counted in `metrics`.
    pub fn new(
        s: &GatewaySettings,
        resilience: Resilience,
        metrics: Arc<Metrics>,
        tenant: &str,
    ) -> Result<Self, GatewayError> {
        let uri: Uri = s
            .base_url
            .parse()
            .map_err(|e| GatewayError::BaseUrl(format!("{e}")))?;
        let base = &s.base_url;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| GatewayError::BaseUrl(format!("{base:?} has no scheme (http://...)")))?;
        if scheme != Scheme::HTTP {
            return Err(GatewayError::BaseUrl(format!(
                "{base:?}: only http:// is supported (the legacy app is reached on the same host or pod)"
            )));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| GatewayError::BaseUrl(format!("{base:?} has no host")))?;
        let host =
            host_header(&authority).map_err(|e| GatewayError::BaseUrl(format!("{base:?}: {e}")))?;
        let breaker = Arc::new(BreakerState::default());
        let concurrency = s.concurrency.max(1);
        let svc = ServiceBuilder::new()
            .retry(RetryPolicy::new(resilience, Arc::clone(&metrics), tenant))
            .layer(BreakerLayer::new(
                Arc::clone(&breaker),
                resilience.breaker_threshold,
                resilience.breaker_cooldown,
                Arc::clone(&metrics),
                tenant,
            ))
            .timeout(s.timeout)
            .service(SendOnce::new(concurrency, s.timeout));
        metrics.circuit(tenant, false);
        Ok(Gateway {
            scheme,
            authority,
            host,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            timeout: s.timeout,
            svc,
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            breaker,
            values: Arc::new(s.values.clone()),
            tokens: Arc::default(),
            metrics,
            tenant: tenant.to_owned(),
            parsed: Arc::default(),
        })
    }

    /// The tenant's values for the mapping's placeholders.
    pub fn values(&self) -> &TenantValues {
        &self.values
    }

    /// Whether the circuit breaker refuses calls now (the metrics read it at scrape time).
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// When the legacy app last answered a call with a status below 500: the readiness
    /// check's evidence that it is up.
    pub fn last_answer(&self) -> Option<Instant> {
        self.breaker.last_answer()
    }

    /// Sends a prepared call (retried, per the stack); `request_id` goes as `X-Request-Id`.
    pub async fn send(
        &self,
        call: &PreparedCall,
        request_id: Option<&str>,
    ) -> Result<LegacyResponse, GatewayError> {
        let attempt = self.attempt(call, request_id)?;
        self.oneshot(attempt).await
    }

    /// Sends a prepared call with the mapping's OAuth 2.0 token, when it has one: the token
    /// in force (fetched first when there is none or it is due); a 401 answer fetches a new
    /// one and the call is sent once more.
    async fn send_authorized(
        &self,
        mapping: &Mapping,
        mut call: PreparedCall,
        request_id: Option<&str>,
    ) -> Result<LegacyResponse, GatewayError> {
        let Some(token_request) = (mapping.legacy.auth.as_ref())
            .map(|a| a.token_request(&self.values))
            .transpose()?
            .flatten()
        else {
            return self.send(&call, request_id).await;
        };
        let token = self.token(&token_request, None).await?;
        call.headers
            .push(("Authorization".into(), format!("Bearer {token}"), true));
        let resp = self.send(&call, request_id).await?;
        if resp.status != http::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        tracing::info!(call = %call.name, "legacy app refused the token (401): fetching a new one");
        let fresh = self.token(&token_request, Some(&token)).await?;
        if let Some(h) = call.headers.last_mut() {
            h.1 = format!("Bearer {fresh}");
        }
        self.send(&call, request_id).await
    }

    /// The OAuth 2.0 token for `request` (see [`TokenCache::get`]).
    async fn token(
        &self,
        request: &mapping::TokenRequest,
        stale: Option<&str>,
    ) -> Result<String, GatewayError> {
        self.tokens
            .get(request, stale, || async {
                let call =
                    oauth::token_call(request, &self.scheme, &self.authority, &self.base_path)?;
                let started = Instant::now();
                let sent = self
                    .oneshot(Attempt {
                        call: Arc::new(call),
                        started,
                        attempt: 1,
                    })
                    .await;
                let status = match &sent {
                    Ok(resp) => resp.status.as_str().to_owned(),
                    Err(e) => e.kind().to_owned(),
                };
                self.metrics.legacy_call(
                    &self.tenant,
                    "legacy.auth.token",
                    &status,
                    started.elapsed().as_secs_f64(),
                );
                tracing::debug!(%status, "legacy token request");
                let resp = sent?;
                Ok((resp.status, resp.body))
            })
            .await
    }

    /// Sends one call through the stack. The concurrency limit is outermost: a call holds its
    /// slot through its retries (a legacy app that asks to wait is not sent more meanwhile).
    async fn oneshot(&self, attempt: Attempt) -> Result<LegacyResponse, GatewayError> {
        // Never closed: the error cannot happen, and would be an unavailable legacy app.
        let _slot =
            (self.slots.acquire().await).map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        self.svc.clone().oneshot(attempt).await.map_err(|e| {
            if e.is::<tower::timeout::error::Elapsed>() {
                GatewayError::Timeout(self.timeout)
            } else if let Some(open) = e.downcast_ref::<CircuitOpen>() {
                GatewayError::CircuitOpen(*open)
            } else {
                GatewayError::Unavailable(error_chain(e.as_ref()))
            }
        })
    }

    fn attempt(
        &self,
        call: &PreparedCall,
        request_id: Option<&str>,
    ) -> Result<Attempt, GatewayError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(if call.followed {
                self.followed(&call.path_and_query)?
            } else {
                // Exactly as long as it is: its bytes become the URI's without a copy.
                let mut path =
                    String::with_capacity(self.base_path.len() + call.path_and_query.len());
                path.push_str(&self.base_path);
                path.push_str(&call.path_and_query);
                path
            })
            .build()
            .map_err(|e| GatewayError::Request(e.to_string()))?;
        let mut headers = http::HeaderMap::with_capacity(call.headers.len() + 4);
        headers.insert(http::header::HOST, self.host.clone());
        for (name, value, secret) in &call.headers {
            let (name, value) = self.parsed.parse(name, value, *secret)?;
            headers.insert(name, value);
        }
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert(crate::telemetry::REQUEST_ID_HEADER, id);
        }
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let body = match &call.body {
            Some(json) => {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                bytes::Bytes::from(json.to_string())
            }
            None => bytes::Bytes::new(),
        };
        Ok(Attempt {
            call: Arc::new(client::Call {
                name: call.name.clone(),
                method: call.method.clone(),
                uri,
                headers,
                body,
                idempotent: call.idempotent,
                retry_hint: call.retry_hint.clone(),
            }),
            started: Instant::now(),
            attempt: 1,
        })
    }

    /// The path and query of a URL the legacy app gave for its next page: an absolute URL on
    /// the legacy app itself (the API key is never sent elsewhere), or a path rooted at its
    /// host.
    fn followed(&self, url: &str) -> Result<String, GatewayError> {
        followed(&self.scheme, &self.authority, url)
    }

    /// Prepares, sends and decodes one planned call through `mapping`.
    pub async fn call(
        &self,
        mapping: &Mapping,
        call: &Outbound<'_>,
        request_id: Option<&str>,
    ) -> Result<Answer, GatewayError> {
        Ok(self.call_full(mapping, call, request_id).await?.0)
    }

    /// Prepares, sends and decodes one call: the answer as the mapping reads it, and the
    /// response it came in (its `Link` and `ETag`).
    pub async fn call_full(
        &self,
        mapping: &Mapping,
        call: &Outbound<'_>,
        request_id: Option<&str>,
    ) -> Result<(Answer, LegacyResponse), GatewayError> {
        let resp = self.call_raw(mapping, call, request_id).await?;
        let answer = mapping
            .legacy
            .decode(resp.status.as_u16(), &resp.body, resp.retry_after)?;
        Ok((answer, resp))
    }

    /// Prepares and sends one call (counted and logged as every call is): the response as it
    /// came, not decoded.
    pub async fn call_raw(
        &self,
        mapping: &Mapping,
        call: &Outbound<'_>,
        request_id: Option<&str>,
    ) -> Result<LegacyResponse, GatewayError> {
        let prepared = call.prepare(&mapping.legacy, &self.values)?;
        let (name, method) = (&call.call.name, &call.call.method);
        let started = Instant::now();
        let sent = self.send_authorized(mapping, prepared, request_id).await;
        let latency = started.elapsed();
        let status = match &sent {
            Ok(resp) => resp.status.as_str(),
            Err(e) => e.kind(),
        };
        self.metrics
            .legacy_call(&self.tenant, &call.call.name, status, latency.as_secs_f64());
        tracing::debug!(call = %name, %method, %status,
            latency_us = latency.as_micros() as u64, "legacy call");
        sent
    }

    /// A way for plans to run on this gateway through `mapping`, for one request (its id goes
    /// to the legacy app; its note counts the calls).
    pub fn exchange<'a>(
        &'a self,
        mapping: &'a Mapping,
        request_id: Option<&'a str>,
        note: &'a RequestNote,
    ) -> Exchanger<'a> {
        Exchanger {
            gateway: self,
            mapping,
            request_id,
            note,
        }
    }

    /// Whether the legacy app answers: one page of one record from the users list call. Any
    /// answer below 500 counts (a refusal is an answer: the app is up); a 5xx, no answer or an
    /// open circuit does not. For the readiness check.
    pub async fn probe(&self, mapping: &Mapping) -> Result<u16, ProbeError> {
        let call =
            Outbound::new(&mapping.users.calls.list).with_query(mapping.legacy.paging.query(0, 1));
        let prepared = call.prepare(&mapping.legacy, &self.values)?;
        let request_id = format!("readyz-{}", uuid::Uuid::new_v4().simple());
        let resp = self
            .send_authorized(mapping, prepared, Some(&request_id))
            .await?;
        if resp.status.is_server_error() {
            return Err(ProbeError::Answered {
                app: mapping.legacy.name.clone(),
                status: resp.status,
            });
        }
        Ok(resp.status.as_u16())
    }
}

/// Why a readiness probe says the legacy app is not up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbeError {
    /// It answered with a server error.
    #[error("{app} answered {status}")]
    Answered {
        /// The legacy app's name.
        app: String,
        /// What it answered.
        status: http::StatusCode,
    },
    /// No usable answer.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl From<TranslateError> for ProbeError {
    fn from(e: TranslateError) -> Self {
        ProbeError::Gateway(GatewayError::Translate(e))
    }
}

/// The `Host` header of calls to `http://authority`: its host, and its port unless 80.
fn host_header(authority: &Authority) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    match authority.port_u16() {
        Some(port) if port != 80 => HeaderValue::from_str(&format!("{}:{port}", authority.host())),
        _ => HeaderValue::from_str(authority.host()),
    }
}

/// See [`Gateway::followed`]: `url` against the legacy app at `scheme://authority`.
fn followed(scheme: &Scheme, authority: &Authority, url: &str) -> Result<String, GatewayError> {
    if url.starts_with('/') && !url.starts_with("//") {
        return Ok(url.to_owned());
    }
    let refused = |why: &str| {
        GatewayError::Request(format!(
            "the next page's URL {url:?} is not followed: {why}"
        ))
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| refused("it is neither an absolute URL nor a path"))?;
    if uri.scheme() != Some(scheme) || uri.authority() != Some(authority) {
        return Err(refused(&format!(
            "it leaves the legacy app ({scheme}://{authority})"
        )));
    }
    Ok(uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()))
}

/// A gateway as the [`Exchange`] of one request's plans.
pub struct Exchanger<'a> {
    gateway: &'a Gateway,
    mapping: &'a Mapping,
    request_id: Option<&'a str>,
    note: &'a RequestNote,
}

impl Exchanger<'_> {
    /// One call, counted for the request: the response as it came, not decoded.
    pub async fn raw(&mut self, call: Outbound<'_>) -> Result<LegacyResponse, PlanError> {
        self.note.legacy_call();
        Ok(self
            .gateway
            .call_raw(self.mapping, &call, self.request_id)
            .await?)
    }

    /// One call, counted for the request: its answer and the response it came in.
    async fn full(&mut self, call: Outbound<'_>) -> Result<(Answer, LegacyResponse), PlanError> {
        self.note.legacy_call();
        Ok(self
            .gateway
            .call_full(self.mapping, &call, self.request_id)
            .await?)
    }
}

impl Exchange for Exchanger<'_> {
    type Error = PlanError;

    fn outcome_unknown(error: &PlanError) -> bool {
        // A timeout or a broken connection may come after the legacy app did the work; a
        // refused connection or an open circuit sent nothing, but looking is harmless.
        matches!(
            error,
            PlanError::Gateway(GatewayError::Timeout(_) | GatewayError::Unavailable(_))
        )
    }

    async fn send(&mut self, call: Outbound<'_>) -> Result<Answer, PlanError> {
        Ok(self.full(call).await?.0)
    }

    async fn send_page(
        &mut self,
        call: Outbound<'_>,
    ) -> Result<(Answer, Option<String>), PlanError> {
        let (answer, resp) = self.full(call).await?;
        Ok((answer, resp.link_next))
    }

    async fn send_versioned(
        &mut self,
        call: Outbound<'_>,
    ) -> Result<(Answer, Option<String>), PlanError> {
        let (answer, resp) = self.full(call).await?;
        Ok((answer, resp.etag))
    }

    async fn send_all<'m>(
        &mut self,
        calls: Vec<Outbound<'m>>,
        limit: usize,
        each: &mut (dyn FnMut(usize, Answer) -> Result<(), PlanError> + std::marker::Send),
    ) -> Result<(), PlanError> {
        let (gateway, mapping, request_id, note) =
            (self.gateway, self.mapping, self.request_id, self.note);
        let one = |i: usize, call: Outbound<'m>| async move {
            note.legacy_call();
            (i, gateway.call(mapping, &call, request_id).await)
        };
        let mut calls = calls.into_iter().enumerate();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < limit.max(1) {
                match calls.next() {
                    Some((i, call)) => in_flight.push(one(i, call)),
                    None => break,
                }
            }
            let Some((i, answer)) = in_flight.next().await else {
                return Ok(());
            };
            each(i, answer?)?;
        }
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

#[cfg(test)]
mod tests {
    use http::uri::{Authority, Scheme};

    use super::*;

    /// A gateway to `base_url` with `concurrency` slots, and a GET of `/records/1` on it.
    fn gateway_and_get(base_url: &str, concurrency: usize) -> (Gateway, PreparedCall) {
        let settings = GatewaySettings {
            base_url: base_url.to_owned(),
            timeout: Duration::from_secs(60),
            concurrency,
            values: TenantValues::default(),
        };
        let metrics = Arc::new(Metrics::new());
        let gateway = Gateway::new(&settings, Resilience::default(), metrics, "t").unwrap();
        let call = PreparedCall {
            name: "records.get".into(),
            method: http::Method::GET,
            path_and_query: "/records/1".into(),
            headers: Vec::new(),
            body: None,
            idempotent: true,
            retry_hint: None,
            followed: false,
        };
        (gateway, call)
    }

    /// A legacy app that holds every request until the test lets one through, counting the
    /// requests it holds at once.
    #[tokio::test]
    async fn at_most_concurrency_calls_reach_the_legacy_app_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (h, p, g) = (Arc::clone(&held), Arc::clone(&peak), Arc::clone(&gate));
        let server = tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (held, peak, gate) = (Arc::clone(&h), Arc::clone(&p), Arc::clone(&g));
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while sock.read(&mut buf).await.is_ok_and(|n| n > 0) {
                        peak.fetch_max(held.fetch_add(1, SeqCst) + 1, SeqCst);
                        gate.acquire().await.unwrap().forget();
                        held.fetch_sub(1, SeqCst);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if sock.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let (gateway, call) = gateway_and_get(&format!("http://{addr}/api"), 2);
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let (gateway, call) = (gateway.clone(), call.clone());
                tokio::spawn(async move { gateway.send(&call, None).await.map(|r| r.status) })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let wait_for = |n: usize| {
            let held = Arc::clone(&held);
            async move {
                while held.load(SeqCst) < n {
                    assert!(Instant::now() < deadline, "{n} calls never reached the app");
                    tokio::task::yield_now().await;
                }
            }
        };
        // Two arrive; each one let through makes room for exactly one more.
        wait_for(2).await;
        for _ in 0..4 {
            gate.add_permits(1);
            wait_for(2).await;
        }
        gate.add_permits(2);
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), http::StatusCode::OK);
        }
        assert_eq!(peak.load(SeqCst), 2);
        server.abort();
    }

    #[test]
    fn calls_carry_the_base_urls_host_unless_the_mapping_sends_its_own() {
        let (gateway, mut call) = gateway_and_get("http://legacy.internal:3300/api", 1);
        let host = |call: &PreparedCall| {
            let attempt = gateway.attempt(call, Some("req-1")).unwrap();
            let headers = &attempt.call.headers;
            assert_eq!(headers["x-request-id"], "req-1");
            assert_eq!(
                attempt.call.uri,
                "http://legacy.internal:3300/api/records/1"
            );
            headers
                .get_all(http::header::HOST)
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(host(&call), ["legacy.internal:3300"]);
        call.headers
            .push(("Host".into(), "storefront.example".into(), false));
        assert_eq!(host(&call), ["storefront.example"]);
    }

    #[test]
    fn the_host_header_is_the_authority_without_a_default_port_or_user() {
        for (authority, host) in [
            ("127.0.0.1:3300", "127.0.0.1:3300"),
            ("legacy.internal", "legacy.internal"),
            ("legacy.internal:80", "legacy.internal"),
            ("[::1]:8080", "[::1]:8080"),
            ("admin@legacy:81", "legacy:81"),
        ] {
            let header = host_header(&Authority::from_static(authority)).unwrap();
            assert_eq!(header, host, "{authority}");
        }
    }

    #[test]
    fn a_next_page_url_is_followed_only_on_the_legacy_app() {
        let (scheme, authority) = (Scheme::HTTP, Authority::from_static("127.0.0.1:3300"));
        let follow = |url: &str| followed(&scheme, &authority, url).map_err(|e| e.to_string());
        assert_eq!(
            follow("http://127.0.0.1:3300/api/users?page=2&per_page=100"),
            Ok("/api/users?page=2&per_page=100".to_owned())
        );
        assert_eq!(
            follow("/api/users?cursor=x"),
            Ok("/api/users?cursor=x".to_owned())
        );
        for elsewhere in [
            "http://evil.example/api/users?page=2",
            "https://127.0.0.1:3300/api/users?page=2",
            "http://127.0.0.1:3301/api/users",
            "//evil.example/api/users",
            "users?page=2",
        ] {
            let e = follow(elsewhere).unwrap_err();
            assert!(e.contains("is not followed"), "{elsewhere}: {e}");
        }
    }
}
