//! The retry policy of a gateway, a [`tower::retry::Policy`]: an idempotent call is sent
//! again, with jittered exponential backoff, after a connection failure and after `429` /
//! `503` (waiting the legacy app's retry hint when it gives one), at most `max_attempts`
//! times and only while the wait fits in `max_retry_time`. A timeout is not retried (the call
//! may still be running there), nor is an open circuit, nor a call that is not idempotent.

use std::sync::Arc;
use std::time::Duration;

use tower::BoxError;
use tower::retry::Policy;

use super::breaker::CircuitOpen;
use super::client::{Attempt, LegacyResponse};
use crate::metrics::Metrics;

/// Retry and circuit-breaker settings of a gateway.
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

/// The policy; retries are counted in `metrics` for `tenant`.
#[derive(Clone)]
pub struct RetryPolicy {
    resilience: Resilience,
    metrics: Arc<Metrics>,
    tenant: Arc<str>,
}

impl RetryPolicy {
    /// The policy of `resilience`.
    pub fn new(resilience: Resilience, metrics: Arc<Metrics>, tenant: &str) -> Self {
        RetryPolicy {
            resilience,
            metrics,
            tenant: tenant.into(),
        }
    }

    /// How long to wait before trying `attempt + 1`, after `result`; `None`: do not retry.
    fn wait(&self, attempt: u32, result: &Result<LegacyResponse, BoxError>) -> Option<Duration> {
        match result {
            Err(e) if e.is::<tower::timeout::error::Elapsed>() || e.is::<CircuitOpen>() => None,
            Err(_) => Some(backoff(&self.resilience, attempt)),
            Ok(resp) if matches!(resp.status.as_u16(), 429 | 503) => Some(
                resp.retry_after
                    .map(|s| Duration::from_secs(s.max(1)))
                    .unwrap_or_else(|| backoff(&self.resilience, attempt)),
            ),
            Ok(_) => None,
        }
    }
}

impl Policy<Attempt, LegacyResponse, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Attempt,
        result: &mut Result<LegacyResponse, BoxError>,
    ) -> Option<Self::Future> {
        let wait = self.wait(req.attempt, result)?;
        let r = &self.resilience;
        if !req.call.idempotent
            || req.attempt >= r.max_attempts
            || req.started.elapsed() + wait > r.max_retry_time
        {
            return None;
        }
        tracing::debug!(
            attempt = req.attempt,
            wait_ms = wait.as_millis() as u64,
            "retrying a legacy call"
        );
        req.attempt += 1;
        self.metrics.legacy_retry(&self.tenant, &req.call.name);
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Attempt) -> Option<Attempt> {
        // A call that is never sent again needs no copy.
        req.call.idempotent.then(|| req.clone())
    }
}

fn backoff(r: &Resilience, attempt: u32) -> Duration {
    let base = r
        .base_backoff
        .saturating_mul(1 << attempt.saturating_sub(1).min(6));
    let jitter = rand::random_range(0..=base.as_millis().max(1) as u64 / 2);
    base + Duration::from_millis(jitter)
}
