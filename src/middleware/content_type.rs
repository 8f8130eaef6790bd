//! Request content type: bodies must be `application/scim+json` or `application/json`
//! (parameters such as `charset` allowed). A request without a `Content-Type` is let through
//! (some clients omit it on bodies); any other type is answered `415` with a SCIM error.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{Either, Ready, ready};
use http::{Request, Response, header};
use tower::{Layer, Service};

use crate::error::{Error, RequestError};

/// Layer that refuses request bodies of other media types.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContentTypeLayer;

impl<S> Layer<S> for ContentTypeLayer {
    type Service = ContentType<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContentType { inner }
    }
}

/// The service of [`ContentTypeLayer`].
#[derive(Clone, Debug)]
pub struct ContentType<S> {
    inner: S,
}

/// Whether a `Content-Type` value is a JSON type the sidecar accepts.
fn accepted(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/scim+json")
        || essence.eq_ignore_ascii_case("application/json")
}

impl<S, B, ResBody> Service<Request<B>> for ContentType<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match req.headers().get(header::CONTENT_TYPE) {
            Some(v) if !v.to_str().is_ok_and(accepted) => {
                let shown = String::from_utf8_lossy(v.as_bytes()).into_owned();
                Either::Left(ready(Ok(Error::from(RequestError::UnsupportedMediaType {
                    content_type: shown,
                })
                .into_response())))
            }
            _ => Either::Right(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::accepted;

    #[test]
    fn json_types_only() {
        for ok in [
            "application/scim+json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            assert!(accepted(ok), "{ok}");
        }
        for bad in ["text/plain", "application/xml", "", "application/jsonx"] {
            assert!(!accepted(bad), "{bad}");
        }
    }
}
