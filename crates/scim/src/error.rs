//! The `scimType` vocabulary of RFC 7644 §3.12: the one list every part of the sidecar uses
//! (the error funnel when it answers, the mapping compiler when it checks a declared code).

use std::fmt;

/// A SCIM `scimType` (RFC 7644 §3.12, Table 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax was invalid or the filter cannot be applied.
    InvalidFilter,
    /// The filter yields too many results, or a request names too many things.
    TooMany,
    /// A value is not unique (e.g. `userName` taken).
    Uniqueness,
    /// The attribute's mutability forbids the change.
    Mutability,
    /// The request body is not well-formed SCIM.
    InvalidSyntax,
    /// A PATCH path is malformed or names nothing the schema has.
    InvalidPath,
    /// A PATCH path selects nothing to act on.
    NoTarget,
    /// A value is missing, malformed or refused.
    InvalidValue,
    /// The protocol version is not supported.
    InvalidVers,
    /// A sensitive value was sent in a place it must not be (e.g. the URL).
    Sensitive,
    /// RFC 9865: the cursor is malformed, forged, or belongs to another query.
    InvalidCursor,
    /// RFC 9865: the cursor is older than the service provider's `cursorTimeout`.
    ExpiredCursor,
    /// RFC 9865: `count` differs from the one the cursor walk started with.
    InvalidCount,
}

impl ScimType {
    /// Every `scimType` of RFC 7644, in its order (the ones a mapping may name for a legacy
    /// error; RFC 9865's cursor types are the sidecar's own).
    pub const ALL: [ScimType; 10] = [
        ScimType::InvalidFilter,
        ScimType::TooMany,
        ScimType::Uniqueness,
        ScimType::Mutability,
        ScimType::InvalidSyntax,
        ScimType::InvalidPath,
        ScimType::NoTarget,
        ScimType::InvalidValue,
        ScimType::InvalidVers,
        ScimType::Sensitive,
    ];

    /// The keyword as written in an error response.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
            ScimType::ExpiredCursor => "expiredCursor",
            ScimType::InvalidCount => "invalidCount",
        }
    }

    /// The `scimType` a keyword names (exactly as the RFC spells it).
    pub fn parse(keyword: &str) -> Option<ScimType> {
        Self::ALL.into_iter().find(|t| t.as_str() == keyword)
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ScimType;

    #[test]
    fn every_keyword_round_trips() {
        for t in ScimType::ALL {
            assert_eq!(ScimType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ScimType::parse("unique"), None);
        assert_eq!(ScimType::parse("InvalidValue"), None, "case matters");
    }
}
