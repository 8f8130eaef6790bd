//! The plans of the User operations. Each takes what the caller found out (the legacy record
//! a SCIM id is, from the cross-reference) and decides every legacy call from there.

use std::collections::HashSet;

use scim::filter::{AttrPath, CompareOp, Filter};
use scim::list::{ListParams, Window};
use scim::patch::{self, PatchOpKind, PatchOperation};
use scim::request;
use scim::schema;
use serde_json::{Map, Value};

use super::{Answer, Exchange, Outbound, Pages, Refusal, exchange};
use crate::apply::{FieldValues, LegacyFailure, field_test};
use crate::ids::LegacyId;
use crate::{
    BodySpec, ConflictKeyword, ConflictThen, ConflictWhen, DeactivateSpec, DeleteSpec, FieldPath,
    Mapping, TranslateError, UserMapping,
};

/// The cross-reference's resource type of users.
pub const RESOURCE_TYPE: &str = "User";

/// Where bringing a record to an `active` state left it.
#[derive(Clone, Debug, PartialEq)]
pub enum After {
    /// The record, as the legacy app now has it.
    Record(Value),
    /// Deleted (the mapping deletes on deactivation, or on DELETE): the record as it was.
    /// Its SCIM id is gone from now on: the caller tombstones it.
    Deleted(Value),
}

/// A change of `active` a write makes, for the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Active → inactive.
    Deactivate,
    /// Inactive → active.
    Reactivate,
}

impl Activation {
    /// `was` → `want`, when they differ.
    pub fn between(was: Option<bool>, want: Option<bool>) -> Option<Activation> {
        match (was, want) {
            (Some(true), Some(false)) => Some(Activation::Deactivate),
            (Some(false), Some(true)) => Some(Activation::Reactivate),
            _ => None,
        }
    }

    /// `deactivate` or `reactivate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Deactivate => "deactivate",
            Activation::Reactivate => "reactivate",
        }
    }
}

/// What a create did.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    /// The record's legacy id.
    pub legacy_id: LegacyId,
    /// The record now.
    pub after: After,
    /// When the create met an existing record and an `on_conflict` rule took it over: which.
    pub adopted: Option<ConflictThen>,
}

/// What a replace or a PATCH did.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The record now.
    pub after: After,
    /// The change of `active` it made, if any.
    pub activation: Option<Activation>,
    /// The `externalId` the request leaves the user with (the PUT body's, or the PATCH's
    /// result): kept by the cross-reference when the mapping has no field for it.
    pub external_id: Option<String>,
}

/// Reads one record; `None` when the legacy app says it does not exist.
pub async fn read<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    x: &mut X,
) -> Result<Option<Value>, X::Error> {
    let answer = exchange(x, Outbound::about(&m.users.calls.get, legacy_id)).await?;
    Ok(read_outcome(m, answer)?)
}

/// Whether a user's `get` is one call, without follow-up steps: its answer alone is the record
/// ([`read_answer`] reads it).
pub fn read_is_one_call(m: &Mapping) -> bool {
    m.users.calls.get.then.is_empty()
}

/// What the answer to a user's one-call `get` says (see [`read_is_one_call`]), as [`read`]
/// reads it: the record; `None` when the legacy app says it does not exist.
pub fn read_answer(m: &Mapping, mut answer: Answer) -> Result<Option<Value>, Refusal> {
    m.users.calls.get.settle(&mut answer);
    read_outcome(m, answer)
}

/// A settled `get` answer: the record, or `None` for "not found", or the refusal.
fn read_outcome(m: &Mapping, answer: Answer) -> Result<Option<Value>, Refusal> {
    match answer {
        Ok(record) => Ok(Some(record)),
        Err(f) if f.is_not_found() => Ok(None),
        Err(f) => Err(Refusal::legacy(f, &m.legacy)),
    }
}

