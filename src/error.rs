//! The one place where any error becomes a SCIM error response.
//!
//! Client input → 4xx with the SCIM `scimType`; legacy app unavailable → 502/503/504 (with
//! `Retry-After` when a later retry can succeed); our own bug → 500 with a generic detail.
//! The internal cause travels in the response's extensions as [`ErrorCause`], so the request
//! log line can record it once; it is never put in the body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;

use crate::legacy::LegacyError;
use crate::xref::StoreError;
use mapping::MappingError;
use mapping::apply::LegacyFailure;
use scim::filter::FilterError;
use scim::patch::PatchError;
use scim::schema;

/// The SCIM content type.
pub const SCIM_JSON: &str = "application/scim+json";

/// An error on its way to becoming a SCIM error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimError {
    /// HTTP status.
    pub status: StatusCode,
    /// SCIM `scimType`.
    pub scim_type: Option<&'static str>,
    /// Text for the client.
    pub detail: String,
    /// Seconds the client should wait before retrying.
    pub retry_after: Option<u64>,
    /// Methods the path takes, for `405`.
    pub allow: Option<&'static str>,
    /// What really happened, for the log (never sent).
    pub cause: Option<String>,
}

/// What an error response said and why, for the request log line and the provisioning log.
#[derive(Debug, Clone)]
pub struct ErrorCause {
    /// The `scimType` sent.
    pub scim_type: Option<&'static str>,
    /// The `detail` sent.
    pub detail: String,
    /// What really happened (the detail again when nothing more is known); never sent.
    pub cause: String,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
            allow: None,
            cause: None,
        }
    }

    fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    /// `400 invalidSyntax`: the request is not well-formed.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidSyntax", detail)
    }

    /// `400 invalidValue`: a value is missing, malformed or refused.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidValue", detail)
    }

    /// `400 mutability`: the attribute cannot be changed that way.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request("mutability", detail)
    }

    /// `409 uniqueness`: a unique value is taken.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }

    /// `404` for a resource id.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            None,
            format!("{what} {id:?} not found"),
        )
    }

    /// `403`: the legacy app forbids changing this resource (`detail` from the mapping).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, detail)
    }

    /// `404` for a path that is no SCIM endpoint.
    pub fn no_endpoint() -> Self {
        Self::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint")
    }

    /// `405` with the methods the path takes.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("method not allowed here; allowed: {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    /// `405` for creating or deleting groups the legacy app owns; `hint` (from the mapping)
    /// tells the admin what to do instead.
    pub fn groups_link_only(allow: &'static str, hint: &str) -> Self {
        let mut e = Self::new(StatusCode::METHOD_NOT_ALLOWED, None, hint);
        e.allow = Some(allow);
        e
    }

    /// `413`: the body is larger than `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("request body larger than {limit} bytes"),
        )
    }

    /// `415`: a body that is not JSON.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            format!(
                "content type {content_type:?} is not accepted: send application/scim+json or \
                 application/json"
            ),
        )
    }

    /// `504`: the whole request took longer than the configured limit.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            format!(
                "the request took longer than {} s; retry later",
                limit.as_secs()
            ),
        )
    }

    /// `401` for a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "authentication required: send 'Authorization: Bearer <token>' with a valid token",
        )
    }

    /// `429`: too many failed authentications from this address; retry after `seconds`.
    pub fn auth_throttled(seconds: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "too many failed authentications from this address; retry later",
        )
        .with_retry_after(Some(seconds))
    }

    /// `500`: our bug; the cause is logged, the client gets a generic detail.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error; see the sidecar log",
        )
        .with_cause(cause)
    }

    /// `502`: the legacy app answered something that is not what the mapping declares.
    pub fn legacy_answer(cause: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            None,
            "the legacy app answered something unexpected",
        )
        .with_cause(cause)
    }

    /// Attaches the internal cause for the log.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// Sets `Retry-After`.
    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    /// The SCIM error response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        self.into_response_as()
    }

    /// The SCIM error response, with any body type that can be made from bytes.
    pub fn into_response_as<B: From<Bytes>>(self) -> Response<B> {
        let mut body = json!({
            "schemas": [schema::ERROR],
            "status": self.status.as_str(),
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        body["detail"] = json!(&self.detail);
        let mut resp = Response::new(B::from(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s.max(1)));
        }
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        let cause = self.cause.unwrap_or_else(|| self.detail.clone());
        resp.extensions_mut().insert(ErrorCause {
            scim_type: self.scim_type,
            detail: self.detail,
            cause,
        });
        resp
    }

    /// A legacy error answer (already read through the mapping) whose field problems have been
    /// named by their SCIM attributes in `detail` by the caller when relevant.
    pub fn from_legacy_failure(f: &LegacyFailure, app: &str, detail: Option<String>) -> Self {
        let cause = format!(
            "{app} answered {} {}{}",
            f.status,
            f.code.as_deref().unwrap_or("(no code)"),
            // Quoted: the legacy app's message may name the person; logs redact quoted text.
            f.message
                .as_deref()
                .map(|m| format!(": {m:?}"))
                .unwrap_or_default()
        );
        if let Some(rule) = &f.rule
            && let Ok(status) = StatusCode::from_u16(rule.status)
        {
            let scim_type = rule.scim_type.as_deref().and_then(static_scim_type);
            let detail = detail.unwrap_or_else(|| match status {
                StatusCode::NOT_FOUND => "resource not found".to_owned(),
                StatusCode::TOO_MANY_REQUESTS => format!("{app} is rate-limiting; retry later"),
                StatusCode::SERVICE_UNAVAILABLE => format!("{app} is unavailable; retry later"),
                _ => format!(
                    "{app} refused the request ({})",
                    f.code.as_deref().unwrap_or("")
                ),
            });
            return Self::new(status, scim_type, detail)
                .with_retry_after(retry_after_for(status, f.retry_after))
                .with_cause(cause);
        }
        let (status, detail) = match f.status {
            404 => (StatusCode::NOT_FOUND, "resource not found".to_owned()),
            429 => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("{app} is rate-limiting; retry later"),
            ),
            503 => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{app} is unavailable; retry later"),
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                format!("{app} answered an unexpected error"),
            ),
        };
        Self::new(status, None, detail)
            .with_retry_after(retry_after_for(status, f.retry_after))
            .with_cause(cause)
    }
}

