//! Keep-alive connections to the legacy app: hyper's HTTP/1 client connections, kept idle per
//! host and port and lent one call at a time.
//!
//! hyper-util's pooled client did this before, for about 9,000 instructions a call (a map
//! keyed with SipHash on every checkout and return, a race between checkout and a lazy
//! connect, a guard that returns the connection when dropped): a sixth of a GET's own cost.
//! A legacy app is one or two hosts, so a lock over a short list does the same for a few
//! hundred.
//!
//! What it keeps of hyper-util's behaviour: at most `max_idle` idle connections per host,
//! dropped after `idle_timeout` unused (by a reaper task, and when found so); a connection is
//! lent only once it is ready for another request (a closed one is dropped); connecting gives
//! up after `connect_timeout`; and a request that a reused connection could not take (the app
//! closed it while it was idle) is sent again, once, on a new connection. Owned by `client`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::BoxError;

/// One host's idle connections.
struct Host {
    /// The URI authority the connections are for (`host:port`, as written in the URI).
    authority: Box<str>,
    /// Its `Host` header value.
    header: HeaderValue,
    /// Idle connections, the most recently returned last.
    idle: Vec<(SendRequest<Full<Bytes>>, Instant)>,
}

struct Inner {
    hosts: Mutex<Vec<Host>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

/// See the module documentation. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_idle", &self.inner.max_idle)
            .field("idle_timeout", &self.inner.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// A connection lent for one call.
pub(super) struct Lent {
    sender: SendRequest<Full<Bytes>>,
    /// The index of its host in the pool's list (hosts are never removed).
    host: usize,
    /// Whether it served a call before (then a refusal to take the request is retried).
    reused: bool,
}

impl Pool {
    /// An empty pool. Within a tokio runtime, a reaper task closes connections idle longer
    /// than `idle_timeout`; it ends with the pool.
    pub(super) fn new(max_idle: usize, idle_timeout: Duration, connect_timeout: Duration) -> Pool {
        let inner = Arc::new(Inner {
            hosts: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
            idle_timeout,
            connect_timeout,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(&inner), idle_timeout));
        }
        Pool { inner }
    }

    fn hosts(&self) -> std::sync::MutexGuard<'_, Vec<Host>> {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `req` (its URI absolute, `http`) on a lent connection and returns the answer's
    /// head with the connection to give back once its body is read.
    pub(super) async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lent), BoxError> {
        let authority = (req.uri().authority().cloned())
            .ok_or_else(|| BoxError::from(format!("{} has no host", req.uri())))?;
        let (mut lent, header) = self.checkout(&authority).await?;
        *req.uri_mut() = origin_form(req.uri());
        if !req.headers().contains_key(http::header::HOST) {
            req.headers_mut().insert(http::header::HOST, header);
        }
        match lent.sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, lent)),
            Err(mut refused) => match refused.take_message() {
                // The connection closed while idle: the request was not written, so it goes
                // again on a new connection.
                Some(req) if lent.reused => {
                    let mut fresh = Lent {
                        sender: self.connect(&authority).await?,
                        host: lent.host,
                        reused: false,
                    };
                    let resp = fresh.sender.send_request(req).await?;
                    Ok((resp, fresh))
                }
                _ => Err(refused.into_error().into()),
            },
        }
    }

    /// An idle connection to `authority` that is ready for a request, or a new one; and the
    /// host's `Host` header.
    async fn checkout(&self, authority: &Authority) -> Result<(Lent, HeaderValue), BoxError> {
        loop {
            let (host, header, idle) = {
                let mut hosts = self.hosts();
                let at = match hosts
                    .iter()
                    .position(|h| *h.authority == *authority.as_str())
                {
                    Some(at) => at,
                    None => {
                        let header = HeaderValue::from_str(authority.as_str())?;
                        hosts.push(Host {
                            authority: authority.as_str().into(),
                            header,
                            idle: Vec::new(),
                        });
                        hosts.len() - 1
                    }
                };
                let host = &mut hosts[at];
                let fresh = |since: &Instant| since.elapsed() < self.inner.idle_timeout;
                let idle = loop {
                    match host.idle.pop() {
                        Some((sender, since)) if fresh(&since) && !sender.is_closed() => {
                            break Some(sender);
                        }
                        Some(_) => {}
                        None => break None,
                    }
                };
                (at, host.header.clone(), idle)
            };
            let Some(mut sender) = idle else {
                let sender = self.connect(authority).await?;
                let lent = Lent {
                    sender,
                    host,
                    reused: false,
                };
                return Ok((lent, header));
            };
            // Ready at once unless its last answer is still being wound up; an error means
            // it closed: the next one is tried.
            if sender.ready().await.is_ok() {
                let lent = Lent {
                    sender,
                    host,
                    reused: true,
                };
                return Ok((lent, header));
            }
        }
    }

    /// A new connection to `authority`, its task spawned.
    async fn connect(&self, authority: &Authority) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        let port = authority.port_u16().unwrap_or(80);
        // An IPv6 literal is written in brackets in a URI, not in an address.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let connecting = async {
            match host.parse::<std::net::IpAddr>() {
                Ok(ip) => TcpStream::connect(SocketAddr::new(ip, port)).await,
                Err(_) => TcpStream::connect((host, port)).await,
            }
        };
        let stream = tokio::time::timeout(self.inner.connect_timeout, connecting)
            .await
            .map_err(|_| {
                BoxError::from(format!(
                    "connecting to {authority} took longer than {:?}",
                    self.inner.connect_timeout
                ))
            })??;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a connection to the legacy app ended with an error");
            }
        });
        Ok(sender)
    }

    /// Gives back a connection whose answer was read whole: kept unless closed or the host
    /// has `max_idle` idle already.
    pub(super) fn give_back(&self, lent: Lent) {
        if lent.sender.is_closed() {
            return;
        }
        let mut hosts = self.hosts();
        if let Some(host) = hosts.get_mut(lent.host)
            && host.idle.len() < self.inner.max_idle
        {
            host.idle.push((lent.sender, Instant::now()));
        }
    }

    /// Idle connections kept now, all hosts.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.hosts().iter().map(|h| h.idle.len()).sum()
    }
}

