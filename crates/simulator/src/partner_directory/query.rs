//! List query strings of the Partner Directory: `offset` (0-based, default 0), `limit`
//! (default 25, larger than 100 clamped to 100) and each list's filters. Pure.
//!
//! Strictness the contract leaves open, chosen to catch client bugs: an unknown or repeated
//! parameter is a `400 bad_request`, as is an `offset` that is not a non-negative decimal
//! integer or a `limit` that is not a positive one. An `offset` too large for 64 bits is
//! simply past the end (an empty page). Values are form-decoded (`+` is a space; send `%2B`
//! for a plus sign).

use std::collections::HashMap;

use super::error::ApiError;

/// `limit` when none is sent.
pub(crate) const DEFAULT_LIMIT: u64 = 25;
/// The largest `limit`; larger ones are clamped to it.
pub(crate) const MAX_LIMIT: u64 = 100;

/// Which slice of a list to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paging {
    /// How many matching items to skip.
    pub(crate) offset: u64,
    /// Items per page, 1..=100 (after clamping).
    pub(crate) limit: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// A parsed list query: the paging and the filters that were sent.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    /// The requested slice.
    pub(crate) paging: Paging,
    filters: HashMap<&'static str, String>,
}

impl ListQuery {
    /// Parses `query`, accepting `offset`, `limit` and the names in `filters`.
    pub(crate) fn parse(query: Option<&str>, filters: &[&'static str]) -> Result<Self, ApiError> {
        let split = crate::http::split_list_query(query, ["offset", "limit"], filters)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mut parsed = ListQuery {
            filters: split.filters,
            ..ListQuery::default()
        };
        let (offset, limit) = (split.first, split.second);
        if let Some(offset) = offset {
            parsed.paging.offset = match natural(&offset) {
                Some(n) => n,
                None => {
                    return Err(ApiError::BadRequest(
                        "offset must be a non-negative integer (the first item is 0)".into(),
                    ));
                }
            };
        }
        if let Some(limit) = limit {
            parsed.paging.limit = match natural(&limit) {
                Some(0) | None => {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be a positive integer (at most {MAX_LIMIT} are answered)"
                    )));
                }
                Some(n) => n.min(MAX_LIMIT),
            };
        }
        Ok(parsed)
    }

    /// The value sent for a filter.
    pub(crate) fn filter(&self, name: &str) -> Option<&str> {
        self.filters.get(name).map(String::as_str)
    }
}

/// A plain decimal integer (digits only); one too large for 64 bits saturates.
fn natural(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Only digits, so the only way to fail is overflow.
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ListQuery, ApiError> {
        ListQuery::parse(Some(query), &["title"])
    }

    #[test]
    fn defaults_and_values() {
        let q = ListQuery::parse(None, &[]).unwrap();
        assert_eq!(
            q.paging,
            Paging {
                offset: 0,
                limit: 25
            }
        );
        let q = parse("offset=30&limit=100&title=Sales+Ops%2B").unwrap();
        assert_eq!(
            q.paging,
            Paging {
                offset: 30,
                limit: 100
            }
        );
        assert_eq!(q.filter("title"), Some("Sales Ops+"));
        assert_eq!(q.filter("login"), None);
    }

    #[test]
    fn large_limits_are_clamped_and_large_offsets_saturate() {
        for big in ["101", "1000", "99999999999999999999999"] {
            let q = parse(&format!("limit={big}")).unwrap();
            assert_eq!(q.paging.limit, MAX_LIMIT, "{big}");
        }
        let q = parse("offset=99999999999999999999999").unwrap();
        assert_eq!(q.paging.offset, u64::MAX);
    }

    #[test]
    fn bad_paging_is_refused() {
        for bad in [
            "offset=-1",
            "offset=x",
            "offset=",
            "offset=1.5",
            "offset=+1",
            "limit=0",
            "limit=-5",
            "limit=a",
            "limit=",
            "limit=2.0",
        ] {
            assert!(matches!(parse(bad), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        for bad in [
            "Title=x",
            "page=1",
            "title=a&title=b",
            "offset=1&offset=2",
            "limit=1&limit=1",
        ] {
            assert!(matches!(parse(bad), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }
}
