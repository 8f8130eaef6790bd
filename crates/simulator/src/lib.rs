//! The legacy apps' simulators: test and dev infrastructure, never on the serve path.
//!
//! Each simulator is a faithful, fast, in-memory implementation of one legacy app's REST
//! contract (the documents under `shared/`), served over real HTTP so that tests, benchmarks
//! and the `dev` demo exercise the same client stack as production. Only tests, the bench
//! and the binary's `dev`/`simulate` commands (behind its `dev-tools` feature) depend on this
//! crate; it depends on nothing of ours but the pure `mapping` crate (for the ISO 3166 table).
//!
//! - [`faults`]: the knobs shared by every simulator (latency, rate limit, maintenance,
//!   injected failures) and the request log.
//! - [`http`]: the shared HTTP plumbing (accept loop, graceful shutdown, the background
//!   handle, body and response helpers).
//! - [`marketing_center`]: the Marketing Center REST API v1.
//! - [`partner_directory`]: the Partner Directory API v2.

pub mod faults;
pub mod http;
pub mod marketing_center;
pub mod partner_directory;
#[cfg(test)]
mod test_wait;

/// A change made directly (without HTTP) that the simulator refused, as its API would: the
/// text starts with the API's error code, e.g. `LOGON_NAME_TAKEN: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Refused {
    /// Whether the refusal says `text` (its code, a name).
    pub fn contains(&self, text: &str) -> bool {
        self.0.contains(text)
    }

    /// Whether the refusal starts with `code`.
    pub fn starts_with(&self, code: &str) -> bool {
        self.0.starts_with(code)
    }
}
