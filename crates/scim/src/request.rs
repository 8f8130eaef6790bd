//! What a request body must say before anything is done with it: a boolean `active` (or
//! Entra's `"True"`/`"False"`), the resource's core schema in `schemas`, a required text
//! member. Members are found case-insensitively, as RFC 7643 §2.1 asks.
//!
//! Pure: serde_json only.

use serde_json::Value;

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// `active` is neither a boolean nor `"true"`/`"false"`.
    #[error("active must be a boolean")]
    ActiveNotBoolean,
    /// `schemas` is present but does not name the resource's core schema.
    #[error("schemas must contain {0}")]
    MissingSchema(&'static str),
    /// A member that must have a non-blank text value has none.
    #[error("{0} is required")]
    Required(&'static str),
    /// A member that must be text is something else.
    #[error("{0} must be a string")]
    NotText(&'static str),
}

/// The top-level member `name` of a body, matched case-insensitively.
pub fn member<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = body.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The `active` a request asks for: a boolean, or `"True"`/`"False"` as Entra ID sends it;
/// `None` when absent or `null`.
pub fn requested_active(body: &Value) -> Result<Option<bool>, BodyError> {
    match member(body, "active") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(BodyError::ActiveNotBoolean),
    }
}

/// A body's `schemas`, when present, must name `core` (the resource's core schema URN).
pub fn check_schemas(body: &Value, core: &'static str) -> Result<(), BodyError> {
    match body.get("schemas") {
        None => Ok(()),
        Some(Value::Array(s))
            if s.iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(core))) =>
        {
            Ok(())
        }
        Some(_) => Err(BodyError::MissingSchema(core)),
    }
}

/// The non-blank text of member `name`.
pub fn required_text(body: &Value, name: &'static str) -> Result<String, BodyError> {
    member(body, name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .ok_or(BodyError::Required(name))
}

/// The text of member `name`; `None` when absent or `null`.
pub fn optional_text(body: &Value, name: &'static str) -> Result<Option<String>, BodyError> {
    match member(body, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(BodyError::NotText(name)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::USER;

    #[test]
    fn active_is_a_boolean_or_entras_text() {
        assert_eq!(requested_active(&json!({"active": true})), Ok(Some(true)));
        assert_eq!(
            requested_active(&json!({"Active": "False"})),
            Ok(Some(false))
        );
        assert_eq!(requested_active(&json!({"active": null})), Ok(None));
        assert_eq!(requested_active(&json!({})), Ok(None));
        assert_eq!(
            requested_active(&json!({"active": 1})),
            Err(BodyError::ActiveNotBoolean)
        );
    }

    #[test]
    fn schemas_texts_and_members() {
        assert_eq!(check_schemas(&json!({}), USER), Ok(()));
        assert_eq!(
            check_schemas(&json!({"schemas": [USER.to_uppercase()]}), USER),
            Ok(())
        );
        assert_eq!(
            check_schemas(&json!({"schemas": ["urn:x"]}), USER)
                .unwrap_err()
                .to_string(),
            format!("schemas must contain {USER}")
        );
        let g = json!({"DisplayName": "Ops", "blank": " ", "n": 1});
        assert_eq!(required_text(&g, "displayName").as_deref(), Ok("Ops"));
        assert_eq!(
            required_text(&g, "blank").unwrap_err().to_string(),
            "blank is required"
        );
        assert_eq!(optional_text(&g, "missing"), Ok(None));
        assert_eq!(
            optional_text(&g, "n").unwrap_err().to_string(),
            "n must be a string"
        );
        assert_eq!(member(&g, "displayname"), Some(&json!("Ops")));
    }
}
