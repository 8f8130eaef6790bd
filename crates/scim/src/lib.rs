//! Pure RFC 7643 / RFC 7644 building blocks: attribute paths, schema definitions, the filter
//! language, PATCH, listing and projection, resources with their `meta` and ETag, request
//! bodies, and the `scimType` vocabulary.
//!
//! No I/O: this crate's manifest has no tokio, hyper or rusqlite, and it depends on nothing
//! else of the workspace. It uses serde, serde_json, thiserror, time, form_urlencoded and
//! xxhash.

pub mod attr;
pub mod error;
pub mod filter;
pub mod json;
pub mod list;
pub mod patch;
pub mod request;
pub mod resource;
pub mod schema;
