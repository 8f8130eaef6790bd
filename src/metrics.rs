//! Prometheus metrics (prometheus-client): the families, their labels and the text encoding
//! served on the admin listener's `/metrics`.
//!
//! One [`Metrics`] per process, shared by `Arc`: the request path, the legacy clients, the
//! mapping reloader and the provisioning log record into it; nothing is global, so every
//! test owns its own. Labels are low-cardinality by construction: tenant names, route
//! kinds, mapping call names and status codes, never ids or user data.
//!
//! Owns metric names and labels; knows nothing about SCIM payloads or mappings.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one SCIM request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScimLabels {
    /// Tenant name, `none` before authentication succeeded.
    pub tenant: String,
    /// `User`, `Group` or `none` (discovery, unknown paths).
    pub resource: String,
    /// `list`, `search`, `get`, `create`, `replace`, `patch`, `delete`, `discovery`, `other`.
    pub operation: String,
    /// HTTP status code.
    pub status: String,
}

/// What [`Metrics::scim_request`] records a request under (the labels of [`ScimLabels`],
/// borrowed).
#[derive(Clone, Copy, Debug)]
pub struct ScimRequest<'a> {
    /// Tenant name, `none` before authentication succeeded.
    pub tenant: &'a str,
    /// `User`, `Group` or `none`.
    pub resource: &'a str,
    /// The operation (see [`ScimLabels::operation`]).
    pub operation: &'a str,
    /// HTTP status code.
    pub status: u16,
}

/// `n` in decimal, written into `buf`.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

/// Labels of a SCIM request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScimOpLabels {
    /// Tenant name.
    pub tenant: String,
    /// Resource type.
    pub resource: String,
    /// Operation.
    pub operation: String,
}

/// Labels of one legacy call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LegacyLabels {
    /// Tenant name.
    pub tenant: String,
    /// The mapping's name of the call, e.g. `users.get`, `groups.add_member`.
    pub call: String,
    /// HTTP status code of the answer, or `timeout`, `unavailable`, `circuit_open`, `error`.
    pub status: String,
}

/// Labels of a legacy call's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LegacyOpLabels {
    /// Tenant name.
    pub tenant: String,
    /// The mapping's name of the call.
    pub call: String,
}

/// A tenant label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// Tenant name.
    pub tenant: String,
}

/// Labels of a rate-limit answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    /// Tenant name (`none` for unauthenticated clients).
    pub tenant: String,
    /// `legacy`: the legacy app answered 429; `sidecar`: the sidecar answered 429 (failed
    /// authentication throttling).
    pub source: String,
}

/// Labels of a failed authentication.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthFailureLabels {
    /// What was presented: `bearer`, `header` (a token alone), `basic`, `missing` (no
    /// `Authorization`) or `malformed`.
    pub scheme: String,
}

/// Labels of an OAuth 2.0 event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OAuthLabels {
    /// `authorize` or `token`.
    pub endpoint: String,
    /// A failure's RFC 6749 error code (`invalid_client`, `invalid_grant`, `access_denied` …,
    /// or `wrong_approver`); an issue's grant (`authorization_code`, `refresh_token`,
    /// `client_credentials`).
    pub outcome: String,
}

/// Labels of a mapping reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// Tenant name.
    pub tenant: String,
    /// `reloaded` or `refused`.
    pub outcome: String,
}

/// Labels of the xref row gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct XrefLabels {
    /// Tenant name.
    pub tenant: String,
    /// `User` or `Group`.
    pub resource: String,
    /// `live` or `tombstoned`.
    pub state: String,
}

/// Labels of provisioning log entries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProvisioningLabels {
    /// `written`, or `dropped` when the writer's queue was full or its file failed.
    pub outcome: String,
}

/// Labels of the store's connection pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `max` (the pool's size), `open`, `idle` (open, no request holds it) or `waiting`
    /// (requests waiting for a connection).
    pub state: String,
}

