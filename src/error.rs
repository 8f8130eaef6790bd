//! The funnel: the one place where any error becomes a SCIM error response.
//!
//! Modules return their own errors ([`RequestError`] here; `FilterError`, `PatchError`,
//! `ListError`, `BodyError` of `scim`; `TranslateError`, `Refusal` of `mapping`;
//! [`GatewayError`], [`StoreError`]); [`Error`] gathers them, and [`Error::answer`] alone
//! decides the status, the `scimType` and what the client is told. Client input → 4xx with
//! its `scimType`; the legacy app unavailable → 502/503/504 (with `Retry-After` when a later
//! retry can succeed); our own bug → 500 with a generic detail. The internal cause travels in
//! the response's extensions as [`ErrorCause`], so the request log line records it once; it
//! is never put in the body.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use mapping::TranslateError;
use mapping::apply::LegacyFailure;
use mapping::plan::Refusal;
use scim::error::ScimType;
use scim::filter::FilterError;
use scim::json::JsonError;
use scim::list::ListError;
use scim::patch::PatchError;
use scim::request::BodyError;
use scim::schema;
use serde_json::json;

use crate::cursor::CursorError;
use crate::gateway::{GatewayError, PlanError};
use crate::xref::StoreError;

/// The SCIM content type.
pub const SCIM_JSON: &str = "application/scim+json";

/// What went wrong with the request itself, before (or around) any resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No valid credentials (bearer token, or username and password).
    #[error(
        "authentication required: send an Authorization header with a valid bearer token \
         (or username and password, where the tenant takes HTTP Basic)"
    )]
    Unauthorized,
    /// Too many password checks waiting to start.
    #[error("too many password checks in progress; retry later")]
    AuthBusy {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Too many failed authentications from the client's address.
    #[error("too many failed authentications from this address; retry later")]
    AuthThrottled {
        /// Seconds until the next attempt may succeed.
        retry_after_secs: u64,
    },
    /// A path that is no SCIM endpoint (or Groups, for a mapping without groups).
    #[error("no such SCIM endpoint")]
    NoEndpoint,
    /// A discovery document that does not exist (`/Schemas/{urn}`, `/ResourceTypes/{name}`).
    #[error("{kind} {id:?} not found")]
    UnknownDocument {
        /// `Schema` or `ResourceType`.
        kind: &'static str,
        /// The name asked for.
        id: String,
    },
    /// A method the path does not take.
    #[error("method not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The methods it takes.
        allow: &'static str,
    },
    /// A body larger than the limit.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A body that is not JSON.
    #[error(
        "content type {content_type:?} is not accepted: send application/scim+json or \
         application/json"
    )]
    UnsupportedMediaType {
        /// What the client sent.
        content_type: String,
    },
    /// The whole request took longer than the limit.
    #[error("the request took longer than {} s; retry later", .limit.as_secs())]
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// The body could not be read.
    #[error("could not read the request body: {0}")]
    UnreadableBody(String),
    /// RFC 9865 cursor paging asked of the root `/.search`.
    #[error(
        "cursor paging is offered on /Users and /Groups (and their /.search), not across \
         resource types: page /.search with startIndex"
    )]
    CursorNotOffered,
}

/// Every error a SCIM request can end with, by where it came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A body that is not a JSON object.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// List, filter or projection parameters.
    #[error(transparent)]
    List(#[from] ListError),
    /// An RFC 9865 cursor refused.
    #[error(transparent)]
    Cursor(#[from] crate::cursor::CursorError),
    /// A plan refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A legacy call got no usable answer.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The cross-reference store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not happen happened (a bug): answered 500, logged.
    #[error("{0}")]
    Internal(String),
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Refused(r) => Error::Refused(r),
            PlanError::Gateway(g) => Error::Gateway(g),
        }
    }
}

impl From<FilterError> for Error {
    fn from(e: FilterError) -> Self {
        Error::List(ListError::Filter(e))
    }
}

impl From<PatchError> for Error {
    fn from(e: PatchError) -> Self {
        Error::Refused(Refusal::Patch(e))
    }
}

impl From<BodyError> for Error {
    fn from(e: BodyError) -> Self {
        Error::Refused(Refusal::Body(e))
    }
}

impl From<TranslateError> for Error {
    fn from(e: TranslateError) -> Self {
        Error::Refused(Refusal::Translate(e))
    }
}

