//! The load generator: `clients` concurrent workers, each with its own keep-alive connection,
//! running one operation over and over for a duration or until a total is reached, timing
//! every operation.
//!
//! One client runs alone on a thread of its own, in a single-threaded runtime, the way `wrk
//! -t1 -c1` does: the request, its connection and the answer's read stay on one thread. On
//! the bench's multi-threaded runtime they were split over its two workers, and the client's
//! own hand-offs between them decided whether the processes of a path's chain shared one CPU
//! (measured on a 2-vCPU VM: a turn's p50 through the forwarder about 68 or about 88 µs, one
//! or the other at random, and the sidecar's as much a draw; with one thread every path's
//! turns within a few µs of one another, and the ratios close to those of `wrk`). Many
//! clients share the bench's runtime.

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

/// The name of the thread one client runs on.
const ONE_CLIENT_THREAD: &str = "bench-client";

/// Runs `op` on `clients` workers until `until`; one on a thread of its own (see the module
/// documentation).
pub async fn run(clients: usize, until: Until, op: Op) -> Stats {
    if clients == 1 {
        alone(until, op).await
    } else {
        workers(clients, until, op).await
    }
}

/// One worker on a new thread with a single-threaded runtime, awaited from this one.
async fn alone(until: Until, op: Op) -> Stats {
    let failed = |what: String| Stats {
        errors: 1,
        first_error: Some(what),
        ..Stats::default()
    };
    let (done, stats) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(ONE_CLIENT_THREAD.into())
        .spawn(move || {
            let stats = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(workers(1, until, op)),
                Err(e) => failed(format!("cannot start the client's runtime: {e}")),
            };
            // The bench may have stopped waiting.
            let _ = done.send(stats);
        });
    if let Err(e) = spawned {
        return failed(format!("cannot start the client's thread: {e}"));
    }
    stats
        .await
        .unwrap_or_else(|_| failed("the client's thread ended without its figures".into()))
}

/// `clients` workers as tasks of the current runtime.
async fn workers(clients: usize, until: Until, op: Op) -> Stats {
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;

    /// A server on a real socket (hyper's) answering `{}` to every request.
    async fn server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let answer = service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"{}"))))
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), answer);
                tokio::spawn(conn);
            }
        });
        url
    }

    /// A GET of `url` that notes the name of the thread it ran on; an error once `fail_from`
    /// operations have run.
    fn noting(url: String, threads: Arc<Mutex<Vec<String>>>, fail_from: u64) -> Op {
        Arc::new(move |http: Http, _w, seq| {
            let (url, threads) = (url.clone(), Arc::clone(&threads));
            Box::pin(async move {
                let req = Request::get(url.as_str()).body(Full::new(Bytes::new()))?;
                expect(&http, req, StatusCode::OK).await?;
                let name = std::thread::current().name().unwrap_or("").to_owned();
                threads.lock().unwrap().push(name);
                anyhow::ensure!(seq < fail_from, "operation {seq} fails");
                Ok(())
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_client_runs_alone_on_a_thread_of_its_own_and_many_share_the_runtime() {
        let url = server().await;
        let threads = Arc::new(Mutex::new(Vec::new()));
        let one = run(
            1,
            Until::Count(50),
            noting(url.clone(), Arc::clone(&threads), 50),
        )
        .await;
        assert_eq!((one.ok, one.errors, one.latencies_us.len()), (50, 0, 50));
        let names = std::mem::take(&mut *threads.lock().unwrap());
        assert_eq!(names.len(), 50);
        assert!(names.iter().all(|n| n == ONE_CLIENT_THREAD), "{names:?}");

        let many = run(4, Until::Count(40), noting(url, Arc::clone(&threads), 40)).await;
        assert_eq!((many.ok, many.errors), (40, 0));
        let names = threads.lock().unwrap();
        assert!(names.iter().all(|n| n != ONE_CLIENT_THREAD), "{names:?}");
    }

    #[tokio::test]
    async fn a_failing_operation_alone_is_counted_with_the_first_error() {
        let url = server().await;
        let threads = Arc::new(Mutex::new(Vec::new()));
        let stats = run(1, Until::Count(5), noting(url, threads, 3)).await;
        assert_eq!((stats.ok, stats.errors), (3, 2));
        assert_eq!(stats.first_error.as_deref(), Some("operation 3 fails"));
        assert!(stats.elapsed > Duration::ZERO);
    }
}
