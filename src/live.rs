//! `check --live`: read-only calls against the real legacy app, through a tenant's mapping
//! and gateway — one list page, one record, each pushed-down filter's query, the groups —
//! verifying that every pointer resolves and every value decodes. The legacy side's "Test
//! API Credentials". Nothing is written, to the app or to the cross-reference.

use mapping::plan::groups as gplan;
use mapping::plan::users as uplan;
use mapping::plan::{Exchange, Pages};
use mapping::{Mapping, TimeFormat};
use scim::filter::{AttrPath, CompareOp, Filter};
use serde_json::Value;

use crate::telemetry::RequestNote;
use crate::tenant::Tenant;

/// How a finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// As the mapping says.
    Ok,
    /// Worth a look, not an error (an empty field may be legitimately empty).
    Note,
    /// The mapping and the app disagree: requests would fail or read wrong.
    Problem,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How it weighs.
    pub level: Level,
    /// What was found, naming the mapping key.
    pub text: String,
}

struct Report(Vec<Finding>);

impl Report {
    fn ok(&mut self, text: impl Into<String>) {
        self.0.push(Finding {
            level: Level::Ok,
            text: text.into(),
        });
    }
    fn note(&mut self, text: impl Into<String>) {
        self.0.push(Finding {
            level: Level::Note,
            text: text.into(),
        });
    }
    fn problem(&mut self, text: impl Into<String>) {
        self.0.push(Finding {
            level: Level::Problem,
            text: text.into(),
        });
    }
}

/// Checks `tenant`'s mapping against its legacy app with read-only calls.
pub async fn check(tenant: &Tenant) -> Vec<Finding> {
    let mapping = tenant.mapping();
    let note = RequestNote::default();
    let request_id = format!("check-live-{}", uuid::Uuid::new_v4().simple());
    let mut x = tenant.gateway.exchange(&mapping, Some(&request_id), &note);
    let mut r = Report(Vec::new());
    users(&mapping, &mut x, &mut r).await;
    if mapping.groups.is_some() {
        groups(&mapping, &mut x, &mut r).await;
    }
    r.0
}

async fn users<X: Exchange>(m: &Mapping, x: &mut X, r: &mut Report)
where
    X::Error: std::fmt::Display,
{
    let um = &m.users;
    let mut pages = Pages::new(&um.calls.list, &m.legacy.paging, None, Vec::new()).of_size(1);
    let records = match pages.next(x, &m.legacy).await {
        Ok(Some(records)) => records,
        Ok(None) => Vec::new(),
        Err(e) => {
            r.problem(format!("users.calls.list: {e}"));
            return;
        }
    };
    let total = pages
        .total()
        .map(|t| format!(", total {t}"))
        .unwrap_or_default();
    r.ok(format!(
        "users.calls.list: answered {} record(s) on a first page{total}",
        records.len()
    ));
    let records = match uplan::complete(m, records, 1, x).await {
        Ok(records) => records,
        Err(e) => {
            r.problem(format!("users.calls.list complete = \"get\": {e}"));
            return;
        }
    };
    let Some(listed) = records.first() else {
        r.note("users: the app lists no user, so no record could be read");
        return;
    };
    let Some(id) = um.legacy_id_of(listed) else {
        r.problem(format!(
            "users.legacy_id: {:?} finds no id in a listed user (its members: {})",
            um.legacy_id,
            members(listed)
        ));
        return;
    };
    r.ok(format!("users.legacy_id: a listed user is {id}"));
    let record = match uplan::read(m, &id, x).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            r.problem(format!(
                "users.calls.get: user {id}, just listed, answers \"not found\""
            ));
            return;
        }
        Err(e) => {
            r.problem(format!("users.calls.get: {e}"));
            return;
        }
    };
    match um.legacy_id_of(&record) {
        Some(same) if same == id => r.ok(format!("users.calls.get: reads user {id}")),
        _ => {
            r.problem(format!(
                "users.calls.get: the answer for user {id} has no id at {:?} (its members: {}; \
                 a wrapped answer needs record = \"/…\")",
                um.legacy_id,
                members(&record)
            ));
            return;
        }
    }
    for (i, row) in um.attributes.iter().enumerate() {
        let absent: Vec<&str> = row
            .legacy
            .iter()
            .filter(|f| f.get(&record).is_none_or(Value::is_null))
            .map(|f| f.as_str())
            .collect();
        if !absent.is_empty() {
            r.note(format!(
                "users.attributes[{i}] ({}): {} absent from user {id}",
                row.scim,
                absent.join(", ")
            ));
        }
    }
    if let Some(active) = &um.active {
        if let Some((field, _)) = &active.field {
            match mapping::apply::at(&record, field) {
                Some(v) if um.is_active(&record) => {
                    r.ok(format!("users.active.field: {field} is {v}: active"))
                }
                Some(v) => r.note(format!(
                    "users.active.field: {field} is {v}, not one of the active values: user {id} reads inactive"
                )),
                None => r.problem(format!(
                    "users.active.field: {field} is absent from user {id}: every user would read inactive"
                )),
            }
        }
        let mut flags_read = true;
        for p in active.all_true.iter().chain(&active.all_false) {
            if mapping::apply::at(&record, p).is_none() {
                r.problem(format!("users.active: {p} is absent from user {id}"));
                flags_read = false;
            }
        }
        if flags_read && active.field.is_none() {
            let state = if um.is_active(&record) {
                "active"
            } else {
                "inactive"
            };
            r.ok(format!("users.active: user {id} reads {state}"));
        }
    }
    if let Some(ptr) = &um.fingerprint {
        match um.fingerprint_of(&record) {
            Some(f) => r.ok(format!("users.fingerprint: {ptr} reads {f}")),
            None => r.problem(format!(
                "users.fingerprint: {ptr} is absent from user {id} (or empty): no user could be \
                 given a SCIM id"
            )),
        }
    }
    for (key, ptr) in [
        ("users.created", um.created.as_deref()),
        ("users.last_modified", um.last_modified.as_deref()),
    ] {
        let Some(ptr) = ptr else { continue };
        match (
            mapping::apply::at(&record, ptr),
            um.time(&record, Some(ptr)),
        ) {
            (None, _) => r.note(format!("{key}: {ptr} is absent from user {id}")),
            (Some(_), Some(t)) => r.ok(format!("{key}: {ptr} reads {t}")),
            (Some(v), None) => r.problem(format!(
                "{key}: {ptr} is {v}, not a time as time_format = {:?} says",
                match um.time_format {
                    TimeFormat::Rfc3339 => "rfc3339",
                    TimeFormat::UnixSeconds => "unix_seconds",
                }
            )),
        }
    }
    // Each pushed-down filter, with this user's own value: the app must find the user.
    let attrs = Value::Object(um.read(&record));
    for pd in &um.filters {
        let Ok(path) = AttrPath::parse(&pd.path) else {
            continue;
        };
        let Some(value) = scim::resource::text_at(&attrs, &path) else {
            r.note(format!(
                "users.filters.{}: user {id} has no value to search with",
                pd.path
            ));
            continue;
        };
        let filter = Filter::Compare(path, CompareOp::Eq, Value::String(value.clone()));
        let Some(query) = um.push_down(&filter) else {
            continue;
        };
        let mut pages = Pages::new(&um.calls.list, &m.legacy.paging, None, query);
        match pages.next(x, &m.legacy).await {
            Ok(Some(found))
                if found
                    .iter()
                    .any(|f| um.legacy_id_of(f).as_ref() == Some(&id)) =>
            {
                r.ok(format!(
                    "users.filters.{}: {}={value:?} finds user {id}",
                    pd.path, pd.query
                ))
            }
            Ok(_) => r.problem(format!(
                "users.filters.{}: {}={value:?} does not find user {id} on the first page",
                pd.path, pd.query
            )),
            Err(e) => r.problem(format!("users.filters.{}: {e}", pd.path)),
        }
    }
}

