//! The Marketing Center REST API v1 simulator (`shared/marketing-center-api.md`): a faithful,
//! fast, in-memory implementation of every rule of the legacy contract, served over real HTTP.
//! Test and dev infrastructure, never on the serve path.
//!
//! - `state`: the data, the indexes and every rule that touches them.
//! - `validate`: the user body rules; `regions` and `countries`: the accepted codes.
//! - `query`: paging and filter parameters; `error`: the `ErrorCode` vocabulary.
//! - `server`: the HTTP surface (knobs, authentication, routing).
//! - `client`: the API's calls as its own clients send them (the bench's direct requests).
//!
//! Where the contract leaves room, the simulator is strict so that client bugs show up in
//! tests: unknown or repeated query parameters, a non-canonical `UserID` (`01042`), an
//! `IncludeArchived` other than `true`/`false` (any case), a body that is not a JSON object
//! all answer `400`/`404`; bodies above 1 MiB answer `413 PAYLOAD_TOO_LARGE`. Empty and
//! cleared string fields are stored and answered as `""`, never `null`. Query values are
//! form-decoded, so `+` means a space. `UserID`s start at 1001 and come from one counter for
//! all customers.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use simulator::marketing_center::MarketingCenter;
//! let simulator = MarketingCenter::new("secret", ["acme"]);
//! simulator.seed_demo("acme");
//! let running = simulator.clone().spawn().await?;
//! println!("{}", running.base_url()); // http://127.0.0.1:PORT/api/v1
//! running.stop().await;
//! # Ok(()) }
//! ```

pub mod client;
mod countries;
mod error;
mod query;
mod regions;
mod server;
mod state;
mod validate;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use self::state::Store;
use self::validate::{Mode, validate};
use crate::Refused;
use crate::faults::Faults;
pub use crate::faults::{FailureKind, FailureRule, Knobs};
pub use crate::http::RunningSimulator;
use crate::http::normalize_base_path;

/// The mapping shipped for this app, `mappings/marketing-center.toml`: what `dev` and the
/// bench put in front of this simulator.
pub const MAPPING: &str = include_str!("../../../mappings/marketing-center.toml");
/// Where [`MAPPING`] lives in the repository, to label its messages.
pub const MAPPING_PATH: &str = "mappings/marketing-center.toml";

/// The header carrying the API key.
pub const API_KEY_HEADER: &str = "x-mc-api-key";
/// The header carrying the Customer ID (the tenant).
pub const CUSTOMER_HEADER: &str = "x-mc-customer";
/// The base path [`MarketingCenter::spawn`] serves under.
pub const DEFAULT_BASE_PATH: &str = "/api/v1";

/// The names of the groups [`MarketingCenter::seed_demo`] creates.
pub const DEMO_GROUPS: [&str; 3] = ["Regional Marketing", "Sales Ops", "Brand Team"];

#[derive(Debug)]
struct Inner {
    api_key: String,
    store: Store,
    faults: Faults,
}

/// A Marketing Center simulator. Cheap to clone: clones share the same data and knobs.
#[derive(Clone, Debug)]
pub struct MarketingCenter {
    inner: Arc<Inner>,
}

