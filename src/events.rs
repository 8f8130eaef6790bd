//! Directory-sync events: what the sidecar tells a tenant's webhook endpoints about every
//! change it makes and every write it fails, per the Standard Webhooks specification.
//!
//! The handlers build an event ([`Draft`] → [`xref::NewEvent`]) only when one of the
//! tenant's endpoints takes its type, and hand it to the store with the change it tells of
//! (one transaction: `Store::change_with_events`, or `Store::emit` for changes the store keeps
//! no row of). Delivery runs apart (`deliver`): leased from the outbox, signed (`sign`), sent,
//! retried with backoff, dead-lettered after the endpoint's retry window. An event body never
//! holds a password or a token: its `data` is the SCIM resource as answered (no attribute of
//! which is a password: SCIM never returns one) or the error the identity provider was sent.
//!
//! Owns the body's JSON shape and the delivery; depends on `crate::webhooks` (the types, the
//! endpoints, the signatures), `crate::xref` (the outbox) and `crate::metrics`. Knows nothing
//! about mappings.

mod deliver;

use mapping::ids::TenantId;
use serde_json::Value;

use crate::webhooks::{EventType, Webhooks};
use crate::xref::NewEvent;

pub use deliver::{Deliverer, Target};

/// What an event is about and where it comes from: the parts every body has.
#[derive(Clone, Debug)]
pub struct Draft<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// `User` or `Group`.
    pub resource_type: &'static str,
    /// The SCIM id, when there is one.
    pub resource_id: Option<&'a str>,
    /// The identity provider's externalId, when known.
    pub external_id: Option<&'a str>,
    /// The SCIM request's id.
    pub request_id: Option<&'a str>,
}

/// A new event id: `msg_` and a time-ordered UUID in hex.
pub fn new_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// The message of the warning [`warn_of_unconfigured`] logs.
pub const UNCONFIGURED: &str = "events wait for a webhook endpoint the configuration no longer \
     has; they are delivered once an endpoint of this name is configured again";

/// Logs a warning for each endpoint whose events wait in the outbox but that `configured`
/// (tenant, endpoint name) no longer has: an endpoint removed or renamed. Run once at start;
/// the metrics and the admin page show those queues too.
pub async fn warn_of_unconfigured(store: crate::xref::Store, configured: Vec<(String, String)>) {
    match store.outbox_stats().await {
        Ok(stats) => {
            for q in stats {
                let known = (configured.iter()).any(|(t, e)| *t == q.tenant && *e == q.endpoint);
                if !known && q.pending > 0 {
                    tracing::warn!(tenant = %q.tenant, endpoint = %q.endpoint,
                        pending = q.pending, "{UNCONFIGURED}");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "events: cannot read the outbox"),
    }
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

impl Draft<'_> {
    /// The event of type `t` with `data`, for the endpoints of `hooks` that take it; `None`
    /// when none does. The body is written straight from borrowed parts (no tree is built).
    pub fn event(
        &self,
        hooks: &Webhooks,
        t: EventType,
        data: &impl serde::Serialize,
    ) -> Option<NewEvent> {
        let endpoints = hooks.takers(t);
        if endpoints.is_empty() {
            return None;
        }
        let id = new_id();
        let at_ms = now_ms();
        let occurred_at = rfc3339_ms(at_ms);
        let body = Body {
            id: &id,
            kind: t.as_str(),
            tenant: self.tenant.as_str(),
            occurred_at: &occurred_at,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            external_id: self.external_id,
            request_id: self.request_id,
            data,
        };
        // Serialising borrowed strings and a `Value` cannot fail.
        let body = serde_json::to_string(&body).unwrap_or_default();
        let ordering_key = match self.resource_id {
            Some(rid) => format!("{}/{rid}", self.resource_type),
            // Nothing to order it with (a create that failed): its own key.
            None => id.clone(),
        };
        Some(NewEvent {
            body,
            id,
            tenant: self.tenant.clone(),
            event_type: t.as_str().to_owned(),
            ordering_key,
            at_ms,
            endpoints,
        })
    }
}

/// An event's body, in the documented order.
#[derive(serde::Serialize)]
struct Body<'a, D> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    tenant: &'a str,
    occurred_at: &'a str,
    resource_type: &'a str,
    resource_id: Option<&'a str>,
    external_id: Option<&'a str>,
    request_id: Option<&'a str>,
    data: &'a D,
}

/// The `data` of a user event: the user, and what the type adds.
#[derive(serde::Serialize)]
pub struct UserData<'a> {
    /// `user.updated`: the attribute paths that changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<&'a [String]>,
    /// `user.created`: the `on_conflict` rule that took an existing account over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted: Option<&'a str>,
    /// The user, without `meta`.
    pub user: &'a Value,
}

/// `resource` without `meta` (its times are the store's, written in the same transaction as
/// the event: `occurred_at` says when), for an event's `data`.
pub fn without_meta(mut resource: Value) -> Value {
    if let Some(o) = resource.as_object_mut() {
        o.remove("meta");
    }
    resource
}

/// The attribute paths whose values differ between two resources (`name.givenName`, `emails`;
/// `meta` and `id` left out), sorted: a sub-attribute of a complex attribute is named, a
/// multi-valued attribute as a whole.
pub fn changed(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", before, after, &mut out);
    out.sort();
    out
}

fn diff(prefix: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        if before != after && !prefix.is_empty() {
            out.push(prefix.to_owned());
        }
        return;
    };
    let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    for key in keys {
        if prefix.is_empty() && matches!(key.as_str(), "meta" | "id" | "schemas") {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let (bv, av) = (
            b.get(key).unwrap_or(&Value::Null),
            a.get(key).unwrap_or(&Value::Null),
        );
        // A schema extension (`urn:…`) is an object too; its attributes are named by their
        // own path under it.
        if bv.is_object() && av.is_object() {
            diff(&path, bv, av, out);
        } else if bv != av {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_names_sub_attributes_and_whole_multi_valued_ones() {
        let before = json!({"id": "1", "userName": "a", "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x"}], "active": true, "meta": {"version": "1"}});
        let after = json!({"id": "1", "userName": "a", "name": {"givenName": "Z", "familyName": "B"},
            "emails": [{"value": "z@x"}], "active": true, "title": "Boss", "meta": {"version": "2"}});
        assert_eq!(
            changed(&before, &after),
            vec!["emails", "name.givenName", "title"]
        );
        assert!(changed(&before, &before).is_empty());
    }
}
