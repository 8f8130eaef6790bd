//! Listing (RFC 7644 §3.4.2, §3.4.3): the parameters of a list or `.search` request, the
//! `attributes` / `excludedAttributes` projection, the window of results a page answers, and
//! the `ListResponse` message.
//!
//! Pure: depends on serde_json, [`crate::filter`], [`crate::resource`], [`crate::json`] and
//! [`crate::schema`]; no I/O.

use serde_json::{Value, json};

use crate::attr::AttrPath;
use crate::filter::{self, Filter, FilterError};
use crate::json::JsonError;
use crate::resource;
use crate::schema::{self, ResourceSchema};

/// Largest `count` a list answers at once.
pub const MAX_RESULTS: u64 = 1000;
/// `count` when the client sends none.
pub const DEFAULT_COUNT: u64 = 100;

/// Why list or projection parameters were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ListError {
    /// The filter, or an attribute path in `attributes` / `excludedAttributes`.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The `.search` body is not a JSON object.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// `startIndex` or `count` is not an integer.
    #[error("{name} must be an integer{}", got.as_ref().map(|g| format!(", got {g:?}")).unwrap_or_default())]
    NotAnInteger {
        /// The parameter.
        name: &'static str,
        /// What was sent, when it was text.
        got: Option<String>,
    },
    /// A `.search` body's `filter` is not a string.
    #[error("filter must be a string")]
    FilterNotText,
    /// A `.search` body's `attributes` holds something else than strings.
    #[error("attribute names must be strings")]
    AttributeNotText,
    /// A `.search` body's `attributes` is neither a string nor an array.
    #[error("attributes must be a string or an array")]
    AttributesNotList,
    /// A `.search` body's `cursor` is not a string.
    #[error("cursor must be a string")]
    CursorNotText,
    /// Both `cursor` (RFC 9865) and `startIndex` (RFC 7644) were sent.
    #[error(
        "cursor and startIndex cannot be combined: send cursor (empty for the first page) \
         or startIndex, not both"
    )]
    CursorAndStartIndex,
}

/// `attributes` / `excludedAttributes`.
#[derive(Default, Debug, Clone)]
pub struct Projection {
    /// Only these (plus always-returned ones).
    pub attributes: Vec<AttrPath>,
    /// All but these.
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// From a query string.
    pub fn from_query(query: &str) -> Result<Self, ListError> {
        let mut p = Projection::default();
        for (k, v) in form_pairs(query) {
            if k.eq_ignore_ascii_case("attributes") {
                p.attributes.extend(resource::parse_attr_list(&v)?);
            } else if k.eq_ignore_ascii_case("excludedAttributes") {
                p.excluded.extend(resource::parse_attr_list(&v)?);
            }
        }
        Ok(p)
    }

    /// Whether nothing is selected or excluded.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Applies to one resource.
    pub fn apply(&self, resource: Value, schema: &ResourceSchema) -> Value {
        if self.is_empty() {
            resource
        } else {
            resource::project(&resource, schema, &self.attributes, &self.excluded)
        }
    }

    /// Whether the answer will contain `attr` (top-level name, case-insensitive).
    pub fn wants(&self, attr: &str) -> bool {
        let named = |l: &[AttrPath]| {
            l.iter()
                .any(|p| p.name.eq_ignore_ascii_case(attr) && p.sub.is_none())
        };
        if !self.attributes.is_empty() {
            self.attributes
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(attr))
        } else {
            !named(&self.excluded)
        }
    }
}

/// Parameters of a list or search.
#[derive(Debug, Clone)]
pub struct ListParams {
    /// The filter.
    pub filter: Option<Filter>,
    /// 1-based index of the first result.
    pub start_index: u64,
    /// Results per page.
    pub count: u64,
    /// Whether the client sent `count` (a cursor walk keeps its first page's).
    pub count_given: bool,
    /// RFC 9865 cursor paging: the `cursor` as sent (`Some("")` starts a walk); `None` for
    /// index paging.
    pub cursor: Option<String>,
    /// Projection.
    pub projection: Projection,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams {
            filter: None,
            start_index: 1,
            count: DEFAULT_COUNT,
            count_given: false,
            cursor: None,
            projection: Projection::default(),
        }
    }
}

