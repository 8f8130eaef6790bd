//! What a request may touch: one [`Tenant`] (its mapping, its gateway to the legacy app) and
//! the shared [`State`] (the xref, the metrics, the provisioning log, the requests in flight). Built once
//! at start from [`TenantSettings`]; knows nothing about any mapping's contents.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use mapping::ids::TenantId;
use mapping::{Mapping, TenantValues};

use crate::config::oauth::GrantType;
use crate::credentials::{BasicCredential, Credentials};
use crate::gateway::{Gateway, GatewayError, GatewaySettings, Resilience};
use crate::metrics::Metrics;
use crate::provisioning::ProvisioningLog;
use crate::xref::Store;

/// How long after a full scan for an unknown id another one is refused.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(60);

/// One tenant (storefront customer) as the request path sees it.
pub struct Tenant {
    /// Tenant name from the configuration.
    pub id: TenantId,
    /// The compiled mapping in force; swapped whole on reload (see [`Tenant::mapping`]).
    mapping: ArcSwap<Mapping>,
    /// The mapping file, for reloads (`None` for a built-in mapping).
    pub mapping_path: Option<PathBuf>,
    /// The digest of that file's text when the tenant was built (just after the mapping in
    /// force was compiled from it): the reload watcher's starting point, so an edit made
    /// before the watcher first runs is still taken.
    pub mapping_digest: Option<u64>,
    /// The way to the legacy app.
    pub gateway: Gateway,
    /// Concurrency of group member calls.
    pub member_concurrency: usize,
    /// The process's metrics (mapping reloads are counted per tenant).
    pub metrics: Arc<Metrics>,
    /// When the legacy users were last scanned for an unknown id.
    last_rescan: Mutex<Option<Instant>>,
    /// The answers to `GET /Users/{id}` kept by what they were made of.
    pub answers: crate::answers::Answers,
    /// How the identity provider may authenticate for this tenant (`bearer`, `basic`), for
    /// the admin page; never the secrets.
    pub auth_modes: Vec<&'static str>,
    /// The endpoints its directory-sync events go to.
    pub webhooks: crate::webhooks::Webhooks,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl crate::middleware::auth::Named for Arc<Tenant> {
    fn tenant_id(&self) -> TenantId {
        self.id.clone()
    }
}

impl Tenant {
    /// The mapping in force now. A request takes it once, at its start, and keeps it to the
    /// end: a reload never changes the mapping under a request in flight.
    pub fn mapping(&self) -> Arc<Mapping> {
        self.mapping.load_full()
    }

    /// Puts a new mapping in force for the requests that start from now on.
    pub fn set_mapping(&self, mapping: Arc<Mapping>) {
        self.mapping.store(mapping);
    }

    /// Whether the legacy users may be scanned for an unknown id now: at most once per
    /// [`RESCAN_INTERVAL`]. Taking the answer `true` starts the interval.
    pub fn rescan_allowed(&self) -> bool {
        let mut last = self
            .last_rescan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < RESCAN_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// What it takes to set up one tenant.
pub struct TenantSettings {
    /// Tenant name.
    pub id: TenantId,
    /// The tenant's values for the mapping's placeholders (customer id, API key, vars,
    /// secrets).
    pub values: TenantValues,
    /// Legacy base URL.
    pub legacy_base_url: String,
    /// SHA-256 digests of the SCIM bearer tokens.
    pub token_digests: Vec<[u8; 32]>,
    /// HTTP Basic usernames and their argon2 password hashes.
    pub basic: Vec<(String, argon2::password_hash::phc::PasswordHash)>,
    /// OAuth 2.0 clients, approvers and token lifetimes.
    pub oauth: Option<crate::config::oauth::OAuthSettings>,
    /// Compiled mapping.
    pub mapping: Mapping,
    /// The mapping file it was compiled from, for reloads.
    pub mapping_path: Option<PathBuf>,
    /// Per-call legacy timeout.
    pub legacy_timeout: Duration,
    /// Legacy calls in flight at most.
    pub legacy_concurrency: usize,
    /// Group member calls in flight at most, per request.
    pub member_concurrency: usize,
    /// The endpoints of its directory-sync events.
    pub webhooks: Vec<crate::webhooks::Endpoint>,
}

/// Shared state of the running sidecar.
pub struct State {
    /// The cross-reference store.
    pub xref: Store,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time limit for answering one SCIM request.
    pub request_timeout: Duration,
    /// The SCIM base URL for `Location` and `meta.location`, when configured; otherwise it
    /// is taken from each request.
    pub public_base_url: Option<String>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Where write operations are recorded (none: not recorded).
    pub provisioning: Option<ProvisioningLog>,
    /// Seals and opens RFC 9865 cursors (the key from the store; see `run`).
    pub cursors: crate::cursor::Cursors,
    /// Set once shutdown began: readiness answers 503 from then on.
    pub draining: AtomicBool,
    /// SCIM requests being handled (shutdown waits for them before closing the files).
    pub in_flight: InFlight,
    /// Wakes the event delivery task once events are committed.
    pub events_committed: Arc<tokio::sync::Notify>,
}

/// A count of requests in flight that can be waited on until it is zero.
#[derive(Debug, Default)]
pub struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Holds one request in [`InFlight`] until dropped.
#[derive(Debug)]
pub struct InFlightGuard<'a>(&'a InFlight);

impl InFlight {
    /// Counts a request until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard<'_> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlightGuard(self)
    }

