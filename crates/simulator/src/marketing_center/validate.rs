//! The user body rules of Marketing Center: the writable fields, the read-only ones, and
//! every value rule (`LogonName` 1–256 characters, `UserProfile*` at most 100, state and
//! country codes, strings only). Pure: JSON in, validated changes or *all* problems out.
//!
//! Lengths count Unicode scalar values (`char`s). `null` clears a `UserProfile*` field or
//! `ExternalIdentityProviderID` (stored and answered as `""`); `LogonName` cannot be cleared.

use serde_json::{Map, Value};

use super::countries::is_country_code;
use super::error::{ApiError, FieldProblem};
use super::regions::is_state_or_province;

/// Most characters in a `LogonName`.
pub(crate) const LOGON_NAME_MAX_CHARS: usize = 256;
/// Most characters in a `UserProfile*` string.
pub(crate) const PROFILE_MAX_CHARS: usize = 100;

/// Fields the storefront owns: sending one in a body is a `422`.
pub(crate) const READ_ONLY_FIELDS: [&str; 5] = [
    "UserID",
    "IsActive",
    "IsArchived",
    "CreatedUtc",
    "ModifiedUtc",
];

/// A writable user field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    LogonName,
    FirstName,
    LastName,
    FullName,
    Title,
    EmailAddress,
    Phone,
    Address1,
    Address2,
    City,
    State,
    PostalCode,
    Country,
    ExternalIdentityProviderId,
}

impl Field {
    /// Every writable field, in the order a user is answered.
    pub(crate) const ALL: [Field; 14] = [
        Field::LogonName,
        Field::FirstName,
        Field::LastName,
        Field::FullName,
        Field::Title,
        Field::EmailAddress,
        Field::Phone,
        Field::Address1,
        Field::Address2,
        Field::City,
        Field::State,
        Field::PostalCode,
        Field::Country,
        Field::ExternalIdentityProviderId,
    ];

    /// The JSON name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Field::LogonName => "LogonName",
            Field::FirstName => "UserProfileFirstName",
            Field::LastName => "UserProfileLastName",
            Field::FullName => "UserProfileFullName",
            Field::Title => "UserProfileTitle",
            Field::EmailAddress => "UserProfileEmailAddress",
            Field::Phone => "UserProfilePhone",
            Field::Address1 => "UserProfileAddress1",
            Field::Address2 => "UserProfileAddress2",
            Field::City => "UserProfileCity",
            Field::State => "UserProfileState",
            Field::PostalCode => "UserProfilePostalCode",
            Field::Country => "UserProfileCountry",
            Field::ExternalIdentityProviderId => "ExternalIdentityProviderID",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    fn is_profile(self) -> bool {
        !matches!(self, Field::LogonName | Field::ExternalIdentityProviderId)
    }

    /// The problem with `value` for this field, if any (`value` is the string sent).
    fn check(self, value: &str) -> Option<String> {
        let chars = value.chars().count();
        match self {
            Field::LogonName if value.is_empty() => Some("is required".into()),
            Field::LogonName if chars > LOGON_NAME_MAX_CHARS => Some(format!(
                "must be 1 to {LOGON_NAME_MAX_CHARS} characters long"
            )),
            f if f.is_profile() && chars > PROFILE_MAX_CHARS => Some(format!(
                "must be at most {PROFILE_MAX_CHARS} characters long"
            )),
            Field::State if !value.is_empty() && !is_state_or_province(value) => Some(
                "must be empty or a two-letter upper-case US state or Canadian province \
                 abbreviation such as \"IL\""
                    .into(),
            ),
            Field::Country if !value.is_empty() && !is_country_code(value) => {
                Some("must be empty or an ISO 3166-1 alpha-2 code such as \"US\"".into())
            }
            _ => None,
        }
    }
}

/// What a body is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `POST /users`: `LogonName` is required.
    Create,
    /// `PATCH /users/{id}`: any subset.
    Patch,
}

/// Validated writes, one per field sent; a cleared field is `""`.
pub(crate) type Changes = Vec<(Field, String)>;

