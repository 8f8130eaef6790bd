//! The request body rules of the Partner Directory: a body is a JSON object whose unknown
//! members are ignored; accounts need a non-empty `login` and `email`; teams a non-empty
//! `title`; membership calls a `uids` array of at most 100 strings. Pure.
//!
//! Every problem of a body is reported at once, in one `422 invalid` message.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The most uids one membership call may carry.
pub(crate) const MAX_UIDS_PER_CALL: usize = 100;

/// The writable fields of an account, as `POST /accounts` and `PUT /accounts/{uid}` take them:
/// an absent or `null` name is `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AccountFields {
    pub(crate) login: String,
    pub(crate) email: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
}

/// Parses a request body that must be a JSON object (`400 bad_request` otherwise).
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        )),
        Err(error) => Err(ApiError::BadRequest(format!("malformed JSON: {error}"))),
    }
}

/// A field that must be a non-empty string.
fn required(body: &Map<String, Value>, name: &str, problems: &mut Vec<String>) -> String {
    match body.get(name) {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        Some(Value::String(_)) => {
            problems.push(format!("{name} must not be empty"));
            String::new()
        }
        None | Some(Value::Null) => {
            problems.push(format!("{name} is required"));
            String::new()
        }
        Some(_) => {
            problems.push(format!("{name} must be a string"));
            String::new()
        }
    }
}

/// A field that may be a string, `null` or absent (both `""`).
fn optional(body: &Map<String, Value>, name: &str, problems: &mut Vec<String>) -> String {
    match body.get(name) {
        Some(Value::String(text)) => text.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            problems.push(format!("{name} must be a string or null"));
            String::new()
        }
    }
}

fn finish<T>(value: T, problems: Vec<String>) -> Result<T, ApiError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(ApiError::Invalid(problems.join("; ")))
    }
}

/// The account fields of a `POST /accounts` or `PUT /accounts/{uid}` body.
pub(crate) fn account_fields(body: &Map<String, Value>) -> Result<AccountFields, ApiError> {
    let mut problems = Vec::new();
    let fields = AccountFields {
        login: required(body, "login", &mut problems),
        email: required(body, "email", &mut problems),
        first_name: optional(body, "first_name", &mut problems),
        last_name: optional(body, "last_name", &mut problems),
    };
    finish(fields, problems)
}

/// The `title` of a `POST /teams` or `PATCH /teams/{id}` body.
pub(crate) fn title(body: &Map<String, Value>) -> Result<String, ApiError> {
    let mut problems = Vec::new();
    let title = required(body, "title", &mut problems);
    finish(title, problems)
}

/// The `uids` of a membership body: at most [`MAX_UIDS_PER_CALL`] (`422 too_many` above),
/// each a string; duplicates are kept (the operations are idempotent).
pub(crate) fn uids(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let items = match body.get("uids") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Err(ApiError::Invalid("uids is required".into())),
        Some(_) => {
            return Err(ApiError::Invalid("uids must be an array of strings".into()));
        }
    };
    if items.len() > MAX_UIDS_PER_CALL {
        return Err(ApiError::TooMany {
            max: MAX_UIDS_PER_CALL,
            got: items.len(),
        });
    }
    let mut problems = Vec::new();
    let mut uids = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item {
            Value::String(uid) => uids.push(uid.clone()),
            _ => problems.push(format!("uids[{index}] must be a string")),
        }
    }
    finish(uids, problems)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    fn invalid(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid(message)) => message,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn accounts_need_login_and_email_and_ignore_unknown_fields() {
        let fields = account_fields(&object(json!({
            "login": "jane",
            "email": "jane@example.com",
            "first_name": null,
            "uid": "acc_000000",
            "origin": "local",
            "nickname": 7,
        })))
        .unwrap();
        assert_eq!(
            fields,
            AccountFields {
                login: "jane".into(),
                email: "jane@example.com".into(),
                first_name: String::new(),
                last_name: String::new(),
            }
        );
        let message = invalid(account_fields(&object(json!({
            "login": "",
            "email": 5,
            "first_name": true,
            "last_name": ["x"],
        }))));
        assert_eq!(
            message,
            "login must not be empty; email must be a string; \
             first_name must be a string or null; last_name must be a string or null"
        );
        let message = invalid(account_fields(&object(json!({ "email": null }))));
        assert_eq!(message, "login is required; email is required");
    }

    #[test]
    fn titles_are_required_non_empty_strings() {
        assert_eq!(
            title(&object(json!({ "title": "Sales", "x": 1 }))).unwrap(),
            "Sales"
        );
        for bad in [json!({}), json!({ "title": "" }), json!({ "title": 3 })] {
            invalid(title(&object(bad)));
        }
    }

    #[test]
    fn uids_are_bounded_strings() {
        let exactly: Vec<String> = (0..100).map(|i| format!("acc_{i}")).collect();
        assert_eq!(
            uids(&object(json!({ "uids": exactly }))).unwrap().len(),
            100
        );
        let too_many: Vec<String> = (0..101).map(|i| format!("acc_{i}")).collect();
        assert!(matches!(
            uids(&object(json!({ "uids": too_many }))),
            Err(ApiError::TooMany { max: 100, got: 101 })
        ));
        assert_eq!(
            invalid(uids(&object(json!({ "uids": ["a", 1, null] })))),
            "uids[1] must be a string; uids[2] must be a string"
        );
        invalid(uids(&object(json!({}))));
        invalid(uids(&object(json!({ "uids": "acc_1" }))));
        assert!(uids(&object(json!({ "uids": [] }))).unwrap().is_empty());
    }

    #[test]
    fn parse_object_refuses_malformed_and_non_objects() {
        for bad in [&b"{"[..], b"[]", b"", b"\"x\"", b"null"] {
            assert!(
                matches!(parse_object(bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert!(parse_object(b"{}").is_ok());
    }
}
