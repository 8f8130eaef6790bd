//! OAuth 2.0 client credentials (RFC 6749 §4.4) for a gateway: the token request as the
//! legacy side receives it, the token endpoint's answer read, and the token kept until it is
//! due for renewal. The gateway sends the request through its stack and adds the token to
//! every call; a call answered 401 makes it fetch a new one, once.
//!
//! Tokens and client secrets are never logged: [`Token`] and the request's headers are
//! marked sensitive and print no value.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use mapping::TokenRequest;
use serde_json::Value;

use super::client::Call;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    /// The token URL cannot be called.
    #[error("token URL {0}")]
    Url(String),
    /// The token endpoint refused (RFC 6749 §5.2: `error`, `error_description`).
    #[error("the token endpoint answered {status}{detail}")]
    Refused {
        /// Its status.
        status: u16,
        /// `: error (description)`, when it said.
        detail: String,
    },
    /// A 2xx answer without a usable bearer token.
    #[error("the token endpoint's answer {0}")]
    Malformed(String),
}

/// A token in force.
#[derive(Clone)]
pub struct Token {
    /// The access token.
    pub value: String,
    /// When to fetch a new one before use (`None`: the server gave no lifetime; kept until a
    /// call is answered 401).
    renew_at: Option<Instant>,
    /// The request it came from (a reloaded mapping or new credentials fetch anew).
    request: TokenRequest,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("renew_at", &self.renew_at)
            .finish_non_exhaustive()
    }
}

/// The token of one gateway; one fetch at a time (callers wait for it rather than each
/// asking for a token of its own).
#[derive(Debug, Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<Token>>,
}

impl TokenCache {
    /// The token in force for `request`, unless it is `stale` (the one a 401 just refused) or
    /// due; otherwise `fetch` asks the token endpoint (while other callers wait) and the
    /// token of its answer is kept.
    pub async fn get<F, Fut, E>(
        &self,
        request: &TokenRequest,
        stale: Option<&str>,
        fetch: F,
    ) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(StatusCode, Bytes), E>>,
        E: From<TokenError>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref()
            && t.request == *request
            && t.renew_at.is_none_or(|at| Instant::now() < at)
            && stale.is_none_or(|s| s != t.value)
        {
            return Ok(t.value.clone());
        }
        // Whatever happens next, the old token is not used again.
        *slot = None;
        let (status, body) = fetch().await?;
        let token = read_token(status, &body, request.clone())?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }
}