impl ListParams {
    /// From `GET` query parameters (`filter`, `startIndex`, `count`, `cursor`, `attributes`,
    /// `excludedAttributes`; names case-insensitive). `startIndex` below 1 counts as 1 and
    /// `count` is clamped to `0..=`[`MAX_RESULTS`]; `cursor` with no value (`?cursor`) or an
    /// empty one starts a cursor walk.
    pub fn from_query(query: &str) -> Result<Self, ListError> {
        let mut p = ListParams::default();
        let mut start_index_given = false;
        for (k, v) in form_pairs(query) {
            if k.eq_ignore_ascii_case("filter") {
                p.filter = Some(filter::parse(&v)?);
            } else if k.eq_ignore_ascii_case("startIndex") {
                p.start_index = parse_int(&v, "startIndex")?.max(1) as u64;
                start_index_given = true;
            } else if k.eq_ignore_ascii_case("count") {
                p.count = parse_int(&v, "count")?.clamp(0, MAX_RESULTS as i64) as u64;
                p.count_given = true;
            } else if k.eq_ignore_ascii_case("cursor") {
                p.cursor = Some(v);
            }
        }
        if start_index_given && p.cursor.is_some() {
            return Err(ListError::CursorAndStartIndex);
        }
        p.projection = Projection::from_query(query)?;
        Ok(p)
    }

    /// From a `POST .search` body (a SearchRequest; unknown members are ignored).
    pub fn from_search(body: &[u8]) -> Result<Self, ListError> {
        let v = crate::json::parse_object(body)?;
        let mut p = ListParams::default();
        let Some(obj) = v.as_object() else {
            return Ok(p);
        };
        let mut start_index_given = false;
        for (k, v) in obj {
            match k.to_ascii_lowercase().as_str() {
                "filter" => match v {
                    Value::String(s) => p.filter = Some(filter::parse(s)?),
                    Value::Null => {}
                    _ => return Err(ListError::FilterNotText),
                },
                "startindex" => {
                    p.start_index = json_int(v, "startIndex")?.max(1) as u64;
                    start_index_given = true;
                }
                "count" => {
                    p.count = json_int(v, "count")?.clamp(0, MAX_RESULTS as i64) as u64;
                    p.count_given = true;
                }
                "cursor" => match v {
                    Value::String(s) => p.cursor = Some(s.clone()),
                    Value::Null => {}
                    _ => return Err(ListError::CursorNotText),
                },
                "attributes" => p.projection.attributes = attr_list(v)?,
                "excludedattributes" => p.projection.excluded = attr_list(v)?,
                _ => {}
            }
        }
        if start_index_given && p.cursor.is_some() {
            return Err(ListError::CursorAndStartIndex);
        }
        Ok(p)
    }

    /// The parameters that continue this list after `before` matching results, of which
    /// `taken` were answered (a `/.search` across resource types lists Users, then Groups).
    pub fn after(&self, before: u64, taken: usize) -> ListParams {
        ListParams {
            filter: self.filter.clone(),
            start_index: (self.start_index - 1).saturating_sub(before) + 1,
            count: self.count.saturating_sub(taken as u64),
            count_given: self.count_given,
            cursor: self.cursor.clone(),
            projection: self.projection.clone(),
        }
    }

    /// The window of matching results this request answers.
    pub fn window<T>(&self) -> Window<T> {
        Window::new(self.start_index, self.count)
    }
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

fn parse_int(v: &str, name: &'static str) -> Result<i64, ListError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ListError::NotAnInteger {
            name,
            got: Some(v.to_owned()),
        })
}

fn json_int(v: &Value, name: &'static str) -> Result<i64, ListError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or(ListError::NotAnInteger { name, got: None }),
        Value::String(s) => parse_int(s, name),
        _ => Err(ListError::NotAnInteger { name, got: None }),
    }
}

