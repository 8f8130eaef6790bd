//! The bare pass-through forwarder: the floor any HTTP proxy pays on this machine.
//!
//! A server (the sidecar's own, run by the binary) whose every request is sent, path and headers unchanged, over a
//! pooled keep-alive hyper-util client to one upstream, and whose answer is returned as it
//! came. No parsing, no translation, no logging: what is left of the sidecar's cost once its
//! own work is taken away. Run by the hidden `forward` command, as a process of its own, so
//! that it is measured the way the sidecar is.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The forwarder's service: every request sent to `upstream` (`http://host:port`). The
/// binary serves it with the same server as the sidecar (its hidden `forward` command).
pub fn service(
    upstream: &str,
) -> anyhow::Result<
    impl tower::Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Clone
    + Send
    + 'static,
> {
    let upstream: Uri = upstream
        .parse()
        .map_err(|e| anyhow::anyhow!("upstream {upstream:?}: {e}"))?;
    let authority = upstream
        .authority()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("upstream {upstream} has no host"))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector);
    Ok(tower::service_fn(move |req: Request<Incoming>| {
        let client = client.clone();
        let authority = authority.clone();
        async move { Ok::<_, Infallible>(forward(&client, &authority, req).await) }
    }))
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    authority: &http::uri::Authority,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path)
        .build()
    else {
        return status(StatusCode::BAD_REQUEST);
    };
    parts.uri = uri;
    parts.headers.remove(http::header::HOST);
    let Ok(resp) = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let (parts, body) = resp.into_parts();
    match body.collect().await {
        Ok(c) => Response::from_parts(parts, Full::new(c.to_bytes())),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// The address line the `forward` command prints once it listens.
pub fn announce(addr: SocketAddr) -> String {
    format!("forwarding on http://{addr}")
}
