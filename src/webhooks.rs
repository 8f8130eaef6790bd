//! Webhook endpoints: the event types a tenant's endpoints take, their settings, and the
//! Standard Webhooks signatures (`sign`). Depends on nothing in the crate: the configuration
//! builds endpoints, the handlers ask them what they take, `crate::events` delivers to them.

pub mod sign;

use std::sync::Arc;
use std::time::Duration;

/// The events the sidecar emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A user was created (or an existing account adopted by a create).
    UserCreated,
    /// A user's attributes changed (`data.changed` names them).
    UserUpdated,
    /// A user was deactivated (`active` set to false).
    UserDeactivated,
    /// A user was reactivated (`active` set to true).
    UserReactivated,
    /// A user was deleted through SCIM (its id answers 404 from now on).
    UserDeleted,
    /// A member was added to a group.
    GroupUserAdded,
    /// A member was removed from a group.
    GroupUserRemoved,
    /// A write was answered with an error.
    ProvisioningFailed,
}

impl EventType {
    /// Every type, in the documented order.
    pub const ALL: [EventType; 8] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeactivated,
        EventType::UserReactivated,
        EventType::UserDeleted,
        EventType::GroupUserAdded,
        EventType::GroupUserRemoved,
        EventType::ProvisioningFailed,
    ];

    /// The type's name in the body and the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeactivated => "user.deactivated",
            EventType::UserReactivated => "user.reactivated",
            EventType::UserDeleted => "user.deleted",
            EventType::GroupUserAdded => "group.user_added",
            EventType::GroupUserRemoved => "group.user_removed",
            EventType::ProvisioningFailed => "provisioning.failed",
        }
    }

    /// The types a configured name selects: a type, `user.*`, `group.*` or `*`; `None` for a
    /// name that selects nothing.
    pub fn select(name: &str) -> Option<Vec<EventType>> {
        let all = EventType::ALL.into_iter();
        let picked: Vec<EventType> = match name {
            "*" => all.collect(),
            _ => match name.strip_suffix(".*") {
                Some(prefix) => all
                    .filter(|t| t.as_str().split('.').next() == Some(prefix))
                    .collect(),
                None => all.filter(|t| t.as_str() == name).collect(),
            },
        };
        (!picked.is_empty()).then_some(picked)
    }
}

/// One webhook endpoint of a tenant, as configured.
#[derive(Clone)]
pub struct Endpoint {
    /// Its name (unique in the tenant; the outbox rows name it).
    pub name: String,
    /// Where events are POSTed.
    pub url: http::Uri,
    /// The signing keys (the bytes of each `whsec_` secret): every one signs each delivery
    /// (several during a rotation).
    pub keys: Vec<Vec<u8>>,
    /// The types it takes.
    pub types: Vec<EventType>,
    /// Time limit of one delivery attempt (connect, send, answer).
    pub timeout: Duration,
    /// Deliveries in flight at most.
    pub concurrency: usize,
    /// How long an event is retried before it is dead-lettered.
    pub max_age: Duration,
    /// The first pause before a retry (doubled at each failure, with jitter).
    pub first_retry: Duration,
    /// The longest pause between two attempts.
    pub max_retry: Duration,
    /// TLS to the endpoint (the system's roots, or the configured `ca_file`).
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the path and query: they may hold a token.
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("host", &self.url.host())
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether it takes events of type `t`.
    pub fn takes(&self, t: EventType) -> bool {
        self.types.contains(&t)
    }
}

/// A tenant's endpoints.
#[derive(Clone, Debug, Default)]
pub struct Webhooks(pub Vec<Arc<Endpoint>>);

impl Webhooks {
    /// Whether any endpoint takes `t` (an event of no interest is never built).
    pub fn wants(&self, t: EventType) -> bool {
        self.0.iter().any(|e| e.takes(t))
    }

    /// The names of the endpoints that take `t`.
    pub fn takers(&self, t: EventType) -> Vec<String> {
        (self.0.iter())
            .filter(|e| e.takes(t))
            .map(|e| e.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_name_types_families_or_all() {
        assert_eq!(EventType::select("*").map(|v| v.len()), Some(8));
        assert_eq!(EventType::select("user.*").map(|v| v.len()), Some(5));
        assert_eq!(
            EventType::select("group.user_added"),
            Some(vec![EventType::GroupUserAdded])
        );
        assert_eq!(EventType::select("user.renamed"), None);
        assert_eq!(EventType::select("users.*"), None);
    }
}
