//! `filter_parse`: arbitrary bytes (UTF-8, lossily) through the SCIM filter parser.
//!
//! Checks, for every input: `filter::parse` and `filter::parse_value_filter` never panic. For
//! every filter that parses: `Display` round-trips (`parse(&f.to_string()) == Ok(f)`, the
//! promise on `impl Display for Filter`), and `validate` / `matches` against the User and
//! Group schemas and the fixture resources never panic. A rendering
//! beyond the parser's bounds need not parse again (see README.md). Value filters (the `[...]` grammar)
//! also round-trip and are evaluated with `matches_element` against every `emails` element.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim::filter::{self, AttrPath, Filter, FilterError};
use scim_sidecar_fuzz::{fixtures, known_bound_error, same_filter};

fn round_trip(f: &Filter, parse: fn(&str) -> Result<Filter, FilterError>, input: &str) {
    let text = f.to_string();
    match parse(&text) {
        Ok(again) => assert!(
            same_filter(&again, f),
            "Display round trip changed the filter\n input: {input:?}\n shown: {text:?}\n before: {f:?}\n after:  {again:?}"
        ),
        Err(e) if known_bound_error(&text, &e.expected) => {}
        Err(e) => panic!(
            "Display output does not parse again: {e}\n input: {input:?}\n shown: {text:?}\n ast: {f:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let fx = fixtures();

    // Attribute paths on their own (used for `attributes=` / `sortBy=`).
    if let Ok(path) = AttrPath::parse(&input) {
        let shown = path.to_string();
        assert_eq!(
            AttrPath::parse(&shown).as_ref(),
            Ok(&path),
            "AttrPath round trip: {shown:?}"
        );
        let _ = fx.user_schema.resolve(&path);
    }

    if let Ok(f) = filter::parse(&input) {
        round_trip(&f, filter::parse, &input);
        let _ = f.validate(&fx.user_schema);
        let _ = f.validate(&fx.group_schema);
        let _ = f.matches(&fx.user, &fx.user_schema);
        let _ = f.matches(&fx.group, &fx.group_schema);
    }

    if let Ok(f) = filter::parse_value_filter(&input) {
        round_trip(&f, filter::parse_value_filter, &input);
        let emails = fx
            .user_schema
            .core
            .attribute("emails")
            .expect("User schema has emails");
        if let Some(elements) = fx.user["emails"].as_array() {
            for element in elements {
                let _ = f.matches_element(element, emails);
            }
        }
    }
});
