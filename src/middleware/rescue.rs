//! The rescue step: the one place a failed SCIM request becomes its answer. Every error of
//! the service inside — a handler's [`Error`], tower's timeout `Elapsed` — is turned into the
//! SCIM error response the funnel (`crate::error`) decides; the service outside never fails.
//! In the spirit of linkerd's single rescue step.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use crate::error::{Error, RequestError};

/// Puts [`Rescue`] around a service whose requests are limited to `request_timeout` (for the
/// detail of a timeout's answer).
#[derive(Clone, Copy, Debug)]
pub struct RescueLayer {
    request_timeout: Duration,
}

impl RescueLayer {
    /// Rescues a service whose requests are cut off after `request_timeout`.
    pub fn new(request_timeout: Duration) -> Self {
        RescueLayer { request_timeout }
    }
}

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;

    fn layer(&self, inner: S) -> Rescue<S> {
        Rescue {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

/// The service of [`RescueLayer`].
#[derive(Clone, Debug)]
pub struct Rescue<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, Req, B> Service<Req> for Rescue<S>
where
    S: Service<Req, Response = Response<B>, Error = BoxError>,
    B: From<Bytes>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The services inside are always ready (no buffer, no limit): an error here is the
        // one of a request that has not started, answered when it is called.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            request_timeout: self.request_timeout,
        }
    }
}

pin_project! {
    /// The response future of [`Rescue`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        request_timeout: Duration,
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, BoxError>>,
    B: From<Bytes>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let error = match ready!(this.inner.poll(cx)) {
            Ok(resp) => return Poll::Ready(Ok(resp)),
            Err(e) => e,
        };
        let error = match error.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) if other.is::<tower::timeout::error::Elapsed>() => {
                Error::from(RequestError::Timeout {
                    limit: *this.request_timeout,
                })
            }
            Err(other) => Error::Internal(other.to_string()),
        };
        Poll::Ready(Ok(error.into_response()))
    }
}
