//! One log line, the metrics and (for writes) the provisioning log entry of every SCIM
//! request, including requests refused by the layers inside it and requests dropped before
//! their answer (client gone, shutdown past its grace period).
//!
//! Outermost but for the sensitive-header marking: it gives the request its id (the client's
//! `X-Request-Id` when it sent a usable one, else a new UUID), answers with that id in
//! `X-Request-Id`, and runs everything inside it, the log line included, in the request's
//! `scim` span (method, path, request id, tenant). Metrics and the provisioning log entry are
//! recorded when the answer is ready; the log line is written (and the span closed) just
//! after the connection has written the answer out ([`server::after_answer`]). It sits outside
//! authentication, so refused requests are counted too. It puts a
//! [`RequestNote`](crate::telemetry::RequestNote) and the [`Route`] in the request's
//! extensions; authentication records the tenant in the note, the handlers what they learn
//! (SCIM id, userName, the write's action, legacy calls). The error sent comes from the
//! response's [`ErrorCause`]. PII in the line goes through
//! [`telemetry::pii`](crate::telemetry::pii).
//!
//! Knows routes, metrics and the provisioning log; nothing about mappings or the legacy app.
//!
//! [`server::after_answer`]: crate::server::after_answer

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::error::ErrorCause;
use crate::metrics::{Metrics, ScimRequest};
use crate::provisioning::{Entry, ProvisioningLog};
use crate::router::{self, Route};
use crate::telemetry::{self, RequestNote};

/// The status recorded for a request whose answer was never sent (nginx's "client closed
/// request").
pub const ABORTED: u16 = 499;

use crate::telemetry::REQUEST_ID_HEADER as REQUEST_ID;

/// The request's id: the client's `X-Request-Id` when it is printable text of at most 200
/// bytes, else a new UUID. Returned as text and as the header value answered.
fn request_id(sent: Option<&HeaderValue>) -> (Arc<str>, HeaderValue) {
    if let Some((text, value)) = sent
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .and_then(|v| v.to_str().ok().map(|t| (Arc::from(t), v.clone())))
    {
        return (text, value);
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text: &str = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    // A UUID is always a valid header value.
    let value = HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"));
    (Arc::from(text), value)
}

/// Layer that logs, counts and records every request.
#[derive(Clone, Debug)]
pub struct ObserveLayer(Arc<Sinks>);

/// Where [`ObserveLayer`] records; shared by every request (each holds it until it is done).
#[derive(Debug)]
struct Sinks {
    metrics: Arc<Metrics>,
    provisioning: Option<ProvisioningLog>,
}

impl ObserveLayer {
    /// Records into `metrics`, and writes into `provisioning` when given.
    pub fn new(metrics: Arc<Metrics>, provisioning: Option<ProvisioningLog>) -> Self {
        Self(Arc::new(Sinks {
            metrics,
            provisioning,
        }))
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

impl<S, B, ResBody> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let route = router::route(req.method(), req.uri().path());
        let (request_id, id_header) = request_id(req.headers().get(&REQUEST_ID));
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let note = Arc::new(RequestNote::for_request(Some(Arc::clone(&request_id))));
        req.extensions_mut().insert(Arc::clone(&note));
        req.extensions_mut().insert(route.clone());
        // The layers inside run their `call` now: authentication has named the tenant (or
        // refused) when the span is made, so it is made whole, not recorded into later. They
        // log nothing before their futures run, and those run inside the span.
        let inner = self.inner.call(req);
        let tenant = note.tenant();
        // Text fields as `&str`: recorded as they are, not through `Display`.
        let span = tracing::info_span!(
            "scim",
            method = method.as_str(),
            path = uri.path(),
            request_id = &*request_id,
            tenant = tenant.as_ref().map(mapping::ids::TenantId::as_str),
        );
        ResponseFuture {
            inner,
            id_header: Some(id_header),
            record: Record {
                span,
                what: What {
                    started: Instant::now(),
                    route,
                    note,
                    request_id,
                    layer: self.layer.clone(),
                    done: false,
                },
            },
        }
    }
}

pin_project! {
    /// Future of [`Observe`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id_header: Option<HeaderValue>,
        record: Record,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Record { span, what } = this.record;
        let _entered = span.enter();
        let mut result = std::task::ready!(this.inner.poll(cx));
        if let Ok(resp) = &mut result {
            let line = what.answered(
                resp.status().as_u16(),
                resp.extensions().get::<ErrorCause>(),
            );
            if let Some(id) = this.id_header.take() {
                resp.headers_mut().entry(REQUEST_ID).or_insert(id);
            }
            if let Some(line) = line {
                drop(_entered);
                let finished = Finished {
                    span: std::mem::replace(span, tracing::Span::none()),
                    line,
                };
                // Written when dropped.
                crate::server::after_answer(move || drop(finished));
            }
        }
        Poll::Ready(result)
    }
}

