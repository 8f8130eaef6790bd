//! The Partner Directory API v2 simulator (`shared/partner-directory-api.md`): a faithful,
//! fast, in-memory implementation of every rule of the legacy contract, served over real HTTP.
//! Test and dev infrastructure, never on the serve path.
//!
//! - `state`: the data, the indexes and every rule that touches them.
//! - `validate`: the body rules; `query`: `offset`/`limit` paging and the filters.
//! - `error`: the `{"error": {"code", "message"}}` vocabulary.
//! - `server`: the HTTP surface (knobs, authentication, routing).
//!
//! The shared knobs apply as for every simulator, worded the Partner Directory way: above
//! [`Knobs::rate_limit_per_second`] a request answers `429 rate_limited` with
//! `X-RateLimit-Reset: <unix epoch seconds>` (never `Retry-After`); while
//! [`Knobs::maintenance_retry_after`] is set every request answers `503 maintenance` (its
//! value is not used: this contract has no `Retry-After`); an injected
//! [`FailureKind::Status`] answers `{"error": {"code": "internal_error", …}}`.
//!
//! Where the contract leaves room, the simulator chooses, and is strict where strictness
//! shows client bugs in tests:
//! - unknown body fields are ignored (the contract says so), but unknown or repeated query
//!   parameters are a `400 bad_request`, so a misspelt filter never lists everything;
//! - `login`/`email` must be non-empty strings and `first_name`/`last_name` strings or `null`
//!   (stored as `""`), else `422 invalid` naming every problem; a team `title` (on `POST` and
//!   `PATCH`) must be a non-empty string; `uids` must be an array of at most 100 strings
//!   (`422 too_many` above);
//! - membership calls answer `204`; adding is all-or-nothing (the first unknown uid answers
//!   `404 not_found` naming it), removing skips uids that are not members, unknown accounts
//!   included;
//! - `PUT` and `claim` on a deleted account, like `GET`, answer `404`; `claim` of an `"idp"`
//!   account changes nothing (not even `updated_at`); `PUT` always moves `updated_at`;
//! - a malformed body is `400 bad_request`, one above 1 MiB `413 payload_too_large`; wrong
//!   methods `405 method_not_allowed` with `Allow`; a non-canonical `team_id` (`055`) is
//!   `404`.
//!
//! Uids are `acc_` and six hex digits (a bijection of the creation order, so stable from run
//! to run and never reused); `team_id`s count up from 50 (the reserved teams get 50 and 51)
//! and are never reused either.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use simulator::partner_directory::PartnerDirectory;
//! let simulator = PartnerDirectory::new("secret");
//! simulator.seed_demo();
//! let running = simulator.clone().spawn().await?;
//! println!("{}", running.base_url()); // http://127.0.0.1:PORT/v2
//! running.stop().await;
//! # Ok(()) }
//! ```

mod error;
mod query;
mod server;
mod state;
mod validate;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::{Value, json};

use self::state::{Origin, Store};
use self::validate::account_fields;
use crate::Refused;
use crate::faults::Faults;
pub use crate::faults::{FailureKind, FailureRule, Knobs};
pub use crate::http::RunningSimulator;
use crate::http::normalize_base_path;

/// The mapping shipped for this app, `mappings/partner-directory.toml`: what `dev --app
/// partner-directory` puts in front of this simulator.
pub const MAPPING: &str = include_str!("../../../mappings/partner-directory.toml");
/// Where [`MAPPING`] lives in the repository, to label its messages.
pub const MAPPING_PATH: &str = "mappings/partner-directory.toml";

/// The base path [`PartnerDirectory::spawn`] serves under.
pub const DEFAULT_BASE_PATH: &str = "/v2";
/// The header of a `429` telling when (Unix epoch seconds) a request is admitted again.
pub const RATE_LIMIT_RESET_HEADER: &str = "x-ratelimit-reset";
/// The teams every directory has from [`PartnerDirectory::new`] on, `reserved: true`, with
/// `team_id`s 50 and 51.
pub const RESERVED_TEAMS: [&str; 2] = state::RESERVED_TEAMS;
/// The teams [`PartnerDirectory::seed_demo`] creates.
pub const DEMO_TEAMS: [&str; 2] = ["Regional Marketing", "Sales Ops"];

#[derive(Debug)]
struct Inner {
    /// The whole expected `Authorization` value, `Token <secret>`.
    authorization: String,
    store: Store,
    faults: Faults,
}

/// A Partner Directory simulator. Cheap to clone: clones share the same data and knobs.
#[derive(Clone, Debug)]
pub struct PartnerDirectory {
    inner: Arc<Inner>,
}