/// What an error response says and why, for the request log line and the provisioning log.
#[derive(Debug, Clone)]
pub struct ErrorCause {
    /// The `scimType` sent.
    pub scim_type: Option<&'static str>,
    /// The `detail` sent.
    pub detail: String,
    /// What really happened (the detail again when nothing more is known); never sent.
    pub cause: String,
}

/// A SCIM error response, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// SCIM `scimType`.
    pub scim_type: Option<ScimType>,
    /// Text for the client.
    pub detail: String,
    /// Seconds the client should wait before retrying.
    pub retry_after: Option<u64>,
    /// Methods the path takes, for `405`.
    pub allow: Option<&'static str>,
    /// What really happened, for the log (never sent).
    pub cause: Option<String>,
}

impl Answer {
    fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Answer {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
            allow: None,
            cause: None,
        }
    }

    fn bad_request(scim_type: ScimType, detail: impl ToString) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail.to_string())
    }

    fn internal(cause: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error; see the sidecar log",
        )
        .with_cause(cause)
    }

    fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    /// The SCIM error response, with any body type that can be made from bytes.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut body = json!({
            "schemas": [schema::ERROR],
            "status": self.status.as_str(),
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t.as_str());
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
            scim_type: self.scim_type.map(ScimType::as_str),
            detail: self.detail,
            cause,
        });
        resp
    }
}

impl Error {
    /// The SCIM error response of this error.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        self.answer().into_response()
    }

    /// What the client is told: status, `scimType`, detail, headers; and the cause, for the
    /// log.
    pub fn answer(self) -> Answer {
        match self {
            Error::Request(e) => request(e),
            Error::Json(e) => Answer::bad_request(ScimType::InvalidSyntax, e),
            Error::List(e) => list(e),
            Error::Cursor(e) => {
                let scim_type = match e {
                    CursorError::Expired { .. } => ScimType::ExpiredCursor,
                    CursorError::CountChanged { .. } => ScimType::InvalidCount,
                    CursorError::Invalid | CursorError::OtherQuery | CursorError::Stale => {
                        ScimType::InvalidCursor
                    }
                };
                Answer::bad_request(scim_type, e)
            }
            Error::Refused(r) => refusal(r),
            Error::Gateway(e) => gateway(e),
            Error::Store(e) => store(e),
            Error::Internal(cause) => Answer::internal(cause),
        }
    }
}

/// A store that cannot be reached now (PostgreSQL restarting, every pooled connection busy,
/// another replica's create of the same key still running) is retryable: `503` with
/// `Retry-After`, which Okta and Entra honour. Anything else is the sidecar's fault: `500`.
fn store(e: StoreError) -> Answer {
    if e.is_unavailable() {
        let detail = match &e {
            StoreError::Busy { .. } => e.to_string(),
            _ => "the sidecar's state store is unavailable; retry later".to_owned(),
        };
        return Answer::new(StatusCode::SERVICE_UNAVAILABLE, None, detail)
            .with_retry_after(Some(crate::pg::RETRY_AFTER_SECS))
            .with_cause(format!("cross-reference store: {e}"));
    }
    Answer::internal(format!("cross-reference store: {e}"))
}

fn request(e: RequestError) -> Answer {
    let detail = e.to_string();
    match e {
        RequestError::Unauthorized => Answer::new(StatusCode::UNAUTHORIZED, None, detail),
        RequestError::AuthThrottled { retry_after_secs } => {
            Answer::new(StatusCode::TOO_MANY_REQUESTS, None, detail)
                .with_retry_after(Some(retry_after_secs))
        }
        RequestError::AuthBusy { retry_after_secs } => {
            Answer::new(StatusCode::SERVICE_UNAVAILABLE, None, detail)
                .with_retry_after(Some(retry_after_secs))
        }
        RequestError::NoEndpoint | RequestError::UnknownDocument { .. } => {
            Answer::new(StatusCode::NOT_FOUND, None, detail)
        }
        RequestError::MethodNotAllowed { allow } => {
            let mut a = Answer::new(StatusCode::METHOD_NOT_ALLOWED, None, detail);
            a.allow = Some(allow);
            a
        }
        RequestError::PayloadTooLarge { .. } => {
            Answer::new(StatusCode::PAYLOAD_TOO_LARGE, None, detail)
        }
        RequestError::UnsupportedMediaType { .. } => {
            Answer::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, detail)
        }
        RequestError::Timeout { .. } => Answer::new(StatusCode::GATEWAY_TIMEOUT, None, detail),
        RequestError::UnreadableBody(_) => Answer::bad_request(ScimType::InvalidSyntax, detail),
        RequestError::CursorNotOffered => Answer::bad_request(ScimType::InvalidValue, detail),
    }
}

