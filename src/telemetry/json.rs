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
mod tests;