fn latency_histogram() -> Histogram {
    // 250 µs … ~66 s: loopback answers to Okta's 60-second limit.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

/// The series of a family met so far, found by their borrowed label values: a request's
/// metrics then cost no label strings (a family's own lookup takes an owned label set).
/// Counters and histograms are handles on shared values, so a kept clone records into the
/// family's series. Label values are low-cardinality (see the module documentation), so the
/// map stays small.
/// The label values are the sidecar's own (tenant names, routes, statuses, call names), never
/// a caller's text, so they are hashed with FNV-1a ([`Fnv`]): a fraction of SipHash's cost,
/// with no flooding to fear.
#[derive(Debug)]
struct Series<M> {
    /// By the hash of the label values: each series with its values.
    map: std::sync::RwLock<std::collections::HashMap<u64, Vec<Met<M>>>>,
    hasher: std::hash::BuildHasherDefault<Fnv>,
}

/// FNV-1a, 64-bit.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A series met: its label values and its metric.
type Met<M> = (Box<[Box<str>]>, M);

impl<M> Default for Series<M> {
    fn default() -> Self {
        Series {
            map: std::sync::RwLock::default(),
            hasher: std::hash::BuildHasherDefault::default(),
        }
    }
}

impl<M: Clone> Series<M> {
    /// The series of `values`, made by `make` (the family's `get_or_create`) the first time.
    fn get(&self, values: &[&str], make: impl FnOnce() -> M) -> M {
        use std::hash::BuildHasher;
        let key = self.hasher.hash_one(values);
        let same = |k: &[Box<str>]| k.iter().map(|v| &**v).eq(values.iter().copied());
        if let Some(found) = self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .and_then(|all| all.iter().find(|(k, _)| same(k)))
        {
            return found.1.clone();
        }
        let made = make();
        let mut map = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let all = map.entry(key).or_default();
        if !all.iter().any(|(k, _)| same(k)) {
            all.push((values.iter().map(|v| (*v).into()).collect(), made.clone()));
        }
        made
    }
}

/// Labels of one webhook endpoint's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Tenant name.
    pub tenant: String,
    /// The endpoint's name in the configuration.
    pub endpoint: String,
}

/// Labels of a delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// Tenant name.
    pub tenant: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// `delivered`, `retry` or `dead`.
    pub outcome: String,
}

