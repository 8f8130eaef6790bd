//! Filter parser, validation and evaluator tests.

use serde_json::{Value, json};

use super::*;
use crate::schema::{ENTERPRISE_USER, USER};

// ---------------------------------------------------------------------------------------
// helpers

fn p(s: &str) -> Filter {
    match parse(s) {
        Ok(f) => f,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn err(s: &str) -> FilterError {
    match parse(s) {
        Ok(f) => panic!("{s:?} should fail, parsed as {f:?}"),
        Err(e) => e,
    }
}

fn path(s: &str) -> AttrPath {
    AttrPath::parse(s).unwrap()
}

fn cmp(a: &str, op: CompareOp, v: Value) -> Filter {
    Filter::Compare(path(a), op, v)
}

fn pr(a: &str) -> Filter {
    Filter::Present(path(a))
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn not(a: Filter) -> Filter {
    Filter::Not(Box::new(a))
}

fn user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "BJensen-Ext",
        "userName": "bjensen@example.com",
        "name": {
            "formatted": "Ms. Barbara J Jensen III",
            "familyName": "Jensen",
            "givenName": "Barbara"
        },
        "displayName": "Babs Jensen",
        "nickName": "",
        "userType": null,
        "title": "Tour Guide",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "x509Certificates": [],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "version": "W/\"3694e05e9dff590\""
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "John Smith"
            }
        },
        "loginCount": 42,
        "CustomThing": "ABC",
        "tags": ["Red", "green"],
        "urn:example:custom": {"level": 3}
    })
}

/// Whether `filter` matches the sample user.
fn m(filter: &str) -> bool {
    p(filter).matches(&user(), &ResourceSchema::user())
}

// ---------------------------------------------------------------------------------------
// attribute paths

#[test]
fn attr_path_parts_and_display_round_trip() {
    let cases = [
        ("userName", None, "userName", None),
        ("name.givenName", None, "name", Some("givenName")),
        ("members.$ref", None, "members", Some("$ref")),
        ("$ref", None, "$ref", None),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            Some(USER),
            "userName",
            None,
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            Some(ENTERPRISE_USER),
            "manager",
            Some("value"),
        ),
        (
            "x509Certificates.value",
            None,
            "x509Certificates",
            Some("value"),
        ),
        ("a-b_c9", None, "a-b_c9", None),
    ];
    for (text, urn, name, sub) in cases {
        let ap = path(text);
        assert_eq!(ap.urn.as_deref(), urn, "{text}");
        assert_eq!(ap.name, name, "{text}");
        assert_eq!(ap.sub.as_deref(), sub, "{text}");
        assert_eq!(ap.to_string(), text);
    }
    assert_eq!(path("  userName ").name, "userName");
}

#[test]
fn attr_path_errors_carry_positions() {
    let cases = [
        ("", 0),
        ("1abc", 0),
        ("name.", 5),
        (".name", 0),
        ("name.given.x", 10),
        ("name givenName", 4),
        (":name", 0),
        ("urn:x:", 6),
        ("na*me", 2),
        ("$", 1),
        ("  a.b!", 5),
    ];
    for (text, pos) in cases {
        let e = AttrPath::parse(text).expect_err(text);
        assert_eq!(e.position, pos, "{text}: {e}");
    }
    assert!(AttrPath::parse("x".repeat(MAX_FILTER_LEN + 1).as_str()).is_err());
}

// ---------------------------------------------------------------------------------------
// parsing

#[test]
fn every_comparison_operator_in_any_case() {
    let ops = [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ];
    for (kw, op) in ops {
        for spelled in [
            kw.to_owned(),
            kw.to_uppercase(),
            kw[..1].to_uppercase() + &kw[1..],
        ] {
            let f = p(&format!("title {spelled} \"x\""));
            assert_eq!(f, cmp("title", op, json!("x")));
        }
        assert_eq!(CompareOp::from_keyword(kw), Some(op));
        assert_eq!(op.to_string(), kw);
    }
    assert_eq!(CompareOp::from_keyword("pr"), None);
}

