//! Pure RFC 7643 / RFC 7644 building blocks: schema definitions, the filter language and
//! attribute projection.
//!
//! This module does no I/O and must not depend on tokio, hyper or any other module of the
//! crate; it uses only serde_json, thiserror and time.

pub mod attr;
pub mod filter;
pub mod json;
pub mod patch;
pub mod resource;
pub mod schema;
