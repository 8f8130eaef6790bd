//! Positions in a mapping file: `line:column` of the key a problem is about, so every message
//! of `scim-sidecar check` points at the line to fix.
//!
//! A problem message starts with the key path it concerns (`users.attributes[4] (title): …`,
//! `legacy.errors.codes.LOGON_NAME_TAKEN: …`); the path is looked up in the spanned TOML
//! document. Keys may contain dots (`users.filters."emails.value"`): the longest key that
//! exists is taken at each level. A path that goes further than the file points at the
//! deepest key that exists. Pure.

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The key path a problem message starts with: up to the first `:`, ` ` or `=`.
fn leading_path(message: &str) -> &str {
    let end = message.find([':', ' ', '=']).unwrap_or(message.len());
    message.get(..end).unwrap_or("")
}

/// `attributes[4]` → (`attributes`, Some(4)).
fn split_index(segment: &str) -> (&str, Option<usize>) {
    match segment.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
        Some((name, idx)) => (name, idx.parse().ok()),
        None => (segment, None),
    }
}

/// A place in the document a path can go on from.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
    Table(&'a toml_edit::Table),
}

impl<'a> Node<'a> {
    fn table(self) -> Option<&'a dyn TableLike> {
        match self {
            Node::Item(Item::Table(t)) | Node::Table(t) => Some(t),
            Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)) => {
                Some(t)
            }
            _ => None,
        }
    }
}

fn find(node: Node<'_>, segs: &[&str]) -> Option<Range<usize>> {
    let table = node.table()?;
    for k in (1..=segs.len()).rev() {
        let joined = segs.get(..k)?.join(".");
        let (name, index) = split_index(&joined);
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        let (child, here) = match (index, item) {
            (Some(i), Item::ArrayOfTables(tables)) => match tables.get(i) {
                Some(t) => (Node::Table(t), t.span().or_else(|| key.span())),
                None => return key.span(),
            },
            (Some(i), Item::Value(Value::Array(items))) => match items.get(i) {
                Some(v) => (Node::Value(v), v.span().or_else(|| key.span())),
                None => return key.span(),
            },
            _ => (Node::Item(item), key.span()),
        };
        let rest = segs.get(k..).unwrap_or(&[]);
        if rest.is_empty() {
            return here;
        }
        return find(child, rest).or(here);
    }
    None
}

/// Where in `text` the problem `message` is: the position of the key its path names.
pub fn locate(text: &str, message: &str) -> Option<(usize, usize)> {
    let path = leading_path(message);
    if path.is_empty() {
        return None;
    }
    let doc = ImDocument::parse(text).ok()?;
    let segs: Vec<&str> = path.split('.').collect();
    find(Node::Table(doc.as_table()), &segs).map(|span| line_col(text, span.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[legacy]\nname = \"x\"\n\n[users.filters]\n\"emails.value\" = { query = \"E\" }\n\n[[users.attributes]]\nscim = \"a\"\n\n[[users.attributes]]\nscim = \"b\"\n";

    #[test]
    fn finds_keys_tables_and_array_elements() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(locate(TEXT, "legacy.name: bad"), Some((2, 1)));
        assert_eq!(
            locate(TEXT, "users.filters.emails.value: unknown"),
            Some((5, 1))
        );
        assert_eq!(
            locate(TEXT, "users.attributes[1] (b): unknown"),
            Some((10, 1))
        );
        assert_eq!(
            locate(TEXT, "users.attributes[1].transform: x"),
            Some((10, 1)),
            "deepest existing"
        );
        assert_eq!(locate(TEXT, "groups.calls: nothing here"), None);
        assert_eq!(locate(TEXT, ""), None);
    }
}
