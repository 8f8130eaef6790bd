//! Bearer-token authentication: `Authorization: Bearer <token>` selects the tenant.
//!
//! Tokens are compared as SHA-256 digests in constant time against every configured token of
//! every tenant (no early exit), so timing tells nothing about which token is close. The
//! token itself never reaches a log line, an error or a panic message. A request without a
//! valid token gets `401` with a SCIM error body and `WWW-Authenticate: Bearer`.
//!
//! Failed attempts are throttled per client address: each address has a bucket of
//! [`FAILURE_BURST`] failures that refills one every [`FAILURE_REFILL`]. Once it is empty,
//! every request from that address answers `429` with `Retry-After`, valid token or not, until
//! a failure is refilled: guessing tokens stops paying off after a burst.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{Either, Ready, ready};
use http::{Request, Response, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::error::{Error, RequestError};
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

/// Which tenant each token digest belongs to; `T` is what gets inserted into the request.
#[derive(Debug)]
pub struct TokenTable<T> {
    entries: Vec<([u8; 32], T)>,
}

impl<T: Clone> TokenTable<T> {
    /// A table from (SHA-256 digest of a token, tenant) pairs.
    pub fn new(entries: Vec<([u8; 32], T)>) -> Self {
        Self { entries }
    }

    /// The tenant of an `Authorization` header value, if it is `Bearer <valid token>`.
    pub fn authenticate(&self, authorization: &[u8]) -> Option<T> {
        let token = bearer_token(authorization)?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for (d, tenant) in &self.entries {
            if bool::from(d.ct_eq(&digest)) && found.is_none() {
                found = Some(tenant.clone());
            }
        }
        found
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, one space, token non-empty).
pub fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = (value.get(..7)?, value.get(7..)?);
    if !scheme.eq_ignore_ascii_case(b"bearer ") || token.is_empty() {
        return None;
    }
    (!token.iter().any(|b| b.is_ascii_whitespace())).then_some(token)
}

/// Layer that authenticates requests and inserts the tenant `T` into their extensions.
#[derive(Debug)]
pub struct AuthLayer<T> {
    table: Arc<TokenTable<T>>,
    throttle: Arc<FailureThrottle>,
}

impl<T> Clone for AuthLayer<T> {
    fn clone(&self) -> Self {
        Self {
            table: Arc::clone(&self.table),
            throttle: Arc::clone(&self.throttle),
        }
    }
}

impl<T> AuthLayer<T> {
    /// A layer over a token table.
    pub fn new(table: Arc<TokenTable<T>>) -> Self {
        Self {
            table,
            throttle: Arc::default(),
        }
    }
}

impl<S, T> Layer<S> for AuthLayer<T> {
    type Service = Auth<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            table: Arc::clone(&self.table),
            throttle: Arc::clone(&self.throttle),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug)]
pub struct Auth<S, T> {
    inner: S,
    table: Arc<TokenTable<T>>,
    throttle: Arc<FailureThrottle>,
}

impl<S: Clone, T> Clone for Auth<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            table: Arc::clone(&self.table),
            throttle: Arc::clone(&self.throttle),
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

impl<S, B, T, ResBody> Service<Request<B>> for Auth<S, T>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    T: Named + Clone + Send + Sync + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ip = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        let now = Instant::now();
        if let Some(wait) = ip.and_then(|ip| self.throttle.blocked(ip, now)) {
            return Either::Left(ready(Ok(Error::from(RequestError::AuthThrottled {
                retry_after_secs: wait,
            })
            .into_response())));
        }
        let tenant = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| self.table.authenticate(v.as_bytes()));
        match tenant {
            Some(t) => {
                if let Some(note) = req.extensions().get::<Arc<RequestNote>>() {
                    note.set_tenant(&t.tenant_id());
                }
                req.extensions_mut().insert(t);
                Either::Right(self.inner.call(req))
            }
            None => {
                if let Some(ip) = ip {
                    self.throttle.failed(ip, now);
                }
                Either::Left(ready(Ok(
                    Error::from(RequestError::Unauthorized).into_response()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TokenTable<&'static str> {
        let d = |t: &str| -> [u8; 32] { Sha256::digest(t.as_bytes()).into() };
        TokenTable::new(vec![
            (d("tok-A1"), "a"),
            (d("tok-A2"), "a"),
            (d("tok-B"), "b"),
        ])
    }

    #[test]
    fn selects_tenant_by_token() {
        let t = table();
        assert_eq!(t.authenticate(b"Bearer tok-A1"), Some("a"));
        assert_eq!(
            t.authenticate(b"Bearer tok-A2"),
            Some("a"),
            "rotation: both tokens work"
        );
        assert_eq!(
            t.authenticate(b"bearer tok-B"),
            Some("b"),
            "scheme is case-insensitive"
        );
        for bad in [
            &b"tok-A1"[..],
            b"Bearer TOK-A1",
            b"Bearer tok-a1",
            b"Bearer ",
            b"Bearer  tok-A1",
            b"Basic tok-A1",
            b"non-token",
            b"",
            b"Bearer tok-A1 ",
        ] {
            assert_eq!(
                t.authenticate(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

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
