//! The legacy apps' simulators: test and dev infrastructure, never on the serve path.
//!
//! Each simulator is a faithful, fast, in-memory implementation of one legacy app's REST
//! contract (the documents under `shared/`), served over real HTTP so that tests, benchmarks
//! and the `dev` demo exercise the same client stack as production. Nothing outside tests,
//! benchmarks and the `dev` command may depend on this module, and this module depends on
//! nothing else in the crate.
//!
//! - [`faults`]: the knobs shared by every simulator (latency, rate limit, maintenance,
//!   injected failures) and the request log.
//! - [`http`]: the shared HTTP plumbing (accept loop, graceful shutdown, the background
//!   handle, body and response helpers).
//! - [`marketing_center`]: the Marketing Center REST API v1.

pub mod faults;
pub mod http;
pub mod marketing_center;
pub mod partner_directory;
