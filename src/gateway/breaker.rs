//! The circuit breaker of a gateway, a tower layer: it counts consecutive failures (no
//! answer, or a 5xx answer); at `breaker_threshold` the circuit opens and, for
//! `breaker_cooldown`, every attempt is refused at once with [`CircuitOpen`] (no call made).
//! The first attempt after the cooldown goes through; its outcome closes the circuit or opens
//! it again. Every attempt's outcome also tells when the legacy app last answered (for
//! readiness) and counts its `429`s.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::client::{Attempt, LegacyResponse};
use crate::metrics::Metrics;

/// The refusal of an attempt while the circuit is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("legacy app is failing; calls paused for {retry_after_secs} s (circuit open)")]
pub struct CircuitOpen {
    /// Seconds until calls are let through again.
    pub retry_after_secs: u64,
}

/// The breaker's state, shared by every clone of the service (and read by the metrics).
#[derive(Debug, Default)]
pub struct BreakerState {
    state: Mutex<(u32, Option<Instant>)>,
    last_answer: Mutex<Option<Instant>>,
}

impl BreakerState {
    /// Refuses an attempt while the circuit is open.
    fn admit(&self, now: Instant) -> Result<(), CircuitOpen> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.1 {
            Some(until) if now < until => Err(CircuitOpen {
                retry_after_secs: until.saturating_duration_since(now).as_secs().max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Whether attempts are refused now.
    pub fn is_open(&self) -> bool {
        let now = Instant::now();
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .is_some_and(|until| now < until)
    }

    /// When the legacy app last answered an attempt with a status below 500.
    pub fn last_answer(&self) -> Option<Instant> {
        *self
            .last_answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an outcome: a success closes the circuit; `threshold` failures in a row open
    /// it (again, after a probe that failed) for `cooldown`.
    fn record(&self, ok: bool, now: Instant, threshold: u32, cooldown: Duration) {
        if ok {
            *self
                .last_answer
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(now);
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if ok {
            *state = (0, None);
            return;
        }
        state.0 = state.0.saturating_add(1);
        if state.0 >= threshold {
            if state.1.is_none_or(|until| now >= until) {
                tracing::warn!(
                    failures = state.0,
                    cooldown_s = cooldown.as_secs(),
                    "legacy app failing: circuit open"
                );
            }
            state.1 = Some(now + cooldown);
        }
    }
}

/// Puts a [`Breaker`] around a service.
#[derive(Clone)]
pub struct BreakerLayer {
    state: Arc<BreakerState>,
    threshold: u32,
    cooldown: Duration,
    metrics: Arc<Metrics>,
    tenant: Arc<str>,
}

impl BreakerLayer {
    /// A breaker over `state`, opening after `threshold` failures for `cooldown`; `429`s are
    /// counted in `metrics` for `tenant`.
    pub fn new(
        state: Arc<BreakerState>,
        threshold: u32,
        cooldown: Duration,
        metrics: Arc<Metrics>,
        tenant: &str,
    ) -> Self {
        BreakerLayer {
            state,
            threshold,
            cooldown,
            metrics,
            tenant: tenant.into(),
        }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            layer: self.clone(),
        }
    }
}

/// The circuit breaker service.
#[derive(Clone)]
pub struct Breaker<S> {
    inner: S,
    layer: BreakerLayer,
}

impl<S> Service<Attempt> for Breaker<S>
where
    S: Service<Attempt, Response = LegacyResponse, Error = BoxError>,
{
    type Response = LegacyResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Attempt) -> Self::Future {
        let layer = self.layer.clone();
        match self.layer.state.admit(Instant::now()) {
            Err(open) => ResponseFuture {
                future: None,
                open: Some(open),
                layer,
            },
            Ok(()) => ResponseFuture {
                future: Some(self.inner.call(req)),
                open: None,
                layer,
            },
        }
    }
}

pin_project! {
    /// The response future of [`Breaker`]: refused at once while the circuit is open, else
    /// the inner future, whose outcome is recorded.
    pub struct ResponseFuture<F> {
        #[pin]
        future: Option<F>,
        open: Option<CircuitOpen>,
        layer: BreakerLayer,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<LegacyResponse, BoxError>>,
{
    type Output = Result<LegacyResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            let open = this.open.take().unwrap_or(CircuitOpen {
                retry_after_secs: 1,
            });
            return Poll::Ready(Err(Box::new(open)));
        };
        let outcome = std::task::ready!(future.poll(cx));
        let failing = match &outcome {
            Err(_) => true,
            Ok(resp) => resp.status.is_server_error(),
        };
        let layer = this.layer;
        if matches!(&outcome, Ok(r) if r.status == http::StatusCode::TOO_MANY_REQUESTS) {
            layer.metrics.legacy_rate_limited(&layer.tenant);
        }
        layer
            .state
            .record(!failing, Instant::now(), layer.threshold, layer.cooldown);
        Poll::Ready(outcome)
    }
}