/// The token request as the legacy side receives it: `POST` of the form, the client's
/// credentials in a sensitive `Authorization` header when `client_auth = "basic"`. A path
/// is on the legacy app (`scheme://authority` + `base_path` + path).
pub fn token_call(
    req: &TokenRequest,
    scheme: &Scheme,
    authority: &Authority,
    base_path: &str,
) -> Result<Call, TokenError> {
    let uri: Uri = if req.url.starts_with('/') {
        Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(format!("{base_path}{}", req.url))
            .build()
            .map_err(|e| TokenError::Url(format!("{:?}: {e}", req.url)))?
    } else {
        let uri: Uri =
            (req.url.parse()).map_err(|e| TokenError::Url(format!("{:?}: {e}", req.url)))?;
        if uri.scheme() != Some(&Scheme::HTTP) || uri.authority().is_none() {
            return Err(TokenError::Url(format!(
                "{:?}: only a path on the legacy app or an http:// URL",
                req.url
            )));
        }
        uri
    };
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    if let Some(auth) = &req.authorization {
        let mut value = HeaderValue::from_str(auth)
            .map_err(|_| TokenError::Url("the client credentials are not text".into()))?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    Ok(Call {
        name: "legacy.auth.token".into(),
        method: Method::POST,
        uri,
        headers,
        body: Bytes::from(req.form.clone()),
        // Asking again for a token changes nothing on the server.
        idempotent: true,
        retry_hint: None,
    })
}

/// Reads the token endpoint's answer (RFC 6749 §5.1, §5.2).
fn read_token(status: StatusCode, body: &[u8], request: TokenRequest) -> Result<Token, TokenError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let text = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(Value::as_str)
            .map(|s| s.chars().take(200).collect::<String>())
    };
    if !status.is_success() {
        let detail = match (text("error"), text("error_description")) {
            (Some(e), Some(d)) => format!(": {e} ({d})"),
            (Some(e), None) => format!(": {e}"),
            _ => String::new(),
        };
        return Err(TokenError::Refused {
            status: status.as_u16(),
            detail,
        });
    }
    let Some(json) = json else {
        return Err(TokenError::Malformed("is not JSON".into()));
    };
    let value = match json.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(TokenError::Malformed("has no access_token".into())),
    };
    if let Some(kind) = json.get("token_type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Malformed(format!(
            "has token_type {kind:?}; only bearer tokens are sent"
        )));
    }
    let lifetime = match json.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .map(Duration::from_secs);
    // Renewed a little before it expires: a tenth of its lifetime early, at most a minute.
    let renew_at =
        lifetime.map(|l| Instant::now() + l.saturating_sub((l / 10).min(Duration::from_secs(60))));
    Ok(Token {
        value,
        renew_at,
        request,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TokenRequest {
        TokenRequest {
            url: "/oauth/token".into(),
            form: "grant_type=client_credentials".into(),
            authorization: Some("Basic aWQ6c2VjcmV0".into()),
        }
    }

    #[test]
    fn answers_are_read_per_rfc_6749() {
        let ok = |body: &str| read_token(StatusCode::OK, body.as_bytes(), request());
        let t =
            ok(r#"{"access_token": "t1", "token_type": "Bearer", "expires_in": 3600}"#).unwrap();
        assert_eq!(t.value, "t1");
        let renew = t.renew_at.unwrap() - Instant::now();
        assert!(renew > Duration::from_secs(3500) && renew <= Duration::from_secs(3540));
        let t = ok(r#"{"access_token": "t2", "token_type": "bearer", "expires_in": "0"}"#).unwrap();
        assert!(t.renew_at.unwrap() <= Instant::now());
        assert!(ok(r#"{"access_token": "t3"}"#).unwrap().renew_at.is_none());
        assert_eq!(
            ok(r#"{"access_token": "", "token_type": "bearer"}"#).unwrap_err(),
            TokenError::Malformed("has no access_token".into())
        );
        assert!(matches!(
            ok(r#"{"access_token": "m", "token_type": "mac"}"#),
            Err(TokenError::Malformed(m)) if m.contains("\"mac\"")
        ));
        assert_eq!(
            ok("not json").unwrap_err(),
            TokenError::Malformed("is not JSON".into())
        );
        let refused = read_token(
            StatusCode::UNAUTHORIZED,
            br#"{"error": "invalid_client", "error_description": "bad secret"}"#,
            request(),
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the token endpoint answered 401: invalid_client (bad secret)"
        );
        let t = ok(r#"{"access_token": "secret-token-value"}"#).unwrap();
        assert!(!format!("{t:?}").contains("secret-token-value"));
    }

    #[test]
    fn the_call_is_a_form_post_with_sensitive_credentials() {
        let base: Uri = "http://127.0.0.1:9000/api".parse().unwrap();
        let (scheme, authority) = (base.scheme().unwrap(), base.authority().unwrap());
        let call = token_call(&request(), scheme, authority, "/api").unwrap();
        assert_eq!(call.method, Method::POST);
        assert_eq!(call.uri, "http://127.0.0.1:9000/api/oauth/token");
        assert_eq!(call.body, "grant_type=client_credentials");
        assert!(call.headers[http::header::AUTHORIZATION].is_sensitive());
        assert_eq!(
            call.headers[http::header::CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let mut other = request();
        other.url = "http://127.0.0.1:9001/token".into();
        let call = token_call(&other, scheme, authority, "/api").unwrap();
        assert_eq!(call.uri, "http://127.0.0.1:9001/token");
        other.url = "https://idp.example/token".into();
        assert!(matches!(
            token_call(&other, scheme, authority, "/api"),
            Err(TokenError::Url(_))
        ));
    }
}
