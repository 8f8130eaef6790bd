//! Bearer-token authentication: `Authorization: Bearer <token>` selects the tenant.
//!
//! Tokens are compared as SHA-256 digests in constant time against every configured token of
//! every tenant (no early exit), so timing tells nothing about which token is close. The
//! token itself never reaches a log line, an error or a panic message. A request without a
//! valid token gets `401` with a SCIM error body and `WWW-Authenticate: Bearer`.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{Either, Ready, ready};
use http::{Request, Response, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::error::ScimError;

/// Which tenant each token digest belongs to; `T` is what gets inserted into the request.
#[derive(Debug)]
pub struct TokenTable<T> {
    entries: Vec<([u8; 32], T)>,
}

impl<T: Clone> TokenTable<T> {
    /// A table from (SHA-256 digest of a token, tenant) pairs.
    pub fn new(entries: Vec<([u8; 32], T)>) -> Self {
        Self { entries }
    }

    /// The tenant of an `Authorization` header value, if it is `Bearer <valid token>`.
    pub fn authenticate(&self, authorization: &[u8]) -> Option<T> {
        let token = bearer_token(authorization)?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for (d, tenant) in &self.entries {
            if bool::from(d.ct_eq(&digest)) && found.is_none() {
                found = Some(tenant.clone());
            }
        }
        found
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, one space, token non-empty).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = (value.get(..7)?, value.get(7..)?);
    if !scheme.eq_ignore_ascii_case(b"bearer ") || token.is_empty() {
        return None;
    }
    (!token.iter().any(|b| b.is_ascii_whitespace())).then_some(token)
}

/// Layer that authenticates requests and inserts the tenant `T` into their extensions.
#[derive(Debug)]
pub struct AuthLayer<T> {
    table: Arc<TokenTable<T>>,
}

impl<T> Clone for AuthLayer<T> {
    fn clone(&self) -> Self {
        Self {
            table: Arc::clone(&self.table),
        }
    }
}

impl<T> AuthLayer<T> {
    /// A layer over a token table.
    pub fn new(table: Arc<TokenTable<T>>) -> Self {
        Self { table }
    }
}

impl<S, T> Layer<S> for AuthLayer<T> {
    type Service = Auth<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            table: Arc::clone(&self.table),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug)]
pub struct Auth<S, T> {
    inner: S,
    table: Arc<TokenTable<T>>,
}

impl<S: Clone, T> Clone for Auth<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            table: Arc::clone(&self.table),
        }
    }
}

impl<S, B, T, ResBody> Service<Request<B>> for Auth<S, T>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    T: Clone + Send + Sync + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let tenant = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| self.table.authenticate(v.as_bytes()));
        match tenant {
            Some(t) => {
                req.extensions_mut().insert(t);
                Either::Right(self.inner.call(req))
            }
            None => Either::Left(ready(Ok(ScimError::unauthorized().into_response_as()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TokenTable<&'static str> {
        let d = |t: &str| -> [u8; 32] { Sha256::digest(t.as_bytes()).into() };
        TokenTable::new(vec![
            (d("tok-A1"), "a"),
            (d("tok-A2"), "a"),
            (d("tok-B"), "b"),
        ])
    }

    #[test]
    fn selects_tenant_by_token() {
        let t = table();
        assert_eq!(t.authenticate(b"Bearer tok-A1"), Some("a"));
        assert_eq!(
            t.authenticate(b"Bearer tok-A2"),
            Some("a"),
            "rotation: both tokens work"
        );
        assert_eq!(
            t.authenticate(b"bearer tok-B"),
            Some("b"),
            "scheme is case-insensitive"
        );
        for bad in [
            &b"tok-A1"[..],
            b"Bearer TOK-A1",
            b"Bearer tok-a1",
            b"Bearer ",
            b"Bearer  tok-A1",
            b"Basic tok-A1",
            b"non-token",
            b"",
            b"Bearer tok-A1 ",
        ] {
            assert_eq!(
                t.authenticate(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