/// Parses a request body that must be a JSON object (`400 BAD_REQUEST` otherwise).
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        )),
        Err(error) => Err(ApiError::BadRequest(format!("malformed JSON: {error}"))),
    }
}

/// Checks every member of `body`; answers the changes, or every problem found.
pub(crate) fn validate(body: &Map<String, Value>, mode: Mode) -> Result<Changes, ApiError> {
    let mut changes = Changes::new();
    let mut problems = Vec::new();
    for (name, value) in body {
        if READ_ONLY_FIELDS.contains(&name.as_str()) {
            problems.push(FieldProblem::new(name, "is read-only"));
            continue;
        }
        let Some(field) = Field::from_name(name) else {
            problems.push(FieldProblem::new(name, "is not a known field"));
            continue;
        };
        match value {
            Value::String(text) => match field.check(text) {
                Some(problem) => problems.push(FieldProblem::new(name, problem)),
                None => changes.push((field, text.clone())),
            },
            Value::Null if field == Field::LogonName => {
                problems.push(FieldProblem::new(name, "is required"));
            }
            Value::Null => changes.push((field, String::new())),
            _ if field == Field::LogonName => {
                problems.push(FieldProblem::new(name, "must be a string"));
            }
            _ => problems.push(FieldProblem::new(name, "must be a string or null")),
        }
    }
    if mode == Mode::Create && !body.contains_key(Field::LogonName.name()) {
        problems.push(FieldProblem::new(Field::LogonName.name(), "is required"));
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::Validation(problems))
    }
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

    fn problems(value: Value, mode: Mode) -> Vec<(String, String)> {
        match validate(&object(value), mode) {
            Err(ApiError::Validation(p)) => p.into_iter().map(|p| (p.field, p.problem)).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn all_problems_are_reported_in_body_order() {
        let found = problems(
            json!({
                "UserID": 1,
                "Nickname": "x",
                "UserProfileState": "California",
                "UserProfileCountry": "USA",
                "UserProfileCity": 7,
                "UserProfileTitle": "t".repeat(101),
                "ExternalIdentityProviderID": false,
            }),
            Mode::Create,
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "UserID",
                "Nickname",
                "UserProfileState",
                "UserProfileCountry",
                "UserProfileCity",
                "UserProfileTitle",
                "ExternalIdentityProviderID",
                "LogonName"
            ]
        );
        assert_eq!(found[0].1, "is read-only");
        assert_eq!(found[7].1, "is required");
    }

    #[test]
    fn lengths_count_characters_at_the_limits() {
        let ok = json!({
            "LogonName": "é".repeat(256),
            "UserProfileFirstName": "ü".repeat(100),
        });
        assert!(validate(&object(ok), Mode::Create).is_ok());
        let found = problems(
            json!({ "LogonName": "a".repeat(257), "UserProfileFirstName": "b".repeat(101) }),
            Mode::Create,
        );
        assert_eq!(found.len(), 2);
        assert!(problems(json!({ "LogonName": "" }), Mode::Create).len() == 1);
    }

    #[test]
    fn null_clears_profile_fields_but_not_the_logon_name() {
        let changes = validate(
            &object(json!({ "UserProfileCity": null, "ExternalIdentityProviderID": null })),
            Mode::Patch,
        )
        .unwrap();
        assert_eq!(
            changes,
            vec![
                (Field::City, String::new()),
                (Field::ExternalIdentityProviderId, String::new())
            ]
        );
        assert_eq!(
            problems(json!({ "LogonName": null }), Mode::Patch),
            vec![("LogonName".to_owned(), "is required".to_owned())]
        );
        assert!(
            validate(&object(json!({})), Mode::Patch)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn every_read_only_field_is_rejected() {
        for name in READ_ONLY_FIELDS {
            let found = problems(json!({ name: null }), Mode::Patch);
            assert_eq!(found, vec![(name.to_owned(), "is read-only".to_owned())]);
        }
    }

    #[test]
    fn parse_object_refuses_malformed_and_non_objects() {
        assert!(matches!(parse_object(b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_object(b"[]"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_object(b""), Err(ApiError::BadRequest(_))));
        assert!(parse_object(b"{}").is_ok());
    }
}
