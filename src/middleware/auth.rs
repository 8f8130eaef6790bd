//! Authentication: the `Authorization` header selects the tenant ([`crate::credentials`]: a
//! bearer token, the token alone, or HTTP Basic).
//!
//! A token, or a username and password that passed before, is known at once on the request's
//! task; a password seen for the first time is checked (argon2) on the blocking pool before the
//! request goes on. A request without valid credentials gets `401` with a SCIM error body and
//! `WWW-Authenticate: Bearer` (and `Basic realm="scim-sidecar"` when some tenant takes Basic),
//! and is counted in `scim_sidecar_auth_failures_total` by the form it presented.
//!
//! Failed attempts are throttled per client address: each address has a bucket of
//! [`FAILURE_BURST`] failures that refills one every [`FAILURE_REFILL`]. Once it is empty,
//! every request from that address answers `429` with `Retry-After`, valid credentials or not,
//! until a failure is refilled: guessing stops paying off after a burst.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{BoxFuture, Either, Ready, ready};
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use crate::credentials::{Checked, Credentials, Found, Scheme};
use crate::error::{Error, RequestError};
use crate::metrics::Metrics;
use crate::server::PeerAddr;
use crate::telemetry::RequestNote;

/// Failed authentications an address may make at once.
pub const FAILURE_BURST: u32 = 20;
/// One more allowed failure per this much time.
pub const FAILURE_REFILL: Duration = Duration::from_secs(3);
/// Addresses tracked at most; when full, the ones that are fully refilled are forgotten.
const TRACKED_MAX: usize = 10_000;

/// Per-address buckets of allowed authentication failures.
#[derive(Debug, Default)]
pub struct FailureThrottle {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl FailureThrottle {
    fn level(tokens: f64, since: Instant, now: Instant) -> f64 {
        let refill =
            now.saturating_duration_since(since).as_secs_f64() / FAILURE_REFILL.as_secs_f64();
        (tokens + refill).min(f64::from(FAILURE_BURST))
    }

    /// `Some(seconds)` when `ip` has used up its failures (answer `429`).
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let buckets = self.buckets.lock().ok()?;
        let (tokens, since) = *buckets.get(&ip)?;
        let level = Self::level(tokens, since, now);
        (level < 1.0).then(|| {
            let wait = (1.0 - level) * FAILURE_REFILL.as_secs_f64();
            wait.ceil().max(1.0) as u64
        })
    }

    /// Records one failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        if buckets.len() >= TRACKED_MAX && !buckets.contains_key(&ip) {
            buckets.retain(|_, (t, since)| Self::level(*t, *since, now) < f64::from(FAILURE_BURST));
        }
        let (tokens, since) = buckets
            .get(&ip)
            .copied()
            .unwrap_or((f64::from(FAILURE_BURST), now));
        let level = Self::level(tokens, since, now);
        buckets.insert(ip, ((level - 1.0).max(0.0), now));
    }
}

/// Layer that authenticates requests and inserts the tenant `T` into their extensions.
#[derive(Debug)]
pub struct AuthLayer<T> {
    shared: Arc<Shared<T>>,
}

/// What every copy of the service shares.
#[derive(Debug)]
struct Shared<T> {
    credentials: Arc<Credentials<T>>,
    throttle: FailureThrottle,
    metrics: Arc<Metrics>,
}

impl<T> Clone for AuthLayer<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> AuthLayer<T> {
    /// A layer over the tenants' credentials; failures are counted in `metrics`.
    pub fn new(credentials: Arc<Credentials<T>>, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                credentials,
                throttle: FailureThrottle::default(),
                metrics,
            }),
        }
    }
}

impl<S, T> Layer<S> for AuthLayer<T> {
    type Service = Auth<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug)]
pub struct Auth<S, T> {
    inner: S,
    shared: Arc<Shared<T>>,
}

impl<S: Clone, T> Clone for Auth<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// What authentication finds: its name goes into the request's
/// [`RequestNote`](crate::telemetry::RequestNote), for the log line, metrics and provisioning
/// log of requests refused after authentication too.
pub trait Named {
    /// The tenant's id.
    fn tenant_id(&self) -> mapping::ids::TenantId;
}

impl Named for &'static str {
    fn tenant_id(&self) -> mapping::ids::TenantId {
        mapping::ids::TenantId::new(*self)
    }
}

