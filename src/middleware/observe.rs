//! One log line and the metrics of every SCIM request.
//!
//! Sits inside the tracing span (so the line carries the request id) and outside
//! authentication (so refused requests are counted too). What the handlers learned (tenant,
//! SCIM id, userName, legacy calls made, the error sent) arrives as the
//! [`RequestNote`](crate::telemetry::RequestNote) in the response's extensions; the route's
//! resource and operation come from the request. PII in the line goes through
//! [`telemetry::pii`](crate::telemetry::pii).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::error::ErrorCause;
use crate::metrics::{Metrics, ScimLabels};
use crate::router;
use crate::telemetry::{self, RequestNote};

/// Layer that logs and counts every request.
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
}

impl ObserveLayer {
    /// Records into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = router::route(req.method(), req.uri().path());
        let (resource, operation) = route.labels();
        ResponseFuture {
            inner: self.inner.call(req),
            started: Instant::now(),
            resource,
            operation,
            path_id: route.id().map(str::to_owned),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

pin_project! {
    /// Future of [`Observe`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        resource: &'static str,
        operation: &'static str,
        path_id: Option<String>,
        metrics: Arc<Metrics>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(resp) = &result {
            let latency = this.started.elapsed();
            let facts = resp
                .extensions()
                .get::<Arc<RequestNote>>()
                .map(|n| (n.facts(), n.legacy_calls()));
            let (facts, legacy_calls) = facts.unwrap_or_default();
            let status = resp.status().as_u16();
            let tenant = facts.tenant.as_deref().unwrap_or("none");
            this.metrics.scim_request(
                ScimLabels {
                    tenant: tenant.to_owned(),
                    resource: (*this.resource).to_owned(),
                    operation: (*this.operation).to_owned(),
                    status: status.to_string(),
                },
                latency.as_secs_f64(),
            );
            log_line(
                Line {
                    tenant,
                    resource: this.resource,
                    operation: this.operation,
                    scim_id: facts.scim_id.as_deref().or(this.path_id.as_deref()),
                    subject: facts.subject.as_deref(),
                    status,
                    latency_us: latency.as_micros() as u64,
                    legacy_calls,
                },
                resp.extensions().get::<ErrorCause>(),
            );
        }
        Poll::Ready(result)
    }
}

struct Line<'a> {
    tenant: &'a str,
    resource: &'a str,
    operation: &'a str,
    scim_id: Option<&'a str>,
    subject: Option<&'a str>,
    status: u16,
    latency_us: u64,
    legacy_calls: u32,
}

fn log_line(l: Line<'_>, error: Option<&ErrorCause>) {
    let Line {
        tenant,
        resource,
        operation,
        scim_id,
        subject,
        status,
        latency_us,
        legacy_calls,
    } = l;
    let scim_id = scim_id.unwrap_or("-");
    let subject = subject.map(telemetry::pii);
    let subject = subject.as_deref().unwrap_or("-");
    let Some(error) = error else {
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
    if status >= 500 {
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
