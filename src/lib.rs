//! scim-sidecar: a SCIM 2.0 service provider that fronts a legacy REST API.
//!
//! Okta or Entra ID speak SCIM to the sidecar; a declarative TOML mapping file translates each
//! operation into calls on the legacy application; an SQLite cross-reference remembers which
//! SCIM id, legacy id and externalId belong together.
//!
//! # Layout
//!
//! The pure crates of the workspace do the thinking; this crate does the wiring and the I/O.
//!
//! - `scim` (crate): RFC 7643/7644 — schemas, filters, PATCH, projection. No I/O.
//! - `mapping` (crate): the compiled mapping file, templates, transforms, translation, and the
//!   identity newtypes. No I/O.
//! - `simulator`, `bench` (crates): tooling, linked only with the `dev-tools` feature (the
//!   `dev`, `simulate` and `bench` commands) and by tests; never on the serve path.
//!
//! In this crate:
//! - `cli`: the command line, one file per command under `cli/`.
//! - `run`: starts and stops a whole sidecar (files, tenants, listeners, reloader).
//! - `config`: figment configuration (defaults ← TOML file ← `SCIM_SIDECAR_*` env), validation,
//!   secrets from env vars and files.
//! - `tenant`: what a request may touch — its tenant (mapping, legacy client) and the shared
//!   state (xref, metrics, provisioning log, requests in flight).
//! - `server`: listeners, hyper-util connection builder, per-connection TLS handshake, graceful
//!   shutdown.
//! - `app`: the tower stack in front of the handlers.
//! - `middleware`: custom tower layers (bearer-token auth → tenant, the request log line and
//!   metrics, content type).
//! - `router`: (method, path) → `Route`.
//! - `handlers`: Users, Groups, discovery — where `scim`, `mapping`, `legacy` and `xref` meet.
//! - `error`: the one place any error becomes a SCIM error response.
//! - `legacy`: the tower client stack that sends prepared calls to the legacy app.
//! - `xref`: the SQLite cross-reference, on its own thread.
//! - `reconcile`: compares the xref with the legacy app and repairs drift.
//! - `reload`: puts a changed mapping file in force (SIGHUP or file change), or keeps the old.
//! - `signals`: shutdown signals and reload triggers (SIGHUP or polling).
//! - `tls`: optional TLS on the listener — certificate and key files, rustls configuration,
//!   reload on change or `SIGHUP` (a bad new pair is refused, the old one stays).
//! - `admin`: the admin listener (health, readiness, metrics, provisioning log page).
//! - `metrics`: the Prometheus metrics and their text encoding.
//! - `provisioning`: the provisioning log of write operations, in its own SQLite file.
//! - `telemetry`: tracing-subscriber setup and the JSON log line, the per-request note, PII
//!   redaction.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod gateway;
pub mod handlers;
pub mod metrics;
pub mod middleware;
pub mod provisioning;
pub mod reconcile;
pub mod reload;
pub mod router;
pub mod run;
pub mod server;
pub mod signals;
pub mod telemetry;
pub mod tenant;
pub mod tls;
pub mod xref;