/// The request goes on as `tenant`'s.
fn admit<B, T: Named + Clone + Send + Sync + 'static>(req: &mut Request<B>, tenant: T) {
    if let Some(note) = req.extensions().get::<Arc<RequestNote>>() {
        note.set_tenant(&tenant.tenant_id());
    }
    req.extensions_mut().insert(tenant);
}

impl<T: Clone> Shared<T> {
    /// The `401` of a failure in `scheme`: counted, and taken from `ip`'s bucket.
    fn refuse<ResBody: From<Bytes>>(
        &self,
        scheme: Scheme,
        ip: Option<IpAddr>,
    ) -> Response<ResBody> {
        self.metrics.auth_failed(scheme.as_str());
        if let Some(ip) = ip {
            self.throttle.failed(ip, Instant::now());
        }
        let mut resp: Response<ResBody> = Error::from(RequestError::Unauthorized).into_response();
        if self.credentials.takes_basic() {
            resp.headers_mut().append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"scim-sidecar\", charset=\"UTF-8\""),
            );
        }
        resp
    }
}

impl<S, B, T, ResBody> Service<Request<B>> for Auth<S, T>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    T: Named + Clone + Send + Sync + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<
        Ready<Result<Self::Response, S::Error>>,
        Either<S::Future, BoxFuture<'static, Result<Self::Response, S::Error>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ip = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        let shared = &self.shared;
        if let Some(wait) = ip.and_then(|ip| shared.throttle.blocked(ip, Instant::now())) {
            return Either::Left(ready(Ok(Error::from(RequestError::AuthThrottled {
                retry_after_secs: wait,
            })
            .into_response())));
        }
        let found = shared.credentials.authenticate(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        );
        match found {
            Found::Tenant(t) => {
                admit(&mut req, t);
                Either::Right(Either::Left(self.inner.call(req)))
            }
            Found::Refused(scheme) => Either::Left(ready(Ok(shared.refuse(scheme, ip)))),
            Found::Issued(scheme, token) => {
                let fresh = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, fresh);
                let shared = Arc::clone(shared);
                Either::Right(Either::Right(Box::pin(async move {
                    match shared.credentials.issued(token).await {
                        Ok(Some(t)) => {
                            admit(&mut req, t);
                            inner.call(req).await
                        }
                        Ok(None) => {
                            // RFC 6750 §3.1: an issued token that no longer opens anything.
                            let mut resp: Response<ResBody> = shared.refuse(scheme, ip);
                            resp.headers_mut().insert(
                                header::WWW_AUTHENTICATE,
                                HeaderValue::from_static(
                                    "Bearer error=\"invalid_token\", error_description=\"the \
                                     access token expired, was revoked, or was never issued\"",
                                ),
                            );
                            Ok(resp)
                        }
                        Err(e) => Ok(match e.downcast::<crate::xref::StoreError>() {
                            Ok(store) => Error::from(*store),
                            Err(other) => Error::Internal(format!("token lookup: {other}")),
                        }
                        .into_response()),
                    }
                })))
            }
            Found::Check(check) => {
                // The copy made ready goes with the request; this one takes a fresh copy.
                let fresh = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, fresh);
                let shared = Arc::clone(shared);
                Either::Right(Either::Right(Box::pin(async move {
                    match shared.credentials.check(check).await {
                        Ok(t) => {
                            admit(&mut req, t);
                            inner.call(req).await
                        }
                        Err(Checked::Busy) => Ok(Error::from(RequestError::AuthBusy {
                            retry_after_secs: 1,
                        })
                        .into_response()),
                        Err(_) => Ok(shared.refuse(Scheme::Basic, ip)),
                    }
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_throttled_per_address() {
        let t = FailureThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..FAILURE_BURST {
            assert_eq!(t.blocked(a, start), None);
            t.failed(a, start);
        }
        let wait = t.blocked(a, start).expect("blocked after the burst");
        assert_eq!(wait, FAILURE_REFILL.as_secs());
        assert_eq!(t.blocked(b, start), None, "another address is not affected");
        assert_eq!(
            t.blocked(a, start + FAILURE_REFILL),
            None,
            "one failure refilled"
        );
        t.failed(a, start + FAILURE_REFILL);
        assert!(t.blocked(a, start + FAILURE_REFILL).is_some());
    }
}
