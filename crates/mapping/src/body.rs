//! Fixed JSON bodies of calls that send no mapped fields: a lock call's
//! `{"user": {"status": 3}}`, a member call's `{"user_id": {member_legacy_id}}`.
//!
//! The body is JSON with placeholders, parsed once at compile time. A placeholder inside a
//! JSON string is text (`"{legacy_id}"` sends `"42"`); a placeholder standing alone as a
//! value, unquoted (`{member_legacy_id}`), sends the value as a JSON number when it is an
//! integer and as a string otherwise — so `{"user_id": {member_legacy_id}}` sends
//! `{"user_id": 42}`. (Unquoted, `{` followed by a name is never valid JSON, so there is
//! no ambiguity.)

use serde_json::{Map, Value};

use crate::error::TranslateError;
use crate::template::{Template, Var, Vars};

/// A parsed body template.
#[derive(Clone, Debug, PartialEq)]
pub struct BodyTemplate {
    root: Node,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Literal(Value),
    Text(Template),
    Raw(Template),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// Why a body template is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyTemplateError {
    /// Not JSON, once the unquoted placeholders are set aside.
    #[error("not JSON: {0}")]
    Json(String),
    /// A placeholder that does not exist, or a malformed one inside a string.
    #[error("{0}")]
    Placeholder(String),
}

/// Marks an unquoted placeholder in the JSON text while it is parsed.
const MARK: char = '\u{0}';

impl BodyTemplate {
    /// Parses a body template.
    pub fn parse(text: &str) -> Result<BodyTemplate, BodyTemplateError> {
        let mut raw = Vec::new();
        let mut json = String::with_capacity(text.len());
        let (mut in_string, mut escaped) = (false, false);
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            if in_string {
                json.push(c);
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            if c == '"' {
                in_string = true;
                json.push(c);
                continue;
            }
            let name_len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                .unwrap_or(rest.len());
            let starts_name = rest
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_');
            if c == '{' && starts_name && rest[name_len..].starts_with('}') {
                let name = &rest[..name_len];
                let t = Template::parse(&format!("{{{name}}}"))
                    .map_err(|e| BodyTemplateError::Placeholder(e.to_string()))?;
                json.push('"');
                json.push(MARK);
                json.push_str(&raw.len().to_string());
                json.push('"');
                raw.push(t);
                rest = &rest[name_len + 1..];
                continue;
            }
            json.push(c);
        }
        // The mark is a control character: serde_json refuses it unescaped in a string, so
        // the text written above is escaped before parsing.
        let json = json.replace(MARK, "\\u0000");
        let value: Value =
            serde_json::from_str(&json).map_err(|e| BodyTemplateError::Json(e.to_string()))?;
        Ok(BodyTemplate {
            root: node(value, &raw)?,
        })
    }

    /// The placeholders the body uses.
    pub fn vars(&self) -> Vec<Var> {
        let mut out = Vec::new();
        collect_vars(&self.root, &mut out);
        out
    }

    /// The body for one call.
    pub fn render(&self, vars: &Vars<'_>) -> Result<Value, TranslateError> {
        render(&self.root, vars)
    }
}

fn node(value: Value, raw: &[Template]) -> Result<Node, BodyTemplateError> {
    Ok(match value {
        Value::String(s) => {
            if let Some(i) = s
                .strip_prefix(MARK)
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|i| raw.get(i))
            {
                Node::Raw(i.clone())
            } else if s.contains(['{', '}']) {
                Node::Text(
                    Template::parse(&s)
                        .map_err(|e| BodyTemplateError::Placeholder(e.to_string()))?,
                )
            } else {
                Node::Literal(Value::String(s))
            }
        }
        Value::Array(items) => Node::Array(
            items
                .into_iter()
                .map(|v| node(v, raw))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Node::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, node(v, raw)?)))
                .collect::<Result<_, BodyTemplateError>>()?,
        ),
        other => Node::Literal(other),
    })
}

fn collect_vars(n: &Node, out: &mut Vec<Var>) {
    match n {
        Node::Literal(_) => {}
        Node::Text(t) | Node::Raw(t) => out.extend(t.vars().cloned()),
        Node::Array(items) => items.iter().for_each(|i| collect_vars(i, out)),
        Node::Object(members) => members.iter().for_each(|(_, v)| collect_vars(v, out)),
    }
}

fn render(n: &Node, vars: &Vars<'_>) -> Result<Value, TranslateError> {
    Ok(match n {
        Node::Literal(v) => v.clone(),
        Node::Text(t) => Value::String(t.render(vars)?),
        Node::Raw(t) => {
            let text = t.render(vars)?;
            let integer = !text.is_empty()
                && (text == "0" || !text.starts_with('0'))
                && text.bytes().all(|b| b.is_ascii_digit());
            match text.parse::<u64>() {
                Ok(n) if integer => Value::from(n),
                _ => Value::String(text),
            }
        }
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(members) => {
            let mut map = Map::new();
            for (k, v) in members {
                map.insert(k.clone(), render(v, vars)?);
            }
            Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{BodyTemplate, BodyTemplateError};
    use crate::template::{TenantValues, Var, Vars};

    fn vars<'a>(legacy_id: &'a str, member: &'a str, tenant: &'a TenantValues) -> Vars<'a> {
        Vars {
            legacy_id: Some(legacy_id),
            member_legacy_id: Some(member),
            tenant: Some(tenant),
        }
    }

    fn acme() -> TenantValues {
        TenantValues {
            customer_id: "ACME".into(),
            api_key: "k".into(),
            ..TenantValues::default()
        }
    }

    #[test]
    fn fixed_values_and_placeholders_as_text_or_as_values() {
        let t = BodyTemplate::parse(
            r#"{"user": {"status": 3, "note": "locked by {tenant.customer_id}", "tags": ["scim", true, null]},
                "user_id": {member_legacy_id}, "group": "{legacy_id}", "braces": "{{x}}"}"#,
        )
        .unwrap();
        let acme = acme();
        assert_eq!(
            t.render(&vars("12", "42", &acme)).unwrap(),
            json!({"user": {"status": 3, "note": "locked by ACME", "tags": ["scim", true, null]},
                   "user_id": 42, "group": "12", "braces": "{x}"})
        );
        // An id that is not a plain integer stays a string.
        for id in ["acc_8c1f2a", "007", "-1", "1.5", ""] {
            assert_eq!(
                t.render(&vars("12", id, &acme)).unwrap()["user_id"],
                json!(id),
                "{id:?}"
            );
        }
        assert_eq!(
            t.vars(),
            vec![Var::CustomerId, Var::MemberLegacyId, Var::LegacyId]
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(matches!(
            BodyTemplate::parse(r#"{"user_id": {user_id}}"#),
            Err(BodyTemplateError::Placeholder(e)) if e.contains("unknown placeholder {user_id}")
        ));
        assert!(matches!(
            BodyTemplate::parse(r#"{"user": {"status": 3}"#),
            Err(BodyTemplateError::Json(_))
        ));
        assert!(matches!(
            BodyTemplate::parse(r#"{"a": "{nope}"}"#),
            Err(BodyTemplateError::Placeholder(e)) if e.contains("unknown placeholder {nope}")
        ));
        // A literal NUL mark in a string is not taken for a placeholder.
        let t = BodyTemplate::parse(r#"{"a": "\u00000"}"#).unwrap();
        assert_eq!(t.render(&Vars::default()).unwrap(), json!({"a": "\u{0}0"}));
    }
}
