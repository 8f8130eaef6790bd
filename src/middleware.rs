//! Custom tower layers, one per file; tower-http provides the sensitive headers, tower the
//! request timeout. The request id and the request's span are the observe layer's (see
//! ARCHITECTURE.md, "Departures"). Layers know nothing about mappings or the legacy app.

pub mod auth;
pub mod content_type;
pub mod observe;
pub mod rescue;

pub use auth::AuthLayer;
pub use content_type::ContentTypeLayer;
pub use observe::ObserveLayer;
pub use rescue::RescueLayer;
