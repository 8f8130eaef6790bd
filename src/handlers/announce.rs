//! The directory-sync events of the writes (`crate::events`), built where the handlers know
//! what changed, and only when one of the tenant's endpoints takes them.

use std::collections::HashMap;

use mapping::ids::{LegacyId, ScimId};
use mapping::plan::users::Activation;
use serde_json::{Value, json};

use super::Ctx;
use crate::events::{Draft, UserData, changed};
use crate::webhooks::EventType;
use crate::xref::NewEvent;

/// What a user write did.
#[derive(Clone, Debug)]
pub(crate) enum UserWrite {
    /// A create; `adopted` names the `on_conflict` rule that took an existing account over.
    Created {
        /// The rule, if one did.
        adopted: Option<&'static str>,
    },
    /// A replace or a PATCH: the resource before it (when an endpoint wants `user.updated`)
    /// and the change of `active` it made.
    Changed {
        /// The resource before the write.
        before: Option<Value>,
        /// Deactivated or reactivated.
        activation: Option<Activation>,
    },
    /// A delete (or a write the mapping answers by deleting).
    Deleted,
}

impl UserWrite {
    /// Whether any of its events is wanted (the resource it needs is built only then).
    pub(crate) fn wanted(&self, ctx: &Ctx) -> bool {
        let hooks = &ctx.tenant.webhooks;
        match self {
            UserWrite::Created { .. } => hooks.wants(EventType::UserCreated),
            UserWrite::Changed { activation, .. } => {
                hooks.wants(EventType::UserUpdated)
                    || match activation {
                        Some(Activation::Deactivate) => hooks.wants(EventType::UserDeactivated),
                        Some(Activation::Reactivate) => hooks.wants(EventType::UserReactivated),
                        None => false,
                    }
            }
            UserWrite::Deleted => hooks.wants(EventType::UserDeleted),
        }
    }
}

fn draft<'a>(
    ctx: &'a Ctx,
    resource_type: &'static str,
    id: Option<&'a str>,
    external_id: Option<&'a str>,
) -> Draft<'a> {
    Draft {
        tenant: &ctx.tenant.id,
        resource_type,
        resource_id: id,
        external_id,
        request_id: ctx.request_id.as_deref(),
    }
}

/// The events of a user write whose user is now `user` (a SCIM resource without `meta`).
pub(crate) fn user_events(ctx: &Ctx, what: &UserWrite, user: &Value) -> Vec<NewEvent> {
    let hooks = &ctx.tenant.webhooks;
    let text = |key: &str| user.get(key).and_then(Value::as_str);
    let d = draft(ctx, "User", text("id"), text("externalId"));
    let data = |adopted| UserData {
        changed: None,
        adopted,
        user,
    };
    let mut out = Vec::new();
    match what {
        UserWrite::Created { adopted } => {
            out.extend(d.event(hooks, EventType::UserCreated, &data(*adopted)));
        }
        UserWrite::Changed { before, activation } => {
            if let Some(before) = before {
                let mut names = changed(before, user);
                names.retain(|n| n != "active");
                if !names.is_empty() {
                    let updated = UserData {
                        changed: Some(names.as_slice()),
                        adopted: None,
                        user,
                    };
                    out.extend(d.event(hooks, EventType::UserUpdated, &updated));
                }
            }
            let t = match activation {
                Some(Activation::Deactivate) => Some(EventType::UserDeactivated),
                Some(Activation::Reactivate) => Some(EventType::UserReactivated),
                None => None,
            };
            if let Some(t) = t {
                out.extend(d.event(hooks, t, &data(None)));
            }
        }
        UserWrite::Deleted => {
            out.extend(d.event(hooks, EventType::UserDeleted, &data(None)));
        }
    }
    out
}

/// The events of a membership push of the group `group` (its SCIM resource, members left
/// out): one per member added or removed. `scim_ids` names the members' SCIM ids.
pub(crate) fn member_events(
    ctx: &Ctx,
    group: &Value,
    added: &[LegacyId],
    removed: &[LegacyId],
    scim_ids: &HashMap<LegacyId, ScimId>,
) -> Vec<NewEvent> {
    let hooks = &ctx.tenant.webhooks;
    let text = |key: &str| group.get(key).and_then(Value::as_str);
    let d = draft(ctx, "Group", text("id"), text("externalId"));
    let about = json!({ "id": text("id"), "displayName": text("displayName") });
    let mut out = Vec::new();
    for (t, members) in [
        (EventType::GroupUserAdded, added),
        (EventType::GroupUserRemoved, removed),
    ] {
        if !hooks.wants(t) {
            continue;
        }
        for legacy_id in members {
            let user = json!({ "id": scim_ids.get(legacy_id).map(ScimId::as_str) });
            let data = json!({ "group": about, "user": user });
            out.extend(d.event(hooks, t, &data));
        }
    }
    out
}

/// The event of a write answered with an error: the operation, what the identity provider
/// was told (status, `scimType`, detail) and who it was about.
pub(crate) fn failure_event(
    ctx: &Ctx,
    (resource_type, operation): (&'static str, &'static str),
    path_id: Option<&str>,
    answer: &crate::error::Answer,
) -> Option<NewEvent> {
    let hooks = &ctx.tenant.webhooks;
    if !hooks.wants(EventType::ProvisioningFailed) {
        return None;
    }
    let facts = ctx.note.facts();
    let id = path_id.map(str::to_owned).or(facts.scim_id);
    let d = draft(ctx, resource_type, id.as_deref(), None);
    let data = json!({
        "operation": operation,
        "action": facts.action,
        "subject": facts.subject,
        "status": answer.status.as_u16(),
        "scimType": answer.scim_type.map(|t| t.as_str()),
        "detail": answer.detail,
    });
    d.event(hooks, EventType::ProvisioningFailed, &data)
}

/// The types of `events`, to count once they are committed ([`committed`]).
pub(crate) fn types_of(events: &[NewEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_type.clone()).collect()
}

/// After the store committed events of `types`: counts them and wakes their delivery.
pub(crate) fn committed(ctx: &Ctx, types: &[String]) {
    for t in types {
        ctx.state.metrics.event(ctx.tenant.id.as_str(), t);
    }
    ctx.state.events_committed.notify_one();
}
