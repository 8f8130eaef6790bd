//! The tower stack in front of the handlers: sensitive headers, the request's id, span and
//! log line (observe), auth (token → tenant), content type, then the innermost service that
//! reads the body and dispatches to the handlers. Knows nothing about any mapping's contents.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use tower::{Service, ServiceBuilder};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::credentials::Credentials;
use crate::error::{Error, RequestError};
use crate::handlers::{self, Ctx};
use crate::middleware::{AuthLayer, ContentTypeLayer, ObserveLayer, RescueLayer};
use crate::oauth::OAuth;
use crate::router::{self, Route};
use crate::server::{PeerAddr, TlsTerminated};
use crate::telemetry::RequestNote;
use crate::tenant::{State, Tenant};

/// The whole SCIM service: sensitive headers, then the request's id, span and log line
/// (observe), auth, content type, the rescue of every error and the request time limit, then
/// the handlers.
pub fn service(
    state: Arc<State>,
    credentials: Arc<Credentials<Arc<Tenant>>>,
    oauth: Option<Arc<OAuth>>,
) -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Response<
        impl Body<Data = Bytes, Error = impl Into<tower::BoxError>> + Send + 'static,
    >,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    let observe = ObserveLayer::new(Arc::clone(&state.metrics), state.provisioning.clone());
    ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(observe)
        .layer_fn(move |inner| OAuthSplit {
            inner,
            oauth: oauth.clone(),
        })
        .layer(AuthLayer::new(credentials, Arc::clone(&state.metrics)))
        .layer(ContentTypeLayer)
        .layer(RescueLayer::new(state.request_timeout))
        .timeout(state.request_timeout)
        .service(ScimService { state })
}

/// Sends `/oauth2/…` to the OAuth 2.0 endpoints (before SCIM authentication: they are
/// where credentials are made), everything else on to SCIM.
#[derive(Clone)]
pub struct OAuthSplit<S> {
    inner: S,
    oauth: Option<Arc<OAuth>>,
}

impl<S, B> Service<Request<B>> for OAuthSplit<S>
where
    S: Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower::BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        S::Future,
        Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if path != "/oauth2" && !path.starts_with("/oauth2/") {
            return futures_util::future::Either::Left(self.inner.call(req));
        }
        let oauth = self.oauth.clone();
        futures_util::future::Either::Right(Box::pin(async move {
            let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
            Ok(match oauth {
                Some(o) => o.serve(req, peer).await,
                None => crate::oauth::not_offered(),
            })
        }))
    }
}

/// The innermost service: reads the body, routes and calls the handlers. Its errors are
/// answered by the rescue layer outside it.
#[derive(Clone)]
pub struct ScimService {
    state: Arc<State>,
}

impl<B> Service<Request<B>> for ScimService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower::BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let _in_flight = state.in_flight.enter();
            // Set by the observe layer; made here when the service runs without it.
            let note = req
                .extensions()
                .get::<Arc<RequestNote>>()
                .cloned()
                .unwrap_or_default();
            let route = match req.extensions().get::<Route>() {
                Some(r) => r.clone(),
                None => router::route(req.method(), req.uri().path()),
            };
            handle(&state, req, route, note).await
        })
    }
}

async fn handle<B>(
    state: &Arc<State>,
    req: Request<B>,
    route: Route,
    note: Arc<RequestNote>,
) -> Result<Response<Full<Bytes>>, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower::BoxError>,
{
    let (parts, body) = req.into_parts();
    let tenant = parts
        .extensions
        .get::<Arc<Tenant>>()
        .cloned()
        .ok_or(RequestError::Unauthorized)?;
    note.set_tenant(&tenant.id);
    // Given by the observe layer.
    let request_id = note.request_id();
    let base_url = match &state.public_base_url {
        Some(url) => url.clone(),
        None => base_url(&parts),
    };
    let has_body = !matches!(
        parts.method,
        http::Method::GET | http::Method::DELETE | http::Method::HEAD
    );
    let body = if has_body {
        let limit = state.max_body_bytes;
        match Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(RequestError::PayloadTooLarge { limit }.into());
            }
            Err(e) => {
                return Err(RequestError::UnreadableBody(e.to_string()).into());
            }
        }
    } else {
        Bytes::new()
    };
    let ctx = Ctx {
        mapping: tenant.mapping(),
        tenant,
        state: Arc::clone(state),
        base_url,
        request_id,
        note,
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let mut resp = handlers::dispatch(&ctx, route, &query, body).await?;
    if parts.method == http::Method::HEAD {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    Ok(resp)
}

/// `http://<host>/scim/v2` from the request: the `Host` header (HTTP/1.1) or the URI's
/// authority (HTTP/2), and the scheme `https` when the sidecar terminated TLS itself, else
/// `X-Forwarded-Proto` from a TLS-terminating proxy. A host that is not a plain host[:port] is
/// not reflected.
fn base_url(parts: &http::request::Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .unwrap_or("localhost");
    let proto = if parts.extensions.get::<TlsTerminated>().is_some() {
        "https"
    } else {
        parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|p| *p == "https" || *p == "http")
            .unwrap_or("http")
    };
    let mut url = String::with_capacity(proto.len() + 3 + host.len() + router::SCIM_PREFIX.len());
    for part in [proto, "://", host, router::SCIM_PREFIX] {
        url.push_str(part);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::{TlsTerminated, base_url};

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn base_url_from_host_authority_and_proxy() {
        let h1 = http::Request::get("/scim/v2/Users")
            .header("host", "sidecar:8787")
            .body(());
        assert_eq!(base_url(&parts(h1.unwrap())), "http://sidecar:8787/scim/v2");
        // HTTP/2 carries the host as :authority, which lands in the URI.
        let h2 = http::Request::get("http://sidecar.internal:8787/scim/v2/Users").body(());
        assert_eq!(
            base_url(&parts(h2.unwrap())),
            "http://sidecar.internal:8787/scim/v2"
        );
        let proxied = http::Request::get("/scim/v2/Users")
            .header("host", "scim.example.com")
            .header("x-forwarded-proto", "https")
            .body(());
        assert_eq!(
            base_url(&parts(proxied.unwrap())),
            "https://scim.example.com/scim/v2"
        );
        // Over TLS the sidecar terminated itself, the scheme is https whatever a header says.
        let mut direct = http::Request::get("/scim/v2/Users")
            .header("host", "scim.example.com:8443")
            .header("x-forwarded-proto", "http")
            .body(())
            .unwrap();
        direct.extensions_mut().insert(TlsTerminated);
        assert_eq!(
            base_url(&parts(direct)),
            "https://scim.example.com:8443/scim/v2"
        );
        let hostile = http::Request::get("/x")
            .header("host", "evil.com/<script>")
            .body(());
        assert_eq!(
            base_url(&parts(hostile.unwrap())),
            "http://localhost/scim/v2"
        );
    }
}
