//! The load generator: `clients` concurrent workers, each with its own keep-alive connection,
//! running one operation over and over for a duration or until a total is reached, timing
//! every operation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An HTTP/1.1 client with one pooled keep-alive connection.
pub type Http = Client<HttpConnector, Full<Bytes>>;

/// One operation: `(client, worker, sequence number)` → done, or what went wrong.
pub type Op = Arc<
    dyn Fn(Http, u64, u64) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
        + Send
        + Sync,
>;

/// When a run ends.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// After this long (operations in flight finish).
    Elapsed(Duration),
    /// After this many operations in all.
    Count(u64),
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of every successful operation, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl Stats {
    /// The `q` quantile (0..=1) of the latencies, in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i])
    }

    /// Adds another run's figures to these (runs of the same operation taken in turns).
    pub fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
    }

    /// Successful operations per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A client for one worker.
pub fn client() -> Http {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build(connector)
}

/// Sends `req` and reads the whole answer: (status, body), or the transport error.
pub async fn send(client: &Http, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)> {
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Sends `req` and requires `want`: the answer's body, or a description of what came.
pub async fn expect(
    client: &Http,
    req: Request<Full<Bytes>>,
    want: StatusCode,
) -> anyhow::Result<Bytes> {
    let (status, body) = send(client, req).await?;
    if status == want {
        Ok(body)
    } else {
        Err(anyhow::anyhow!(
            "expected {want}, got {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}

/// Runs `op` on `clients` workers until `until`.
pub async fn run(clients: usize, until: Until, op: Op) -> Stats {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..clients as u64 {
        let op = Arc::clone(&op);
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let http = client();
            let mut stats = Stats::default();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                match until {
                    Until::Count(n) if seq >= n => break,
                    Until::Elapsed(d) if started.elapsed() >= d => break,
                    _ => {}
                }
                let t = Instant::now();
                match op(http.clone(), w, seq).await {
                    Ok(()) => {
                        stats.ok += 1;
                        let us = t.elapsed().as_micros();
                        stats
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            stats
        });
    }
    let mut all = Stats::default();
    while let Some(done) = workers.join_next().await {
        let Ok(s) = done else { continue };
        all.ok += s.ok;
        all.errors += s.errors;
        if all.first_error.is_none() {
            all.first_error = s.first_error;
        }
        all.latencies_us.extend(s.latencies_us);
    }
    all.elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    all
}