/// Listed records as the mapping reads them. When the list call's items lack fields the
/// mapping reads (`complete = "get"`), each is read again with `get`, at most `limit` at a
/// time; a record gone meanwhile is dropped. Otherwise the records as they are.
pub async fn complete<X: Exchange>(
    m: &Mapping,
    records: Vec<Value>,
    limit: usize,
    x: &mut X,
) -> Result<Vec<Value>, X::Error> {
    let um = &m.users;
    if !um.calls.list.complete || records.is_empty() {
        return Ok(records);
    }
    let ids: Vec<Option<LegacyId>> = records.iter().map(|r| um.legacy_id_of(r)).collect();
    let wanted: Vec<LegacyId> = ids.iter().flatten().cloned().collect();
    let mut read = read_many(m, &wanted, limit, x).await?.into_iter();
    let mut out = Vec::with_capacity(records.len());
    for (record, id) in records.into_iter().zip(ids) {
        match id {
            // A record without an id is kept as listed (it is skipped where ids matter).
            None => out.push(record),
            Some(_) => out.extend(read.next().flatten()),
        }
    }
    Ok(out)
}

/// The records of `ids`, read with `get` at most `limit` at a time, in order; `None` for a
/// record that is gone.
pub async fn read_many<X: Exchange>(
    m: &Mapping,
    ids: &[LegacyId],
    limit: usize,
    x: &mut X,
) -> Result<Vec<Option<Value>>, X::Error> {
    let get = &m.users.calls.get;
    let calls: Vec<Outbound<'_>> = ids.iter().map(|id| Outbound::about(get, id)).collect();
    let mut read: Vec<Option<Value>> = vec![None; calls.len()];
    let mut each = |i: usize, mut answer: Answer| -> Result<(), X::Error> {
        get.settle(&mut answer);
        match answer {
            Ok(record) => {
                if let Some(slot) = read.get_mut(i) {
                    *slot = Some(record);
                }
                Ok(())
            }
            Err(f) if f.is_not_found() => Ok(()),
            Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
        }
    };
    if !calls.is_empty() {
        x.send_all(calls, limit.max(1), &mut each).await?;
    }
    Ok(read)
}

/// The record a write answered, or, for an answer without one (an empty 2xx), a fresh read.
async fn record_of<X: Exchange>(
    m: &Mapping,
    answer: Value,
    legacy_id: &LegacyId,
    x: &mut X,
) -> Result<Value, X::Error> {
    if m.users.legacy_id_of(&answer).is_some() {
        return Ok(answer);
    }
    read(m, legacy_id, x).await?.ok_or_else(|| {
        Refusal::NotFound {
            resource: RESOURCE_TYPE,
            id: legacy_id.to_string(),
        }
        .into()
    })
}

/// A refused write, its field problems told in SCIM terms (never a legacy field name). Only
/// a code `[legacy.errors.codes]` lists tells them: an unlisted one falls back on the HTTP
/// status and its fixed detail, dropping the field problems (mappings/README.md §6.6).
fn write_refusal(m: &Mapping, f: LegacyFailure) -> Refusal {
    let fields = (f.rule.is_some() && !f.fields.is_empty()).then(|| {
        f.fields
            .iter()
            .map(|(field, problem)| m.users.field_problem(field, problem))
            .collect::<Vec<_>>()
            .join("; ")
    });
    Refusal::Legacy {
        failure: Box::new(f),
        app: m.legacy.name.clone(),
        fields,
    }
}

/// The body of the update call for `fields` against `current`, or `None` when nothing changes.
pub fn update_body(um: &UserMapping, current: &Value, fields: &FieldValues) -> Option<Value> {
    let changed = um.body(BodySpec::Changed, fields, Some(current));
    if changed.as_object().is_some_and(Map::is_empty) {
        return None;
    }
    Some(match um.calls.update.body.unwrap_or(BodySpec::Changed) {
        BodySpec::Changed => changed,
        kind => um.body(kind, fields, Some(current)),
    })
}