/// One request's span and what is recorded about it, once: when its answer is ready, or
/// when it is dropped before that (inside the span either way).
struct Record {
    span: tracing::Span,
    what: What,
}

/// What is recorded about one request.
struct What {
    started: Instant,
    route: Route,
    note: Arc<RequestNote>,
    request_id: Arc<str>,
    layer: ObserveLayer,
    done: bool,
}

impl What {
    /// Records the request's metrics and (for a write) its provisioning log entry, and
    /// returns its log line; `None` when it was recorded already.
    fn answered(&mut self, status: u16, error: Option<&ErrorCause>) -> Option<Line> {
        if std::mem::replace(&mut self.done, true) {
            return None;
        }
        let latency = self.started.elapsed();
        // The request is over: its facts and route are taken, not copied.
        let route = std::mem::replace(&mut self.route, Route::NotFound);
        let (resource, operation) = route.labels();
        let facts = self.note.take_facts();
        let legacy_calls = self.note.legacy_calls();
        let tenant = facts
            .tenant
            .as_ref()
            .map_or("none", mapping::ids::TenantId::as_str);
        self.layer.0.metrics.scim_request(
            ScimRequest {
                tenant,
                resource,
                operation,
                status,
            },
            latency.as_secs_f64(),
        );
        // A 429 before authentication is the sidecar's own throttling; an authenticated one
        // passes the legacy app's on (counted by the legacy client).
        if status == 429 && facts.tenant.is_none() {
            self.layer.0.metrics.sidecar_rate_limited();
        }
        let line = Line {
            tenant: facts.tenant,
            resource,
            operation,
            scim_id: facts.scim_id,
            route,
            subject: facts.subject,
            status,
            latency_us: latency.as_micros() as u64,
            legacy_calls,
            error: error.cloned(),
        };
        if line.route.is_write()
            && let (Some(log), Some(tenant)) = (&self.layer.0.provisioning, &line.tenant)
        {
            let action = facts.action.unwrap_or(match (resource, operation) {
                ("Group", "patch" | "replace") => "membership",
                (_, "patch" | "replace") => "update",
                (_, op) => op,
            });
            log.record(Entry {
                id: 0,
                at_ms: crate::provisioning::now_ms(),
                tenant: tenant.as_str().to_owned(),
                resource: resource.to_owned(),
                action: action.to_owned(),
                scim_id: line.scim_id().map(str::to_owned),
                subject: line.subject.clone(),
                failed: error.is_some() || status >= 400,
                status,
                scim_type: error.and_then(|e| e.scim_type).map(str::to_owned),
                detail: error.map(|e| e.detail.clone()),
                request_id: Some(self.request_id.to_string()),
                legacy_calls,
                duration_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Some(line)
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let Record { span, what } = self;
        if what.done {
            return;
        }
        let _entered = span.enter();
        let cause = ErrorCause {
            scim_type: None,
            detail: "no answer was sent: the client went away or the sidecar stopped; the \
                     legacy app may have been changed"
                .to_owned(),
            cause: "request dropped before its answer".to_owned(),
        };
        if let Some(line) = what.answered(ABORTED, Some(&cause)) {
            line.write();
        }
    }
}

/// A request's log line with its span: written when dropped, inside the span.
struct Finished {
    span: tracing::Span,
    line: Line,
}

impl Drop for Finished {
    fn drop(&mut self) {
        let _entered = self.span.enter();
        self.line.write();
    }
}

/// A request's log line.
struct Line {
    tenant: Option<mapping::ids::TenantId>,
    resource: &'static str,
    operation: &'static str,
    /// The SCIM id the handlers recorded, else the route's.
    scim_id: Option<String>,
    route: Route,
    subject: Option<String>,
    status: u16,
    latency_us: u64,
    legacy_calls: u32,
    error: Option<ErrorCause>,
}

impl Line {
    fn scim_id(&self) -> Option<&str> {
        self.scim_id.as_deref().or_else(|| self.route.id())
    }

    fn write(&self) {
        let &Line {
            resource,
            operation,
            status,
            latency_us,
            legacy_calls,
            ..
        } = self;
        let tenant = self
            .tenant
            .as_ref()
            .map_or("none", mapping::ids::TenantId::as_str);
        let scim_id = self.scim_id().unwrap_or("-");
        // The userName or group name is personal data: only with debug logging on.
        let subject = self
            .subject
            .as_deref()
            .filter(|_| telemetry::pii_allowed())
            .unwrap_or("-");
        let Some(error) = &self.error else {
            tracing::info!(
                tenant,
                resource,
                operation,
                scim_id,
                subject,
                status,
                latency_us,
                legacy_calls,
                "request done"
            );
            return;
        };
        let detail = telemetry::pii(&error.detail);
        let cause = telemetry::pii(&error.cause);
        let scim_type = error.scim_type.unwrap_or("-");
        if status >= 500 || status == ABORTED {
            tracing::error!(
                tenant, resource, operation, scim_id, subject, status, latency_us, legacy_calls,
                scim_type, detail = %detail, cause = %cause, "request failed"
            );
        } else {
            tracing::info!(
                tenant, resource, operation, scim_id, subject, status, latency_us, legacy_calls,
                scim_type, detail = %detail, cause = %cause, "request refused"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use http::{HeaderValue, Request, Response};
    use tower::{Layer, Service};

    use super::{ObserveLayer, request_id};
    use crate::metrics::Metrics;
    use crate::server::AfterAnswer;
    use crate::telemetry::LogBuffer as Buffer;

    /// Inside a connection's poll ([`AfterAnswer`]) a request's line is written when the
    /// poll ends, not when the answer is ready; it is written also when the poll panics;
    /// outside one, at once. The metrics are counted with the answer either way.
    #[test]
    fn the_log_line_follows_the_connections_poll_and_is_never_lost() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let lines = |b: &Buffer| b.text().matches("request done").count();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let metrics = Arc::new(Metrics::new());
            let service = ObserveLayer::new(Arc::clone(&metrics), None).layer(tower::service_fn(
                |_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) },
            ));
            let get = || Request::get("/scim/v2/Users/u-1").body(()).unwrap();

            let (mut svc, seen) = (service.clone(), buffer.clone());
            let response = runtime.block_on(AfterAnswer::new(async move {
                let response = svc.call(get()).await.unwrap();
                // The answer is ready; its line waits for the end of the poll.
                assert_eq!(lines(&seen), 0, "{}", seen.text());
                response
            }));
            assert!(response.headers().contains_key("x-request-id"));
            assert!(
                metrics
                    .encode()
                    .contains("scim_sidecar_scim_requests_total{")
            );
            let text = buffer.text();
            assert_eq!(lines(&buffer), 1, "{text}");
            assert!(
                text.contains(r#"scim{method="GET" path="/scim/v2/Users/u-1""#),
                "{text}"
            );
            assert!(text.contains(r#"scim_id="u-1""#), "{text}");

            let mut svc = service.clone();
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(AfterAnswer::new(async move {
                    let _ = svc.call(get()).await;
                    panic!("the connection's future panics after an answer");
                }))
            }));
            assert!(panicked.is_err());
            assert_eq!(lines(&buffer), 2, "{}", buffer.text());

            let mut svc = service;
            runtime.block_on(async move {
                let _ = svc.call(get()).await;
            });
            assert_eq!(lines(&buffer), 3, "outside a connection: at once");
        });
    }

    #[test]
    fn a_usable_request_id_is_kept_and_any_other_replaced_by_a_uuid() {
        let sent = HeaderValue::from_static("okta-req-7f3a");
        let (text, value) = request_id(Some(&sent));
        assert_eq!((&*text, value), ("okta-req-7f3a", sent));
        let long = HeaderValue::from_str(&"x".repeat(201)).unwrap();
        let binary = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        let empty = HeaderValue::from_static("");
        for sent in [None, Some(&long), Some(&binary), Some(&empty)] {
            let (text, value) = request_id(sent);
            assert!(uuid::Uuid::parse_str(&text).is_ok(), "{text}");
            assert_eq!(value.to_str().unwrap(), &*text);
        }
        assert_ne!(request_id(None).0, request_id(None).0);
    }
}
