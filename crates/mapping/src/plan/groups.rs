//! The plans of the Group operations. Groups belong to the legacy app: reading them always
//! works; creating, renaming, deleting and changing members only where the mapping declares
//! the call (otherwise the refusal carries the mapping's advice for the admin).

use std::collections::{HashMap, HashSet};

use scim::list::ListParams;
use scim::patch::members::{GroupPatch, MemberChange, group_patch};
use scim::patch::{PatchOpKind, PatchOperation};
use scim::request;
use serde_json::{Map, Value, json};

use super::{Answer, Exchange, Outbound, Pages, Refusal, exchange};
use crate::apply::{LegacyFailure, pointer_text};
use crate::ids::LegacyId;
use crate::{Call, GroupMapping, Mapping};

/// The cross-reference's resource type of groups.
pub const RESOURCE_TYPE: &str = "Group";

/// The group mapping, or the refusal of a mapping without groups.
pub fn mapping(m: &Mapping) -> Option<&GroupMapping> {
    m.groups.as_ref()
}

/// Refuses a change to a group the mapping locks.
pub fn check_unlocked(gm: &GroupMapping, record: &Value) -> Result<(), Refusal> {
    match &gm.locked {
        Some(lock) if lock.matches(record) => Err(Refusal::Locked {
            detail: lock.detail.clone(),
        }),
        _ => Ok(()),
    }
}

/// Reads one group by legacy id; `NotFound` (naming `id`, the SCIM id asked for) when the
/// legacy app has no such group.
pub async fn read<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    id: &str,
    x: &mut X,
) -> Result<Value, X::Error> {
    match exchange(x, Outbound::about(&gm.get, legacy_id)).await? {
        Ok(record) => Ok(record),
        Err(f) if f.is_not_found() => Err(Refusal::NotFound {
            resource: RESOURCE_TYPE,
            id: id.to_owned(),
        }
        .into()),
        Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
    }
}

/// The pages of a group list (the filter pushed down where the app can).
pub fn list_pages<'m>(m: &'m Mapping, gm: &'m GroupMapping, p: &ListParams) -> Pages<'m> {
    let query = p
        .filter
        .as_ref()
        .and_then(|f| crate::apply::push_down(&gm.filters, &gm.schema, f))
        .unwrap_or_default();
    Pages::new(&gm.list, &m.legacy.paging, None, query)
}

/// One member as the legacy member list gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The user's legacy id.
    pub legacy_id: LegacyId,
    /// Its display name, when the list gives one.
    pub display: Option<String>,
}

/// The pages of a group's member list; each member once, in the order listed.
#[derive(Debug)]
pub struct MemberPages<'m> {
    pages: Option<Pages<'m>>,
    call: Option<&'m Call>,
    legacy: &'m crate::Legacy,
    known: HashSet<LegacyId>,
}

impl<'m> MemberPages<'m> {
    /// The members of the group `legacy_id` (none, when the mapping reads no members).
    pub fn new(m: &'m Mapping, gm: &'m GroupMapping, legacy_id: &LegacyId) -> Self {
        MemberPages {
            pages: gm
                .members
                .as_ref()
                .map(|c| Pages::new(c, &m.legacy.paging, Some(legacy_id), Vec::new())),
            call: gm.members.as_ref(),
            legacy: &m.legacy,
            known: HashSet::new(),
        }
    }

    /// The next page of members not met before; `None` after the last.
    pub async fn next<X: Exchange>(&mut self, x: &mut X) -> Result<Option<Vec<Member>>, X::Error> {
        let (Some(pages), Some(call)) = (self.pages.as_mut(), self.call) else {
            return Ok(None);
        };
        let Some(items) = pages.next(x, self.legacy).await? else {
            return Ok(None);
        };
        let id_at = call.member_id.as_deref().unwrap_or("");
        let mut out = Vec::new();
        for item in items {
            let Some(legacy_id) = pointer_text(&item, id_at).map(LegacyId::new) else {
                continue;
            };
            if !self.known.insert(legacy_id.clone()) {
                continue;
            }
            let display = call
                .member_display
                .as_deref()
                .and_then(|p| pointer_text(&item, p));
            out.push(Member { legacy_id, display });
        }
        Ok(Some(out))
    }
}