/// Sends the update call for `fields` against `current`; none when nothing changes.
async fn update<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    current: Value,
    fields: &FieldValues,
    x: &mut X,
) -> Result<Value, X::Error> {
    let Some(body) = update_body(&m.users, &current, fields) else {
        return Ok(current);
    };
    let call = Outbound::about(&m.users.calls.update, legacy_id).with_body(body);
    match exchange(x, call).await? {
        Ok(answer) => record_of(m, answer, legacy_id, x).await,
        Err(f) => Err(write_refusal(m, f).into()),
    }
}

/// Brings the record to `want` through the lifecycle: the deactivate / reactivate calls, or,
/// where deactivation deletes, the delete call.
pub async fn set_active<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    record: Value,
    want: bool,
    x: &mut X,
) -> Result<After, X::Error> {
    let um = &m.users;
    if !want && um.deactivate == DeactivateSpec::Delete {
        delete_record(m, legacy_id, x).await?;
        return Ok(After::Deleted(record));
    }
    if um.active.is_none() || um.is_active(&record) == want {
        return Ok(After::Record(record));
    }
    let call = if want {
        um.calls.reactivate.as_ref()
    } else {
        um.calls.deactivate.as_ref()
    };
    let Some(call) = call else {
        return match um.active.as_ref().and_then(|a| a.written.as_ref()) {
            Some(w) => {
                let value = if want { &w.active } else { &w.inactive };
                write_state(m, legacy_id, record, (w.field.clone(), value.clone()), x)
                    .await
                    .map(After::Record)
            }
            None => Ok(After::Record(record)),
        };
    };
    match exchange(x, Outbound::about(call, legacy_id)).await? {
        Ok(answer) => Ok(After::Record(record_of(m, answer, legacy_id, x).await?)),
        Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
    }
}

/// `active` written as a field: the update call with the state field. A `full` update body
/// sends the whole record as the mapping writes it, with the state field.
async fn write_state<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    current: Value,
    state: (FieldPath, Value),
    x: &mut X,
) -> Result<Value, X::Error> {
    let um = &m.users;
    let mut fields: FieldValues = match um.calls.update.body {
        Some(BodySpec::Full) => um
            .write(&Value::Object(um.read(&current)))
            .map_err(Refusal::from)?,
        _ => Vec::new(),
    };
    fields.retain(|(f, _)| *f != state.0);
    fields.push(state);
    let body = um.body(
        um.calls.update.body.unwrap_or(BodySpec::Changed),
        &fields,
        Some(&current),
    );
    let call = Outbound::about(&um.calls.update, legacy_id).with_body(body);
    match exchange(x, call).await? {
        Ok(answer) => record_of(m, answer, legacy_id, x).await,
        Err(f) => Err(write_refusal(m, f).into()),
    }
}

/// The delete call, when the mapping declares one (a record already gone is fine).
async fn delete_record<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    x: &mut X,
) -> Result<(), X::Error> {
    if let Some(call) = &m.users.calls.delete {
        match exchange(x, Outbound::about(call, legacy_id)).await? {
            Ok(_) => {}
            Err(f) if f.is_not_found() => {}
            Err(f) => return Err(Refusal::legacy(f, &m.legacy).into()),
        }
    }
    Ok(())
}