impl PartnerDirectory {
    /// A directory accepting `Authorization: Token <token>`, with no accounts and only the
    /// reserved teams [`RESERVED_TEAMS`].
    pub fn new(token: impl Into<String>) -> Self {
        let inner = Inner {
            authorization: format!("Token {}", token.into()),
            store: Store::new(),
            faults: Faults::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Teams "Regional Marketing" and "Sales Ops" and two accounts:
    /// `jane.doe@example.com` (origin `"idp"`, member of Regional Marketing) and
    /// `john.smith@example.com` (origin `"local"`, created by hand in the application, member
    /// of Sales Ops), ready to be taken over. The reserved teams exist anyway. Idempotent.
    pub fn seed_demo(&self) {
        let store = &self.inner.store;
        let accounts = [
            (
                json!({
                    "login": "jane.doe@example.com",
                    "email": "jane.doe@example.com",
                    "first_name": "Jane",
                    "last_name": "Doe",
                    "origin": "idp",
                }),
                DEMO_TEAMS[0],
            ),
            (
                json!({
                    "login": "john.smith@example.com",
                    "email": "john.smith@example.com",
                    "first_name": "John",
                    "last_name": "Smith",
                    "origin": "local",
                }),
                DEMO_TEAMS[1],
            ),
        ];
        for (fields, team) in accounts {
            let team_id = store.get_or_add_team(team, false);
            let login = fields["login"].as_str().unwrap_or_default();
            let existing = store.account_by_login(login);
            let Some(uid) = existing.or_else(|| self.insert_account(fields).ok()) else {
                continue;
            };
            self.add_member(team_id, &uid);
        }
    }

    /// Replaces the knobs (the rate-limit bucket starts full again).
    pub fn set_knobs(&self, knobs: Knobs) {
        self.inner.faults.set_knobs(knobs);
    }

    /// Adds a failure rule; rules are tried in the order they were added.
    pub fn inject_failure(&self, rule: FailureRule) {
        self.inner.faults.inject(rule);
    }

    /// Freezes the clock behind `created_at`/`updated_at` at `at` (`None`: the wall clock
    /// again). Lets a test see `updated_at` move without sleeping.
    pub fn set_clock(&self, at: Option<time::OffsetDateTime>) {
        self.inner.store.set_clock(at);
    }

    /// Serves until `shutdown` resolves (graceful: in-flight requests finish). Routes live
    /// under `base_path` (e.g. `"/v2"`; `""` or `"/"` for the root).
    ///
    /// Called like an `async fn`; the future does not borrow `base_path`, so it can be
    /// spawned directly.
    pub fn serve(
        self,
        listener: tokio::net::TcpListener,
        base_path: &str,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        let service = server::Service::new(self.inner, normalize_base_path(base_path));
        crate::http::serve(service, listener, shutdown)
    }

    /// Binds `127.0.0.1:0` and serves under [`DEFAULT_BASE_PATH`] in a background task; the
    /// handle stops it on drop or on [`RunningSimulator::stop`].
    pub async fn spawn(self) -> std::io::Result<RunningSimulator> {
        let base_path = normalize_base_path(DEFAULT_BASE_PATH);
        let service = server::Service::new(self.inner, base_path.clone());
        RunningSimulator::spawn(service, &base_path).await
    }

    /// Creates an account as `POST /accounts` would (same validation and uniqueness), without
    /// HTTP, and answers its uid. `fields` takes `login`, `email`, `first_name`, `last_name`
    /// and `origin` (`"idp"`, the default, or `"local"` for an account created by hand in the
    /// application). The error text starts with the code, e.g. `login_taken: …`.
    pub fn insert_account(&self, fields: Value) -> Result<String, Refused> {
        let Value::Object(body) = fields else {
            return Err(Refused(
                "bad_request: the fields must be a JSON object".into(),
            ));
        };
        let account = account_fields(&body).map_err(|e| Refused(e.to_string()))?;
        let origin = match body.get("origin") {
            None | Some(Value::Null) => Origin::Idp,
            Some(Value::String(text)) => Origin::parse(text).ok_or_else(|| {
                Refused("invalid: origin must be \"idp\" or \"local\"".to_owned())
            })?,
            Some(_) => {
                return Err(Refused(
                    "invalid: origin must be \"idp\" or \"local\"".into(),
                ));
            }
        };
        let created = self
            .inner
            .store
            .create_account(account, origin)
            .map_err(|e| Refused(e.to_string()))?;
        created["uid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Refused("internal_error: no uid".to_owned()))
    }

    /// The account as `GET /accounts/{uid}` answers it.
    pub fn account(&self, uid: &str) -> Option<Value> {
        self.inner.store.account(uid).ok()
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> Vec<Value> {
        self.inner.store.all_accounts()
    }

    /// Creates a team (reserved ones too, which the API cannot) and answers its `team_id`;
    /// when a team already has this title (case-insensitively) its id is answered and it is
    /// left unchanged.
    pub fn add_team(&self, title: &str, reserved: bool) -> u64 {
        self.inner.store.get_or_add_team(title, reserved)
    }

    /// Every team as `GET /teams/{id}` answers them, by `team_id`.
    pub fn teams(&self) -> Vec<Value> {
        self.inner.store.all_teams()
    }

    /// The member uids of a team, in insertion order (empty for an unknown team).
    pub fn team_members(&self, team_id: u64) -> Vec<String> {
        self.inner.store.member_uids(team_id).unwrap_or_default()
    }

    /// Adds a member (reserved teams too: what an administrator of the application does);
    /// `false` for an unknown team or account.
    pub fn add_member(&self, team_id: u64, uid: &str) -> bool {
        self.inner
            .store
            .add_members(team_id, &[uid.to_owned()], true)
            .is_ok()
    }

    /// Removes a member (reserved teams too); `false` for an unknown team.
    pub fn remove_member(&self, team_id: u64, uid: &str) -> bool {
        self.inner
            .store
            .remove_members(team_id, &[uid.to_owned()], true)
            .is_ok()
    }

    /// How many requests reached the simulator (refused ones included).
    pub fn request_count(&self) -> u64 {
        self.inner.faults.request_count()
    }

    /// The last requests seen (at most 10 000), oldest first: method and path with query.
    pub fn requests(&self) -> Vec<(http::Method, String)> {
        self.inner.faults.requests()
    }

    /// Forgets the logged requests ([`PartnerDirectory::request_count`] keeps counting).
    pub fn clear_requests(&self) {
        self.inner.faults.clear_requests();
    }
}
