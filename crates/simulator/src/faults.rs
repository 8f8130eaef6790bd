//! The knobs every simulator shares: latency, a per-tenant rate limit, maintenance mode,
//! injected failures, and the log of requests seen.
//!
//! Owns only the bookkeeping; how a refusal is worded is up to each simulator (the error body
//! formats differ between legacy apps). Depends on nothing but `std` and `http`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::Method;

/// How many requests [`Faults::requests`] remembers (the oldest are forgotten first).
pub const REQUEST_LOG_CAPACITY: usize = 10_000;

/// Knobs a test or the dev command turns.
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    /// Added to every answer (a non-blocking sleep before the request is handled).
    pub latency: Duration,
    /// Request budget per tenant and second (a token bucket holding one second's worth);
    /// above it the simulator answers `429` with `Retry-After`. `Some(0)` refuses everything.
    pub rate_limit_per_second: Option<u32>,
    /// When set, every request answers `503` with this `Retry-After` (seconds).
    pub maintenance_retry_after: Option<u64>,
}

/// What an injected failure does to the request it matches.
#[derive(Clone, Debug)]
pub enum FailureKind {
    /// Answer this status with the app's internal-error body before doing anything
    /// (Marketing Center: `{"ErrorCode":"INTERNAL_ERROR",...}`). A number that is not a valid
    /// HTTP status answers `500`.
    Status(u16),
    /// Do the operation, then close the connection without answering.
    DropAfterCommit,
    /// Close the connection without answering and without doing anything.
    DropBeforeCommit,
}

/// An injected failure: fires on the next `count` requests it matches, then disappears.
#[derive(Clone, Debug)]
pub struct FailureRule {
    /// Only requests with this method match (`None`: any method).
    pub method: Option<Method>,
    /// Only requests whose path-and-query (base path included) contains this text match
    /// (`None`: any path).
    pub path_contains: Option<String>,
    /// How many requests the rule fires on; `0` never fires.
    pub count: u32,
    /// What happens to a matching request.
    pub kind: FailureKind,
}

impl FailureRule {
    fn matches(&self, method: &Method, path_and_query: &str) -> bool {
        self.count > 0
            && self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path_and_query.contains(p))
    }
}

/// A token bucket holding at most one second's worth of requests.
#[derive(Debug)]
struct Bucket {
    rate: u32,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        Self {
            rate,
            tokens: f64::from(rate),
            refilled: now,
        }
    }

    /// Takes a token, or tells how many whole seconds until one is available. With a rate of
    /// at least one per second the next token is never more than a second away, so a refusal
    /// always says `1`.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        if self.rate == 0 {
            return Err(1);
        }
        let rate = f64::from(self.rate);
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(1)
        }
    }
}

/// The shared fault state of one simulator instance.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    knobs: Mutex<Knobs>,
    rules: Mutex<Vec<FailureRule>>,
    log: Mutex<VecDeque<(Method, String)>>,
    request_ids: Mutex<VecDeque<Option<String>>>,
    count: AtomicU64,
    buckets: Mutex<HashMap<String, Bucket>>,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// A request being handled; counted in [`Faults::peak_in_flight`] until dropped.