    /// Requests in flight now.
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until no request is in flight, or `limit` passed; returns how many remain.
    pub async fn wait_idle(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read: a last guard dropped in between wakes it.
            idle.as_mut().enable();
            if self.count() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.count();
            }
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

impl State {
    /// State over an opened xref store, with its own metrics and no provisioning log.
    pub fn new(xref: Store, max_body_bytes: usize, request_timeout: Duration) -> Self {
        Self {
            xref,
            max_body_bytes,
            request_timeout,
            public_base_url: None,
            metrics: Arc::default(),
            provisioning: None,
            cursors: crate::cursor::Cursors::ephemeral(Duration::from_secs(
                crate::cursor::DEFAULT_TIMEOUT_SECS,
            )),
            draining: AtomicBool::new(false),
            in_flight: InFlight::default(),
            events_committed: Arc::default(),
        }
    }
}

/// The tenants, and the credentials that find them.
pub struct Tenants {
    /// Tokens and passwords → tenant.
    pub credentials: Credentials<Arc<Tenant>>,
    /// Every tenant once.
    pub all: Vec<Arc<Tenant>>,
    /// The OAuth settings of the tenants that have them (for [`crate::oauth::OAuth`]).
    pub oauth: Vec<(Arc<Tenant>, crate::config::oauth::OAuthSettings)>,
}

/// Builds tenants and the token table; their gateways report into `metrics`.
pub fn tenants(
    settings: Vec<TenantSettings>,
    metrics: &Arc<Metrics>,
) -> Result<Tenants, GatewayError> {
    let mut entries = Vec::new();
    let mut basic = Vec::new();
    let mut all = Vec::new();
    let mut oauth = Vec::new();
    for s in settings {
        let gateway = Gateway::new(
            &GatewaySettings {
                base_url: s.legacy_base_url,
                timeout: s.legacy_timeout,
                concurrency: s.legacy_concurrency,
                values: s.values,
            },
            Resilience::default(),
            Arc::clone(metrics),
            s.id.as_str(),
        )?;
        let tenant = Arc::new(Tenant {
            id: s.id,
            mapping: ArcSwap::from_pointee(s.mapping),
            mapping_digest: s
                .mapping_path
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|text| mapping_digest(&text)),
            mapping_path: s.mapping_path,
            gateway,
            member_concurrency: s.member_concurrency.max(1),
            metrics: Arc::clone(metrics),
            last_rescan: Mutex::new(None),
            answers: crate::answers::Answers::default(),
            auth_modes: [
                (!s.token_digests.is_empty()).then_some("bearer"),
                (!s.basic.is_empty()).then_some("basic"),
                s.oauth
                    .as_ref()
                    .is_some_and(|o| o.grants(GrantType::AuthorizationCode))
                    .then_some("oauth2-code"),
                s.oauth
                    .as_ref()
                    .is_some_and(|o| o.grants(GrantType::ClientCredentials))
                    .then_some("oauth2-client"),
            ]
            .into_iter()
            .flatten()
            .collect(),
            webhooks: crate::webhooks::Webhooks(s.webhooks.into_iter().map(Arc::new).collect()),
        });
        for d in s.token_digests {
            entries.push((d, Arc::clone(&tenant)));
        }
        for (username, hash) in s.basic {
            basic.push(BasicCredential {
                username,
                hash: Arc::new(hash),
                tenant: Arc::clone(&tenant),
            });
        }
        if let Some(o) = s.oauth {
            oauth.push((Arc::clone(&tenant), o));
        }
        all.push(tenant);
    }
    // Half the cores at most for password checks: requests whose credentials are known (every
    // request after a pair's first) keep the other half whatever a flood of new pairs costs.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let checks = (cores / 2).max(1);
    Ok(Tenants {
        credentials: Credentials::new(entries, basic, checks),
        all,
        oauth,
    })
}

/// The digest a mapping file's text is compared by (a reload takes a file whose digest
/// changed).
pub(crate) fn mapping_digest(text: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}
