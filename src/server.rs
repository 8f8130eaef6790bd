//! Listeners, the hyper-util auto (HTTP/1.1 + h2c) connection builder and graceful shutdown.
//!
//! `run` takes its listener and shutdown signal, so tests bind `127.0.0.1:0` and stop the
//! server when they are done. Knows nothing about SCIM or mappings.

use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Service;

/// The address of the client a request came from, put in every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// After shutdown is asked for, how long requests in flight may still run.
    pub grace: Duration,
    /// How long a client may take to send a request's headers (slow-client protection).
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

/// Serves `svc` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for at most `limits.grace`.
pub async fn run<S, B>(
    listener: TcpListener,
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
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
                let svc = tower::util::MapRequest::new(svc.clone(), move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    req
                });
                let conn = builder.serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(svc),
                );
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
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
            tracing::warn!(grace = ?limits.grace, "grace period over; closing remaining connections");
        }
    }
    Ok(())
}