impl MarketingCenter {
    /// A simulator accepting `api_key` and serving exactly `customers` (any other
    /// `X-MC-Customer` answers `401`), with no users and no groups.
    pub fn new(
        api_key: impl Into<String>,
        customers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let store = Store::new(customers.into_iter().map(Into::into));
        let inner = Inner {
            api_key: api_key.into(),
            store,
            faults: Faults::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Groups "Regional Marketing", "Sales Ops", "Brand Team" (IdentityIDs like `G-7F3A2C`,
    /// derived from the customer and the name, so stable per customer) and two users:
    /// `jane.doe@example.com` (member of Regional Marketing and Brand Team) and
    /// `john.smith@example.com` (member of Sales Ops). Idempotent; an unknown customer is
    /// ignored.
    pub fn seed_demo(&self, customer: &str) {
        if !self.inner.store.has_customer(customer) {
            tracing::warn!(customer, "seed_demo: the simulator has no such customer");
            return;
        }
        for name in DEMO_GROUPS {
            if self.inner.store.group_by_name(customer, name).is_none() {
                let id = self.fresh_group_id(customer, name);
                self.add_group(customer, &id, name);
            }
        }
        let users = [
            (
                json!({
                    "LogonName": "jane.doe@example.com",
                    "UserProfileFirstName": "Jane",
                    "UserProfileLastName": "Doe",
                    "UserProfileFullName": "Jane Doe",
                    "UserProfileTitle": "Field Marketing Lead",
                    "UserProfileEmailAddress": "jane.doe@example.com",
                    "UserProfilePhone": "+1 555 0100",
                    "UserProfileAddress1": "100 Main St",
                    "UserProfileAddress2": "Suite 4",
                    "UserProfileCity": "Springfield",
                    "UserProfileState": "IL",
                    "UserProfilePostalCode": "62701",
                    "UserProfileCountry": "US",
                }),
                &["Regional Marketing", "Brand Team"][..],
            ),
            (
                json!({
                    "LogonName": "john.smith@example.com",
                    "UserProfileFirstName": "John",
                    "UserProfileLastName": "Smith",
                    "UserProfileFullName": "John Smith",
                    "UserProfileTitle": "Sales Operations Manager",
                    "UserProfileEmailAddress": "john.smith@example.com",
                    "UserProfileCity": "Toronto",
                    "UserProfileState": "ON",
                    "UserProfileCountry": "CA",
                }),
                &["Sales Ops"][..],
            ),
        ];
        for (fields, groups) in users {
            let logon = fields["LogonName"].as_str().unwrap_or_default();
            let existing = self.inner.store.user_by_logon(customer, logon);
            let Some(id) = existing.or_else(|| self.insert_user(customer, fields).ok()) else {
                continue;
            };
            for group in groups {
                if let Some(group_id) = self.inner.store.group_by_name(customer, group) {
                    self.add_member(customer, &group_id, id);
                }
            }
        }
    }

    /// `G-` and six upper-case hex digits of SHA-256(customer, name), skipping ids in use.
    fn fresh_group_id(&self, customer: &str, name: &str) -> String {
        let mut attempt = 0u32;
        loop {
            let digest = Sha256::new()
                .chain_update(customer.as_bytes())
                .chain_update([0])
                .chain_update(name.as_bytes())
                .chain_update(attempt.to_be_bytes())
                .finalize();
            let id: String = digest.iter().take(3).map(|b| format!("{b:02X}")).collect();
            let id = format!("G-{id}");
            if !self.inner.store.has_group(customer, &id) {
                return id;
            }
            attempt = attempt.wrapping_add(1);
        }
    }

    /// Replaces the knobs (rate-limit buckets start full again).
    pub fn set_knobs(&self, knobs: Knobs) {
        self.inner.faults.set_knobs(knobs);
    }

    /// Adds a failure rule; rules are tried in the order they were added.
    pub fn inject_failure(&self, rule: FailureRule) {
        self.inner.faults.inject(rule);
    }

    /// Freezes the clock behind `CreatedUtc`/`ModifiedUtc` at `at` (`None`: the wall clock
    /// again). Lets a test see `ModifiedUtc` move without sleeping.
    pub fn set_clock(&self, at: Option<time::OffsetDateTime>) {
        self.inner.store.set_clock(at);
    }

    /// Serves until `shutdown` resolves (graceful: in-flight requests finish). Routes live
    /// under `base_path` (e.g. `"/api/v1"`; `""` or `"/"` for the root).
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

    /// Benchmark data: `users` active users `user000001@bench.example`… (with names and an
    /// externalId), then each `(IdentityID, members)` group holding the first `members` of
    /// them. Answers the users' `UserID`s in creation order.
    pub fn seed_bench(&self, customer: &str, users: u64, groups: &[(String, u64)]) -> Vec<u64> {
        let mut ids = Vec::with_capacity(usize::try_from(users).unwrap_or(0));
        for i in 1..=users {
            let fields = serde_json::json!({
                "LogonName": format!("user{i:06}@bench.example"),
                "UserProfileFirstName": "Bench",
                "UserProfileLastName": format!("User {i}"),
                "UserProfileEmailAddress": format!("user{i:06}@bench.example"),
                "ExternalIdentityProviderID": format!("00ubench{i:06}"),
            });
            match self.insert_user(customer, fields) {
                Ok(id) => ids.push(id),
                Err(e) => tracing::warn!(error = %e, "seed_bench: user refused"),
            }
        }
        for (group, members) in groups {
            self.add_group(customer, group, group);
            for id in ids
                .iter()
                .take(usize::try_from(*members).unwrap_or(usize::MAX))
            {
                self.add_member(customer, group, *id);
            }
        }
        ids
    }

    /// Creates a user as `POST /users` would (same validation and uniqueness), without HTTP.
    /// The error text starts with the `ErrorCode`, e.g. `LOGON_NAME_TAKEN: …`.
    pub fn insert_user(&self, customer: &str, fields: Value) -> Result<u64, Refused> {
        let Value::Object(body) = fields else {
            return Err(Refused(
                "BAD_REQUEST: the fields must be a JSON object".into(),
            ));
        };
        let created = validate(&body, Mode::Create)
            .and_then(|changes| self.inner.store.create_user(customer, changes))
            .map_err(|e| Refused(e.to_string()))?;
        created["UserID"]
            .as_u64()
            .ok_or_else(|| Refused("INTERNAL_ERROR: no UserID".to_owned()))
    }

    /// Changes a user as `PATCH /users/{id}` would, without HTTP; answers the updated user.
    pub fn patch_user(
        &self,
        customer: &str,
        user_id: u64,
        fields: Value,
    ) -> Result<Value, Refused> {
        let Value::Object(body) = fields else {
            return Err(Refused(
                "BAD_REQUEST: the fields must be a JSON object".into(),
            ));
        };
        validate(&body, Mode::Patch)
            .and_then(|changes| self.inner.store.patch_user(customer, user_id, changes))
            .map_err(|e| Refused(e.to_string()))
    }

    /// The user as `GET /users/{id}` answers it (archived or not).
    pub fn user(&self, customer: &str, user_id: u64) -> Option<Value> {
        self.inner.store.user(customer, user_id).ok()
    }

    /// Every user of `customer`, archived included, ordered by `UserID`.
    pub fn users(&self, customer: &str) -> Vec<Value> {
        self.inner.store.all_users(customer).unwrap_or_default()
    }

    /// Archives a user as `POST /users/{id}/archive` would (memberships dropped); `false` when
    /// there is no such user.
    pub fn archive(&self, customer: &str, user_id: u64) -> bool {
        self.inner
            .store
            .set_archived(customer, user_id, true)
            .is_ok()
    }

    /// Restores a user as `POST /users/{id}/restore` would; `false` when there is no such user.
    pub fn restore(&self, customer: &str, user_id: u64) -> bool {
        self.inner
            .store
            .set_archived(customer, user_id, false)
            .is_ok()
    }

    /// Creates a group (what the customer's account manager does), or renames the group
    /// `identity_id` (members kept). Refused, with a warning in the log, for an unknown
    /// customer, an `IdentityID` that is empty or longer than 64 characters, an empty name,
    /// or a name another group holds; see [`MarketingCenter::try_add_group`].
    pub fn add_group(&self, customer: &str, identity_id: &str, name: &str) {
        if let Err(problem) = self.try_add_group(customer, identity_id, name) {
            tracing::warn!(customer, identity_id, name, %problem, "add_group refused");
        }
    }

    /// [`MarketingCenter::add_group`], telling why a group was refused.
    pub fn try_add_group(
        &self,
        customer: &str,
        identity_id: &str,
        name: &str,
    ) -> Result<(), Refused> {
        self.inner.store.put_group(customer, identity_id, name)
    }

    /// Every group of `customer` as `GET /groups` answers them, ordered by `Name`.
    pub fn groups(&self, customer: &str) -> Vec<Value> {
        self.inner.store.all_groups(customer).unwrap_or_default()
    }

    /// The member `UserID`s of a group, ascending (empty for an unknown group).
    pub fn group_members(&self, customer: &str, identity_id: &str) -> Vec<u64> {
        self.inner
            .store
            .member_ids(customer, identity_id)
            .unwrap_or_default()
    }

    /// Adds a member as `PUT /groups/{id}/members/{user}` would; `false` for an unknown group
    /// or user, or an archived user.
    pub fn add_member(&self, customer: &str, identity_id: &str, user_id: u64) -> bool {
        self.inner
            .store
            .add_member(customer, identity_id, user_id)
            .is_ok()
    }

    /// Removes a member as `DELETE /groups/{id}/members/{user}` would; `false` for an unknown
    /// group or user.
    pub fn remove_member(&self, customer: &str, identity_id: &str, user_id: u64) -> bool {
        self.inner
            .store
            .remove_member(customer, identity_id, user_id)
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

    /// The `X-Request-Id` header of each request of [`MarketingCenter::requests`], in order.
    pub fn request_ids(&self) -> Vec<Option<String>> {
        self.inner.faults.request_ids()
    }

    /// The most requests the simulator handled at once (latency included) since it started or
    /// since [`MarketingCenter::reset_peak_in_flight`].
    pub fn peak_in_flight(&self) -> u64 {
        self.inner.faults.peak_in_flight()
    }

    /// Starts [`MarketingCenter::peak_in_flight`] over.
    pub fn reset_peak_in_flight(&self) {
        self.inner.faults.reset_peak();
    }

    /// Forgets the logged requests ([`MarketingCenter::request_count`] keeps counting).
    pub fn clear_requests(&self) {
        self.inner.faults.clear_requests();
    }
}
