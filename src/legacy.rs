//! The legacy application client: sends calls prepared by the mapping and returns raw answers.
//!
//! A tower stack (concurrency limit → timeout → pooled hyper-util client) per tenant, with
//! bounded retries of idempotent calls and a circuit breaker around it. Knows HTTP, not the
//! legacy API: what a call means is decided by the mapping and the handlers.

pub mod client;
pub mod error;

pub use client::{LegacyClient, LegacyResponse, Resilience};
pub use error::LegacyError;