fn list(e: ListError) -> Answer {
    let scim_type = match &e {
        ListError::Filter(_) => ScimType::InvalidFilter,
        ListError::Json(_) | ListError::FilterNotText => ScimType::InvalidSyntax,
        ListError::AttributeNotText | ListError::AttributesNotList => ScimType::InvalidSyntax,
        ListError::NotAnInteger { .. } | ListError::CursorAndStartIndex => ScimType::InvalidValue,
        ListError::CursorNotText => ScimType::InvalidSyntax,
    };
    Answer::bad_request(scim_type, e)
}

fn translate(e: TranslateError) -> Answer {
    match e {
        TranslateError::Value { .. } | TranslateError::Required(_) => {
            Answer::bad_request(ScimType::InvalidValue, e)
        }
        TranslateError::Answer(_) => Answer::new(
            StatusCode::BAD_GATEWAY,
            None,
            "the legacy app answered something unexpected",
        )
        .with_cause(e.to_string()),
        TranslateError::MissingVar(_) => Answer::internal(e.to_string()),
    }
}

fn refusal(r: Refusal) -> Answer {
    let detail = r.to_string();
    match r {
        Refusal::Translate(e) => translate(e),
        Refusal::Body(e) => {
            let t = match e {
                BodyError::MissingSchema(_) => ScimType::InvalidSyntax,
                BodyError::ActiveNotBoolean | BodyError::Required(_) | BodyError::NotText(_) => {
                    ScimType::InvalidValue
                }
            };
            Answer::bad_request(t, detail)
        }
        Refusal::Patch(e) => Answer::bad_request(e.scim_type(), detail),
        Refusal::Legacy {
            failure,
            app,
            fields,
        } => legacy(&failure, &app, fields),
        Refusal::NotFound { .. } => Answer::new(StatusCode::NOT_FOUND, None, detail),
        Refusal::Taken { cause, .. } => {
            Answer::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), detail).with_cause(cause)
        }
        Refusal::ActiveRemoved | Refusal::NameReadOnly { .. } | Refusal::MembersFixed { .. } => {
            Answer::bad_request(ScimType::Mutability, detail)
        }
        Refusal::LinkOnly { allow, .. } => {
            let mut a = Answer::new(StatusCode::METHOD_NOT_ALLOWED, None, detail);
            a.allow = Some(allow);
            a
        }
        Refusal::Locked { .. } => Answer::new(StatusCode::FORBIDDEN, None, detail),
        Refusal::UnknownMembers(_) | Refusal::TooManyMembers { .. } => {
            Answer::bad_request(ScimType::InvalidValue, detail)
        }
        Refusal::GroupChanged { .. } => Answer::new(StatusCode::CONFLICT, None, detail),
    }
}

/// A legacy error answer (read through the mapping). `fields`: the problems of a refused
/// write told in SCIM terms, which then are the detail (and a client error carrying them is
/// `invalidValue` unless the mapping says otherwise).
fn legacy(f: &LegacyFailure, app: &str, fields: Option<String>) -> Answer {
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
    let is_write = fields.is_some();
    let declared = f.rule.as_ref().and_then(|r| {
        StatusCode::from_u16(r.status)
            .ok()
            .map(|s| (s, r.scim_type))
    });
    let (status, scim_type) = match declared {
        Some(d) => d,
        None => (
            match f.status {
                404 => StatusCode::NOT_FOUND,
                429 => StatusCode::TOO_MANY_REQUESTS,
                503 => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            None,
        ),
    };
    let detail = fields.unwrap_or_else(|| match status {
        StatusCode::NOT_FOUND => "resource not found".to_owned(),
        StatusCode::TOO_MANY_REQUESTS => format!("{app} is rate-limiting; retry later"),
        StatusCode::SERVICE_UNAVAILABLE => format!("{app} is unavailable; retry later"),
        _ if declared.is_some() => match f.code.as_deref() {
            Some(code) => format!("{app} refused the request ({code})"),
            None => format!("{app} refused the request ({})", f.status),
        },
        _ => format!("{app} answered an unexpected error"),
    });
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            Some(f.retry_after.unwrap_or(1))
        }
        _ => None,
    };
    let scim_type = match scim_type {
        None if is_write && status.is_client_error() => Some(ScimType::InvalidValue),
        t => t,
    };
    Answer::new(status, scim_type, detail)
        .with_retry_after(retry_after)
        .with_cause(cause)
}

