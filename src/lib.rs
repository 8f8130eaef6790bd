//! scim-sidecar: a SCIM 2.0 service provider that fronts a legacy REST API.
//!
//! Okta or Entra ID speak SCIM to the sidecar; a declarative TOML mapping file translates each
//! operation into calls on the legacy application; an SQLite cross-reference remembers which
//! SCIM id, legacy id and externalId belong together.
//!
//! # Layout
//!
//! - `cli`: clap subcommands (`serve`, `dev`, `simulate`, `check`, `reconcile`, `log`,
//!   `bench`) and what each runs.
//! - `run`: starts and stops a whole sidecar (files, tenants, listeners, reloader).
//! - `config`: figment configuration (defaults ← TOML file ← `SCIM_SIDECAR_*` env), validation,
//!   secrets from env vars and files.
//! - `telemetry`: tracing-subscriber setup and the JSON log line, the per-request note, PII
//!   redaction.
//! - `metrics`: the Prometheus metrics and their text encoding.
//! - `admin`: the admin listener (health, readiness, metrics, provisioning log page).
//! - `provisioning`: the provisioning log of write operations, in its own SQLite file.
//! - `server`: listeners, hyper-util connection builder, per-connection TLS handshake, graceful
//!   shutdown.
//! - `tls`: optional TLS on the listener — certificate and key files, rustls configuration,
//!   reload on change or `SIGHUP` (a bad new pair is refused, the old one stays).
//! - `app`: shared state (tenants, mappings, legacy clients, xref) and the tower stack.
//! - `reload`: puts a changed mapping file in force (SIGHUP or file change), or keeps the old.
//! - `signals`: shutdown signals and reload triggers (SIGHUP or polling).
//! - `reconcile`: compares the xref with the legacy app and repairs drift.
//! - `router`: (method, path) → `Route`.
//! - `error`: the one place any error becomes a SCIM error response.
//! - `middleware`: custom tower layers (bearer-token auth → tenant, the request log line and
//!   metrics, content type).
//! - `handlers`: Users, Groups, discovery — glue where scim, mapping, legacy and xref meet.
//! - `scim`: pure RFC 7643/7644 — schemas, filters, PATCH, projections. No I/O.
//! - `mapping`: pure — the compiled mapping file, templates, transforms, translation.
//! - `legacy`: the tower client stack that sends prepared calls to the legacy app.
//! - `xref`: the SQLite cross-reference, on its own thread.
//! - `ids`: the identity newtypes and SCIM id derivation.
//! - `bench`: the `bench` command: the simulator, a bare forwarder and the sidecar measured
//!   side by side (tooling; never on the `serve` path).
//! - `simulator`: simulators of the legacy apps (tests and `dev`; never on the `serve` path).

pub mod admin;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod error;
pub mod handlers;
pub mod ids;
pub mod legacy;
pub mod mapping;
pub mod metrics;
pub mod middleware;
pub mod provisioning;
pub mod reconcile;
pub mod reload;
pub mod router;
pub mod run;
pub mod scim;
pub mod server;
pub mod signals;
pub mod simulator;
pub mod telemetry;
pub mod tls;
pub mod xref;
