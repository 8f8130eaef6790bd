//! Delivery: one task per process leases due outbox rows endpoint by endpoint (at most the
//! endpoint's `concurrency` in flight), POSTs each signed, and records the outcome: delivered
//! on a 2xx; otherwise tried again after a pause that doubles from `first_retry` up to
//! `max_retry`, with jitter, never sooner than the endpoint's `Retry-After`; dead-lettered
//! once the next attempt would fall after the retry window (`max_age` from the event, or
//! from its last replay). Redirects are not followed (a 3xx is a failure). It runs apart
//! from the SCIM requests, which only write the outbox rows and wake it.
//!
//! A lease lasts the endpoint's timeout and a margin: a replica that dies mid-delivery leaves
//! its rows to another (or to itself, restarted) once the lease is over; on stop, the task
//! gives its leases back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mapping::ids::TenantId;
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::now_ms;
use crate::metrics::Metrics;
use crate::webhooks::{Endpoint, sign};
use crate::xref::{Attempt, Leased, Store};

/// How often the outbox is looked at when nothing woke the task (other replicas' events,
/// retries coming due, replays from the command line).
const POLL: Duration = Duration::from_millis(500);
/// How long events committed are let gather before the outbox is looked at.
const LINGER: Duration = Duration::from_millis(20);
/// What a lease lasts beyond the endpoint's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// How often delivered and dead rows past their keeping time are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Delivered rows are kept this long (for `events list`), dead ones this long.
const KEEP_DELIVERED_MS: i64 = 7 * 86_400_000;
const KEEP_DEAD_MS: i64 = 30 * 86_400_000;
/// The most of an endpoint's answer read (the rest is dropped with the connection).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An endpoint of a tenant, as the delivery task serves it.
#[derive(Clone, Debug)]
pub struct Target {
    /// The tenant.
    pub tenant: TenantId,
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
}

struct Served {
    target: Target,
    client: HttpsClient,
    in_flight: AtomicUsize,
}

struct Shared {
    store: Store,
    served: Vec<Served>,
    owner: String,
    metrics: Arc<Metrics>,
}

/// The delivery task.
pub struct Deliverer {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").finish_non_exhaustive()
    }
}