/// `POST /Users`: the create call; on a conflict, the `on_conflict` rules; then `active`.
pub async fn create<X: Exchange>(
    m: &Mapping,
    body: &Value,
    x: &mut X,
) -> Result<Created, X::Error> {
    let um = &m.users;
    request::check_schemas(body, schema::USER).map_err(Refusal::from)?;
    let fields = um.write(body).map_err(Refusal::from)?;
    let want_active = request::requested_active(body)
        .map_err(Refusal::from)?
        .unwrap_or(true);
    let kind = um.calls.create.body.unwrap_or(BodySpec::Mapped);
    let call = Outbound::new(&um.calls.create).with_body(um.body(kind, &fields, None));
    let answer = match exchange(x, call).await {
        Ok(answer) => answer,
        // No answer came: the account may exist now. Look for it before answering.
        Err(e) if X::outcome_unknown(&e) => {
            let Some((legacy_id, record)) = created_anyway(m, body, &fields, x).await else {
                return Err(e);
            };
            let after = set_active(m, &legacy_id, record, want_active, x).await?;
            return Ok(Created {
                legacy_id,
                after,
                adopted: None,
            });
        }
        Err(e) => return Err(e),
    };
    let (legacy_id, record, adopted) = match answer {
        Ok(record) => {
            let legacy_id = um.legacy_id_of(&record).ok_or_else(|| {
                Refusal::from(TranslateError::Answer(
                    "to a create has no record id".into(),
                ))
            })?;
            (legacy_id, record, None)
        }
        Err(f) if f.is_conflict() => {
            let (id, record, then) = resolve_conflict(m, body, &fields, &f, x).await?;
            (id, record, Some(then))
        }
        // A server error may come after the work is done: look before refusing.
        Err(f) if f.status >= 500 => match created_anyway(m, body, &fields, x).await {
            Some((id, record)) => (id, record, None),
            None => return Err(write_refusal(m, f).into()),
        },
        Err(f) => return Err(write_refusal(m, f).into()),
    };
    let after = set_active(m, &legacy_id, record, want_active, x).await?;
    Ok(Created {
        legacy_id,
        after,
        adopted,
    })
}

/// After a create whose outcome is unknown (no answer, or a server error, which may come
/// after the work): the account with the request's userName, when the legacy app has one
/// holding every value the create sent — the create took effect. `None` when there is none,
/// when it differs, when the mapping cannot look users up by userName, or when the look-up
/// fails too (the caller then answers the create's own failure).
async fn created_anyway<X: Exchange>(
    m: &Mapping,
    body: &Value,
    fields: &FieldValues,
    x: &mut X,
) -> Option<(LegacyId, Value)> {
    let (id, record) = find_existing(m, body, "userName", x).await.ok()??;
    m.users.holds(&record, fields).then_some((id, record))
}

/// A create met an existing record with the same unique key: the first `on_conflict` rule
/// that applies to it decides (take it over, then update it with the request), or the create
/// is refused as taken.
async fn resolve_conflict<X: Exchange>(
    m: &Mapping,
    body: &Value,
    fields: &FieldValues,
    f: &LegacyFailure,
    x: &mut X,
) -> Result<(LegacyId, Value, ConflictThen), X::Error> {
    let um = &m.users;
    let taken = || Refusal::Taken {
        user_name: request::member(body, "userName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        cause: format!(
            "{} answered {}",
            m.legacy.name,
            f.code.as_deref().unwrap_or("a conflict")
        ),
    };
    let found = match (
        &f.existing_id,
        f.rule.as_ref().and_then(|r| r.find_existing_by.as_deref()),
    ) {
        (Some(id), _) => read(m, id, x).await?.map(|r| (id.clone(), r)),
        (None, Some(path)) => find_existing(m, body, path, x).await?,
        (None, None) => None,
    };
    let Some((existing_id, existing)) = found else {
        return Err(taken().into());
    };
    let Some(then) = conflict_rule(um, body, &existing) else {
        return Err(taken().into());
    };
    let existing = match (then, &um.calls.take_over) {
        (ConflictThen::TakeOverAndUpdate, Some(take_over)) => {
            match exchange(x, Outbound::about(take_over, &existing_id)).await? {
                Ok(answer) => record_of(m, answer, &existing_id, x).await?,
                Err(f) => return Err(Refusal::legacy(f, &m.legacy).into()),
            }
        }
        _ => existing,
    };
    let record = update(m, &existing_id, existing, fields, x).await?;
    Ok((existing_id, record, then))
}