/// The request target of `uri` as an origin server takes it (`/path?query`).
fn origin_form(uri: &http::Uri) -> http::Uri {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    http::Uri::from_parts(parts).unwrap_or_else(|_| http::Uri::from_static("/"))
}

/// Every `every`, drops the connections idle for longer than that, until the pool is gone.
async fn reap(pool: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        let mut hosts = inner.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        for host in hosts.iter_mut() {
            host.idle.retain(|(sender, since)| {
                since.elapsed() < inner.idle_timeout && !sender.is_closed()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::{Method, StatusCode};
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A legacy app over a real socket: answers `{}` to every request, keeps each connection
    /// open unless `close_after_answer`, and holds answers back until `hold` connections are
    /// open. Counts connections; keeps every request head.
    struct App {
        url: String,
        accepted: Arc<AtomicUsize>,
        heads: Arc<Mutex<Vec<String>>>,
    }

    async fn app(close_after_answer: bool, hold: usize) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(tokio::sync::Notify::new());
        let (count, kept) = (Arc::clone(&accepted), Arc::clone(&heads));
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let now = count.fetch_add(1, Ordering::SeqCst) + 1;
                if now >= hold {
                    open.notify_waiters();
                }
                let (kept, open, count) =
                    (Arc::clone(&kept), Arc::clone(&open), Arc::clone(&count));
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        kept.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&head).into_owned());
                        head.clear();
                        while count.load(Ordering::SeqCst) < hold {
                            let waiting = open.notified();
                            if count.load(Ordering::SeqCst) >= hold {
                                break;
                            }
                            waiting.await;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if sock.write_all(answer).await.is_err() || close_after_answer {
                            return;
                        }
                    }
                });
            }
        });
        App {
            url,
            accepted,
            heads,
        }
    }

    /// One GET of `path` through `pool`, its body read and the connection given back.
    async fn get(pool: &Pool, url: &str, path: &str) -> Result<Bytes, BoxError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("{url}{path}"))
            .body(Full::new(Bytes::new()))?;
        let (resp, lent) = pool.send(req).await?;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await?.to_bytes();
        pool.give_back(lent);
        Ok(body)
    }

    /// Waits, up to 10 s, until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "still not so after 10 s: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn calls_one_after_another_share_one_connection_in_origin_form_with_a_host() {
        let app = app(false, 1).await;
        let pool = Pool::new(4, Duration::from_secs(30), Duration::from_secs(5));
        for n in 0..3 {
            let body = get(&pool, &app.url, &format!("/api/records/{n}?x=1"))
                .await
                .unwrap();
            assert_eq!(body, Bytes::from_static(b"{}"));
        }
        assert_eq!(app.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle(), 1);
        let heads = app.heads.lock().unwrap().clone();
        let authority = app.url.trim_start_matches("http://");
        for (n, head) in heads.iter().enumerate() {
            assert!(
                head.starts_with(&format!("GET /api/records/{n}?x=1 HTTP/1.1\r\n")),
                "{head}"
            );
            assert!(
                head.contains(&format!("\r\nhost: {authority}\r\n")),
                "{head}"
            );
        }
    }

    #[tokio::test]
    async fn a_connection_the_app_closed_while_idle_is_not_lent_again() {
        let app = app(true, 1).await;
        let pool = Pool::new(4, Duration::from_secs(30), Duration::from_secs(5));
        get(&pool, &app.url, "/a").await.unwrap();
        // Kept until its task sees the app's close; never lent after.
        let closed = || {
            pool.hosts()
                .iter()
                .all(|h| h.idle.iter().all(|(s, _)| s.is_closed()))
        };
        until("the pooled connection is seen closed", closed).await;
        get(&pool, &app.url, "/b").await.unwrap();
        assert_eq!(app.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn at_most_max_idle_are_kept_and_none_past_the_idle_timeout() {
        // Four calls at once, each on its own connection (the app answers none before all
        // four are open); two are kept.
        let app = app(false, 4).await;
        let pool = Pool::new(2, Duration::from_millis(200), Duration::from_secs(5));
        let calls: Vec<_> = (0..4)
            .map(|n| {
                let (pool, url) = (pool.clone(), app.url.clone());
                tokio::spawn(async move { get(&pool, &url, &format!("/{n}")).await.unwrap() })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
        assert_eq!(app.accepted.load(Ordering::SeqCst), 4);
        assert_eq!(pool.idle(), 2);
        // The reaper closes them once idle for 200 ms.
        until("the idle connections are reaped", || pool.idle() == 0).await;
        get(&pool, &app.url, "/again").await.unwrap();
        assert_eq!(app.accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_host_that_refuses_connections_is_an_error_and_nothing_is_kept() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let pool = Pool::new(4, Duration::from_secs(30), Duration::from_secs(5));
        let err = get(&pool, &url, "/records").await.unwrap_err();
        let io = err
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        assert_eq!(io, Some(std::io::ErrorKind::ConnectionRefused), "{err}");
        assert_eq!(pool.idle(), 0);
        let err = get(&pool, "/relative", "").await.unwrap_err();
        assert!(err.to_string().contains("has no host"), "{err}");
    }

    #[test]
    fn origin_form_keeps_the_path_and_query_only() {
        let uri: http::Uri = "http://127.0.0.1:3000/api/v1/records?page=2"
            .parse()
            .unwrap();
        assert_eq!(origin_form(&uri).to_string(), "/api/v1/records?page=2");
        let bare: http::Uri = "http://127.0.0.1:3000".parse().unwrap();
        assert_eq!(origin_form(&bare).to_string(), "/");
    }
}