/// Labels of an event put in the outbox.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Tenant name.
    pub tenant: String,
    /// The event type (`user.created`, …).
    pub r#type: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    scim_requests: Family<ScimLabels, Counter>,
    scim_latency: Family<ScimOpLabels, Histogram, fn() -> Histogram>,
    legacy_calls: Family<LegacyLabels, Counter>,
    legacy_latency: Family<LegacyOpLabels, Histogram, fn() -> Histogram>,
    /// The series of the four families above recorded on every request.
    scim_requests_met: Series<Counter>,
    scim_latency_met: Series<Histogram>,
    legacy_calls_met: Series<Counter>,
    legacy_latency_met: Series<Histogram>,
    legacy_retries: Family<LegacyOpLabels, Counter>,
    circuit_open: Family<TenantLabels, Gauge>,
    rate_limited: Family<RateLimitLabels, Counter>,
    auth_failures: Family<AuthFailureLabels, Counter>,
    oauth_failures: Family<OAuthLabels, Counter>,
    oauth_issued: Family<OAuthLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    xref_rows: Family<XrefLabels, Gauge>,
    provisioning: Family<ProvisioningLabels, Counter>,
    store_pool: Family<PoolLabels, Gauge>,
    store_query: Histogram,
    events: Family<EventLabels, Counter>,
    events_met: Series<Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    events_pending: Family<EndpointLabels, Gauge>,
    events_dead: Family<EndpointLabels, Gauge>,
    events_oldest: Family<EndpointLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered (names prefixed `scim_sidecar_`).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scim_sidecar");
        let m = Self {
            scim_requests: Family::default(),
            scim_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            legacy_calls: Family::default(),
            legacy_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            scim_requests_met: Series::default(),
            scim_latency_met: Series::default(),
            legacy_calls_met: Series::default(),
            legacy_latency_met: Series::default(),
            legacy_retries: Family::default(),
            circuit_open: Family::default(),
            rate_limited: Family::default(),
            auth_failures: Family::default(),
            oauth_failures: Family::default(),
            oauth_issued: Family::default(),
            reloads: Family::default(),
            xref_rows: Family::default(),
            provisioning: Family::default(),
            store_pool: Family::default(),
            // 100 µs … ~13 s: a pooled statement on the same network to a stalled server.
            store_query: Histogram::new(exponential_buckets(0.000_1, 2.0, 18)),
            events: Family::default(),
            events_met: Series::default(),
            deliveries: Family::default(),
            events_pending: Family::default(),
            events_dead: Family::default(),
            events_oldest: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "scim_requests",
            "SCIM requests answered, by tenant, resource, operation and status",
            m.scim_requests.clone(),
        );
        registry.register(
            "scim_request_duration_seconds",
            "Time to answer a SCIM request, legacy calls included",
            m.scim_latency.clone(),
        );
        registry.register(
            "legacy_calls",
            "Calls to the legacy app, by tenant, mapping call and answer status",
            m.legacy_calls.clone(),
        );
        registry.register(
            "legacy_call_duration_seconds",
            "Time of one legacy call, retries included",
            m.legacy_latency.clone(),
        );
        registry.register(
            "legacy_retries",
            "Repeated attempts of idempotent legacy calls",
            m.legacy_retries.clone(),
        );
        registry.register(
            "legacy_circuit_open",
            "1 while the tenant's circuit breaker refuses legacy calls, else 0",
            m.circuit_open.clone(),
        );
        registry.register(
            "rate_limited",
            "429 answers: from the legacy app, or given by the sidecar",
            m.rate_limited.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed SCIM authentications, by what was presented",
            m.auth_failures.clone(),
        );
        registry.register(
            "oauth_failures",
            "Refused OAuth 2.0 requests, by endpoint and error",
            m.oauth_failures.clone(),
        );
        registry.register(
            "oauth_issued",
            "OAuth 2.0 codes and tokens issued, by endpoint and grant",
            m.oauth_issued.clone(),
        );
        registry.register(
            "mapping_reloads",
            "Mapping file reloads, by outcome",
            m.reloads.clone(),
        );
        registry.register(
            "xref_rows",
            "Cross-reference rows, read at scrape time",
            m.xref_rows.clone(),
        );
        registry.register(
            "provisioning_log_entries",
            "Provisioning log entries written, or dropped",
            m.provisioning.clone(),
        );
        registry.register(
            "store_pool_connections",
            "PostgreSQL store ([store]): connections of the pool, by state, read at scrape time",
            m.store_pool.clone(),
        );
        registry.register(
            "store_query_duration_seconds",
            "PostgreSQL store ([store]): time of one statement, waiting for its answer included",
            m.store_query.clone(),
        );
        registry.register(
            "events",
            "Directory-sync events put in the outbox, by tenant and type",
            m.events.clone(),
        );
        registry.register(
            "event_deliveries",
            "Webhook delivery attempts, by tenant, endpoint and outcome (delivered, retry, dead)",
            m.deliveries.clone(),
        );
        registry.register(
            "events_pending",
            "Events waiting for delivery, by tenant and endpoint, read at scrape time",
            m.events_pending.clone(),
        );
        registry.register(
            "events_dead",
            "Dead-lettered events (replay with `scim-sidecar events replay`), read at scrape time",
            m.events_dead.clone(),
        );
        registry.register(
            "events_oldest_pending_seconds",
            "Age of the oldest event waiting for delivery, by tenant and endpoint (0: none)",
            m.events_oldest.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts an event of `kind` put in the outbox for `tenant`.
    pub fn event(&self, tenant: &str, kind: &str) {
        self.events_met
            .get(&[tenant, kind], || {
                self.events
                    .get_or_create(&EventLabels {
                        tenant: tenant.to_owned(),
                        r#type: kind.to_owned(),
                    })
                    .clone()
            })
            .inc();
    }

    /// Counts one delivery attempt and its outcome.
    pub fn delivery(&self, tenant: &str, endpoint: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                tenant: tenant.to_owned(),
                endpoint: endpoint.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets an endpoint's queue gauges: pending and dead rows, and the oldest pending
    /// event's age in seconds.
    pub fn event_queue(&self, tenant: &str, endpoint: &str, pending: u64, dead: u64, oldest: u64) {
        let labels = EndpointLabels {
            tenant: tenant.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.events_pending.get_or_create(&labels).set(n(pending));
        self.events_dead.get_or_create(&labels).set(n(dead));
        self.events_oldest.get_or_create(&labels).set(n(oldest));
    }

    /// The histogram the PostgreSQL store records each statement's time into.
    pub fn store_query(&self) -> Histogram {
        self.store_query.clone()
    }

    /// Sets the pool gauges: `(state, connections)` pairs.
    pub fn store_pool(&self, states: &[(&str, usize)]) {
        for (state, n) in states {
            self.store_pool
                .get_or_create(&PoolLabels {
                    state: (*state).to_owned(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Counts one answered SCIM request and its latency.
    pub fn scim_request(&self, labels: ScimRequest<'_>, seconds: f64) {
        let ScimRequest {
            tenant,
            resource,
            operation,
            status,
        } = labels;
        self.scim_latency_met
            .get(&[tenant, resource, operation], || {
                self.scim_latency
                    .get_or_create(&ScimOpLabels {
                        tenant: tenant.to_owned(),
                        resource: resource.to_owned(),
                        operation: operation.to_owned(),
                    })
                    .clone()
            })
            .observe(seconds);
        let mut digits = [0u8; 5];
        let status = decimal(status, &mut digits);
        self.scim_requests_met
            .get(&[tenant, resource, operation, status], || {
                self.scim_requests
                    .get_or_create(&ScimLabels {
                        tenant: tenant.to_owned(),
                        resource: resource.to_owned(),
                        operation: operation.to_owned(),
                        status: status.to_owned(),
                    })
                    .clone()
            })
            .inc();
    }

    /// Counts one legacy call (after its retries) and its latency.
    pub fn legacy_call(&self, tenant: &str, call: &str, status: &str, seconds: f64) {
        self.legacy_latency_met
            .get(&[tenant, call], || {
                self.legacy_latency
                    .get_or_create(&LegacyOpLabels {
                        tenant: tenant.to_owned(),
                        call: call.to_owned(),
                    })
                    .clone()
            })
            .observe(seconds);
        self.legacy_calls_met
            .get(&[tenant, call, status], || {
                self.legacy_calls
                    .get_or_create(&LegacyLabels {
                        tenant: tenant.to_owned(),
                        call: call.to_owned(),
                        status: status.to_owned(),
                    })
                    .clone()
            })
            .inc();
    }

    /// Counts one retry of a legacy call.
    pub fn legacy_retry(&self, tenant: &str, call: &str) {
        self.legacy_retries
            .get_or_create(&LegacyOpLabels {
                tenant: tenant.to_owned(),
                call: call.to_owned(),
            })
            .inc();
    }

    /// Sets the tenant's circuit-breaker state.
    pub fn circuit(&self, tenant: &str, open: bool) {
        self.circuit_open
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .set(i64::from(open));
    }

    /// Counts one failed authentication; `scheme` is a [`AuthFailureLabels::scheme`].
    pub fn auth_failed(&self, scheme: &str) {
        self.auth_failures
            .get_or_create(&AuthFailureLabels {
                scheme: scheme.to_owned(),
            })
            .inc();
    }

    /// Counts one refused OAuth request at `endpoint` with `error`.
    pub fn oauth_failed(&self, endpoint: &str, error: &str) {
        self.oauth_failures
            .get_or_create(&OAuthLabels {
                endpoint: endpoint.to_owned(),
                outcome: error.to_owned(),
            })
            .inc();
    }

    /// Counts one code or token issued at `endpoint` for `grant`.
    pub fn oauth_issued(&self, endpoint: &str, grant: &str) {
        self.oauth_issued
            .get_or_create(&OAuthLabels {
                endpoint: endpoint.to_owned(),
                outcome: grant.to_owned(),
            })
            .inc();
    }

    /// Counts one `429` the sidecar gave before authentication (failed-auth throttling).
    pub fn sidecar_rate_limited(&self) {
        self.rate_limited("none", "sidecar");
    }

    /// Counts one `429` answer of the legacy app (every attempt, retried or not).
    pub fn legacy_rate_limited(&self, tenant: &str) {
        self.rate_limited(tenant, "legacy");
    }

    fn rate_limited(&self, tenant: &str, source: &str) {
        self.rate_limited
            .get_or_create(&RateLimitLabels {
                tenant: tenant.to_owned(),
                source: source.to_owned(),
            })
            .inc();
    }

    /// Counts one mapping reload attempt that changed something or was refused.
    pub fn reload(&self, tenant: &str, reloaded: bool) {
        let outcome = if reloaded { "reloaded" } else { "refused" };
        self.reloads
            .get_or_create(&ReloadLabels {
                tenant: tenant.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets the xref row gauge of one tenant, resource type and state.
    pub fn xref_rows(&self, tenant: &str, resource: &str, live: u64, tombstoned: u64) {
        for (state, n) in [("live", live), ("tombstoned", tombstoned)] {
            self.xref_rows
                .get_or_create(&XrefLabels {
                    tenant: tenant.to_owned(),
                    resource: resource.to_owned(),
                    state: state.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts provisioning log entries written (`true`) or dropped.
    pub fn provisioning_entries(&self, written: bool, n: u64) {
        let outcome = if written { "written" } else { "dropped" };
        self.provisioning
            .get_or_create(&ProvisioningLabels {
                outcome: outcome.to_owned(),
            })
            .inc_by(n);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_histograms_and_gauges() {
        let m = Metrics::new();
        let labels = ScimRequest {
            tenant: "acme",
            resource: "User",
            operation: "get",
            status: 200,
        };
        m.scim_request(labels, 0.001);
        m.scim_request(labels, 0.002);
        m.scim_request(
            ScimRequest {
                tenant: "none",
                resource: "none",
                operation: "other",
                status: 429,
            },
            0.0001,
        );
        // Label values that join into the same text stay apart.
        m.scim_request(
            ScimRequest {
                tenant: "acmeU",
                resource: "ser",
                operation: "get",
                status: 200,
            },
            0.001,
        );
        m.sidecar_rate_limited();
        m.legacy_call("acme", "users.get", "200", 0.0005);
        m.legacy_call("acme", "users.get", "429", 0.0005);
        m.legacy_rate_limited("acme");
        m.circuit("acme", true);
        m.reload("acme", false);
        m.xref_rows("acme", "User", 7, 2);
        let text = m.encode();
        for line in [
            "scim_sidecar_scim_requests_total{tenant=\"acme\",resource=\"User\",operation=\"get\",status=\"200\"} 2",
            "scim_sidecar_scim_request_duration_seconds_count{tenant=\"acme\",resource=\"User\",operation=\"get\"} 2",
            "scim_sidecar_scim_requests_total{tenant=\"acmeU\",resource=\"ser\",operation=\"get\",status=\"200\"} 1",
            "scim_sidecar_scim_requests_total{tenant=\"none\",resource=\"none\",operation=\"other\",status=\"429\"} 1",
            "scim_sidecar_legacy_calls_total{tenant=\"acme\",call=\"users.get\",status=\"200\"} 1",
            "scim_sidecar_legacy_calls_total{tenant=\"acme\",call=\"users.get\",status=\"429\"} 1",
            "scim_sidecar_rate_limited_total{tenant=\"acme\",source=\"legacy\"} 1",
            "scim_sidecar_rate_limited_total{tenant=\"none\",source=\"sidecar\"} 1",
            "scim_sidecar_legacy_circuit_open{tenant=\"acme\"} 1",
            "scim_sidecar_mapping_reloads_total{tenant=\"acme\",outcome=\"refused\"} 1",
            "scim_sidecar_xref_rows{tenant=\"acme\",resource=\"User\",state=\"tombstoned\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn statuses_are_written_in_decimal() {
        let mut buf = [0u8; 5];
        for n in [0u16, 7, 200, 429, 503, 9999, u16::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
    }
}