/// The action of the first `on_conflict` rule that applies to the existing record.
pub fn conflict_rule(um: &UserMapping, body: &Value, existing: &Value) -> Option<ConflictThen> {
    let wanted_ext = request::member(body, "externalId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let existing_ext = um
        .read(existing)
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    um.on_conflict
        .iter()
        .find(|rule| match &rule.when {
            ConflictWhen::Keyword(ConflictKeyword::ExistingInactive) => !um.is_active(existing),
            ConflictWhen::Keyword(ConflictKeyword::SameExternalId) => {
                wanted_ext.is_some() && wanted_ext == existing_ext.as_deref()
            }
            ConflictWhen::Field(test) => field_test(existing, test),
        })
        .map(|rule| rule.then)
}

/// Finds the record a conflict is about through the list call, filtering on the value the
/// request gives the SCIM attribute `path` (a pushed-down filter of the mapping).
async fn find_existing<X: Exchange>(
    m: &Mapping,
    body: &Value,
    path: &str,
    x: &mut X,
) -> Result<Option<(LegacyId, Value)>, X::Error> {
    let um = &m.users;
    let Ok(attr) = AttrPath::parse(path) else {
        return Ok(None);
    };
    let Some(value) = scim::resource::text_at(body, &attr) else {
        return Ok(None);
    };
    let filter = Filter::Compare(attr, CompareOp::Eq, Value::String(value));
    let Some(query) = um.push_down(&filter) else {
        return Ok(None);
    };
    let mut pages = Pages::new(&um.calls.list, &m.legacy.paging, None, query);
    let items = pages.next(x, &m.legacy).await?.unwrap_or_default();
    let items = complete(m, items, 1, x).await?;
    // The legacy filter may match more loosely than SCIM: the record must match the filter.
    Ok(items.into_iter().find_map(|r| {
        let attrs = Value::Object(um.read(&r));
        if filter.matches(&attrs, &um.schema) {
            um.legacy_id_of(&r).map(|id| (id, r))
        } else {
            None
        }
    }))
}

/// `PUT /Users/{id}`: a full replace (mapped attributes absent from the body are cleared),
/// then `active` when the body says.
pub async fn replace<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    current: Value,
    body: &Value,
    x: &mut X,
) -> Result<Written, X::Error> {
    let um = &m.users;
    request::check_schemas(body, schema::USER).map_err(Refusal::from)?;
    let fields = um.write(body).map_err(Refusal::from)?;
    let want_active = request::requested_active(body).map_err(Refusal::from)?;
    let was = um.active.is_some().then(|| um.is_active(&current));
    let activation = Activation::between(was, want_active);
    let record = update(m, legacy_id, current, &fields, x).await?;
    let after = match want_active {
        Some(want) => set_active(m, legacy_id, record, want, x).await?,
        None => After::Record(record),
    };
    Ok(Written {
        after,
        activation,
        external_id: external_id_of(body),
    })
}

/// The fields a PATCH sends: every field when the update replaces the whole record, else
/// only those of the attributes that change (values that do not change are not re-checked).
pub fn patch_fields(
    um: &UserMapping,
    before: &Value,
    after: &Value,
) -> Result<FieldValues, TranslateError> {
    if um.calls.update.body == Some(BodySpec::Full) {
        um.write(after)
    } else {
        um.write_changed(before, after)
    }
}

/// `PATCH /Users/{id}`: the operations applied to `before` (the resource as SCIM shows it);
/// the changed fields go to the update call, `active` through the lifecycle calls.
pub async fn patch<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    current: Value,
    before: Value,
    body: &Value,
    x: &mut X,
) -> Result<Written, X::Error> {
    let um = &m.users;
    let ops = patch::parse_request(body).map_err(Refusal::from)?;
    if ops.iter().any(removes_active) {
        return Err(Refusal::ActiveRemoved.into());
    }
    let after = patch::apply_owned(before.clone(), &ops, &um.schema).map_err(Refusal::from)?;
    let activation = Activation::between(
        before.get("active").and_then(Value::as_bool),
        after.get("active").and_then(Value::as_bool),
    );
    let fields = patch_fields(um, &before, &after).map_err(Refusal::from)?;
    let record = if fields.is_empty() {
        current
    } else {
        update(m, legacy_id, current, &fields, x).await?
    };
    let external_id = external_id_of(&after);
    let after = match after.get("active") {
        Some(Value::Bool(want)) => set_active(m, legacy_id, record, *want, x).await?,
        _ => After::Record(record),
    };
    Ok(Written {
        after,
        activation,
        external_id,
    })
}

