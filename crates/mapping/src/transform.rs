//! Named, reversible transforms between SCIM values and legacy fields.
//!
//! A transform has a `write` direction (SCIM → legacy, may refuse a value with a message
//! for the client) and a `read` direction (legacy → SCIM, never fails). Pure.

pub mod iso3166;

use serde_json::Value;

/// A transform named in a mapping row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// The value as it is.
    Identity,
    /// One SCIM string ↔ two legacy strings: split on the first line break, joined with `\n`.
    SplitLines,
    /// US state / Canadian province or territory, by abbreviation or full name in any case
    /// (accents optional) → its two-letter abbreviation; anything else is refused.
    UsCaRegion,
    /// ISO 3166-1 alpha-2 country code, any case → upper case; anything else is refused.
    IsoCountry,
    /// Upper-case on write.
    Upper,
    /// Lower-case on write.
    Lower,
    /// Leading and trailing white space removed on write.
    Trim,
}

impl Transform {
    /// Every transform with its name in a mapping file.
    pub const ALL: [(&'static str, Transform); 7] = [
        ("identity", Transform::Identity),
        ("split_lines", Transform::SplitLines),
        ("us_ca_region", Transform::UsCaRegion),
        ("iso_country", Transform::IsoCountry),
        ("upper", Transform::Upper),
        ("lower", Transform::Lower),
        ("trim", Transform::Trim),
    ];

    /// Looks a transform up by name.
    pub fn from_name(name: &str) -> Option<Transform> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// How many legacy fields the transform reads and writes.
    pub fn legacy_arity(self) -> usize {
        match self {
            Transform::SplitLines => 2,
            _ => 1,
        }
    }

    /// SCIM value (absent = `None`) → one value per legacy field (`Null` = empty).
    pub fn write(self, value: Option<&Value>) -> Result<Vec<Value>, String> {
        let text = match value {
            None | Some(Value::Null) => return Ok(vec![Value::Null; self.legacy_arity()]),
            Some(Value::String(s)) if s.is_empty() => {
                return Ok(vec![Value::Null; self.legacy_arity()]);
            }
            Some(Value::String(s)) => s.as_str(),
            Some(other) if self == Transform::Identity => return Ok(vec![other.clone()]),
            Some(other) => {
                return Err(format!(
                    "expected a string, got {}",
                    scim::schema::json_kind(other)
                ));
            }
        };
        let one = |s: String| Ok(vec![Value::String(s)]);
        match self {
            Transform::Identity => one(text.to_owned()),
            Transform::Upper => one(text.to_uppercase()),
            Transform::Lower => one(text.to_lowercase()),
            Transform::Trim => one(text.trim().to_owned()),
            Transform::SplitLines => {
                let (first, rest) = match text.find(['\n', '\r']) {
                    Some(at) => {
                        let rest = text[at..].trim_start_matches('\r').trim_start_matches('\n');
                        (&text[..at], rest)
                    }
                    None => (text, ""),
                };
                let field = |s: &str| {
                    if s.is_empty() {
                        Value::Null
                    } else {
                        Value::String(s.to_owned())
                    }
                };
                Ok(vec![field(first), field(rest)])
            }
            Transform::IsoCountry => {
                let code = text.trim().to_ascii_uppercase();
                if iso3166::is_country_code(&code) {
                    one(code)
                } else {
                    Err(format!(
                        "{text:?} is not an ISO 3166-1 alpha-2 country code"
                    ))
                }
            }
            Transform::UsCaRegion => region_code(text)
                .map(|code| vec![Value::String(code.to_owned())])
                .ok_or_else(|| format!("{text:?} is not a US state or Canadian province")),
        }
    }

    /// The values the transform accepts on write, when it accepts only a fixed set
    /// (announced as `canonicalValues` in `/Schemas`).
    pub fn canonical_values(self) -> Option<Vec<String>> {
        match self {
            Transform::UsCaRegion => Some(REGIONS.iter().map(|(c, _)| (*c).to_owned()).collect()),
            Transform::IsoCountry => Some(
                iso3166::ISO_3166_ALPHA_2
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Legacy field values → SCIM value; `None` when empty.
    pub fn read(self, fields: &[Option<&Value>]) -> Option<Value> {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        match self {
            Transform::SplitLines => {
                let lines: Vec<String> = fields.iter().filter_map(|v| text(*v)).collect();
                (!lines.is_empty()).then(|| Value::String(lines.join("\n")))
            }
            _ => match fields.first().copied().flatten() {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(v) => Some(v.clone()),
            },
        }
    }
}

/// US states, DC and Canadian provinces and territories: (abbreviation, full name).
const REGIONS: [(&str, &str); 64] = [
    ("AL", "alabama"),
    ("AK", "alaska"),
    ("AZ", "arizona"),
    ("AR", "arkansas"),
    ("CA", "california"),
    ("CO", "colorado"),
    ("CT", "connecticut"),
    ("DE", "delaware"),
    ("DC", "district of columbia"),
    ("FL", "florida"),
    ("GA", "georgia"),
    ("HI", "hawaii"),
    ("ID", "idaho"),
    ("IL", "illinois"),
    ("IN", "indiana"),
    ("IA", "iowa"),
    ("KS", "kansas"),
    ("KY", "kentucky"),
    ("LA", "louisiana"),
    ("ME", "maine"),
    ("MD", "maryland"),
    ("MA", "massachusetts"),
    ("MI", "michigan"),
    ("MN", "minnesota"),
    ("MS", "mississippi"),
    ("MO", "missouri"),
    ("MT", "montana"),
    ("NE", "nebraska"),
    ("NV", "nevada"),
    ("NH", "new hampshire"),
    ("NJ", "new jersey"),
    ("NM", "new mexico"),
    ("NY", "new york"),
    ("NC", "north carolina"),
    ("ND", "north dakota"),
    ("OH", "ohio"),
    ("OK", "oklahoma"),
    ("OR", "oregon"),
    ("PA", "pennsylvania"),
    ("RI", "rhode island"),
    ("SC", "south carolina"),
    ("SD", "south dakota"),
    ("TN", "tennessee"),
    ("TX", "texas"),
    ("UT", "utah"),
    ("VT", "vermont"),
    ("VA", "virginia"),
    ("WA", "washington"),
    ("WV", "west virginia"),
    ("WI", "wisconsin"),
    ("WY", "wyoming"),
    ("AB", "alberta"),
    ("BC", "british columbia"),
    ("MB", "manitoba"),
    ("NB", "new brunswick"),
    ("NL", "newfoundland and labrador"),
    ("NS", "nova scotia"),
    ("NT", "northwest territories"),
    ("NU", "nunavut"),
    ("ON", "ontario"),
    ("PE", "prince edward island"),
    ("QC", "quebec"),
    ("SK", "saskatchewan"),
    ("YT", "yukon"),
];

/// Other spellings people and directories use for a region.
const ALIASES: [(&str, &str); 8] = [
    ("washington dc", "DC"),
    ("washington d c", "DC"),
    ("newfoundland", "NL"),
    ("yukon territory", "YT"),
    ("pei", "PE"),
    ("province of quebec", "QC"),
    ("newfoundland & labrador", "NL"),
    ("district of columbia dc", "DC"),
];

/// The two-letter abbreviation of a US state or Canadian province, if `input` names one.
pub fn region_code(input: &str) -> Option<&'static str> {
    let norm = normalise(input);
    if norm.len() == 2 {
        let upper = norm.to_ascii_uppercase();
        if let Some((code, _)) = REGIONS.iter().find(|(c, _)| *c == upper) {
            return Some(code);
        }
    }
    REGIONS
        .iter()
        .find(|(_, name)| *name == norm)
        .map(|(code, _)| *code)
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == norm).map(|(_, c)| *c))
}

/// Lower-case, accents folded, punctuation as spaces, white space collapsed.
fn normalise(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.trim().chars() {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' | 'À' | 'Á' | 'Â' | 'Ä' => 'a',
            'ç' | 'Ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'Î' | 'Ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'Ô' | 'Ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Û' | 'Ü' => 'u',
            '-' | '.' | '_' | ',' | '\'' => ' ',
            c => c,
        };
        if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regions_by_name_and_code() {
        for (input, code) in [
            ("california", "CA"),
            ("California", "CA"),
            ("CA", "CA"),
            ("ca", "CA"),
            ("Québec", "QC"),
            ("QUEBEC", "QC"),
            ("Newfoundland and Labrador", "NL"),
            ("newfoundland-and-labrador", "NL"),
            ("  new   york ", "NY"),
            ("District of Columbia", "DC"),
            ("Washington, D.C.", "DC"),
            ("Prince Edward Island", "PE"),
            ("yukon", "YT"),
        ] {
            assert_eq!(region_code(input), Some(code), "{input}");
        }
        for bad in ["Bavaria", "ZZ", "", "Californiaa", "Île-de-France"] {
            assert_eq!(region_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn region_write_refuses_with_a_message() {
        let e = Transform::UsCaRegion
            .write(Some(&json!("Bavaria")))
            .unwrap_err();
        assert_eq!(e, "\"Bavaria\" is not a US state or Canadian province");
        assert_eq!(
            Transform::UsCaRegion
                .write(Some(&json!("ontario")))
                .unwrap(),
            [json!("ON")]
        );
        assert_eq!(Transform::UsCaRegion.write(None).unwrap(), [Value::Null]);
    }

    #[test]
    fn split_lines_round_trips() {
        let t = Transform::SplitLines;
        assert_eq!(
            t.write(Some(&json!("100 Main St\nSuite 4"))).unwrap(),
            [json!("100 Main St"), json!("Suite 4")]
        );
        assert_eq!(
            t.write(Some(&json!("1 A\r\nB\nC"))).unwrap(),
            [json!("1 A"), json!("B\nC")]
        );
        assert_eq!(
            t.write(Some(&json!("Only"))).unwrap(),
            [json!("Only"), Value::Null]
        );
        let (a, b) = (json!("100 Main St"), json!("Suite 4"));
        assert_eq!(
            t.read(&[Some(&a), Some(&b)]),
            Some(json!("100 Main St\nSuite 4"))
        );
        assert_eq!(
            t.read(&[Some(&a), Some(&json!(""))]),
            Some(json!("100 Main St"))
        );
        assert_eq!(t.read(&[None, None]), None);
    }

    #[test]
    fn iso_country() {
        let t = Transform::IsoCountry;
        assert_eq!(t.write(Some(&json!("de"))).unwrap(), [json!("DE")]);
        let e = t.write(Some(&json!("Germany"))).unwrap_err();
        assert_eq!(e, "\"Germany\" is not an ISO 3166-1 alpha-2 country code");
        assert!(
            t.write(Some(&json!("UK"))).is_err(),
            "UK is reserved, not assigned"
        );
        assert_eq!(t.canonical_values().map(|v| v.len()), Some(249));
        assert_eq!(
            Transform::UsCaRegion.canonical_values().map(|v| v.len()),
            Some(64)
        );
        assert_eq!(Transform::Upper.canonical_values(), None);
    }

    #[test]
    fn simple_transforms() {
        assert_eq!(
            Transform::Upper.write(Some(&json!("us"))).unwrap(),
            [json!("US")]
        );
        assert_eq!(
            Transform::Lower.write(Some(&json!("A@B"))).unwrap(),
            [json!("a@b")]
        );
        assert_eq!(
            Transform::Trim.write(Some(&json!(" x "))).unwrap(),
            [json!("x")]
        );
        assert_eq!(
            Transform::Identity.write(Some(&json!(true))).unwrap(),
            [json!(true)]
        );
        assert!(Transform::Upper.write(Some(&json!(3))).is_err());
        assert_eq!(Transform::Identity.read(&[Some(&json!(""))]), None);
        assert_eq!(
            Transform::from_name("split_lines"),
            Some(Transform::SplitLines)
        );
        assert_eq!(Transform::from_name("nope"), None);
    }
}

/// A value map: each SCIM value of an attribute and the legacy value that stands for it
/// (`"Manager" ↔ 2`, `true ↔ 1`). Several legacy values may read as one SCIM value; a write
/// sends the first pair's legacy value.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueMap {
    /// (SCIM value, legacy value), in mapping order.
    pub pairs: Vec<(Value, Value)>,
}

impl ValueMap {
    /// The SCIM value a legacy value reads as; `None` when it is empty or not in the map.
    pub fn read(&self, legacy: Option<&Value>) -> Option<Value> {
        let legacy = legacy.filter(|v| !v.is_null())?;
        self.pairs
            .iter()
            .find(|(_, l)| crate::field::same_text(l, legacy))
            .map(|(s, _)| s.clone())
    }

    /// The legacy value a SCIM value is written as (`Null` for an absent or empty one);
    /// refuses a value not in the map, naming the accepted ones.
    pub fn write(&self, scim: Option<&Value>) -> Result<Value, String> {
        let scim = match scim {
            None | Some(Value::Null) => return Ok(Value::Null),
            Some(Value::String(s)) if s.is_empty() => return Ok(Value::Null),
            Some(v) => v,
        };
        let same = |a: &Value| match (a, scim) {
            (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        };
        self.pairs
            .iter()
            .find(|(s, _)| same(s))
            .map(|(_, l)| l.clone())
            .ok_or_else(|| format!("{scim} is not one of {}", self.scim_values().join(", ")))
    }

    /// The SCIM values, each once, in mapping order (announced as `canonicalValues`).
    pub fn scim_values(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (s, _) in &self.pairs {
            let text = match s {
                Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            if !out.contains(&text) {
                out.push(text);
            }
        }
        out
    }
}

#[cfg(test)]
mod value_map_tests {
    use serde_json::json;

    use super::ValueMap;

    #[test]
    fn reads_any_listed_legacy_value_and_writes_the_first() {
        let m = ValueMap {
            pairs: vec![
                (json!("Employee"), json!(1)),
                (json!("Contractor"), json!(2)),
                (json!("Contractor"), json!(5)),
            ],
        };
        assert_eq!(m.read(Some(&json!(1))), Some(json!("Employee")));
        assert_eq!(m.read(Some(&json!("5"))), Some(json!("Contractor")));
        assert_eq!(m.read(Some(&json!(9))), None);
        assert_eq!(m.read(None), None);
        assert_eq!(m.write(Some(&json!("contractor"))), Ok(json!(2)));
        assert_eq!(m.write(Some(&json!(""))), Ok(json!(null)));
        assert_eq!(
            m.write(Some(&json!("Intern"))),
            Err("\"Intern\" is not one of Employee, Contractor".into())
        );
        assert_eq!(m.scim_values(), vec!["Employee", "Contractor"]);
    }
}
