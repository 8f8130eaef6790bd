//! Every error answer of the Marketing Center simulator: the `ErrorCode` vocabulary, the status
//! each code answers, and the body `{"ErrorCode","Message"}` (plus `Fields` on `422` and
//! `ExistingUserID` on `409 LOGON_NAME_TAKEN`). Depends only on the shared HTTP helpers.

use std::fmt::Write as _;

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::http::{Body, json_response};

/// One problem of a request body, reported in a `422`'s `Fields`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldProblem {
    /// The body field, as sent (PascalCase).
    pub(crate) field: String,
    /// What is wrong with it.
    pub(crate) problem: String,
}

impl FieldProblem {
    pub(crate) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

fn describe(problems: &[FieldProblem]) -> String {
    let mut text = String::new();
    for (i, p) in problems.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let _ = write!(text, "{sep}{}: {}", p.field, p.problem);
    }
    text
}

/// A refused request, as Marketing Center words it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// `400 BAD_REQUEST`: malformed JSON, a body that is not an object, a bad query.
    #[error("BAD_REQUEST: {0}")]
    BadRequest(String),
    /// `400 PAGE_SIZE_TOO_LARGE`.
    #[error("PAGE_SIZE_TOO_LARGE: PageSize must be at most {max}")]
    PageSizeTooLarge {
        /// The largest page size.
        max: u64,
    },
    /// `401 UNAUTHORIZED`: a missing or wrong `X-MC-Api-Key` or `X-MC-Customer`.
    #[error("UNAUTHORIZED: {0}")]
    Unauthorized(&'static str),
    /// `404 NOT_FOUND`: no such route.
    #[error("NOT_FOUND: no such resource")]
    NotFound,
    /// `404 USER_NOT_FOUND` (for this customer).
    #[error("USER_NOT_FOUND: no user {0}")]
    UserNotFound(String),
    /// `404 GROUP_NOT_FOUND` (for this customer).
    #[error("GROUP_NOT_FOUND: no group {0}")]
    GroupNotFound(String),
    /// `405 METHOD_NOT_ALLOWED`, with the `Allow` header.
    #[error("METHOD_NOT_ALLOWED: allowed are {allow}")]
    MethodNotAllowed {
        /// The methods the route accepts, comma-separated.
        allow: &'static str,
    },
    /// `409 LOGON_NAME_TAKEN`, with `ExistingUserID`.
    #[error("LOGON_NAME_TAKEN: the logon name belongs to user {existing}")]
    LogonNameTaken {
        /// The user holding the logon name (possibly archived).
        existing: u64,
    },
    /// `409 USER_ARCHIVED`: an archived user cannot join a group.
    #[error("USER_ARCHIVED: user {0} is archived")]
    UserArchived(u64),
    /// `413 PAYLOAD_TOO_LARGE`.
    #[error("PAYLOAD_TOO_LARGE: the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// `422 VALIDATION_FAILED`, with every problem of the body.
    #[error("VALIDATION_FAILED: {}", describe(.0))]
    Validation(Vec<FieldProblem>),
    /// `429 RATE_LIMITED`, with `Retry-After`.
    #[error("RATE_LIMITED: retry after {retry_after} s")]
    RateLimited {
        /// Seconds, at least 1.
        retry_after: u64,
    },
    /// `503 MAINTENANCE`, with `Retry-After`.
    #[error("MAINTENANCE: retry after {retry_after} s")]
    Maintenance {
        /// Seconds.
        retry_after: u64,
    },
    /// An injected failure: this status with `INTERNAL_ERROR`.
    #[error("INTERNAL_ERROR: injected failure {0}")]
    Injected(u16),
    /// The direct (non-HTTP) API named a customer the simulator was not configured with.
    #[error("UNKNOWN_CUSTOMER: the simulator has no customer {0:?}")]
    UnknownCustomer(String),
}

impl ApiError {
    /// The `ErrorCode`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::PageSizeTooLarge { .. } => "PAGE_SIZE_TOO_LARGE",
            Self::Unauthorized(_) | Self::UnknownCustomer(_) => "UNAUTHORIZED",
            Self::NotFound => "NOT_FOUND",
            Self::UserNotFound(_) => "USER_NOT_FOUND",
            Self::GroupNotFound(_) => "GROUP_NOT_FOUND",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::LogonNameTaken { .. } => "LOGON_NAME_TAKEN",
            Self::UserArchived(_) => "USER_ARCHIVED",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Maintenance { .. } => "MAINTENANCE",
            Self::Injected(_) => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::PageSizeTooLarge { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::UnknownCustomer(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound | Self::UserNotFound(_) | Self::GroupNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::LogonNameTaken { .. } | Self::UserArchived(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Maintenance { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Injected(code) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The human-readable `Message`.
    fn message(&self) -> String {
        let full = self.to_string();
        match full.split_once(": ") {
            Some((_, message)) => message.to_owned(),
            None => full,
        }
    }

    /// The error body.
    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("ErrorCode".into(), self.code().into());
        body.insert("Message".into(), self.message().into());
        match self {
            Self::Validation(problems) => {
                let fields = problems
                    .iter()
                    .map(|p| json!({ "Field": p.field, "Problem": p.problem }))
                    .collect();
                body.insert("Fields".into(), Value::Array(fields));
            }
            Self::LogonNameTaken { existing } => {
                body.insert("ExistingUserID".into(), (*existing).into());
            }
            _ => {}
        }
        Value::Object(body)
    }

    /// The complete answer, headers included.
    pub(crate) fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status(), &self.body());
        let headers = response.headers_mut();
        match self {
            Self::RateLimited { retry_after } | Self::Maintenance { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
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
    fn bodies_carry_code_message_and_extras() {
        let body = ApiError::Validation(vec![
            FieldProblem::new("LogonName", "is required"),
            FieldProblem::new("Foo", "is not a known field"),
        ])
        .body();
        assert_eq!(
            body,
            json!({
                "ErrorCode": "VALIDATION_FAILED",
                "Message": "LogonName: is required; Foo: is not a known field",
                "Fields": [
                    {"Field": "LogonName", "Problem": "is required"},
                    {"Field": "Foo", "Problem": "is not a known field"}
                ]
            })
        );
        let body = ApiError::LogonNameTaken { existing: 1042 }.body();
        assert_eq!(body["ExistingUserID"], 1042);
        assert_eq!(body["ErrorCode"], "LOGON_NAME_TAKEN");
    }

    #[test]
    fn injected_status_falls_back_to_500() {
        assert_eq!(
            ApiError::Injected(503).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::Injected(42).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn retry_after_and_allow_headers() {
        let r = ApiError::RateLimited { retry_after: 3 }.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        let r = ApiError::MethodNotAllowed { allow: "GET, POST" }.into_response();
        assert_eq!(r.headers()[header::ALLOW], "GET, POST");
    }
}