/// What `POST /Groups` asks for: the name, and the members as a change.
pub fn create_request(body: &Value) -> Result<(String, GroupPatch), Refusal> {
    let name = request::required_text(body, "displayName")?;
    let change = match request::member(body, "members") {
        Some(members) => group_patch(&[PatchOperation {
            op: PatchOpKind::Add,
            path: None,
            value: Some(json!({ "members": members })),
        }])?,
        None => group_patch(&[])?,
    };
    Ok((name, change))
}

/// What `PUT /Groups/{id}` asks for: the name it asserts (absent: keep it), and the members
/// as a replacement.
pub fn replace_request(body: &Value) -> Result<(Option<String>, GroupPatch), Refusal> {
    let name = request::optional_text(body, "displayName")?;
    let members = request::member(body, "members")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let change = group_patch(&[PatchOperation {
        op: PatchOpKind::Replace,
        path: None,
        value: Some(json!({ "members": members })),
    }])?;
    Ok((name, change))
}

/// What `PATCH /Groups/{id}` asks for.
pub fn patch_request(body: &Value) -> Result<GroupPatch, Refusal> {
    let ops = scim::patch::parse_request(body)?;
    Ok(group_patch(&ops)?)
}

/// The body of a create or rename: the display name in the declared field.
fn name_body(gm: &GroupMapping, name: &str) -> Option<Value> {
    let field = gm.display_name_field.as_ref()?;
    let mut body = Value::Object(Map::new());
    field.set(&mut body, json!(name));
    Some(body)
}

/// What a group write did.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    /// The group's legacy id.
    pub legacy_id: LegacyId,
    /// The group record as it now is.
    pub record: Value,
    /// The membership push, when the request changed members.
    pub pushed: Option<Pushed>,
    /// The members read to diff a replacement (for the caller to record).
    pub members_read: Vec<Member>,
}

/// `POST /Groups`: the create call, then the members given ([`change`]). `ids` translates
/// the members' SCIM ids (the caller refused unknown ones before).
pub async fn create<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    name: &str,
    members: &GroupPatch,
    ids: &HashMap<String, LegacyId>,
    concurrency: usize,
    x: &mut X,
) -> Result<Changed, X::Error> {
    let (legacy_id, record) = create_group(m, gm, name, x).await?;
    change(m, gm, &legacy_id, record, members, &[], ids, concurrency, x).await
}

/// The create call alone.
async fn create_group<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    name: &str,
    x: &mut X,
) -> Result<(LegacyId, Value), X::Error> {
    let Some(call) = &gm.create else {
        return Err(link_only(gm, "GET").into());
    };
    let mut out = Outbound::new(call);
    out.body = name_body(gm, name);
    match exchange(x, out).await? {
        Ok(record) => {
            let legacy_id = gm.legacy_id_of(&record).map_err(Refusal::from)?;
            Ok((legacy_id, record))
        }
        Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
    }
}

/// The refusal of a create or delete the mapping declares no call for.
pub fn link_only(gm: &GroupMapping, allow: &'static str) -> Refusal {
    Refusal::LinkOnly {
        allow,
        hint: gm.link_only_hint.clone(),
    }
}

/// Refuses creating a group before anything else happens, when the mapping has no create call.
pub fn check_creatable(gm: &GroupMapping) -> Result<(), Refusal> {
    match gm.create {
        Some(_) => Ok(()),
        None => Err(link_only(gm, "GET")),
    }
}

/// `DELETE /Groups/{id}`: the delete call (a group already gone is fine).
pub async fn delete<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    record: &Value,
    x: &mut X,
) -> Result<(), X::Error> {
    let Some(call) = &gm.delete else {
        return Err(link_only(gm, "GET, PUT, PATCH").into());
    };
    check_unlocked(gm, record)?;
    match exchange(x, Outbound::about(call, legacy_id)).await? {
        Ok(_) => Ok(()),
        Err(f) if f.is_not_found() => Ok(()),
        Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
    }
}

