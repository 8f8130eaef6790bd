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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `{legacy_id}`: the legacy id of the record the call is about.
    LegacyId,
    /// `{member_legacy_id}`: the legacy id of a group member.
    MemberLegacyId,
    /// `{tenant.customer_id}` (also `{var.customer_id}`): the tenant's `customer_id`.
    CustomerId,
    /// `{secret.api_key}`: the tenant's `api_key`.
    ApiKey,
    /// `{var.NAME}`: a value of the tenant's `vars` table.
    Named(String),
    /// `{secret.NAME}`: a secret of the tenant's `secrets` table (never logged).
    Secret(String),
}

impl Var {
    /// The fixed placeholders with their names in a template.
    pub const FIXED: [(&'static str, Var); 4] = [
        ("legacy_id", Var::LegacyId),
        ("member_legacy_id", Var::MemberLegacyId),
        ("tenant.customer_id", Var::CustomerId),
        ("secret.api_key", Var::ApiKey),
    ];

    /// The placeholder a name in braces stands for, if any.
    pub fn parse(name: &str) -> Option<Var> {
        if let Some((_, v)) = Self::FIXED.iter().find(|(n, _)| *n == name) {
            return Some(v.clone());
        }
        let ident =
            |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match name.split_once('.') {
            Some(("var", "customer_id")) => Some(Var::CustomerId),
            Some(("var", n)) if ident(n) => Some(Var::Named(n.to_owned())),
            Some(("secret", n)) if ident(n) => Some(Var::Secret(n.to_owned())),
            _ => None,
        }
    }

    /// The placeholder as written, without braces.
    pub fn name(&self) -> String {
        match self {
            Var::Named(n) => format!("var.{n}"),
            Var::Secret(n) => format!("secret.{n}"),
            fixed => Self::FIXED
                .iter()
                .find(|(_, v)| v == fixed)
                .map_or_else(|| "?".to_owned(), |(n, _)| (*n).to_owned()),
        }
    }

    /// Whether its value is a secret (a rendering holding it is never logged).
    pub fn is_secret(&self) -> bool {
        matches!(self, Var::ApiKey | Var::Secret(_))
    }

    /// Whether it is a value of the tenant (rather than of the call).
    pub fn is_tenant(&self) -> bool {
        !matches!(self, Var::LegacyId | Var::MemberLegacyId)
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

/// A tenant's values for the placeholders: `customer_id`, `api_key`, `vars`, `secrets`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantValues {
    /// `{tenant.customer_id}`.
    pub customer_id: String,
    /// `{secret.api_key}`.
    pub api_key: String,
    /// `{var.NAME}`.
    pub vars: std::collections::BTreeMap<String, String>,
    /// `{secret.NAME}`.
    pub secrets: std::collections::BTreeMap<String, String>,
}

impl TenantValues {
    /// The value of a tenant placeholder, if the tenant has one.
    pub fn get(&self, var: &Var) -> Option<&str> {
        fn set(s: &str) -> Option<&str> {
            Some(s).filter(|s| !s.is_empty())
        }
        match var {
            Var::CustomerId => set(&self.customer_id),
            Var::ApiKey => set(&self.api_key),
            Var::Named(n) => self.vars.get(n).map(String::as_str),
            Var::Secret(n) => self.secrets.get(n).map(String::as_str),
            Var::LegacyId | Var::MemberLegacyId => None,
        }
    }
}

/// Values for the placeholders of one call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Vars<'a> {
    /// `{legacy_id}`.
    pub legacy_id: Option<&'a str>,
    /// `{member_legacy_id}`.
    pub member_legacy_id: Option<&'a str>,
    /// The tenant's values.
    pub tenant: Option<&'a TenantValues>,
}

impl Vars<'_> {
    /// The value of a placeholder in this call.
    pub fn get(&self, var: &Var) -> Option<&str> {
        match var {
            Var::LegacyId => self.legacy_id,
            Var::MemberLegacyId => self.member_legacy_id,
            tenant => self.tenant.and_then(|t| t.get(tenant)),
        }
    }
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
                    let var = Var::parse(name).ok_or_else(|| {
                        let known: Vec<_> = Var::FIXED.iter().map(|(n, _)| *n).collect();
                        TemplateError::new(
                            text,
                            &format!(
                                "unknown placeholder {{{name}}} (known: {}, var.NAME, secret.NAME)",
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
    pub fn vars(&self) -> impl Iterator<Item = &Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// Whether the template uses a secret (its rendering must never be logged).
    pub fn uses_secret(&self) -> bool {
        self.vars().any(Var::is_secret)
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
        // Sized once for the text as it is (percent-encoding may still grow it); a named
        // value is not looked up twice, only guessed at.
        let len = self.parts.iter().fold(0, |n, part| {
            n + match part {
                Part::Text(t) => t.len(),
                Part::Var(Var::Named(_) | Var::Secret(_)) => 16,
                Part::Var(v) => vars.get(v).map_or(0, str::len),
            }
        });
        let mut out = String::with_capacity(len);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    let value = vars
                        .get(v)
                        .ok_or_else(|| TranslateError::MissingVar(v.name()))?;
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
        let tenant = TenantValues {
            api_key: "k".into(),
            vars: [("region".to_owned(), "eu".to_owned())].into(),
            secrets: [("password".to_owned(), "pw".to_owned())].into(),
            ..TenantValues::default()
        };
        let vars = Vars {
            tenant: Some(&tenant),
            ..Vars::default()
        };
        assert_eq!(h.render(&vars).unwrap(), "Token k");
        let named = Template::parse("{var.region}:{secret.password}").unwrap();
        assert!(named.uses_secret());
        assert_eq!(named.render(&vars).unwrap(), "eu:pw");
        assert!(matches!(
            Template::parse("{var.zone}").unwrap().render(&vars),
            Err(TranslateError::MissingVar(n)) if n == "var.zone"
        ));
        assert_eq!(
            Template::parse("{{x}}").unwrap().render(&vars).unwrap(),
            "{x}"
        );
    }

    #[test]
    fn rejects_unknown_and_unbalanced() {
        let e = Template::parse("/people/{id}").unwrap_err().to_string();
        assert!(e.contains("unknown placeholder {id}"), "{e}");
        for bad in ["{var.}", "{var.a-b}", "{secret.}", "{vars.x}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(Template::parse("/people/{legacy_id").is_err());
        assert!(Template::parse("/people/}").is_err());
    }

    #[test]
    fn missing_value_is_an_error() {
        let t = Template::parse("/people/{legacy_id}").unwrap();
        assert!(matches!(
            t.render_path(&Vars::default()),
            Err(TranslateError::MissingVar(n)) if n == "legacy_id"
        ));
    }
}
