//! Listeners, the hyper-util auto (HTTP/1.1 + HTTP/2) connection builder, the optional TLS
//! handshake of each connection, and graceful shutdown.
//!
//! `run` takes its listener and shutdown signal, so tests bind `127.0.0.1:0` and stop the
//! server when they are done. Work that must not delay an answer (a request's log line) is
//! handed to [`after_answer`] and runs once the connection has written the answer out. Knows
//! nothing about SCIM or mappings; where certificates come from is `tls`'s business, not
//! this module's.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Service;

/// The address of the client a request came from, put in every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Put in the extensions of every request that came over a TLS connection this server
/// terminated (`Transport::Tls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsTerminated;

/// How connections on the listener are carried.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP/1.1 and HTTP/2 (h2c).
    Plain,
    /// TLS first, then HTTP/1.1 or HTTP/2. The handshake runs in the connection's own task
    /// and must finish within `Limits::header_read_timeout`; a failed one closes the
    /// connection and is logged at debug level.
    Tls(TlsAcceptor),
}

impl Transport {
    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Plain => "Plain",
            Transport::Tls(_) => "Tls",
        })
    }
}

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// After shutdown is asked for, how long requests in flight may still run.
    pub grace: Duration,
    /// How long a client may take to send a request's headers (slow-client protection), and
    /// to finish its TLS handshake.
    pub header_read_timeout: Duration,
}

impl Limits {
    /// `grace` to finish in-flight requests; clients get 30 s to send their headers.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `svc` on `listener`, over `transport`, until `shutdown` resolves, then lets
/// in-flight requests finish for at most `limits.grace`.
pub async fn run<S, B>(
    listener: TcpListener,
    transport: Transport,
    svc: S,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    // Every connection's task, so that those still open when the grace period is over are
    // stopped (their requests dropped, which the request log records) before `run` returns.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = Conn {
                    builder: builder.clone(),
                    svc: svc.clone(),
                    peer,
                    watcher: graceful.watcher(),
                };
                let transport = transport.clone();
                let handshake_timeout = limits.header_read_timeout;
                connections.spawn(async move {
                    match transport {
                        Transport::Plain => conn.serve(stream, false).await,
                        Transport::Tls(acceptor) => {
                            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(tls)) => conn.serve(tls, true).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                }
                                Err(_) => tracing::debug!(
                                    %peer,
                                    timeout = ?handshake_timeout,
                                    "TLS handshake timed out"
                                ),
                            }
                        }
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.grace) => {
            tracing::warn!(
                grace = ?limits.grace,
                open = connections.len(),
                "grace period over; closing remaining connections"
            );
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// One accepted connection, before its transport is settled.
struct Conn<S> {
    builder: Builder<TokioExecutor>,
    svc: S,
    peer: SocketAddr,
    /// Held from the accept on, so that graceful shutdown also waits for a handshake.
    watcher: Watcher,
}

impl<S> Conn<S> {
    /// Serves HTTP on `io` until the client or graceful shutdown closes it.
    async fn serve<I, B>(self, io: I, tls: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let peer = self.peer;
        let svc = tower::util::MapRequest::new(self.svc, move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            if tls {
                req.extensions_mut().insert(TlsTerminated);
            }
            req
        });
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        // What `after_answer` is given in a poll runs after the answers that poll wrote.
        let conn = AfterAnswer::new(self.watcher.watch(conn.into_owned()));
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// Work deferred during a poll of a connection on this thread, and how many such polls are
/// running (more than one only if a connection's future ever polls another's).
type Deferred = (u32, Vec<Box<dyn FnOnce()>>);

thread_local! {
    static AFTER_ANSWER: RefCell<Deferred> = const { RefCell::new((0, Vec::new())) };
}

/// Runs `work` once the answer that is ready now has been handed to the client: called while
/// a connection of [`run`] is being polled (the HTTP/1 connection that made the answer ready
/// writes it out in the same poll), `work` runs at the end of that poll; anywhere else
/// (HTTP/2 streams run as tasks of their own, tests), at once. On the same thread either way,
/// a few microseconds later at most, and also when the poll panics. Work queued behind one
/// that panics is dropped without running (the observe layer's lines are written when
/// dropped, so none is lost).
pub fn after_answer(work: impl FnOnce() + 'static) {
    let work: Box<dyn FnOnce()> = Box::new(work);
    let now = AFTER_ANSWER.with(|after| match after.try_borrow_mut() {
        Ok(mut after) if after.0 > 0 => {
            after.1.push(work);
            None
        }
        _ => Some(work),
    });
    if let Some(work) = now {
        work();
    }
}

pin_project! {
    /// A connection's future that runs, at the end of each of its polls, what
    /// [`after_answer`] was given during it. No task and no other thread.
    pub struct AfterAnswer<F> {
        #[pin]
        inner: F,
    }
}

impl<F> AfterAnswer<F> {
    /// Wraps a connection's future.
    pub fn new(inner: F) -> Self {
        AfterAnswer { inner }
    }
}

impl<F: Future> Future for AfterAnswer<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        /// Leaves the poll (also when it unwinds) and runs the work deferred in it.
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                let mut work = AFTER_ANSWER.with(|after| {
                    let mut after = after.borrow_mut();
                    after.0 -= 1;
                    if after.0 == 0 {
                        std::mem::take(&mut after.1)
                    } else {
                        Vec::new()
                    }
                });
                if work.is_empty() {
                    return;
                }
                for work in work.drain(..) {
                    work();
                }
                // The emptied vector goes back for the next poll's work.
                AFTER_ANSWER.with(|after| {
                    if let Ok(mut after) = after.try_borrow_mut()
                        && after.1.is_empty()
                    {
                        after.1 = work;
                    }
                });
            }
        }
        AFTER_ANSWER.with(|after| after.borrow_mut().0 += 1);
        let _leave = Leave;
        self.project().inner.poll(cx)
    }
}