/// The name a request leaves is the last `displayName` it sets (`names`, in order: PATCH
/// operations apply in order). One equal to the current name is a no-op (Okta sends it after
/// every push). Any other is a rename: through the rename call when the mapping declares one,
/// refused otherwise (the legacy app owns group names). Answers the record as it now is.
pub async fn rename<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    record: Value,
    names: &[String],
    x: &mut X,
) -> Result<Value, X::Error> {
    let current = gm.display_name_of(&record).unwrap_or_default();
    let Some(new) = names.last().filter(|n| **n != current) else {
        return Ok(record);
    };
    let Some(call) = &gm.rename else {
        return Err(Refusal::NameReadOnly {
            app: m.legacy.name.clone(),
            asked: new.clone(),
            current,
            hint: gm.link_only_hint.clone(),
        }
        .into());
    };
    let mut out = Outbound::about(call, legacy_id);
    out.body = name_body(gm, new);
    match exchange(x, out).await? {
        Ok(answer) if pointer_text(&answer, &gm.legacy_id).is_some() => Ok(answer),
        Ok(_) => match exchange(x, Outbound::about(&gm.get, legacy_id)).await? {
            Ok(record) => Ok(record),
            Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
        },
        Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
    }
}

/// What a membership push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Members asked to be added (those skipped included).
    pub added: Vec<LegacyId>,
    /// Members asked to be removed (those skipped included).
    pub removed: Vec<LegacyId>,
    /// Member calls that succeeded.
    pub calls: u64,
    /// Members skipped (a `skip_member` code, e.g. an archived user), with the code.
    pub skipped: Vec<(Vec<LegacyId>, String)>,
}

/// The add and remove calls of a membership change, or the refusal of a mapping that
/// declares none.
fn member_calls<'m>(m: &Mapping, gm: &'m GroupMapping) -> Result<(&'m Call, &'m Call), Refusal> {
    match (
        gm.add_member.as_ref().or(gm.add_members.as_ref()),
        gm.remove_member.as_ref().or(gm.remove_members.as_ref()),
    ) {
        (Some(a), Some(r)) => Ok((a, r)),
        _ => Err(Refusal::MembersFixed {
            app: m.legacy.name.clone(),
            hint: gm.link_only_hint.clone(),
        }),
    }
}

/// A PATCH or PUT of a group the caller loaded (and checked is not locked): the rename, if
/// `names` asks for one, then the membership change: a delta as given, a replacement diffed
/// against the members read now. `ids` translates the members' SCIM ids (the caller refused
/// unknown ones before).
#[allow(clippy::too_many_arguments)]
pub async fn change<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    record: Value,
    change: &GroupPatch,
    names: &[String],
    ids: &HashMap<String, LegacyId>,
    concurrency: usize,
    x: &mut X,
) -> Result<Changed, X::Error> {
    let record = rename(m, gm, legacy_id, record, names, x).await?;
    let mut out = Changed {
        legacy_id: legacy_id.clone(),
        record,
        pushed: None,
        members_read: Vec::new(),
    };
    if !change.changes_members() {
        return Ok(out);
    }
    if let Some(set) = &gm.set_members {
        return set_members(m, gm, set, out, change, ids, x).await;
    }
    member_calls(m, gm)?;
    if let MemberChange::Replace(_) = change.members {
        let mut pages = MemberPages::new(m, gm, legacy_id);
        while let Some(members) = pages.next(x).await? {
            out.members_read.extend(members);
        }
    }
    let current: HashSet<LegacyId> = out
        .members_read
        .iter()
        .map(|m| m.legacy_id.clone())
        .collect();
    let (adds, removes) = diff(&change.members, ids, &current);
    out.pushed = Some(push(m, gm, legacy_id, &adds, &removes, concurrency, x).await?);
    Ok(out)
}

