//! Transport failures talking to the legacy application (answers with an error status are not
//! errors here: the mapping reads them).

/// A call that got no usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LegacyError {
    /// The base URL in the configuration is unusable.
    #[error("legacy base URL {0}")]
    BaseUrl(String),
    /// The call could not be built (bad header value, path).
    #[error("legacy request could not be built: {0}")]
    Request(String),
    /// No connection could be made, or it broke before an answer arrived.
    #[error("legacy app unreachable: {0}")]
    Unavailable(String),
    /// No answer within the per-call timeout.
    #[error("legacy app did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The circuit breaker is open: the legacy app failed repeatedly and is left alone for
    /// a while; no call was made.
    #[error("legacy app is failing; calls paused for {retry_after_secs} s (circuit open)")]
    CircuitOpen {
        /// Seconds until calls are let through again.
        retry_after_secs: u64,
    },
}

impl LegacyError {
    /// A short label for metrics: `timeout`, `unavailable`, `circuit_open` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            LegacyError::Timeout(_) => "timeout",
            LegacyError::Unavailable(_) => "unavailable",
            LegacyError::CircuitOpen { .. } => "circuit_open",
            LegacyError::BaseUrl(_) | LegacyError::Request(_) => "error",
        }
    }
}