/// Whether an operation removes `active` (by path, or `remove` of the whole core schema).
fn removes_active(op: &PatchOperation) -> bool {
    op.op == PatchOpKind::Remove
        && op.path.as_ref().is_some_and(|p| {
            p.attr.eq_ignore_ascii_case("active")
                && p.sub.is_none()
                && p.urn
                    .as_deref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(schema::USER))
        })
}

/// `DELETE /Users/{id}`: per the mapping, deactivate, or delete. Either way the SCIM id is
/// gone afterwards: the caller tombstones it.
pub async fn delete<X: Exchange>(
    m: &Mapping,
    legacy_id: &LegacyId,
    record: Value,
    x: &mut X,
) -> Result<(), X::Error> {
    match m.users.delete {
        DeleteSpec::Deactivate => {
            set_active(m, legacy_id, record, false, x).await?;
        }
        DeleteSpec::Delete => delete_record(m, legacy_id, x).await?,
    }
    Ok(())
}

/// A SCIM resource's (or request body's) `externalId`, when it has a non-empty one.
pub fn external_id_of(resource: &Value) -> Option<String> {
    request::member(resource, "externalId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `id eq "…"` alone: the one filter answered by a lookup instead of a list.
pub fn id_eq(filter: &Filter) -> Option<&str> {
    attr_eq(filter, "id")
}

/// `externalId eq "…"` alone: answered from the cross-reference when the mapping has no
/// field for `externalId` (the sidecar keeps it).
pub fn external_id_eq(filter: &Filter) -> Option<&str> {
    attr_eq(filter, "externalId")
}

fn attr_eq<'f>(filter: &'f Filter, name: &str) -> Option<&'f str> {
    match filter {
        Filter::Compare(path, CompareOp::Eq, Value::String(v))
            if path.name.eq_ignore_ascii_case(name)
                && path.sub.is_none()
                && path
                    .urn
                    .as_deref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(schema::USER)) =>
        {
            Some(v)
        }
        _ => None,
    }
}

/// The pages of the user list call for `p`'s filter (pushed down where the app can; the
/// caller still matches every record).
pub fn list_pages<'m>(m: &'m Mapping, p: &ListParams) -> Pages<'m> {
    let query = p
        .filter
        .as_ref()
        .and_then(|f| m.users.push_down(f))
        .unwrap_or_default();
    Pages::new(&m.users.calls.list, &m.legacy.paging, None, query)
}

/// `totalResults` of an unfiltered user list from the app's own total: the records it
/// lists but those tombstoned, which stay in its list only when DELETE deactivates. `None`
/// where that does not hold (the answer leaves `totalResults` out of a cursor page).
pub fn unfiltered_total(
    m: &Mapping,
    legacy_total: Option<u64>,
    tombstoned: &HashSet<LegacyId>,
) -> Option<u64> {
    let total = legacy_total?;
    (tombstoned.is_empty() || m.users.delete == DeleteSpec::Deactivate)
        .then(|| total.saturating_sub(tombstoned.len() as u64))
}

/// One listed record, as the caller built it: its legacy id, its SCIM resource and whether
/// the cross-reference holds a tombstone for it.
pub type Row = (LegacyId, Value, bool);

/// A list of users answered from the legacy list pages.
///
/// Unfiltered, when the app reports a total, only the pages up to the requested window are
/// read ("direct"): without tombstones the first page read is the one holding the window's
/// start; with tombstones the positions shift, so the walk starts at the first page, and the
/// total is the legacy total less the tombstoned records (which stay in the legacy list when
/// DELETE deactivates: SCIM lists deactivated users). Otherwise every page is read ("scan"),
/// the filter pushed down where the app can, and matched by the sidecar in any case.
#[derive(Debug)]
pub struct Listing<'m> {
    m: &'m Mapping,
    pages: Pages<'m>,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Direct {
        hidden: HashSet<LegacyId>,
        skip: u64,
        count: u64,
        visible: u64,
        out: Vec<Value>,
    },
    Scan {
        filter: Option<Filter>,
        window: Window<Value>,
    },
}