fn gateway(e: GatewayError) -> Answer {
    let cause = e.to_string();
    match e {
        GatewayError::CircuitOpen(open) => Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the legacy app is unavailable; retry later",
        )
        .with_retry_after(Some(open.retry_after_secs))
        .with_cause(cause),
        GatewayError::Timeout(_) => Answer::new(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            "the legacy app did not answer in time; retry later",
        )
        .with_cause(cause),
        GatewayError::Unavailable(_) => Answer::new(
            StatusCode::BAD_GATEWAY,
            None,
            "the legacy app is unreachable; retry later",
        )
        .with_cause(cause),
        GatewayError::Translate(t) => translate(t),
        GatewayError::Token(_) => Answer::new(
            StatusCode::BAD_GATEWAY,
            None,
            "the sidecar could not authenticate to the legacy app (its OAuth 2.0 token \
             endpoint refused); an administrator must check the mapping's legacy.auth and the \
             tenant's client credentials",
        )
        .with_cause(cause),
        GatewayError::BaseUrl(_) | GatewayError::Request(_) => Answer::internal(cause),
    }
}

/// A SCIM JSON response.
pub fn scim_json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    // A `Value` always serialises (its map keys are strings).
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    scim_json_bytes(status, Bytes::from(bytes))
}

/// A SCIM JSON response of JSON already written.
pub fn scim_json_bytes(status: StatusCode, json: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(json));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use mapping::ErrorRule;

    async fn body_of(resp: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn error_body_shape_and_headers() {
        let resp: Response<Full<Bytes>> = Error::from(RequestError::Unauthorized).into_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], SCIM_JSON);
        let body = body_of(resp).await;
        assert_eq!(body["schemas"][0], schema::ERROR);
        assert_eq!(body["status"], "401");

        let busy = RequestError::AuthBusy {
            retry_after_secs: 1,
        };
        let resp: Response<Full<Bytes>> = Error::from(busy).into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert!(!resp.headers().contains_key(header::WWW_AUTHENTICATE));

        let resp: Response<Full<Bytes>> = Error::from(StoreError::Closed).into_response();
        assert_eq!(resp.status(), 500);
        let cause = &resp.extensions().get::<ErrorCause>().unwrap().cause;
        assert!(cause.starts_with("cross-reference store"), "{cause}");
        let body = body_of(resp).await;
        assert_eq!(body["detail"], "internal error; see the sidecar log");
    }

    #[tokio::test]
    async fn legacy_failures_follow_the_mapping_and_keep_retry_after() {
        let refused = |f: LegacyFailure, fields: Option<String>| {
            Error::from(Refusal::Legacy {
                failure: Box::new(f),
                app: "App".into(),
                fields,
            })
            .answer()
        };
        let a = refused(
            LegacyFailure {
                status: 429,
                retry_after: Some(7),
                ..Default::default()
            },
            None,
        );
        assert_eq!((a.status.as_u16(), a.retry_after), (429, Some(7)));
        let resp: Response<Full<Bytes>> = a.into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let a = refused(
            LegacyFailure {
                status: 500,
                ..Default::default()
            },
            None,
        );
        assert_eq!(a.status, 502);
        // A declared code decides; a refused write's field problems are the detail, and a
        // client error without a declared scimType is invalidValue.
        let rule = |status, scim_type| ErrorRule {
            status,
            scim_type,
            conflict: false,
            existing_id: None,
            find_existing_by: None,
            skip_member: false,
        };
        let a = refused(
            LegacyFailure {
                status: 400,
                code: Some("VALIDATION".into()),
                rule: Some(rule(400, None)),
                ..Default::default()
            },
            Some("title: too long".into()),
        );
        assert_eq!(
            (a.status.as_u16(), a.scim_type, a.detail.as_str()),
            (400, Some(ScimType::InvalidValue), "title: too long")
        );
        let a = refused(
            LegacyFailure {
                status: 409,
                code: Some("TAKEN".into()),
                rule: Some(rule(409, Some(ScimType::Uniqueness))),
                ..Default::default()
            },
            None,
        );
        assert_eq!(a.detail, "App refused the request (TAKEN)");
        assert_eq!(a.scim_type, Some(ScimType::Uniqueness));
        let a = Error::from(GatewayError::Timeout(Duration::from_secs(1))).answer();
        assert_eq!(a.status, 504);
    }
}