#[derive(Debug)]
pub(crate) struct Handling<'a>(&'a Faults);

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Faults {
    /// Replaces the knobs; rate-limit buckets start full again.
    pub(crate) fn set_knobs(&self, knobs: Knobs) {
        *lock(&self.knobs) = knobs;
        lock(&self.buckets).clear();
    }

    /// Adds a failure rule after the existing ones (the first matching rule fires).
    pub(crate) fn inject(&self, rule: FailureRule) {
        lock(&self.rules).push(rule);
    }

    /// Counts a request as being handled until the guard drops.
    pub(crate) fn handling(&self) -> Handling<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::AcqRel);
        Handling(self)
    }

    /// The most requests handled at once since the start or [`Faults::reset_peak`].
    pub(crate) fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight.load(Ordering::Acquire)
    }

    /// Starts the peak over from the requests handled now.
    pub(crate) fn reset_peak(&self) {
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::Acquire), Ordering::Release);
    }

    /// Counts and logs a request, with its `X-Request-Id` header.
    pub(crate) fn record(
        &self,
        method: Method,
        path_and_query: String,
        request_id: Option<String>,
    ) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut log = lock(&self.log);
        let mut ids = lock(&self.request_ids);
        if log.len() >= REQUEST_LOG_CAPACITY {
            log.pop_front();
            ids.pop_front();
        }
        log.push_back((method, path_and_query));
        ids.push_back(request_id);
    }

    /// The `X-Request-Id` of each logged request, in the order of [`Faults::requests`].
    pub(crate) fn request_ids(&self) -> Vec<Option<String>> {
        lock(&self.request_ids).iter().cloned().collect()
    }

    /// How many requests were seen since the simulator started.
    pub(crate) fn request_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The last requests seen, oldest first.
    pub(crate) fn requests(&self) -> Vec<(Method, String)> {
        lock(&self.log).iter().cloned().collect()
    }

    /// Forgets the logged requests (the count keeps running).
    pub(crate) fn clear_requests(&self) {
        lock(&self.log).clear();
        lock(&self.request_ids).clear();
    }

    /// The configured latency.
    pub(crate) fn latency(&self) -> Duration {
        lock(&self.knobs).latency
    }

    /// `Some(retry_after)` while in maintenance.
    pub(crate) fn maintenance(&self) -> Option<u64> {
        lock(&self.knobs).maintenance_retry_after
    }

    /// Fires the first rule matching the request, if any, and consumes one of its shots.
    pub(crate) fn take_failure(
        &self,
        method: &Method,
        path_and_query: &str,
    ) -> Option<FailureKind> {
        let mut rules = lock(&self.rules);
        let index = rules
            .iter()
            .position(|r| r.matches(method, path_and_query))?;
        let rule = rules.get_mut(index)?;
        rule.count -= 1;
        let kind = rule.kind.clone();
        if rule.count == 0 {
            rules.remove(index);
        }
        Some(kind)
    }

    /// Admits a request of `tenant` against the rate limit, or answers the `Retry-After`.
    pub(crate) fn admit(&self, tenant: &str) -> Result<(), u64> {
        let Some(rate) = lock(&self.knobs).rate_limit_per_second else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        match buckets.get_mut(tenant) {
            Some(bucket) if bucket.rate == rate => bucket.take(now),
            _ => {
                let mut bucket = Bucket::new(rate, now);
                let answer = bucket.take(now);
                buckets.insert(tenant.to_owned(), bucket);
                answer
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_holds_one_second_and_refills() {
        let start = Instant::now();
        let mut bucket = Bucket::new(2, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Err(1));
        let later = start + Duration::from_millis(600);
        assert_eq!(bucket.take(later), Ok(()));
        assert_eq!(bucket.take(later), Err(1));
        let much_later = start + Duration::from_secs(60);
        assert_eq!(bucket.take(much_later), Ok(()));
        assert_eq!(bucket.take(much_later), Ok(()));
        assert_eq!(
            bucket.take(much_later),
            Err(1),
            "never more than one second's worth"
        );
    }

    #[test]
    fn zero_rate_refuses_everything() {
        let now = Instant::now();
        assert_eq!(
            Bucket::new(0, now).take(now + Duration::from_secs(5)),
            Err(1)
        );
    }

    #[test]
    fn rules_fire_count_times_in_order_and_match_method_and_path() {
        let faults = Faults::default();
        faults.inject(FailureRule {
            method: Some(Method::POST),
            path_contains: Some("/users".into()),
            count: 2,
            kind: FailureKind::Status(502),
        });
        faults.inject(FailureRule {
            method: None,
            path_contains: None,
            count: 0,
            kind: FailureKind::DropBeforeCommit,
        });
        assert!(faults.take_failure(&Method::GET, "/api/v1/users").is_none());
        assert!(
            faults
                .take_failure(&Method::POST, "/api/v1/groups")
                .is_none()
        );
        for _ in 0..2 {
            let kind = faults.take_failure(&Method::POST, "/api/v1/users");
            assert!(matches!(kind, Some(FailureKind::Status(502))));
        }
        assert!(
            faults
                .take_failure(&Method::POST, "/api/v1/users")
                .is_none()
        );
    }

    #[test]
    fn request_log_is_bounded() {
        let faults = Faults::default();
        for i in 0..REQUEST_LOG_CAPACITY + 5 {
            faults.record(Method::GET, format!("/{i}"), None);
        }
        let log = faults.requests();
        assert_eq!(log.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(log.first().map(|r| r.1.as_str()), Some("/5"));
        assert_eq!(faults.request_count(), (REQUEST_LOG_CAPACITY + 5) as u64);
        faults.clear_requests();
        assert!(faults.requests().is_empty());
        assert_eq!(faults.request_count(), (REQUEST_LOG_CAPACITY + 5) as u64);
    }

    #[test]
    fn buckets_are_per_tenant() {
        let faults = Faults::default();
        faults.set_knobs(Knobs {
            rate_limit_per_second: Some(1),
            ..Knobs::default()
        });
        assert_eq!(faults.admit("a"), Ok(()));
        assert_eq!(faults.admit("a"), Err(1));
        assert_eq!(faults.admit("b"), Ok(()));
        faults.set_knobs(Knobs::default());
        assert_eq!(faults.admit("a"), Ok(()));
    }
}
