//! List query strings of Marketing Center: `Page` (1-based, default 1), `PageSize` (default
//! 50, at most 200) and each list's filters. Pure.
//!
//! Strictness the contract leaves open, chosen to catch client bugs: an unknown or repeated
//! parameter is a `400 BAD_REQUEST`, as is a `Page`/`PageSize` that is not a positive decimal
//! integer. Values are form-decoded (`+` is a space; send `%2B` for a plus sign).

use std::collections::HashMap;

use super::error::ApiError;

/// `PageSize` when none is sent.
pub(crate) const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest `PageSize`.
pub(crate) const MAX_PAGE_SIZE: u64 = 200;

/// Which page of a list to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paging {
    /// 1-based page number.
    pub(crate) page: u64,
    /// Items per page, 1..=200.
    pub(crate) size: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            page: 1,
            size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl Paging {
    /// How many matching items come before this page.
    pub(crate) fn offset(self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.size)
    }

    /// Whether the item at `index` (0-based among the matches) is on this page.
    pub(crate) fn contains(self, index: u64) -> bool {
        let offset = self.offset();
        index >= offset && index - offset < self.size
    }
}

/// A parsed list query: the paging and the filters that were sent.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    /// The requested page.
    pub(crate) paging: Paging,
    filters: HashMap<&'static str, String>,
}

impl ListQuery {
    /// Parses `query`, accepting `Page`, `PageSize` and the names in `filters`.
    pub(crate) fn parse(query: Option<&str>, filters: &[&'static str]) -> Result<Self, ApiError> {
        let split = crate::http::split_list_query(query, ["Page", "PageSize"], filters)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mut parsed = ListQuery {
            filters: split.filters,
            ..ListQuery::default()
        };
        let (page, size) = (split.first, split.second);
        if let Some(page) = page {
            parsed.paging.page = match positive(&page) {
                Positive::Value(n) => n,
                Positive::TooLarge => {
                    return Err(ApiError::BadRequest("Page is out of range".into()));
                }
                Positive::Invalid => {
                    return Err(ApiError::BadRequest(
                        "Page must be a positive integer (the first page is 1)".into(),
                    ));
                }
            };
        }
        if let Some(size) = size {
            parsed.paging.size = match positive(&size) {
                Positive::Value(n) if n <= MAX_PAGE_SIZE => n,
                Positive::Value(_) | Positive::TooLarge => {
                    return Err(ApiError::PageSizeTooLarge { max: MAX_PAGE_SIZE });
                }
                Positive::Invalid => {
                    return Err(ApiError::BadRequest(format!(
                        "PageSize must be an integer from 1 to {MAX_PAGE_SIZE}"
                    )));
                }
            };
        }
        Ok(parsed)
    }

    /// The value sent for a filter.
    pub(crate) fn filter(&self, name: &str) -> Option<&str> {
        self.filters.get(name).map(String::as_str)
    }
}

enum Positive {
    Value(u64),
    TooLarge,
    Invalid,
}

fn positive(text: &str) -> Positive {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Positive::Invalid;
    }
    match text.parse::<u64>() {
        Ok(0) => Positive::Invalid,
        Ok(n) => Positive::Value(n),
        // Only digits, so the only way to fail is overflow.
        Err(_) => Positive::TooLarge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ListQuery, ApiError> {
        ListQuery::parse(Some(query), &["Name"])
    }

    #[test]
    fn defaults_and_values() {
        let q = ListQuery::parse(None, &[]).unwrap();
        assert_eq!(q.paging, Paging { page: 1, size: 50 });
        let q = parse("Page=3&PageSize=200&Name=Sales+Ops%2B").unwrap();
        assert_eq!(q.paging, Paging { page: 3, size: 200 });
        assert_eq!(q.filter("Name"), Some("Sales Ops+"));
        assert_eq!(q.paging.offset(), 400);
    }

    #[test]
    fn bad_paging_is_refused() {
        for bad in [
            "Page=0",
            "Page=-1",
            "Page=x",
            "Page=",
            "Page=1.5",
            "PageSize=0",
            "PageSize=a",
        ] {
            assert!(matches!(parse(bad), Err(ApiError::BadRequest(_))), "{bad}");
        }
        for big in ["PageSize=201", "PageSize=99999999999999999999999"] {
            assert!(
                matches!(parse(big), Err(ApiError::PageSizeTooLarge { max: 200 })),
                "{big}"
            );
        }
        assert!(matches!(
            parse("Page=99999999999999999999999"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(matches!(parse("name=x"), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            parse("Name=a&Name=b"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse("Page=1&Page=2"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn huge_pages_do_not_overflow() {
        let paging = Paging {
            page: u64::MAX,
            size: 200,
        };
        assert_eq!(paging.offset(), u64::MAX);
        assert!(!paging.contains(0));
        assert!(Paging { page: 2, size: 10 }.contains(10));
        assert!(!Paging { page: 2, size: 10 }.contains(20));
    }
}
