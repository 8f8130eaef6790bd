//! scim-sidecar: a SCIM 2.0 service provider that fronts a legacy REST API.
//!
//! Okta or Entra ID speak SCIM to the sidecar; a declarative TOML mapping file translates each
//! operation into calls on the legacy application; an SQLite cross-reference remembers which
//! SCIM id, legacy id and externalId belong together.
//!
//! # Layout
//!
//! The pure crates of the workspace do the thinking; this crate does the wiring and the I/O
//! (`ARCHITECTURE.md` follows a request through them).
//!
//! - `scim` (crate): RFC 7643/7644 — schemas, filters, PATCH, listing, resources, request
//!   bodies, the `scimType` list. No I/O.
//! - `mapping` (crate): the mapping language, the translation, the identity newtypes, and the
//!   planners (`mapping::plan`): for each operation, every legacy call and how to read its
//!   answer. No I/O.
//! - `simulator`, `bench` (crates): tooling, linked only with the `dev-tools` feature (the
//!   `dev`, `simulate` and `bench` commands) and by tests; never on the serve path.
//!
//! In this crate, in the order a request meets them:
//! - `server`: listeners, hyper-util connection builder, per-connection TLS handshake, graceful
//!   shutdown; `tls`: certificate files, rustls, reload on change or `SIGHUP`.
//! - `app`: the tower stack in front of the handlers; `oauth`: `/oauth2/authorize` and
//!   `/oauth2/token`, split off before SCIM authentication.
//! - `middleware`: custom layers, one per file (auth → tenant, the request log line and
//!   metrics, content type, the rescue of every error).
//! - `router`: (method, path) → `Route`.
//! - `handlers`: sequencing only — the cross-reference, the plan, the gateway, the answer.
//! - `tenant`: what a request may touch — its tenant (mapping, gateway) and the shared state.
//! - `gateway`: one per tenant; builds, sends (a concurrency slot, then retry, circuit
//!   breaker and timeout as tower layers) and decodes legacy calls, for handlers,
//!   `reconcile` and the readiness probe alike.
//! - `xref`: the cross-reference: SQLite (its own thread) or PostgreSQL (`pg`: the pool,
//!   TLS, migrations under a lock), behind one `Store`.
//! - `cursor`: RFC 9865 cursors, sealed, holding a list walk's legacy position.
//! - `error`: the funnel — every error becomes one SCIM error response here.
//!
//! Around them:
//! - `cli`: the command line, one file per command under `cli/`; `run`: starts and stops a
//!   whole sidecar (files, tenants, listeners, reloader).
//! - `config`: figment configuration (defaults ← TOML file ← `SCIM_SIDECAR_*` env), validation,
//!   secrets from env vars and files.
//! - `reconcile`: compares the xref with the legacy app and repairs drift.
//! - `reload`: puts a changed mapping file in force (SIGHUP or file change), or keeps the old;
//!   `signals`: shutdown signals and reload triggers.
//! - `admin`: the admin listener (health, readiness, metrics, provisioning log page);
//!   `metrics`: the Prometheus metrics; `provisioning`: the provisioning log of writes;
//!   `telemetry`: tracing setup, the JSON log line, the per-request note, PII redaction.
//! - `malloc`: glibc's mmap threshold fixed before the process really starts (it executes
//!   itself again with the tunable set; called first by `main`).

pub mod admin;
pub mod answers;
pub mod app;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod cursor;
pub mod error;
pub mod events;
pub mod gateway;
pub mod handlers;
pub mod html;
pub mod live;
pub mod malloc;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod pg;
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
pub mod webhooks;
pub mod xref;