fn attr_list(v: &Value) -> Result<Vec<AttrPath>, ListError> {
    match v {
        Value::String(s) => Ok(resource::parse_attr_list(s)?),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                let s = i.as_str().ok_or(ListError::AttributeNotText)?;
                out.extend(resource::parse_attr_list(s)?);
            }
            Ok(out)
        }
        Value::Null => Ok(Vec::new()),
        _ => Err(ListError::AttributesNotList),
    }
}

/// The results a list answers out of the matching ones met in order: it skips the first
/// `startIndex - 1`, keeps at most `count`, and counts every match (`totalResults`).
#[derive(Debug, Clone)]
pub struct Window<T> {
    skip: u64,
    count: u64,
    matched: u64,
    page: Vec<T>,
}

impl<T> Window<T> {
    /// The window of a 1-based `start_index` and a `count`.
    pub fn new(start_index: u64, count: u64) -> Self {
        Window {
            skip: start_index.saturating_sub(1),
            count,
            matched: 0,
            page: Vec::new(),
        }
    }

    /// Counts one matching result, keeping it when it falls in the window.
    pub fn push(&mut self, item: T) {
        if self.matched >= self.skip && (self.page.len() as u64) < self.count {
            self.page.push(item);
        }
        self.matched += 1;
    }

    /// Results matched so far.
    pub fn matched(&self) -> u64 {
        self.matched
    }

    /// Whether the window holds `count` results (later matches only count).
    pub fn is_full(&self) -> bool {
        self.page.len() as u64 >= self.count
    }

    /// Results skipped before the window.
    pub fn skip(&self) -> u64 {
        self.skip
    }

    /// (total matched, the results in the window).
    pub fn finish(self) -> (u64, Vec<T>) {
        (self.matched, self.page)
    }
}