impl ScimError {
    /// A refused legacy write: like [`ScimError::from_legacy_failure`], and a client error that
    /// carries field problems is `invalidValue` unless the mapping says otherwise.
    pub fn legacy_write_failure(f: &LegacyFailure, app: &str, detail: String) -> Self {
        let mut e = Self::from_legacy_failure(f, app, Some(detail));
        if e.status.is_client_error() && e.scim_type.is_none() {
            e.scim_type = Some("invalidValue");
        }
        e
    }
}

fn retry_after_for(status: StatusCode, given: Option<u64>) -> Option<u64> {
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Some(given.unwrap_or(1)),
        _ => None,
    }
}

/// The `scimType` values of RFC 7644 §3.12, as static strings.
pub fn static_scim_type(t: &str) -> Option<&'static str> {
    [
        "invalidFilter",
        "tooMany",
        "uniqueness",
        "mutability",
        "invalidSyntax",
        "invalidPath",
        "noTarget",
        "invalidValue",
        "invalidVers",
        "sensitive",
    ]
    .into_iter()
    .find(|k| *k == t)
}

impl From<FilterError> for ScimError {
    fn from(e: FilterError) -> Self {
        Self::bad_request("invalidFilter", e.to_string())
    }
}

impl From<scim::json::JsonError> for ScimError {
    fn from(e: scim::json::JsonError) -> Self {
        Self::invalid_syntax(e.to_string())
    }
}

impl From<PatchError> for ScimError {
    fn from(e: PatchError) -> Self {
        Self::bad_request(e.scim_type(), e.to_string())
    }
}

impl From<MappingError> for ScimError {
    fn from(e: MappingError) -> Self {
        match e {
            MappingError::Value { .. } | MappingError::Required(_) => {
                Self::bad_request("invalidValue", e.to_string())
            }
            MappingError::Answer(_) => Self::legacy_answer(e.to_string()),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<LegacyError> for ScimError {
    fn from(e: LegacyError) -> Self {
        if let LegacyError::CircuitOpen { retry_after_secs } = e {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the legacy app is unavailable; retry later",
            )
            .with_retry_after(Some(retry_after_secs))
            .with_cause(e.to_string());
        }
        let status = match e {
            LegacyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            LegacyError::Unavailable(_) => StatusCode::BAD_GATEWAY,
            LegacyError::BaseUrl(_) | LegacyError::Request(_) | LegacyError::CircuitOpen { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let detail = match status {
            StatusCode::GATEWAY_TIMEOUT => "the legacy app did not answer in time; retry later",
            StatusCode::BAD_GATEWAY => "the legacy app is unreachable; retry later",
            _ => "internal error; see the sidecar log",
        };
        Self::new(status, None, detail).with_cause(e.to_string())
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        Self::internal(format!("cross-reference store: {e}"))
    }
}

/// Sets the SCIM content type on a JSON response.
pub fn scim_json(status: http::StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    // A `Value` always serialises (its map keys are strings).
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::error::SCIM_JSON),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(resp: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn error_body_shape_and_headers() {
        let resp = ScimError::unauthorized().into_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], SCIM_JSON);
        let body = body_of(resp).await;
        assert_eq!(body["schemas"][0], schema::ERROR);
        assert_eq!(body["status"], "401");

        let resp = ScimError::internal("SELECT * FROM secret").into_response();
        assert_eq!(
            resp.extensions().get::<ErrorCause>().unwrap().cause,
            "SELECT * FROM secret"
        );
        let body = body_of(resp).await;
        assert!(!body.to_string().contains("SELECT"));
    }

    #[tokio::test]
    async fn legacy_rate_limit_keeps_retry_after() {
        let f = LegacyFailure {
            status: 429,
            retry_after: Some(7),
            ..Default::default()
        };
        let resp = ScimError::from_legacy_failure(&f, "App", None).into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let f = LegacyFailure {
            status: 500,
            ..Default::default()
        };
        assert_eq!(ScimError::from_legacy_failure(&f, "App", None).status, 502);
        let resp = ScimError::from(LegacyError::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(resp.status, 504);
    }
}
