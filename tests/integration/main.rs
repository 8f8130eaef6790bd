//! Integration tests: the sidecar and the legacy apps' simulators over real loopback sockets
//! on ephemeral ports, each test with its own simulator and SQLite file; and the golden cases
//! of the mapping engine (`tests/mapping_cases/`).

// Test code: a failed setup step should fail the test loudly (clippy.toml allows unwrap only
// inside #[test] functions, not in the shared harness).
#![allow(clippy::unwrap_used)]

mod admin;
mod auth;
mod basic_auth;
mod bench;
mod check;
mod crash;
mod cursor;
mod dev;
mod discovery;
mod entra;
mod errors;
mod etag;
mod events;
mod faults;
mod flows;
mod golden;
mod group_push;
mod groups;
mod layering;
mod load;
mod local_api;
mod mapping;
mod oauth;
mod oauth_idp;
mod okta;
mod paging;
mod partner;
mod plan;
mod process;
mod reconcile;
mod reload;
mod replicas;
mod serve;
mod store_migrate;
mod store_tls;
mod support;
mod tls;
mod users;
mod variants;