/// A `ListResponse` message.
pub fn response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [schema::LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// A `ListResponse` page of an RFC 9865 cursor walk: `totalResults` when known, the cursor
/// of the next page unless this is the last, of the previous one where the caller has it.
pub fn cursor_response(
    total: Option<u64>,
    resources: Vec<Value>,
    next: Option<String>,
    previous: Option<String>,
) -> Value {
    let mut out = serde_json::Map::with_capacity(6);
    out.insert("schemas".into(), json!([schema::LIST_RESPONSE]));
    if let Some(total) = total {
        out.insert("totalResults".into(), total.into());
    }
    out.insert("itemsPerPage".into(), resources.len().into());
    if let Some(next) = next {
        out.insert("nextCursor".into(), next.into());
    }
    if let Some(previous) = previous {
        out.insert("previousCursor".into(), previous.into());
    }
    out.insert("Resources".into(), Value::Array(resources));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_read_and_bounded() {
        let p = ListParams::from_query(
            "filter=userName%20eq%20%22a%2Bb%40x%22&StartIndex=0&COUNT=5000&attributes=userName,name.givenName",
        )
        .unwrap();
        assert_eq!(p.start_index, 1);
        assert_eq!(p.count, MAX_RESULTS);
        assert_eq!(
            p.filter.map(|f| f.to_string()).as_deref(),
            Some("userName eq \"a+b@x\"")
        );
        assert_eq!(p.projection.attributes.len(), 2);
        let p = ListParams::from_query("count=-3&filter=userName+eq+%22x%22").unwrap();
        assert_eq!(p.count, 0);
        assert_eq!(
            p.filter.map(|f| f.to_string()).as_deref(),
            Some("userName eq \"x\"")
        );
        assert_eq!(
            ListParams::from_query("count=ten").unwrap_err().to_string(),
            "count must be an integer, got \"ten\""
        );
        assert!(matches!(
            ListParams::from_query("filter=userName%20xx%20%22a%22"),
            Err(ListError::Filter(_))
        ));
    }

    #[test]
    fn cursor_parameters_are_read_in_both_forms() {
        let p = ListParams::from_query("cursor&count=5").unwrap();
        assert_eq!(
            (p.cursor.as_deref(), p.count, p.count_given),
            (Some(""), 5, true)
        );
        let p = ListParams::from_query("Cursor=abc.DEF-_~").unwrap();
        assert_eq!(
            (p.cursor.as_deref(), p.count_given),
            (Some("abc.DEF-_~"), false)
        );
        assert_eq!(ListParams::from_query("count=2").unwrap().cursor, None);
        for q in ["cursor=&startIndex=1", "startIndex=3&cursor=x"] {
            assert_eq!(
                ListParams::from_query(q).unwrap_err(),
                ListError::CursorAndStartIndex
            );
        }
        let p = ListParams::from_search(br#"{"cursor": "", "count": 3}"#).unwrap();
        assert_eq!((p.cursor.as_deref(), p.count), (Some(""), 3));
        assert_eq!(
            ListParams::from_search(br#"{"cursor": 7}"#).unwrap_err(),
            ListError::CursorNotText
        );
        assert_eq!(
            ListParams::from_search(br#"{"cursor": "x", "startIndex": 2}"#).unwrap_err(),
            ListError::CursorAndStartIndex
        );
    }

    #[test]
    fn a_cursor_page_says_what_it_knows() {
        let r = cursor_response(None, vec![json!({"id": "a"})], Some("n1".into()), None);
        assert_eq!(r["itemsPerPage"], 1);
        assert_eq!(r["nextCursor"], "n1");
        assert!(r.get("totalResults").is_none() && r.get("previousCursor").is_none());
        assert!(r.get("startIndex").is_none());
        let r = cursor_response(Some(9), Vec::new(), None, Some("p0".into()));
        assert_eq!(
            (&r["totalResults"], &r["previousCursor"]),
            (&json!(9), &json!("p0"))
        );
        assert!(r.get("nextCursor").is_none());
        assert_eq!(r["Resources"], json!([]));
    }

    #[test]
    fn search_bodies_are_read_and_refused_clearly() {
        let p = ListParams::from_search(
            br#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "displayName eq \"Ops\"", "startIndex": "3", "count": 2,
                "attributes": ["displayName"], "excludedAttributes": "members"}"#,
        )
        .unwrap();
        assert_eq!((p.start_index, p.count), (3, 2));
        assert!(p.projection.wants("displayName") && !p.projection.wants("members"));
        for (body, why) in [
            (&br#"{"filter": 1}"#[..], "filter must be a string"),
            (br#"{"count": 1.5}"#, "count must be an integer"),
            (br#"{"attributes": [1]}"#, "attribute names must be strings"),
            (
                br#"{"attributes": {}}"#,
                "attributes must be a string or an array",
            ),
        ] {
            assert_eq!(ListParams::from_search(body).unwrap_err().to_string(), why);
        }
        assert!(matches!(
            ListParams::from_search(b"[1]"),
            Err(ListError::Json(_))
        ));
    }

    #[test]
    fn a_window_skips_keeps_and_counts() {
        let mut w = Window::new(3, 2);
        for i in 1..=6 {
            w.push(i);
        }
        assert!(w.is_full());
        assert_eq!(w.finish(), (6, vec![3, 4]));
        let mut empty = Window::<u8>::new(1, 0);
        empty.push(1);
        assert_eq!(empty.finish(), (1, vec![]));
        let p = ListParams {
            start_index: 4,
            count: 10,
            ..ListParams::default()
        };
        let rest = p.after(2, 0);
        assert_eq!((rest.start_index, rest.count), (2, 10));
        let rest = p.after(5, 2);
        assert_eq!((rest.start_index, rest.count), (1, 8));
    }

    #[test]
    fn the_list_response_message() {
        let r = response(7, 3, vec![json!({"id": "a"})]);
        assert_eq!(r["schemas"][0], schema::LIST_RESPONSE);
        assert_eq!(
            (&r["totalResults"], &r["startIndex"], &r["itemsPerPage"]),
            (&json!(7), &json!(3), &json!(1))
        );
    }
}