/// A membership change where the app takes only the whole list (`set_members`): the members
/// read now, the change applied to them (members kept in their order, new ones after), and
/// one call with the list — none when it is the same. The group's version, where the mapping
/// names one, goes with it; a `409` or `412` answer then means the group changed meanwhile:
/// it is read again and the list computed again, once.
async fn set_members<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    set: &Call,
    mut out: Changed,
    change: &GroupPatch,
    ids: &HashMap<String, LegacyId>,
    x: &mut X,
) -> Result<Changed, X::Error> {
    let legacy_id = out.legacy_id.clone();
    for attempt in 1..=2 {
        // The version the list is computed from: the ETag of a fresh read, or a field of the
        // record (read again after a conflict).
        let mut etag = None;
        if gm.etag {
            let (record, tag) = read_versioned(m, gm, &legacy_id, x).await?;
            out.record = record;
            etag = tag;
        } else if attempt == 2 {
            out.record = read(m, gm, &legacy_id, legacy_id.as_str(), x).await?;
        }
        out.members_read.clear();
        let mut pages = MemberPages::new(m, gm, &legacy_id);
        while let Some(members) = pages.next(x).await? {
            out.members_read.extend(members);
        }
        let current: Vec<LegacyId> = (out.members_read.iter())
            .map(|m| m.legacy_id.clone())
            .collect();
        let now: HashSet<LegacyId> = current.iter().cloned().collect();
        let (adds, removes) = diff(&change.members, ids, &now);
        let adds: Vec<LegacyId> = dedup(adds.into_iter().filter(|a| !now.contains(a)));
        let removes: HashSet<LegacyId> = removes.into_iter().filter(|r| now.contains(r)).collect();
        if adds.is_empty() && removes.is_empty() {
            return Ok(out);
        }
        let mut target: Vec<LegacyId> = current
            .into_iter()
            .filter(|c| !removes.contains(c))
            .collect();
        target.extend(adds.iter().cloned());
        let Some(batch) = &set.batch else {
            return Err(Refusal::MembersFixed {
                app: m.legacy.name.clone(),
                hint: gm.link_only_hint.clone(),
            }
            .into());
        };
        if target.len() > batch.max {
            return Err(Refusal::TooManyMembers {
                app: m.legacy.name.clone(),
                count: target.len(),
                max: batch.max,
            }
            .into());
        }
        let mut body = Value::Object(Map::new());
        if let Some(o) = body.as_object_mut() {
            o.insert(batch.field.clone(), ids_json(&target, batch.ids));
        }
        let mut call = Outbound::about(set, &legacy_id);
        call.if_match = etag;
        if let Some((at, place)) = &gm.version
            && let Some(version) = at.get(&out.record).filter(|v| !v.is_null())
        {
            match place {
                crate::spec::VersionIn::Body => at.set(&mut body, version.clone()),
                crate::spec::VersionIn::IfMatch => {
                    call.if_match = Some(match version {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
            }
        }
        match exchange(x, call.with_body(body)).await? {
            Ok(_) => {
                out.pushed = Some(Pushed {
                    added: adds,
                    removed: removes.into_iter().collect(),
                    calls: 1,
                    skipped: Vec::new(),
                });
                return Ok(out);
            }
            Err(f) if (gm.version.is_some() || gm.etag) && matches!(f.status, 409 | 412) => {
                if attempt == 2 {
                    break;
                }
            }
            Err(f) => return Err(Refusal::legacy(f, &m.legacy).into()),
        }
    }
    Err(Refusal::GroupChanged {
        app: m.legacy.name.clone(),
    }
    .into())
}

/// The group record with its `ETag` (the `get` call's answer header).
async fn read_versioned<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    x: &mut X,
) -> Result<(Value, Option<String>), X::Error> {
    let (mut answer, etag) = x
        .send_versioned(Outbound::about(&gm.get, legacy_id))
        .await?;
    gm.get.settle(&mut answer);
    match answer {
        Ok(record) => Ok((record, etag)),
        Err(f) if f.is_not_found() => Err(Refusal::NotFound {
            resource: RESOURCE_TYPE,
            id: legacy_id.to_string(),
        }
        .into()),
        Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
    }
}

/// `ids`, each once, in order.
fn dedup(ids: impl Iterator<Item = LegacyId>) -> Vec<LegacyId> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(id.clone())).collect()
}

