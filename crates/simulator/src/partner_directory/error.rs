//! Every error answer of the Partner Directory simulator: the `code` vocabulary, the status
//! each code answers, and the body `{"error": {"code", "message"}}` (plus the
//! `X-RateLimit-Reset` header on `429` and `Allow` on `405`). Depends only on the shared HTTP
//! helpers.

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::RATE_LIMIT_RESET_HEADER;
use crate::http::{Body, json_response};

/// A refused request, as the Partner Directory words it. The `Display` text is
/// `code: message`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// `400 bad_request`: malformed JSON, a body that is not an object, a bad query.
    #[error("bad_request: {0}")]
    BadRequest(String),
    /// `401 unauthorized`: a missing or wrong `Authorization: Token …`.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// `403 reserved`: a reserved team cannot be changed.
    #[error("reserved: team {0} is reserved and cannot be changed")]
    Reserved(u64),
    /// `404 not_found`: no such route.
    #[error("not_found: no such resource")]
    NoRoute,
    /// `404 not_found`: no such account.
    #[error("not_found: no account {0:?}")]
    AccountNotFound(String),
    /// `404 not_found`: no such team.
    #[error("not_found: no team {0:?}")]
    TeamNotFound(String),
    /// `405 method_not_allowed`, with the `Allow` header.
    #[error("method_not_allowed: allowed are {allow}")]
    MethodNotAllowed {
        /// The methods the route accepts, comma-separated.
        allow: &'static str,
    },
    /// `409 login_taken`.
    #[error("login_taken: the login is already used by account {0}")]
    LoginTaken(String),
    /// `409 email_taken`.
    #[error("email_taken: the email is already used by account {0}")]
    EmailTaken(String),
    /// `409 title_taken`.
    #[error("title_taken: the title is already used by team {0}")]
    TitleTaken(u64),
    /// `413 payload_too_large`.
    #[error("payload_too_large: the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// `422 invalid`: every problem of the body, `; `-separated.
    #[error("invalid: {0}")]
    Invalid(String),
    /// `422 too_many`: more uids in one call than allowed.
    #[error("too_many: at most {max} uids per call, got {got}")]
    TooMany {
        /// The largest batch.
        max: usize,
        /// How many were sent.
        got: usize,
    },
    /// `429 rate_limited`, with `X-RateLimit-Reset`.
    #[error("rate_limited: the rate budget is spent until {reset}")]
    RateLimited {
        /// Unix epoch seconds at which a request is admitted again.
        reset: u64,
    },
    /// `503 maintenance`.
    #[error("maintenance: the directory is down for maintenance")]
    Maintenance,
    /// An injected failure: this status with `internal_error`.
    #[error("internal_error: injected failure {0}")]
    Injected(u16),
}

impl ApiError {
    /// The `code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Reserved(_) => "reserved",
            Self::NoRoute | Self::AccountNotFound(_) | Self::TeamNotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::LoginTaken(_) => "login_taken",
            Self::EmailTaken(_) => "email_taken",
            Self::TitleTaken(_) => "title_taken",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Invalid(_) => "invalid",
            Self::TooMany { .. } => "too_many",
            Self::RateLimited { .. } => "rate_limited",
            Self::Maintenance => "maintenance",
            Self::Injected(_) => "internal_error",
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Reserved(_) => StatusCode::FORBIDDEN,
            Self::NoRoute | Self::AccountNotFound(_) | Self::TeamNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::LoginTaken(_) | Self::EmailTaken(_) | Self::TitleTaken(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid(_) | Self::TooMany { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Maintenance => StatusCode::SERVICE_UNAVAILABLE,
            Self::Injected(code) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The human-readable `message`.
    fn message(&self) -> String {
        let full = self.to_string();
        match full.split_once(": ") {
            Some((_, message)) => message.to_owned(),
            None => full,
        }
    }

    /// The error body.
    pub(crate) fn body(&self) -> Value {
        json!({ "error": { "code": self.code(), "message": self.message() } })
    }

    /// The complete answer, headers included.
    pub(crate) fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status(), &self.body());
        let headers = response.headers_mut();
        match self {
            Self::RateLimited { reset } => {
                headers.insert(RATE_LIMIT_RESET_HEADER, HeaderValue::from(reset));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_code_and_message_only() {
        let body = ApiError::LoginTaken("acc_123abc".into()).body();
        assert_eq!(
            body,
            json!({ "error": {
                "code": "login_taken",
                "message": "the login is already used by account acc_123abc"
            }})
        );
        let body = ApiError::TooMany { max: 100, got: 101 }.body();
        assert_eq!(body["error"]["code"], "too_many");
        assert_eq!(
            body["error"]["message"],
            "at most 100 uids per call, got 101"
        );
    }

    #[test]
    fn statuses_of_the_vocabulary() {
        let cases = [
            (ApiError::Reserved(50), StatusCode::FORBIDDEN),
            (ApiError::NoRoute, StatusCode::NOT_FOUND),
            (ApiError::TitleTaken(50), StatusCode::CONFLICT),
            (
                ApiError::Invalid("x".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (ApiError::Maintenance, StatusCode::SERVICE_UNAVAILABLE),
            (ApiError::Injected(503), StatusCode::SERVICE_UNAVAILABLE),
            (ApiError::Injected(42), StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
    }

    #[test]
    fn rate_limit_reset_and_allow_headers() {
        let r = ApiError::RateLimited {
            reset: 1_767_225_601,
        }
        .into_response();
        assert_eq!(r.headers()[RATE_LIMIT_RESET_HEADER], "1767225601");
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        let r = ApiError::MethodNotAllowed { allow: "GET, POST" }.into_response();
        assert_eq!(r.headers()[header::ALLOW], "GET, POST");
        let r = ApiError::Maintenance.into_response();
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }
}
