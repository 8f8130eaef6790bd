//! `{placeholder}` templates in paths, query values and headers.
//!
//! A template is parsed once at compile time, so an unknown placeholder is a mapping error,
//! never a surprise at request time. Rendering is allocation-light and infallible.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::error::{TemplateError, TranslateError};

/// Characters escaped when a value is put into a path segment.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A placeholder a template may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// `{legacy_id}`: the legacy id of the record the call is about.
    LegacyId,
    /// `{member_legacy_id}`: the legacy id of a group member.
    MemberLegacyId,
    /// `{tenant.customer_id}`: the tenant's customer id.
    CustomerId,
    /// `{secret.api_key}`: the tenant's legacy API key.
    ApiKey,
}

impl Var {
    /// Every placeholder with its name in a template.
    pub const ALL: [(&'static str, Var); 4] = [
        ("legacy_id", Var::LegacyId),
        ("member_legacy_id", Var::MemberLegacyId),
        ("tenant.customer_id", Var::CustomerId),
        ("secret.api_key", Var::ApiKey),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Values for the placeholders of one call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Vars<'a> {
    /// `{legacy_id}`.
    pub legacy_id: Option<&'a str>,
    /// `{member_legacy_id}`.
    pub member_legacy_id: Option<&'a str>,
    /// `{tenant.customer_id}`.
    pub customer_id: &'a str,
    /// `{secret.api_key}`.
    pub api_key: &'a str,
}

impl Template {
    /// Parses `text`; `{{` and `}}` stand for literal braces.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, n)| *n) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, n)| *n) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &text[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(TemplateError::new(text, "unclosed '{'"));
                    };
                    let name = rest[..end].trim();
                    let var = Var::ALL
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| {
                            let known: Vec<_> = Var::ALL.iter().map(|(n, _)| *n).collect();
                            TemplateError::new(
                                text,
                                &format!(
                                    "unknown placeholder {{{name}}} (known: {})",
                                    known.join(", ")
                                ),
                            )
                        })?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(var));
                    for _ in 0..=end {
                        chars.next();
                    }
                }
                '}' => return Err(TemplateError::new(text, "unmatched '}'")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The placeholders this template uses.
    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Text(_) => None,
        })
    }

    /// Whether the template uses a secret (its rendering must never be logged).
    pub fn uses_secret(&self) -> bool {
        self.vars().any(|v| v == Var::ApiKey)
    }

    /// Renders with values as they are (headers, query values encoded later).
    pub fn render(&self, vars: &Vars<'_>) -> Result<String, TranslateError> {
        self.render_with(vars, false)
    }

    /// Renders a path: placeholder values are percent-encoded as one path segment.
    pub fn render_path(&self, vars: &Vars<'_>) -> Result<String, TranslateError> {
        self.render_with(vars, true)
    }

    fn render_with(&self, vars: &Vars<'_>, path: bool) -> Result<String, TranslateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    let value = match v {
                        Var::LegacyId => vars.legacy_id,
                        Var::MemberLegacyId => vars.member_legacy_id,
                        Var::CustomerId => Some(vars.customer_id),
                        Var::ApiKey => Some(vars.api_key),
                    }
                    .ok_or(TranslateError::MissingVar(v.name()))?;
                    if path {
                        out.extend(utf8_percent_encode(value, PATH_SEGMENT));
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = Template::parse("/people/{legacy_id}/archive").unwrap();
        let vars = Vars {
            legacy_id: Some("a/b c"),
            ..Vars::default()
        };
        assert_eq!(t.render_path(&vars).unwrap(), "/people/a%2Fb%20c/archive");
        assert!(!t.uses_secret());
        let h = Template::parse("Token {secret.api_key}").unwrap();
        assert!(h.uses_secret());
        let vars = Vars {
            api_key: "k",
            ..Vars::default()
        };
        assert_eq!(h.render(&vars).unwrap(), "Token k");
        assert_eq!(
            Template::parse("{{x}}").unwrap().render(&vars).unwrap(),
            "{x}"
        );
    }

    #[test]
    fn rejects_unknown_and_unbalanced() {
        let e = Template::parse("/people/{id}").unwrap_err().to_string();
        assert!(e.contains("unknown placeholder {id}"), "{e}");
        assert!(Template::parse("/people/{legacy_id").is_err());
        assert!(Template::parse("/people/}").is_err());
    }

    #[test]
    fn missing_value_is_an_error() {
        let t = Template::parse("/people/{legacy_id}").unwrap();
        assert!(matches!(
            t.render_path(&Vars::default()),
            Err(TranslateError::MissingVar("legacy_id"))
        ));
    }
}
