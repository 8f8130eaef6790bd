//! tracing-subscriber setup: human format on a terminal, JSON otherwise (or as configured).
//! The filter comes from `SCIM_SIDECAR_LOG` (or `RUST_LOG`), default `info`.
//!
//! Also what every request's log line is made of: the [`RequestNote`] the handlers fill in,
//! and the rule for personal data in logs ([`pii`]: shown only with debug logging on).
//! Lines of INFO and below reach standard error through a buffer written out by a thread of
//! its own within 10 ms ([`buffered`]); warnings and errors at once. [`flush`] writes the
//! buffer out: the command line calls it before the program ends, the panic hook first thing.
//!
//! Depends on nothing else in the crate.

pub mod buffered;
mod json;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use crate::config::LogFormat;

/// The buffer of the global subscriber's lines, once [`init`] installed it.
static STDERR: std::sync::OnceLock<buffered::Buffered<std::io::Stderr>> =
    std::sync::OnceLock::new();

/// Writes out the log lines still buffered (before the program ends; a no-op before [`init`]).
pub fn flush() {
    if let Some(buffer) = STDERR.get() {
        buffer.flush();
    }
}

/// Installs the global subscriber, writing to standard error through a buffer, and a panic
/// hook that writes the buffer out before the panic's message; a second call is a no-op.
pub fn init(format: LogFormat) {
    if STDERR.get().is_some() {
        return;
    }
    let filter = std::env::var("SCIM_SIDECAR_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let buffer = buffered::Buffered::start(std::io::stderr(), buffered::LINGER);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(buffer.clone());
    let installed = if json {
        builder
            .fmt_fields(json::JsonFields)
            .event_format(json::JsonLine)
            .try_init()
    } else {
        builder.try_init()
    };
    if installed.is_ok() && STDERR.set(buffer).is_ok() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
    }
}

/// A log writer for tests: what a subscriber wrote, kept in memory (clones share it).
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl LogBuffer {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The header a request's id comes in, goes back out in and is sent to the legacy app in.
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// What the handlers learned about one request: its log line, its metrics and its
/// provisioning log entry are written from this. Shared by the request's futures (group
/// member calls run concurrently), so it locks briefly and never across an `.await`.
#[derive(Debug, Default)]
pub struct RequestNote {
    legacy_calls: std::sync::atomic::AtomicU32,
    facts: std::sync::Mutex<Facts>,
    request_id: Option<std::sync::Arc<str>>,
}

/// The facts of a [`RequestNote`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The authenticated tenant.
    pub tenant: Option<mapping::ids::TenantId>,
    /// What a write does: `create`, `update`, `deactivate`, `reactivate`, `delete`,
    /// `membership` (set by the handlers; a route default otherwise).
    pub action: Option<&'static str>,
    /// The SCIM id the request is about.
    pub scim_id: Option<String>,
    /// The userName or group displayName the request is about (PII: see [`pii`]).
    pub subject: Option<String>,
}

impl RequestNote {
    /// The note of the request whose id (`X-Request-Id`) is `request_id`.
    pub fn for_request(request_id: Option<std::sync::Arc<str>>) -> Self {
        RequestNote {
            request_id,
            ..RequestNote::default()
        }
    }

    /// The request's id, when it has one.
    pub fn request_id(&self) -> Option<std::sync::Arc<str>> {
        self.request_id.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Facts) -> T) -> T {
        let mut facts = self
            .facts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut facts)
    }

    /// Counts one legacy call made for the request.
    pub fn legacy_call(&self) {
        self.legacy_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Legacy calls made so far.
    pub fn legacy_calls(&self) -> u32 {
        self.legacy_calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The tenant, once recorded.
    pub fn tenant(&self) -> Option<mapping::ids::TenantId> {
        self.with(|f| f.tenant.clone())
    }

    /// Records the tenant.
    pub fn set_tenant(&self, tenant: &mapping::ids::TenantId) {
        self.with(|f| {
            if f.tenant.as_ref() != Some(tenant) {
                f.tenant = Some(tenant.clone());
            }
        });
    }

    /// Records what the write does.
    pub fn set_action(&self, action: &'static str) {
        self.with(|f| f.action = Some(action));
    }

    /// Records the SCIM id, unless one is recorded.
    pub fn set_scim_id(&self, id: &str) {
        self.with(|f| {
            f.scim_id.get_or_insert_with(|| id.to_owned());
        });
    }

    /// Records the userName / displayName, unless one is recorded.
    pub fn set_subject(&self, subject: &str) {
        if subject.is_empty() {
            return;
        }
        self.with(|f| {
            f.subject.get_or_insert_with(|| subject.to_owned());
        });
    }

    /// A copy of the facts recorded so far.
    pub fn facts(&self) -> Facts {
        self.with(|f| f.clone())
    }

    /// The facts recorded, taken out (the note is empty after): for the request's end.
    pub fn take_facts(&self) -> Facts {
        self.with(std::mem::take)
    }
}

/// Text that may carry personal data (e-mail addresses, names, quoted attribute values), as
/// logs show it: unchanged when debug logging is on, otherwise with e-mail addresses and
/// double-quoted values replaced by `<redacted>`.
pub fn pii(text: &str) -> std::borrow::Cow<'_, str> {
    if pii_allowed() {
        std::borrow::Cow::Borrowed(text)
    } else {
        redact(text)
    }
}

/// Whether logs may show personal data: debug logging is on for this crate
/// (`SCIM_SIDECAR_LOG=debug` or `scim_sidecar=debug`).
pub fn pii_allowed() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
}

/// [`pii`] without the debug check.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['@', '"']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_quotes = false;
    for word in text.split_inclusive(|c: char| c.is_whitespace() || c == '"') {
        if in_quotes {
            if word.ends_with('"') {
                out.push_str("<redacted>\"");
                in_quotes = false;
            }
            continue;
        }
        if let Some(before) = word.strip_suffix('"') {
            out.push_str(&redact_word(before));
            out.push('"');
            in_quotes = true;
        } else {
            out.push_str(&redact_word(word));
        }
    }
    if in_quotes {
        out.push_str("<redacted>");
    }
    std::borrow::Cow::Owned(out)
}

/// A word containing `@` between other characters is an e-mail address (or close enough).
fn redact_word(word: &str) -> std::borrow::Cow<'_, str> {
    let core = word.trim_end_matches(|c: char| c.is_whitespace() || ",;:.)".contains(c));
    match core.find('@') {
        Some(at) if at > 0 && at + 1 < core.len() => {
            std::borrow::Cow::Owned(format!("<redacted>{}", &word[core.len()..]))
        }
        _ => std::borrow::Cow::Borrowed(word),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction_hides_addresses_and_quoted_values() {
        assert_eq!(redact("no personal data here"), "no personal data here");
        assert_eq!(
            redact("userName \"ada@example.com\" is already taken"),
            "userName \"<redacted>\" is already taken"
        );
        assert_eq!(
            redact("LOGON_NAME_TAKEN: ada@example.com, try again"),
            "LOGON_NAME_TAKEN: <redacted>, try again"
        );
        assert_eq!(
            redact("name \"Ada Lovelace\" and \"Grace Hopper\" differ"),
            "name \"<redacted>\" and \"<redacted>\" differ"
        );
        assert_eq!(redact("unterminated \"Ada L"), "unterminated \"<redacted>");
        assert_eq!(redact("a lone @ sign"), "a lone @ sign");
    }
}