impl Deliverer {
    /// Starts delivering the outbox rows of `targets` from `store`. With `release_all` (the
    /// SQLite store, which one process serves), leases left by an earlier run are given back
    /// first rather than waited out. `wake` is notified when events are committed.
    pub fn start(
        store: Store,
        targets: Vec<Target>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        release_all: bool,
    ) -> Deliverer {
        let (stop, stopped) = oneshot::channel();
        let served = targets
            .into_iter()
            .map(|target| Served {
                client: client(&target.endpoint),
                target,
                in_flight: AtomicUsize::new(0),
            })
            .collect();
        let shared = Arc::new(Shared {
            store,
            served,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            metrics,
        });
        let task = tokio::spawn(run(shared, Arc::clone(&wake), stopped, release_all));
        Deliverer {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops: attempts in flight are dropped (their events stay pending: delivery is at
    /// least once) and the leases given back.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "events: the delivery task ended abnormally");
        }
    }
}

fn client(e: &Endpoint) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(e.timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*e.tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

async fn run(
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    mut stopped: oneshot::Receiver<()>,
    release_all: bool,
) {
    if release_all && let Err(e) = shared.store.outbox_release(None).await {
        tracing::warn!(error = %e, "events: cannot give back the leases of an earlier run");
    }
    let mut in_flight = JoinSet::new();
    let mut next_purge = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        let now = now_ms();
        for (index, s) in shared.served.iter().enumerate() {
            let e = &s.target.endpoint;
            let free = e
                .concurrency
                .saturating_sub(s.in_flight.load(Ordering::Acquire));
            if free == 0 {
                continue;
            }
            let lease = e.timeout.saturating_add(LEASE_MARGIN);
            let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
            let leased = shared
                .store
                .outbox_lease(
                    s.target.tenant.as_str(),
                    &e.name,
                    &shared.owner,
                    now,
                    until,
                    u32::try_from(free).unwrap_or(u32::MAX),
                )
                .await;
            match leased {
                Ok(rows) => {
                    failing = false;
                    for row in rows {
                        s.in_flight.fetch_add(1, Ordering::AcqRel);
                        let slot = Slot(Arc::clone(&shared), index);
                        in_flight.spawn(deliver(slot, row));
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "events: cannot read the outbox; trying again");
                }
                Err(_) => {}
            }
        }
        if tokio::time::Instant::now() >= next_purge {
            next_purge += PURGE_EVERY;
            let now = now_ms();
            match (shared.store)
                .outbox_purge(now - KEEP_DELIVERED_MS, now - KEEP_DEAD_MS)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "events: old outbox rows deleted"),
                Err(e) => tracing::warn!(error = %e, "events: cannot delete old outbox rows"),
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            // Events committed: gathered for a moment, so a stream of writes costs a look
            // at the outbox per LINGER rather than per write.
            () = wake.notified() => tokio::time::sleep(LINGER).await,
            Some(_) = in_flight.join_next() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
    in_flight.abort_all();
    while in_flight.join_next().await.is_some() {}
    if let Err(e) = shared
        .store
        .outbox_release(Some(shared.owner.clone()))
        .await
    {
        tracing::warn!(error = %e, "events: cannot give the leases back: they expire on their own");
    }
}

/// A delivery's place in its endpoint's concurrency, given back however the delivery ends.
struct Slot(Arc<Shared>, usize);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(s) = self.0.served.get(self.1) {
            s.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Why an attempt failed.
struct Failure {
    status: Option<u16>,
    error: String,
    retry_after: Option<Duration>,
}

async fn deliver(slot: Slot, row: Leased) {
    let shared = &slot.0;
    let Some(s) = shared.served.get(slot.1) else {
        return;
    };
    let e = &s.target.endpoint;
    let tenant = s.target.tenant.as_str();
    let outcome = send(&s.client, e, &row).await;
    let now = now_ms();
    let (attempt, label) = match outcome {
        Ok(status) => (Attempt::Delivered { status }, "delivered"),
        Err(f) => {
            let pause = pause(e, row.attempts, f.retry_after);
            let max_age = i64::try_from(e.max_age.as_millis()).unwrap_or(i64::MAX);
            let window_end = row.window_start_ms.saturating_add(max_age);
            // The last try falls at the window's end, however long the endpoint asked to wait.
            let next = now
                .saturating_add(i64::try_from(pause.as_millis()).unwrap_or(i64::MAX))
                .min(window_end);
            if now >= window_end {
                tracing::warn!(
                    tenant, endpoint = %e.name, event = %row.event_id, r#type = %row.event_type,
                    error = %f.error, attempts = row.attempts + 1,
                    "event dead-lettered: its retry window is over (`scim-sidecar events replay`)"
                );
                (
                    Attempt::Dead {
                        status: f.status,
                        error: f.error,
                    },
                    "dead",
                )
            } else {
                tracing::info!(
                    tenant, endpoint = %e.name, event = %row.event_id, error = %f.error,
                    retry_in_ms = pause.as_millis() as u64, "event delivery failed; retrying"
                );
                (
                    Attempt::Retry {
                        status: f.status,
                        error: f.error,
                        next_ms: next,
                    },
                    "retry",
                )
            }
        }
    };
    shared.metrics.delivery(tenant, &e.name, label);
    match (shared.store)
        .outbox_settle(row.seq, &shared.owner, attempt, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            event = %row.event_id,
            "events: the lease of a delivery ran out before it ended (another replica, or a \
             replay, took the row): its outcome is not recorded"
        ),
        Err(err) => tracing::warn!(
            error = %err, event = %row.event_id,
            "events: cannot record a delivery; it will be sent again"
        ),
    }
}

/// One POST of the row's body: the status of a 2xx answer, or why not.
async fn send(client: &HttpsClient, e: &Endpoint, row: &Leased) -> Result<u16, Failure> {
    let timestamp = now_ms() / 1000;
    let body = Bytes::from(row.body.clone());
    let signature = sign::header(&e.keys, &row.event_id, timestamp, &body);
    let fail = |status: Option<u16>, error: String| Failure {
        status,
        error,
        retry_after: None,
    };
    let req = Request::post(e.url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("scim-sidecar/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", &row.event_id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(Full::new(body))
        .map_err(|err| fail(None, format!("cannot build the request: {err}")))?;
    let answer = tokio::time::timeout(e.timeout, async {
        let resp = client.request(req).await.map_err(|err| {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            fail(None, text)
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        // Read (a bounded part of) the answer so the connection can be used again.
        let _ = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await;
        Ok((status, retry_after))
    })
    .await;
    let (status, retry_after) = match answer {
        Err(_) => {
            return Err(fail(
                None,
                format!("no answer within {} s", e.timeout.as_secs_f64()),
            ));
        }
        Ok(r) => r?,
    };
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let error = if status.is_redirection() {
        format!("HTTP {} (redirects are not followed)", status.as_u16())
    } else {
        format!("HTTP {}", status.as_u16())
    };
    Err(Failure {
        status: Some(status.as_u16()),
        error,
        retry_after,
    })
}

/// The pause before the next attempt after `attempts` earlier ones failed and this one too:
/// `first_retry` doubled per attempt up to `max_retry`, the upper half of it drawn at random
/// (so endpoints that fail together are not retried together); at least `retry_after`.
fn pause(e: &Endpoint, attempts: i64, retry_after: Option<Duration>) -> Duration {
    let doublings = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    let full = e
        .first_retry
        .saturating_mul(1u32 << doublings)
        .min(e.max_retry)
        .max(Duration::from_millis(1));
    let half = full / 2;
    let jitter = Duration::from_millis(rand::random_range(
        0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX),
    ));
    let backoff = half + jitter;
    match retry_after {
        Some(asked) => backoff.max(asked),
        None => backoff,
    }
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let now = time::OffsetDateTime::now_utc();
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        let roots = rustls::RootCertStore::empty();
        Endpoint {
            name: "e".into(),
            url: http::Uri::from_static("http://127.0.0.1:1/"),
            keys: vec![vec![1; 32]],
            types: crate::webhooks::EventType::ALL.to_vec(),
            timeout: Duration::from_secs(1),
            concurrency: 1,
            max_age: Duration::from_secs(86_400),
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(3600),
            tls: Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
            ),
        }
    }

    #[test]
    fn pauses_double_within_bounds_and_honour_retry_after() {
        let e = endpoint();
        for _ in 0..100 {
            let p0 = pause(&e, 0, None);
            assert!(p0 >= Duration::from_millis(2500) && p0 <= Duration::from_secs(5));
            let p3 = pause(&e, 3, None);
            assert!(p3 >= Duration::from_secs(20) && p3 <= Duration::from_secs(40));
            let capped = pause(&e, 40, None);
            assert!(capped >= Duration::from_secs(1800) && capped <= Duration::from_secs(3600));
            let asked = pause(&e, 0, Some(Duration::from_secs(120)));
            assert_eq!(asked, Duration::from_secs(120));
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(90);
        let format = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let asked = retry_after(&later.format(&format).expect("formats")).expect("a date");
        assert!(asked > Duration::from_secs(80) && asked <= Duration::from_secs(90));
        assert_eq!(retry_after("soon"), None);
    }
}