async fn groups<X: Exchange>(m: &Mapping, x: &mut X, r: &mut Report)
where
    X::Error: std::fmt::Display,
{
    let Some(gm) = &m.groups else { return };
    let mut pages = Pages::new(&gm.list, &m.legacy.paging, None, Vec::new()).of_size(1);
    let records = match pages.next(x, &m.legacy).await {
        Ok(records) => records.unwrap_or_default(),
        Err(e) => {
            r.problem(format!("groups.calls.list: {e}"));
            return;
        }
    };
    r.ok(format!(
        "groups.calls.list: answered {} group(s) on a first page",
        records.len()
    ));
    let Some(listed) = records.first() else {
        r.note("groups: the app lists no group");
        return;
    };
    let Ok(id) = gm.legacy_id_of(listed) else {
        r.problem(format!(
            "groups.legacy_id: {:?} finds no id in a listed group (its members: {})",
            gm.legacy_id,
            members(listed)
        ));
        return;
    };
    match gplan::read(m, gm, &id, id.as_str(), x).await {
        Ok(group) => match gm.display_name_of(&group) {
            Some(name) => r.ok(format!("groups.calls.get: group {id} is {name:?}")),
            None => r.problem(format!(
                "groups.display_name: {:?} is absent from group {id} (its members: {})",
                gm.display_name,
                members(&group)
            )),
        },
        Err(e) => r.problem(format!("groups.calls.get: group {id}, just listed: {e}")),
    }
    if let Some(call) = &gm.members {
        let mut pages = Pages::new(call, &m.legacy.paging, Some(&id), Vec::new());
        match pages.next(x, &m.legacy).await {
            Ok(items) => {
                let items = items.unwrap_or_default();
                let unread = items
                    .iter()
                    .filter(|i| {
                        call.member_id
                            .as_deref()
                            .is_none_or(|p| mapping::apply::pointer_text(i, p).is_none())
                    })
                    .count();
                if unread > 0 {
                    r.problem(format!(
                        "groups.calls.members: member_id finds no id in {unread} of {} member(s) of group {id}",
                        items.len()
                    ));
                } else {
                    r.ok(format!(
                        "groups.calls.members: group {id} has {} member(s) on a first page",
                        items.len()
                    ));
                }
            }
            Err(e) => r.problem(format!("groups.calls.members: {e}")),
        }
    }
}

/// The member names of a record, to show what a pointer could have named.
fn members(v: &Value) -> String {
    match v.as_object() {
        Some(o) if !o.is_empty() => o.keys().take(12).cloned().collect::<Vec<_>>().join(", "),
        _ => format!("not an object: {}", scim::schema::json_kind(v)),
    }
}
