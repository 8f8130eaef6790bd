//! The JSON line: its shape, escaping, nesting and timestamp.

use serde_json::Value;

use super::{JsonFields, JsonLine};
use crate::telemetry::LogBuffer as Buffer;

fn lines(f: impl FnOnce()) -> Vec<Value> {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .fmt_fields(JsonFields)
        .event_format(JsonLine)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = buffer.text();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_line_is_json_with_event_and_span_fields() {
    let got = lines(|| {
        let span = tracing::info_span!(
            "scim",
            method = %"GET",
            request_id = %"abc",
            tenant = tracing::field::Empty,
        );
        let _in = span.enter();
        span.record("tenant", "acme");
        let detail = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
        tracing::info!(
            status = 201u16,
            latency_us = 17u64,
            delta = -3i64,
            ok = true,
            ratio = 0.5f64,
            nan = f64::NAN,
            scim_id = "x",
            detail = %detail,
            "request done"
        );
    });
    assert_eq!(got.len(), 1);
    let v = &got[0];
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["message"], "request done");
    assert_eq!(v["status"], 201);
    assert_eq!(v["latency_us"], 17);
    assert_eq!(v["delta"], -3);
    assert_eq!(v["ok"], true);
    assert_eq!(v["ratio"], 0.5);
    assert_eq!(v["nan"], "NaN");
    assert_eq!(v["scim_id"], "x");
    assert_eq!(
        v["detail"],
        "quote \" backslash \\ newline \n tab \t bell \u{7} é"
    );
    assert!(v["target"].as_str().unwrap().contains("telemetry"));
    assert_eq!(v["span"]["name"], "scim");
    assert_eq!(v["span"]["method"], "GET");
    assert_eq!(v["span"]["request_id"], "abc");
    assert_eq!(v["span"]["tenant"], "acme");
    let ts = v["timestamp"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
        "{ts}"
    );
}

#[test]
fn a_line_outside_a_span_and_a_span_without_fields() {
    let got = lines(|| {
        tracing::warn!("plain");
        let span = tracing::info_span!("bare");
        let _in = span.enter();
        tracing::error!(n = 1u64, "inside");
    });
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["level"], "WARN");
    assert_eq!(got[0]["message"], "plain");
    assert!(got[0].get("span").is_none());
    assert_eq!(got[1]["span"], serde_json::json!({"name": "bare"}));
    assert_eq!(got[1]["n"], 1);
}

/// A value whose `Debug` makes a span of its own while a line is being written.
struct Nested;

impl std::fmt::Debug for Nested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = tracing::info_span!("inner", depth = 2u64);
        let _in = inner.enter();
        f.write_str("nested \"value\"")
    }
}

#[test]
fn a_value_that_opens_a_span_while_a_line_is_written_leaves_both_whole() {
    let got = lines(|| {
        let span = tracing::info_span!("outer", id = ?Nested);
        let _in = span.enter();
        tracing::info!(value = ?Nested, "outer line");
    });
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["value"], "nested \"value\"");
    assert_eq!(got[0]["span"]["id"], "nested \"value\"");
    assert_eq!(got[0]["span"]["name"], "outer");
}

#[test]
fn escaping_finds_every_byte_to_escape_wherever_it_is() {
    let escaped = |s: &str| {
        let mut out = String::new();
        super::escape(&mut out, s);
        out
    };
    // Each special byte at every position of a text longer than two words, among
    // ASCII and multi-byte characters.
    for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
        for at in 0..20 {
            let mut text: String = "aé€xyz0123456789".chars().cycle().take(20).collect();
            let byte = text.char_indices().nth(at).map_or(text.len(), |(i, _)| i);
            text.insert(byte, special);
            let out = escaped(&text);
            let back: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
            assert_eq!(back, text, "{special:?} at {at}: {out}");
        }
    }
    // Bytes just above the control range and high bytes are kept.
    assert_eq!(
        escaped(" !#[]~\u{7f}é€😀 plain text"),
        " !#[]~\u{7f}é€😀 plain text"
    );
}

#[test]
fn the_timestamp_is_what_tracing_subscriber_writes() {
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    let parse = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
    };
    for _ in 0..3 {
        let (mut ours, mut theirs) = (String::new(), String::new());
        super::timestamp(&mut ours).unwrap();
        SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
        assert_eq!((&ours[19..20], &ours[26..]), (".", "Z"), "{ours}");
        let apart = parse(&theirs) - parse(&ours);
        assert!(
            apart >= time::Duration::ZERO && apart < time::Duration::seconds(1),
            "{ours} / {theirs}"
        );
    }
}
