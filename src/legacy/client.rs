//! The tower client stack over a pooled hyper-util client.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use super::LegacyError;
use crate::metrics::Metrics;
use mapping::{PreparedCall, RetryAfterFormat};

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
    resilience: Resilience,
    breaker: Arc<Breaker>,
    observer: Option<Observer>,
    last_answer: Arc<Mutex<Option<Instant>>>,
}

/// Where a client reports retries and circuit-breaker changes.
#[derive(Clone)]
struct Observer {
    metrics: Arc<Metrics>,
    tenant: String,
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
            resilience: Resilience::default(),
            breaker: Arc::default(),
            observer: None,
            last_answer: Arc::default(),
        })
    }

    /// Reports retries and the circuit-breaker state into `metrics`, labelled `tenant`.
    pub fn observed(mut self, metrics: Arc<Metrics>, tenant: &str) -> Self {
        metrics.circuit(tenant, false);
        self.observer = Some(Observer {
            metrics,
            tenant: tenant.to_owned(),
        });
        self
    }

    /// Whether the circuit breaker refuses calls now (the metrics read it at scrape time).
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }

    /// When the legacy app last answered a call with a status below 500 (any client, any
    /// call): the readiness check's evidence that it is up.
    pub fn last_answer(&self) -> Option<Instant> {
        *self
            .last_answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the retry and circuit-breaker behaviour.
    pub fn with_resilience(mut self, resilience: Resilience) -> Self {
        self.resilience = resilience;
        self
    }

    /// Sends a prepared call; `request_id` is forwarded as `X-Request-Id`.
    ///
    /// An idempotent call is retried, with jittered exponential backoff, after a connection
    /// failure and after `429` / `503` (waiting the legacy app's retry hint when
    /// it gives one), at most `max_attempts` times and only while the wait fits in
    /// `max_retry_time`; then the last outcome is returned. A call that is not idempotent is
    /// never repeated. While the circuit breaker is open, no call is made.
    pub async fn send(
        &self,
        call: PreparedCall,
        request_id: Option<&str>,
    ) -> Result<LegacyResponse, LegacyError> {
        let started = Instant::now();
        let r = self.resilience;
        let mut attempt = 1u32;
        loop {
            self.breaker.admit(Instant::now())?;
            let outcome = self.once(&call, request_id).await;
            let failing = match &outcome {
                Err(_) => true,
                Ok(resp) => resp.status.is_server_error(),
            };
            if !failing {
                *self
                    .last_answer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
            }
            self.breaker.record(!failing, Instant::now(), &r);
            if let Some(o) = &self.observer {
                if matches!(&outcome, Ok(resp) if resp.status == StatusCode::TOO_MANY_REQUESTS) {
                    o.metrics.legacy_rate_limited(&o.tenant);
                }
            }
            let wait = match &outcome {
                // A timeout is not retried: the call may still be running there.
                Err(LegacyError::Unavailable(_)) => Some(backoff(&r, attempt)),
                Ok(resp) if matches!(resp.status.as_u16(), 429 | 503) => {
                    Some(retry_hint(&call, resp).unwrap_or_else(|| backoff(&r, attempt)))
                }
                _ => None,
            };
            let Some(wait) = wait else { return outcome };
            if !call.idempotent
                || attempt >= r.max_attempts
                || started.elapsed() + wait > r.max_retry_time
            {
                return outcome;
            }
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying a legacy call"
            );
            tokio::time::sleep(wait).await;
            if let Some(o) = &self.observer {
                o.metrics.legacy_retry(&o.tenant, &call.name);
            }
            attempt += 1;
        }
    }

    async fn once(
        &self,
        call: &PreparedCall,
        request_id: Option<&str>,
    ) -> Result<LegacyResponse, LegacyError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}", self.base_path, call.path_and_query))
            .build()
            .map_err(|e| LegacyError::Request(e.to_string()))?;
        let mut req = Request::builder().method(call.method.clone()).uri(uri);
        if let Some(headers) = req.headers_mut() {
            for (name, value, secret) in &call.headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| LegacyError::Request(format!("bad header name {name:?}")))?;
                let mut value = HeaderValue::from_str(value).map_err(|_| {
                    LegacyError::Request(format!("header {name} has a value that is not text"))
                })?;
                value.set_sensitive(*secret);
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
        let body = match &call.body {
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

/// Retry and circuit-breaker settings of a legacy client.
#[derive(Clone, Copy, Debug)]
pub struct Resilience {
    /// Attempts of one idempotent call at most (the first included).
    pub max_attempts: u32,
    /// Retries happen only while the waits fit in this much time.
    pub max_retry_time: Duration,
    /// First backoff; it doubles per attempt, with up to 50% jitter added.
    pub base_backoff: Duration,
    /// Consecutive failures (no answer, or a 5xx answer) that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls before letting one through again.
    pub breaker_cooldown: Duration,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_retry_time: Duration::from_secs(10),
            base_backoff: Duration::from_millis(100),
            breaker_threshold: 8,
            breaker_cooldown: Duration::from_secs(5),
        }
    }
}

fn backoff(r: &Resilience, attempt: u32) -> Duration {
    let base = r
        .base_backoff
        .saturating_mul(1 << attempt.saturating_sub(1).min(6));
    let jitter = rand::random_range(0..=base.as_millis().max(1) as u64 / 2);
    base + Duration::from_millis(jitter)
}

/// The legacy app's retry hint on an answer, as a wait.
fn retry_hint(call: &PreparedCall, resp: &LegacyResponse) -> Option<Duration> {
    let (header, format) = call.retry_hint.as_ref()?;
    let value: u64 = resp
        .headers
        .get(header.as_str())?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let secs = match format {
        RetryAfterFormat::Seconds => value,
        RetryAfterFormat::Epoch => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            value.saturating_sub(now)
        }
    };
    Some(Duration::from_secs(secs.max(1)))
}

/// Counts consecutive failures; open means calls are refused until the cooldown is over.
#[derive(Debug, Default)]
struct Breaker {
    state: Mutex<(u32, Option<Instant>)>,
}

impl Breaker {
    /// Refuses a call while the circuit is open.
    fn admit(&self, now: Instant) -> Result<(), LegacyError> {
        let Ok(state) = self.state.lock() else {
            return Ok(());
        };
        match state.1 {
            Some(until) if now < until => Err(LegacyError::CircuitOpen {
                retry_after_secs: until.saturating_duration_since(now).as_secs().max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Whether calls are refused at `now`.
    fn is_open(&self, now: Instant) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.1.is_some_and(|until| now < until))
    }

    /// Records an outcome: a success closes the circuit; enough failures in a row open it
    /// (again, after a probe that failed).
    fn record(&self, ok: bool, now: Instant, r: &Resilience) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if ok {
            *state = (0, None);
            return;
        }
        state.0 = state.0.saturating_add(1);
        if state.0 >= r.breaker_threshold {
            if state.1.is_none_or(|until| now >= until) {
                tracing::warn!(
                    failures = state.0,
                    cooldown_s = r.breaker_cooldown.as_secs(),
                    "legacy app failing: circuit open"
                );
            }
            state.1 = Some(now + r.breaker_cooldown);
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