#[test]
fn present_operator() {
    assert_eq!(p("title pr"), pr("title"));
    assert_eq!(p("title PR"), pr("title"));
    assert_eq!(p("name.givenName Pr"), pr("name.givenName"));
}

#[test]
fn json_literals() {
    assert_eq!(
        p("active eq true"),
        cmp("active", CompareOp::Eq, json!(true))
    );
    assert_eq!(
        p("active eq FALSE"),
        cmp("active", CompareOp::Eq, json!(false))
    );
    assert_eq!(p("title eq Null"), cmp("title", CompareOp::Eq, Value::Null));
    assert_eq!(p("n eq 42"), cmp("n", CompareOp::Eq, json!(42)));
    assert_eq!(p("n eq -1.5"), cmp("n", CompareOp::Eq, json!(-1.5)));
    assert_eq!(p("n eq 0"), cmp("n", CompareOp::Eq, json!(0)));
    assert_eq!(p("n gt 1e3"), cmp("n", CompareOp::Gt, json!(1000.0)));
    assert_eq!(p("n gt 2.5E-1"), cmp("n", CompareOp::Gt, json!(0.25)));
    assert_eq!(p(r#"title eq """#), cmp("title", CompareOp::Eq, json!("")));
    for bad in [
        "01", "1.", ".5", "+1", "1e", "--1", "0x10", "1.2.3", "tru", "nil", "NaN",
    ] {
        let e = err(&format!("n eq {bad}"));
        assert_eq!(e.position, 5, "{bad}");
        assert!(e.expected.contains("comparison value"), "{bad}: {e}");
    }
}

#[test]
fn string_escapes() {
    let f = p(r#"title eq "a\"b\\c\/d\u00e9\ud83d\ude00\n\t""#);
    assert_eq!(f, cmp("title", CompareOp::Eq, json!("a\"b\\c/dé😀\n\t")));
    let e = err(r#"title eq "a\qb""#);
    assert_eq!(e.position, 11);
    assert!(e.expected.contains("escape"), "{e}");
    for bad in [
        r#"t eq "\u12""#,
        r#"t eq "\uZZZZ""#,
        r#"t eq "\ud83d""#,
        r#"t eq "\ud83dx""#,
    ] {
        let e = err(bad);
        assert_eq!(e.position, 6, "{bad}");
        assert!(e.expected.contains("\\uXXXX"), "{bad}: {e}");
    }
}

#[test]
fn precedence_not_over_and_over_or() {
    assert_eq!(
        p("a pr or b pr and c pr"),
        or(pr("a"), and(pr("b"), pr("c")))
    );
    assert_eq!(
        p("a pr and b pr or c pr"),
        or(and(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        p("a pr and b pr and c pr"),
        and(and(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(p("a pr or b pr or c pr"), or(or(pr("a"), pr("b")), pr("c")));
    assert_eq!(p("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
    assert_eq!(p("not(a pr or b pr)"), not(or(pr("a"), pr("b"))));
    assert_eq!(
        p("a pr OR NOT (b pr) AND c pr"),
        or(pr("a"), and(not(pr("b")), pr("c")))
    );
}

#[test]
fn grouping() {
    assert_eq!(
        p("(a pr or b pr) and c pr"),
        and(or(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        p("a pr and (b pr or c pr)"),
        and(pr("a"), or(pr("b"), pr("c")))
    );
    assert_eq!(p("((a pr))"), pr("a"));
    assert_eq!(
        p(
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#
        ),
        and(
            cmp("userType", CompareOp::Eq, json!("Employee")),
            or(
                cmp("emails", CompareOp::Co, json!("example.com")),
                cmp("emails.value", CompareOp::Co, json!("example.org"))
            )
        )
    );
}

#[test]
fn not_without_parenthesis_is_an_attribute_name() {
    assert_eq!(p("not pr"), pr("not"));
    assert_eq!(p(r#"and eq "x""#), cmp("and", CompareOp::Eq, json!("x")));
}

#[test]
fn value_paths() {
    let f = p(r#"emails[type eq "work" and value co "@example.com"]"#);
    assert_eq!(
        f,
        Filter::ValuePath(
            path("emails"),
            Box::new(and(
                cmp("type", CompareOp::Eq, json!("work")),
                cmp("value", CompareOp::Co, json!("@example.com"))
            ))
        )
    );
    let f = p(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#);
    assert!(matches!(f, Filter::And(_, ref b) if matches!(**b, Filter::ValuePath(..))));
    let f = p(r#"emails [ primary eq true ] or userName pr"#);
    assert!(matches!(f, Filter::Or(ref a, _) if matches!(**a, Filter::ValuePath(..))));
    let f = p(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[not (type eq "home")]"#);
    assert_eq!(
        f,
        Filter::ValuePath(
            path("urn:ietf:params:scim:schemas:core:2.0:User:emails"),
            Box::new(not(cmp("type", CompareOp::Eq, json!("home"))))
        )
    );
}

#[test]
fn value_path_errors() {
    let e = err(r#"emails[type eq "work""#);
    assert_eq!((e.position, e.expected.as_str()), (21, "']'"));
    // Entra's lookup form is accepted: the trailing sub-attribute joins the element filter.
    assert_eq!(
        parse(r#"emails[type eq "work"].value eq "x""#).unwrap(),
        parse(r#"emails[type eq "work" and value eq "x"]"#).unwrap()
    );
    let e = err(r#"emails[type eq "work"].value"#);
    assert!(e.expected.starts_with("comparison operator"), "{e}");
    let e = err(r#"emails[type eq "work"].a.b eq "x""#);
    assert_eq!(e.position, 23);
    let e = err(r#"emails[addresses[type eq "x"]]"#);
    assert_eq!(e.position, 16);
    assert!(e.expected.contains("nested"), "{e}");
    let e = err("emails[]");
    assert_eq!(e.position, 7);
}

#[test]
fn parse_value_filter_is_relative_and_flat() {
    let f = parse_value_filter(r#"type eq "work" and primary eq true"#).unwrap();
    assert_eq!(
        f,
        and(
            cmp("type", CompareOp::Eq, json!("work")),
            cmp("primary", CompareOp::Eq, json!(true))
        )
    );
    let e = parse_value_filter(r#"emails[type eq "work"]"#).unwrap_err();
    assert_eq!(e.position, 6);
}

#[test]
fn urn_qualified_attributes() {
    assert_eq!(
        p(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales""#),
        Filter::Compare(
            AttrPath {
                urn: Some(ENTERPRISE_USER.into()),
                name: "department".into(),
                sub: None
            },
            CompareOp::Eq,
            json!("Sales")
        )
    );
    assert_eq!(
        p(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#),
        Filter::Compare(
            AttrPath {
                urn: Some(USER.into()),
                name: "userName".into(),
                sub: None
            },
            CompareOp::Sw,
            json!("J")
        )
    );
}

#[test]
fn mixed_case_keywords_and_surplus_whitespace() {
    let a = p(r#"userName EQ "x" And title Pr oR Not (active Eq TRUE)"#);
    let b = p("  userName   eq\t\"x\"\n and  title pr  or not ( active eq true )  ");
    assert_eq!(a, b);
    assert_eq!(
        p(r#"userName eq"x""#),
        cmp("userName", CompareOp::Eq, json!("x"))
    );
    assert_eq!(
        p("(title pr)and(userName pr)"),
        and(pr("title"), pr("userName"))
    );
}

#[test]
fn error_positions_and_expectations() {
    let cases: [(&str, usize, &str); 14] = [
        ("", 0, "attribute path"),
        ("   ", 3, "attribute path"),
        (r#"userName xx "x""#, 9, "comparison operator"),
        ("userName", 8, "comparison operator"),
        ("userName eq", 11, "comparison value"),
        ("userName eq bjensen", 12, "comparison value"),
        ("(userName pr", 12, "')'"),
        ("(userName pr userName pr)", 13, "')'"),
        (r#"userName eq "abc"#, 12, "unterminated string"),
        ("userName pr extra", 12, "end of filter"),
        ("userName pr)", 11, "end of filter"),
        ("userName pr and", 15, "attribute path"),
        ("not (", 5, "attribute path"),
        (r#"displayName eq "é" xx"#, 19, "end of filter"),
    ];
    for (text, pos, expected) in cases {
        let e = err(text);
        assert_eq!(e.position, pos, "{text:?}: {e}");
        assert!(e.expected.contains(expected), "{text:?}: {e}");
    }
    let e = err("userName eq 'x'");
    assert_eq!(e.position, 12);
    assert_eq!(
        err("a pr and )").to_string(),
        "invalid filter at position 9: expected attribute path, 'not' or '('"
    );
}

#[test]
fn length_limit() {
    let long = format!("title eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
    let e = err(&long);
    assert_eq!(e.position, 0);
    assert!(e.expected.contains("4096"), "{e}");
    let exact = format!("title eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 11));
    assert_eq!(exact.chars().count(), MAX_FILTER_LEN);
    assert!(parse(&exact).is_ok());
    // Counted in characters, not bytes.
    let wide = format!("title eq \"{}\"", "é".repeat(MAX_FILTER_LEN - 11));
    assert!(parse(&wide).is_ok());
}

#[test]
fn depth_limit_without_deep_recursion() {
    let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(p(&nested(MAX_FILTER_DEPTH)), pr("a"));
    let e = err(&nested(MAX_FILTER_DEPTH + 1));
    assert_eq!(e.position, MAX_FILTER_DEPTH);
    assert!(e.expected.contains("nesting"), "{e}");

    let nots = |n: usize| format!("{}a pr{}", "not(".repeat(n), ")".repeat(n));
    assert!(parse(&nots(MAX_FILTER_DEPTH)).is_ok());
    let e = err(&nots(MAX_FILTER_DEPTH + 1));
    assert_eq!(e.position, 4 * MAX_FILTER_DEPTH);

    // Far beyond the limit, within the length limit: fails fast, no stack overflow.
    assert!(parse(&"(".repeat(4000)).is_err());
    assert!(parse(&"not(".repeat(1000)).is_err());
    assert!(parse(&"not (".repeat(800)).is_err());
    assert!(parse(&format!("a[{}", "(".repeat(4000))).is_err());
    assert!(parse(&"a[b[".repeat(1000)).is_err());
}

#[test]
fn long_flat_chains_parse_and_evaluate() {
    let chain = vec!["title pr"; 300].join(" and ");
    let f = p(&chain);
    assert!(f.matches(&user(), &ResourceSchema::user()));
    let chain = vec!["nickName pr"; 250].join(" or ");
    let f = p(&chain);
    assert!(!f.matches(&user(), &ResourceSchema::user()));
    assert_eq!(parse(&f.to_string()), Ok(f));
}

#[test]
fn display_round_trips() {
    let cases = [
        r#"userName eq "bjensen""#,
        r#"a pr or b pr and c pr"#,
        r#"(a pr or b pr) and c pr"#,
        r#"a pr and (b pr and c pr)"#,
        r#"a pr or (b pr or c pr)"#,
        r#"not (a pr or b pr) and c pr"#,
        r#"emails[type eq "work" and value co "@example.com"] or x lt 5"#,
        r#"title eq "quote \" backslash \\ tab \t é""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq null"#,
        r#"n ge -1.5 and m le 100 and active eq false"#,
    ];
    for text in cases {
        let f = p(text);
        let printed = f.to_string();
        assert_eq!(p(&printed), f, "{text} → {printed}");
    }
    assert_eq!(
        p("A PR OR B PR AND C PR").to_string(),
        "A pr or B pr and C pr"
    );
}

/// Deterministic xorshift64* generator (no extra dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_never_panics_and_parsed_filters_round_trip() {
    const FRAGMENTS: [&str; 40] = [
        "userName",
        "emails",
        "name.givenName",
        "meta.created",
        "active",
        "x",
        "urn:a:b:c",
        ENTERPRISE_USER,
        "eq",
        "ne",
        "co",
        "sw",
        "ew",
        "gt",
        "ge",
        "lt",
        "le",
        "pr",
        "and",
        "or",
        "not",
        "(",
        ")",
        "[",
        "]",
        "\"",
        "\"str\"",
        "\"\\u00e9\"",
        "\\",
        "true",
        "null",
        "42",
        "-1.5e3",
        " ",
        "  ",
        ".",
        ":",
        "$ref",
        "é",
        "\"2011-05-13T04:42:34Z\"",
    ];
    const CHARS: &[u8] = b" ()[]\"\\.:,-+eE0123456789abnotrueqpl$_\t";
    let schema = ResourceSchema::user();
    let resource = user();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for round in 0..4000 {
        let mut s = String::new();
        let pieces = 1 + rng.below(12);
        match round % 3 {
            0 => {
                for _ in 0..pieces {
                    s.push(char::from(CHARS[rng.below(CHARS.len())]));
                }
            }
            1 => {
                for _ in 0..pieces {
                    s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
                    if rng.below(2) == 0 {
                        s.push(' ');
                    }
                }
            }
            _ => {
                // A valid filter with a few random single-character mutations.
                let mut chars: Vec<char> = random_filter(&mut rng).chars().collect();
                for _ in 0..rng.below(3) {
                    let at = rng.below(chars.len() + 1);
                    if rng.below(2) == 0 && at < chars.len() {
                        chars.remove(at);
                    } else {
                        chars.insert(at, char::from(CHARS[rng.below(CHARS.len())]));
                    }
                }
                s = chars.into_iter().collect();
            }
        }
        if let Ok(f) = parse(&s) {
            parsed += 1;
            let _ = f.validate(&schema);
            let _ = f.matches(&resource, &schema);
            assert_eq!(parse(&f.to_string()).as_ref(), Ok(&f), "{s:?}");
        }
        let _ = parse_value_filter(&s);
        let _ = AttrPath::parse(&s);
    }
    // The generator must exercise the success path too, not only errors.
    assert!(parsed > 300, "only {parsed} random filters parsed");
}

/// A random valid filter built from a few atoms with and/or/not/grouping.
fn random_filter(rng: &mut Rng) -> String {
    const ATOMS: [&str; 8] = [
        r#"userName eq "bjensen@example.com""#,
        "title pr",
        r#"emails[type eq "work" or primary eq true]"#,
        "meta.created lt \"2011-01-01T00:00:00Z\"",
        "active eq true",
        "loginCount gt 40",
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "T""#,
        r#"title ne "a\"b\u00e9""#,
    ];
    let mut s = ATOMS[rng.below(ATOMS.len())].to_owned();
    for _ in 0..rng.below(6) {
        let atom = ATOMS[rng.below(ATOMS.len())];
        s = match rng.below(4) {
            0 => format!("{s} and {atom}"),
            1 => format!("{s} or {atom}"),
            2 => format!("not ({s})"),
            _ => format!("({s}) and {atom}"),
        };
    }
    s
}

#[test]
fn structured_random_filters_round_trip() {
    let mut rng = Rng(42);
    for _ in 0..500 {
        let s = random_filter(&mut rng);
        let f = p(&s);
        assert_eq!(p(&f.to_string()), f, "{s}");
    }
}

// ---------------------------------------------------------------------------------------
// evaluation

#[test]
fn case_insensitive_strings_unless_case_exact() {
    assert!(m(r#"userName eq "BJENSEN@example.com""#));
    assert!(m(r#"USERNAME Eq "bjensen@example.com""#));
    assert!(m(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
    assert!(!m(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
    assert!(m(r#"externalId eq "BJensen-Ext""#));
    assert!(!m(r#"externalId eq "bjensen-ext""#));
    assert!(!m(r#"meta.location sw "HTTPS://""#));
    assert!(m(r#"meta.location sw "https://""#));
    assert!(!m(r#"meta.resourceType eq "user""#));
    assert!(m(r#"name.familyName eq "JENSEN""#));
    // Unknown attributes: case-insensitive names and values.
    assert!(m(r#"customthing eq "abc""#));
    assert!(m(r#"tags eq "RED""#));
}

#[test]
fn substring_and_ordering_on_strings() {
    assert!(m(r#"userName co "JENSEN""#));
    assert!(m(r#"userName sw "bjen""#));
    assert!(m(r#"userName ew ".COM""#));
    assert!(!m(r#"userName sw "jensen""#));
    assert!(m(r#"title gt "A""#));
    assert!(m(r#"title lt "z""#));
    assert!(m(r#"title ge "tour guide""#));
    assert!(m(r#"title le "TOUR GUIDE""#));
    assert!(!m(r#"title gt "tour guide""#));
    assert!(!m(r#"title lt "tour guide""#));
    // caseExact ordering compares code points: 'c' > 'D', whereas folded "c" < "d".
    assert!(!m(r#"id lt "2819D""#));
    assert!(m(r#"id gt "2819D""#));
    assert!(m(r#"title lt "TOUR GUIDF""#));
}

#[test]
fn presence() {
    assert!(m("title pr"));
    assert!(!m("nickName pr"), "empty string is not present");
    assert!(!m("userType pr"), "null is not present");
    assert!(!m("x509Certificates pr"), "empty array is not present");
    assert!(!m("password pr"));
    assert!(m("emails pr"));
    assert!(m("name pr"));
    assert!(m("emails.type pr"));
    assert!(!m("emails.display pr"));
    assert!(m("active pr"));
    assert!(m("manager pr"));
    assert!(m(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName pr"
    ));
    assert!(!m("nonexistent pr"));
    let schema = ResourceSchema::user();
    assert!(!p("name pr").matches(&json!({"name": {"givenName": ""}}), &schema));
    assert!(!p("emails pr").matches(&json!({"emails": [{"value": null}]}), &schema));
}

#[test]
fn multi_valued_any_element() {
    assert!(m(r#"emails.value eq "babs@jensen.org""#));
    assert!(m(r#"emails.type eq "home""#));
    assert!(
        m(r#"emails eq "BABS@jensen.org""#),
        "complex without sub compares value"
    );
    assert!(m(r#"emails co "jensen.org""#));
    assert!(!m(r#"emails eq "nobody@example.com""#));
    assert!(m(r#"phoneNumbers.value sw "555""#));
    assert!(m(r#"tags eq "green""#));
}

#[test]
fn value_path_requires_one_element_to_match_everything() {
    assert!(m(r#"emails[type eq "work" and value co "@example.com"]"#));
    assert!(!m(r#"emails[type eq "home" and value co "@example.com"]"#));
    assert!(m(r#"emails[TYPE EQ "WORK"]"#));
    assert!(m(r#"emails[primary eq true]"#));
    assert!(m(r#"emails[not (type eq "work")]"#));
    assert!(!m(r#"emails[display pr]"#));
    assert!(!m(r#"addresses[type eq "work"]"#));
    assert!(m(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[displayName sw "john"]"#
    ));
    assert!(m(
        r#"userName pr and emails[type eq "home"] and not (emails[type eq "other"])"#
    ));
}

#[test]
fn ne_is_negated_eq() {
    assert!(m(r#"title ne "x""#));
    assert!(!m(r#"title ne "TOUR GUIDE""#));
    assert!(m(r#"nonexistent ne "x""#), "absent attribute: ne is true");
    assert!(
        !m(r#"emails.type ne "work""#),
        "some element equals, so ne is false"
    );
    assert!(m(r#"emails.type ne "other""#));
    assert!(m(r#"active ne false"#));
    assert!(!m(r#"loginCount ne 42"#));
}

#[test]
fn booleans() {
    assert!(m("active eq true"));
    assert!(!m("active eq false"));
    assert!(m("active eq TRUE"));
    assert!(
        m(r#"active eq "true""#),
        "string literal compared to a JSON bool"
    );
    assert!(!m("active gt false"));
    assert!(!m("active co true"));
    let schema = ResourceSchema::user();
    assert!(p("active eq true").matches(&json!({"active": "True"}), &schema));
    assert!(!p("active eq true").matches(&json!({"active": "yes"}), &schema));
    assert!(!p("active eq true").matches(&json!({"active": 1}), &schema));
}

#[test]
fn numbers() {
    assert!(m("loginCount eq 42"));
    assert!(m("loginCount eq 42.0"));
    assert!(m("loginCount gt 41"));
    assert!(m("loginCount ge 42"));
    assert!(m("loginCount lt 42.5"));
    assert!(!m("loginCount le 41"));
    assert!(!m("loginCount co 4"));
    assert!(m("urn:example:custom:level gt 2"));
    assert!(m(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber gt 700000"
    ));
    assert!(m(r#"loginCount eq "42""#));
    assert!(!m(r#"loginCount eq "forty-two""#));
    let schema = ResourceSchema::user();
    let big = json!({"n": u64::MAX});
    assert!(p("n gt 18446744073709551614").matches(&big, &schema));
    assert!(p("n eq 18446744073709551615").matches(&big, &schema));
}

#[test]
fn date_times_compare_as_instants() {
    assert!(m(r#"meta.created lt "2011-01-01T00:00:00Z""#));
    assert!(m(r#"meta.lastModified gt "2011-05-13T04:42:33Z""#));
    assert!(!m(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#));
    assert!(m(r#"meta.lastModified ge "2011-05-13T04:42:34Z""#));
    assert!(
        m(r#"meta.created eq "2010-01-23T05:56:22+01:00""#),
        "same instant, other offset"
    );
    assert!(m(r#"meta.created eq "2010-01-23T04:56:22.000Z""#));
    assert!(m(r#"meta.lastModified gt "2011-05-13T06:42:34+02:01""#));
    // Unparseable: falls back to string comparison.
    assert!(m(r#"meta.created gt "2010""#));
    assert!(m(r#"meta.created sw "2010-01""#));
    // Not a dateTime attribute: plain string comparison, so the offsets differ.
    let schema = ResourceSchema::user();
    let r = json!({"title": "2010-01-23T04:56:22Z"});
    assert!(!p(r#"title eq "2010-01-23T05:56:22+01:00""#).matches(&r, &schema));
}

#[test]
fn null_literal() {
    assert!(!m("title eq null"));
    assert!(m("userType eq null"));
    assert!(m("nonexistent eq null"));
    assert!(m("title ne null"));
    assert!(!m("userType ne null"));
    assert!(!m("title gt null"));
}

#[test]
fn extension_attributes() {
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert!(m(&format!(r#"{ent}:department eq "tour operations""#)));
    assert!(
        m(r#"department eq "Tour Operations""#),
        "unqualified extension attribute"
    );
    assert!(m(&format!(
        r#"{ent}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
    )));
    assert!(m(&format!(
        r#"{ent}:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#
    )));
    assert!(m(&format!(r#"{}:department pr"#, ent.to_uppercase())));
    assert!(
        !m(&format!(r#"{ent}:userName pr"#)),
        "userName is not in the extension"
    );
    assert!(m(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen@example.com""#
    ));
    assert!(m(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "barbara""#
    ));
    assert!(!m(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:department pr"#
    ));
    assert!(!m(r#"urn:example:other:level pr"#));
}

#[test]
fn logical_operators() {
    assert!(m(r#"title pr and userName pr"#));
    assert!(!m(r#"title pr and nickName pr"#));
    assert!(m(r#"nickName pr or title pr"#));
    assert!(!m(r#"nickName pr or userType pr"#));
    assert!(m(r#"not (nickName pr)"#));
    assert!(!m(r#"not (title pr)"#));
    assert!(m(r#"not (not (title pr))"#));
    // Precedence makes a difference here.
    assert!(m(r#"title eq "x" and userName pr or active eq true"#));
    assert!(!m(r#"title eq "x" and (userName pr or active eq true)"#));
    assert!(m(r#"active eq true or title eq "x" and nickName pr"#));
    assert!(!m(r#"(active eq true or title eq "x") and nickName pr"#));
}

#[test]
fn non_object_resources_never_match() {
    let schema = ResourceSchema::user();
    for r in [json!(null), json!([]), json!("userName"), json!(42)] {
        assert!(!p("userName pr").matches(&r, &schema));
        assert!(!p(r#"userName eq "x""#).matches(&r, &schema));
        assert!(p(r#"userName ne "x""#).matches(&r, &schema));
    }
}

#[test]
fn group_members() {
    let schema = ResourceSchema::group();
    let g = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": "Tour Guides",
        "members": [
            {"value": "u1", "display": "Babs Jensen", "type": "User"},
            {"value": "u2", "display": "Mandy Pepperidge", "type": "User"}
        ]
    });
    assert!(p(r#"displayName eq "tour guides""#).matches(&g, &schema));
    assert!(p(r#"members eq "u2""#).matches(&g, &schema));
    assert!(p(r#"members.value eq "U2""#).matches(&g, &schema));
    assert!(p(r#"members[value eq "u1" and display co "babs"]"#).matches(&g, &schema));
    assert!(!p(r#"members[value eq "u1" and display co "mandy"]"#).matches(&g, &schema));
    assert!(!p(r#"members eq "u3""#).matches(&g, &schema));
}

#[test]
fn matches_element_uses_parent_definition() {
    let schema = ResourceSchema::user();
    let emails = schema.core.attribute("emails").unwrap();
    let element = json!({"value": "Babs@Jensen.org", "type": "home", "primary": false});
    let f = parse_value_filter(r#"type eq "HOME" and value ew "jensen.ORG""#).unwrap();
    assert!(f.matches_element(&element, emails));
    let f = parse_value_filter("primary eq true").unwrap();
    assert!(!f.matches_element(&element, emails));
    let f = parse_value_filter("display pr").unwrap();
    assert!(!f.matches_element(&element, emails));

    let mut exact = emails.clone();
    for sub in &mut exact.sub_attributes {
        sub.case_exact = true;
    }
    let f = parse_value_filter(r#"type eq "HOME""#).unwrap();
    assert!(!f.matches_element(&element, &exact));
    let f = parse_value_filter(r#"type eq "home""#).unwrap();
    assert!(f.matches_element(&element, &exact));
}

// ---------------------------------------------------------------------------------------
// validation

#[test]
fn validate_rejects_type_errors_only() {
    let user = ResourceSchema::user();
    let bad = [
        "active gt true",
        r#"active co "t""#,
        r#"name eq "x""#,
        "emails[primary lt true]",
        "emails.primary sw true",
        r#"x509Certificates.value gt "a""#,
        r#"userName pr and (title pr or not (active ge false))"#,
        r#"meta ge "x""#,
    ];
    for text in bad {
        assert!(p(text).validate(&user).is_err(), "{text}");
    }
    let good = [
        r#"userName co "x""#,
        r#"emails eq "x""#,
        r#"emails[type eq "work" and value ew ".com"]"#,
        r#"meta.created gt "2011""#,
        "unknown gt true",
        r#"emails[unknown co "x"]"#,
        "name pr",
        r#"title lt "m""#,
        "active eq true",
        "active ne false",
        r#"x509Certificates.value eq "a""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "x""#,
        r#"urn:example:custom:level co "x""#,
    ];
    for text in good {
        assert_eq!(p(text).validate(&user), Ok(()), "{text}");
    }
    let e = p("active gt true").validate(&user).unwrap_err();
    assert!(
        e.expected.contains("boolean") && e.expected.contains("gt"),
        "{e}"
    );
}

/// Found by fuzzing: numbers that f64 cannot hold exactly must still print and parse back
/// to the same filter (serde_json's `float_roundtrip`).
#[test]
fn large_and_inexact_numbers_round_trip() {
    for input in [
        "d co 131.5e+37",
        "d co 3864669646646646646646",
        "d co 13861999999999999999999999999999999646",
        "d gt 0.1",
        "d lt -2.2250738585072014e-308",
    ] {
        let f = parse(input).unwrap();
        assert_eq!(parse(&f.to_string()).unwrap(), f, "{input}");
    }
}
