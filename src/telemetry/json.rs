//! The JSON log line, written straight into the output buffer.
//!
//! Same shape as tracing-subscriber's JSON format with flattened events and the current
//! span: `{"timestamp", "level", <event fields, "message" first as emitted>, "target",
//! "span": {<span fields>, "name"}}`. tracing-subscriber's formatter stores a span's fields
//! as JSON text and parses that text back into a map for every event; at one line per SCIM
//! request that was most of the cost of logging (the bench's profile). Here a span's fields
//! are stored once as a ready JSON fragment and copied into each line.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats fields as JSON object members (`"a":1,"b":"x"`), for span fields.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        buffered(&mut writer, |out| {
            let mut visitor = Members::new(out, false);
            fields.record(&mut visitor);
            visitor.result
        })
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        buffered(&mut current.as_writer(), |out| {
            let mut visitor = Members::new(out, !first);
            fields.record(&mut visitor);
            visitor.result
        })
    }
}

/// Writes what `write` writes into `out` in one piece. Written first into a scratch string
/// the thread keeps, a line or a span's fields are one copy into `out` (a span's own string:
/// one allocation of the right size), and every small write before it is a plain append to
/// a `String` rather than a call through `Writer`'s `dyn Write`.
fn buffered(out: &mut Writer<'_>, write: impl FnOnce(&mut String) -> fmt::Result) -> fmt::Result {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with(|scratch| {
        // A field's `Debug` that formats another span's fields finds the scratch taken.
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            let mut own = String::new();
            return write(&mut own).and_then(|()| out.write_str(&own));
        };
        scratch.clear();
        let written = write(&mut scratch);
        let copied = out.write_str(&scratch);
        if scratch.capacity() > 4096 {
            *scratch = String::new();
        }
        written.and(copied)
    })
}

/// Formats one event as a JSON line (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        buffered(&mut writer, |out| {
            out.push_str("{\"timestamp\":\"");
            timestamp(out)?;
            let meta = event.metadata();
            out.push_str("\",\"level\":\"");
            out.push_str(meta.level().as_str());
            out.push('"');
            let mut fields = Members::new(out, true);
            event.record(&mut fields);
            fields.result?;
            out.push_str(",\"target\":");
            string(out, meta.target());
            if let Some(span) = ctx.lookup_current() {
                out.push_str(",\"span\":{");
                let ext = span.extensions();
                let stored = ext
                    .get::<FormattedFields<N>>()
                    .map(|f| f.fields.as_str())
                    .unwrap_or_default();
                out.push_str(stored);
                if !stored.is_empty() {
                    out.push(',');
                }
                out.push_str("\"name\":");
                string(out, span.name());
                out.push('}');
            }
            out.push_str("}\n");
            Ok(())
        })
    }
}

/// A field visitor writing `"name":value` members, each preceded by a comma unless it is
/// the first and `comma` was false.
struct Members<'a> {
    out: &'a mut String,
    comma: bool,
    result: fmt::Result,
}

impl<'a> Members<'a> {
    fn new(out: &'a mut String, comma: bool) -> Self {
        Self {
            out,
            comma,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        if std::mem::replace(&mut self.comma, true) {
            self.out.push(',');
        }
        string(self.out, field.name());
        self.out.push(':');
        self.result = value(self.out);
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| {
            string(w, value);
            Ok(())
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| {
            w.push_str(if value { "true" } else { "false" });
            Ok(())
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| {
            w.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| {
            w.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            self.member(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |w| {
            w.push('"');
            write!(Escaped(&mut *w), "{value}")?;
            w.push('"');
            Ok(())
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.push('"');
            write!(Escaped(&mut *w), "{value:?}")?;
            w.push('"');
            Ok(())
        });
    }
}

/// Now, as tracing-subscriber's `SystemTime` writes it (RFC 3339, UTC, microseconds:
/// `2026-12-04T04:38:39.123456Z`), the date and time of day written once per second per
/// thread: at one line per request, formatting them was a fifth of the line's cost.
fn timestamp(w: &mut String) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
        return SystemTime.format_time(&mut Writer::new(w));
    };
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            let Some(t) = i64::try_from(secs)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .filter(|t| (0..=9999).contains(&t.year()))
            else {
                return SystemTime.format_time(&mut Writer::new(w));
            };
            text.clear();
            write!(
                text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )?;
            *second = secs;
        }
        w.push_str(text);
        let mut micros = since.subsec_micros();
        let mut digits = *b".000000Z";
        for d in digits[1..7].iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        // ASCII digits, a dot and a `Z`.
        w.push_str(std::str::from_utf8(&digits).unwrap_or(".000000Z"));
        Ok(())
    })
}

/// Whether a byte must be escaped in a JSON string: `"`, `\\` and the control characters.
const ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// `text` as a JSON string.
fn string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    escape(out, text);
    out.push('"');
}

/// The position of the first byte of `bytes` to escape: eight bytes at a time while none is
/// (most text has none), then byte by byte.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Some byte of `w` is zero (exact as to whether any is).
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A control character (below 0x20), a quote or a backslash.
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        if control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) != 0 {
            if let Some(i) = chunk.iter().position(|&b| ESCAPE[usize::from(b)]) {
                return Some(at + i);
            }
        }
        at += 8;
    }
    (chunks.remainder().iter())
        .position(|&b| ESCAPE[usize::from(b)])
        .map(|i| at + i)
}

/// `text` with JSON string escaping.
fn escape(out: &mut String, text: &str) {
    // The bytes to escape are all ASCII, so byte positions are char boundaries.
    let mut rest = text;
    while let Some(at) = first_to_escape(rest.as_bytes()) {
        out.push_str(&rest[..at]);
        match rest.as_bytes()[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Writes what it is given with JSON string escaping.
struct Escaped<'a>(&'a mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;

    use super::{JsonFields, JsonLine};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
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
    fn a_value_that_logs_while_a_line_is_written_leaves_both_whole() {
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
}