impl<'m> Listing<'m> {
    /// The listing of `p` (whose filter is validated, and is not an `id eq` lookup), given the
    /// tombstoned legacy ids of the tenant when the request has no filter.
    pub fn new(m: &'m Mapping, p: &ListParams, tombstoned: HashSet<LegacyId>) -> Self {
        let um = &m.users;
        let paging = &m.legacy.paging;
        let shape = um.calls.list.list.as_ref().unwrap_or(&paging.shape);
        let direct = p.filter.is_none()
            && paging.addressable()
            && shape.total.is_some()
            && !um.calls.list.unpaged
            && (tombstoned.is_empty() || um.delete == DeleteSpec::Deactivate);
        if !direct {
            return Self::scan(m, p);
        }
        let skip = p.start_index - 1;
        let size = paging.max_page_size;
        let pages = Pages::new(&um.calls.list, paging, None, Vec::new());
        let (pages, visible) = if p.count == 0 {
            (pages.of_size(1), 0)
        } else if tombstoned.is_empty() {
            let index = (skip / size) * size;
            (pages.starting_at(index), index)
        } else {
            (pages, 0)
        };
        Listing {
            m,
            pages,
            mode: Mode::Direct {
                hidden: tombstoned,
                skip,
                count: p.count,
                visible,
                out: Vec::new(),
            },
        }
    }

    fn scan(m: &'m Mapping, p: &ListParams) -> Self {
        Listing {
            m,
            pages: list_pages(m, p),
            mode: Mode::Scan {
                filter: p.filter.clone(),
                window: p.window(),
            },
        }
    }

    /// The next page's call, `None` when the answer is complete.
    pub fn next_call(&self) -> Option<Outbound<'m>> {
        self.pages.next_call()
    }

    /// Reads the answer to [`Listing::next_call`] (with its `Link` next target): the page's
    /// records, for the caller to build (and record) as [`Row`]s and hand to
    /// [`Listing::accept`].
    pub fn read(&mut self, answer: Answer, link_next: Option<&str>) -> Result<Vec<Value>, Refusal> {
        self.pages.read(answer, link_next, &self.m.legacy)
    }

    /// Takes the rows of the page just read, in order. `p` is the request (a direct listing
    /// whose legacy app stops reporting a total starts over as a scan).
    pub fn accept(&mut self, rows: Vec<Row>, p: &ListParams) {
        let um = &self.m.users;
        if matches!(self.mode, Mode::Direct { .. }) && self.pages.total().is_none() {
            *self = Self::scan(self.m, p);
            return;
        }
        let short = self.pages.last_page_len() < self.pages.page_size();
        match &mut self.mode {
            Mode::Direct {
                hidden: _,
                skip,
                count,
                visible,
                out,
            } => {
                for (_, resource, tombstoned) in rows {
                    if tombstoned {
                        continue;
                    }
                    if *visible >= *skip && (out.len() as u64) < *count {
                        out.push(resource);
                    }
                    *visible += 1;
                }
                if *count == 0 || out.len() as u64 >= *count || short {
                    self.pages.stop();
                }
            }
            Mode::Scan { filter, window } => {
                for (_, resource, tombstoned) in rows {
                    let unmatched = filter
                        .as_ref()
                        .is_some_and(|f| !f.matches(&resource, &um.schema));
                    if !tombstoned && !unmatched {
                        window.push(resource);
                    }
                }
            }
        }
    }

    /// (totalResults, the resources of the window, not yet projected).
    pub fn finish(self) -> (u64, Vec<Value>) {
        match self.mode {
            Mode::Direct { hidden, out, .. } => {
                let total = self.pages.total().unwrap_or(0);
                (total.saturating_sub(hidden.len() as u64), out)
            }
            Mode::Scan { window, .. } => window.finish(),
        }
    }
}