/// Member ids as a batch body writes them: strings, or numbers (an id that is no whole
/// number stays a string).
fn ids_json(ids: &[LegacyId], kind: crate::spec::BatchIds) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| match (kind, id.as_str().parse::<u64>()) {
                (crate::spec::BatchIds::Number, Ok(n)) => json!(n),
                _ => json!(id.as_str()),
            })
            .collect(),
    )
}

/// The legacy ids to add and to remove: a delta as given, a replacement diffed against
/// `current` (the group's members now; read by the caller, who records them). Member ids
/// are translated through `ids` (SCIM id → legacy id).
pub fn diff(
    change: &MemberChange,
    ids: &HashMap<String, LegacyId>,
    current: &HashSet<LegacyId>,
) -> (Vec<LegacyId>, Vec<LegacyId>) {
    let legacy = |scim: &String| ids.get(scim).cloned();
    match change {
        MemberChange::Delta { add, remove } => (
            add.iter().filter_map(legacy).collect(),
            remove.iter().filter_map(legacy).collect(),
        ),
        MemberChange::Replace(all) => {
            let target: HashSet<LegacyId> = all.iter().filter_map(legacy).collect();
            let mut adds: Vec<LegacyId> = target.difference(current).cloned().collect();
            let mut removes: Vec<LegacyId> = current.difference(&target).cloned().collect();
            adds.sort();
            removes.sort();
            (adds, removes)
        }
    }
}

/// The member calls of a change: one per member, or one per batch of members (the body
/// `{ <field>: [ids] }`) when the mapping batches.
fn calls_for<'m>(
    call: &'m Call,
    group: &LegacyId,
    ids: &[LegacyId],
) -> Vec<(Outbound<'m>, Vec<LegacyId>)> {
    match &call.batch {
        Some(b) => ids
            .chunks(b.max.max(1))
            .map(|chunk| {
                let mut body = Map::new();
                body.insert(b.field.clone(), ids_json(chunk, b.ids));
                let out = Outbound::about(call, group).with_body(Value::Object(body));
                (out, chunk.to_vec())
            })
            .collect(),
        None => ids
            .iter()
            .map(|id| {
                let mut out = Outbound::about(call, group);
                out.member_legacy_id = Some(id.clone());
                (out, vec![id.clone()])
            })
            .collect(),
    }
}

/// Applies a membership change: the minimal add and remove calls (`adds`, `removes` from
/// [`diff`]), at most `concurrency` in flight. A member whose call fails with a `skip_member`
/// code is skipped and reported; any other failure stops the push (member calls are
/// idempotent: a retry of the whole request is safe).
pub async fn push<X: Exchange>(
    m: &Mapping,
    gm: &GroupMapping,
    group: &LegacyId,
    adds: &[LegacyId],
    removes: &[LegacyId],
    concurrency: usize,
    x: &mut X,
) -> Result<Pushed, X::Error> {
    let (add_call, remove_call) = member_calls(m, gm)?;
    let mut calls = calls_for(add_call, group, adds);
    calls.extend(calls_for(remove_call, group, removes));
    let declared: Vec<&Call> = calls.iter().map(|(out, _)| out.call).collect();
    let (outbound, members): (Vec<Outbound<'_>>, Vec<Vec<LegacyId>>) = calls.into_iter().unzip();
    let mut pushed = Pushed {
        added: adds.to_vec(),
        removed: removes.to_vec(),
        ..Pushed::default()
    };
    let mut each = |i: usize, mut answer: Answer| -> Result<(), X::Error> {
        if let Some(call) = declared.get(i) {
            call.settle(&mut answer);
        }
        match answer {
            Ok(_) => {
                pushed.calls += 1;
                Ok(())
            }
            Err(f) if skips(&f) => {
                let who = members.get(i).cloned().unwrap_or_default();
                pushed.skipped.push((who, f.code.unwrap_or_default()));
                Ok(())
            }
            Err(f) => Err(Refusal::legacy(f, &m.legacy).into()),
        }
    };
    x.send_all(outbound, concurrency.max(1), &mut each).await?;
    Ok(pushed)
}

fn skips(f: &LegacyFailure) -> bool {
    f.rule.as_ref().is_some_and(|r| r.skip_member)
}
