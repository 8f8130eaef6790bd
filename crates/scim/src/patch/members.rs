//! Group PATCH read as membership changes, without materialising the group.
//!
//! A group of 10,000 members is never loaded, patched and diffed as JSON: the operations are
//! folded, in order, into either an incremental delta (members to add, members to remove) or
//! a full replacement set, plus the `displayName` values the request asserts. Covers what
//! Okta and Entra ID send: `add` of `members` (a list of `{value, display}`), `remove` with
//! `members[value eq "…"]`, `remove` of `members` with a `value` list (Entra), `remove` of
//! `members` with no filter (all), `replace` of `members` (including `[]`), and path-less
//! `add` / `replace` whose value holds `members`, `displayName` and `id`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::Value;

use super::{PatchError, PatchOpKind, PatchOperation};
use crate::filter::{CompareOp, Filter};

/// The membership outcome of a PATCH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Members to add and to remove, relative to the current membership (disjoint).
    Delta {
        /// Member ids to add, in request order.
        add: Vec<String>,
        /// Member ids to remove, in request order.
        remove: Vec<String>,
    },
    /// The whole membership after the request.
    Replace(Vec<String>),
}

/// What a group PATCH asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPatch {
    /// Every `displayName` the request sets, in order (the caller decides what a rename means).
    pub display_names: Vec<String>,
    /// The membership change.
    pub members: MemberChange,
}

impl GroupPatch {
    /// Whether the request touches the membership at all (a replace always does).
    pub fn changes_members(&self) -> bool {
        match &self.members {
            MemberChange::Delta { add, remove } => !add.is_empty() || !remove.is_empty(),
            MemberChange::Replace(_) => true,
        }
    }

    /// Every member id the request names (to check they exist before any legacy call).
    pub fn named_members(&self) -> Vec<&str> {
        match &self.members {
            MemberChange::Delta { add, remove } => {
                add.iter().chain(remove).map(String::as_str).collect()
            }
            MemberChange::Replace(all) => all.iter().map(String::as_str).collect(),
        }
    }
}

/// Set of ids that remembers the order of insertion. Removing is O(1) (a request may remove
/// thousands of members one operation at a time); the order is restored once, at the end.
#[derive(Default)]
struct Ordered {
    next: u64,
    items: HashMap<String, u64>,
}

impl Ordered {
    fn insert(&mut self, id: String) {
        if let Entry::Vacant(slot) = self.items.entry(id) {
            slot.insert(self.next);
            self.next += 1;
        }
    }

    fn remove(&mut self, id: &str) {
        self.items.remove(id);
    }

    fn into_vec(self) -> Vec<String> {
        let mut items: Vec<(String, u64)> = self.items.into_iter().collect();
        items.sort_unstable_by_key(|(_, at)| *at);
        items.into_iter().map(|(id, _)| id).collect()
    }
}

/// Folds operations into membership changes.
#[derive(Default)]
struct Fold {
    replaced: Option<Ordered>,
    add: Ordered,
    remove: Ordered,
    display_names: Vec<String>,
}

impl Fold {
    fn add(&mut self, id: String) {
        match &mut self.replaced {
            Some(all) => all.insert(id),
            None => {
                self.remove.remove(&id);
                self.add.insert(id);
            }
        }
    }

    fn remove(&mut self, id: String) {
        match &mut self.replaced {
            Some(all) => all.remove(&id),
            None => {
                self.add.remove(&id);
                self.remove.insert(id);
            }
        }
    }

    fn replace(&mut self, ids: Vec<String>) {
        let mut all = Ordered::default();
        for id in ids {
            all.insert(id);
        }
        self.replaced = Some(all);
        self.add = Ordered::default();
        self.remove = Ordered::default();
    }
}

/// The member ids of a `members` value: an array of `{"value": id, …}` (or a single one).
fn member_ids(at: usize, value: Option<&Value>) -> Result<Vec<String>, PatchError> {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
    };
    items
        .into_iter()
        .map(|item| {
            let id = match item {
                Value::Object(m) => m
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("value"))
                    .and_then(|(_, v)| v.as_str()),
                Value::String(s) => Some(s.as_str()),
                _ => None,
            };
            id.filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    PatchError::InvalidValue(format!(
                        "Operations[{at}]: each member must be an object with a string \"value\""
                    ))
                })
        })
        .collect()
}

/// The ids of a `members[value eq "a" or value eq "b"]` filter.
fn filter_ids(at: usize, filter: &Filter, out: &mut Vec<String>) -> Result<(), PatchError> {
    match filter {
        Filter::Or(a, b) => {
            filter_ids(at, a, out)?;
            filter_ids(at, b, out)
        }
        Filter::Compare(path, CompareOp::Eq, Value::String(id))
            if path.name.eq_ignore_ascii_case("value") && path.sub.is_none() =>
        {
            out.push(id.clone());
            Ok(())
        }
        _ => Err(PatchError::InvalidPath(format!(
            "Operations[{at}]: members can be selected only by value eq \"<id>\""
        ))),
    }
}

fn is(key: &str, name: &str) -> bool {
    let key = key.rsplit_once(':').map_or(key, |(_, k)| k);
    key.eq_ignore_ascii_case(name)
}

/// Attributes of a group that a PATCH may name but that membership push does not change.
const IGNORED: [&str; 4] = ["id", "externalId", "meta", "schemas"];

/// Reads a group PATCH as membership changes. `ops` come from [`super::parse_request`].
pub fn group_patch(ops: &[PatchOperation]) -> Result<GroupPatch, PatchError> {
    let mut fold = Fold::default();
    for (at, op) in ops.iter().enumerate() {
        match &op.path {
            None => {
                let Some(Value::Object(value)) = &op.value else {
                    return Err(PatchError::InvalidValue(format!(
                        "Operations[{at}]: a path-less {} needs an object value",
                        op.op
                    )));
                };
                for (key, v) in value {
                    if is(key, "members") {
                        let ids = member_ids(at, Some(v))?;
                        match op.op {
                            PatchOpKind::Replace => fold.replace(ids),
                            _ => ids.into_iter().for_each(|id| fold.add(id)),
                        }
                    } else if is(key, "displayName") {
                        match v.as_str() {
                            Some(name) => fold.display_names.push(name.to_owned()),
                            None => {
                                return Err(PatchError::InvalidValue(format!(
                                    "Operations[{at}]: displayName must be a string"
                                )));
                            }
                        }
                    }
                }
            }
            Some(path) if path.attr.eq_ignore_ascii_case("members") => {
                if path.sub.is_some() {
                    // e.g. members[value eq "x"].display: nothing a link-only push changes.
                    continue;
                }
                match (op.op, &path.filter) {
                    (PatchOpKind::Remove, Some(filter)) => {
                        let mut ids = Vec::new();
                        filter_ids(at, filter, &mut ids)?;
                        ids.into_iter().for_each(|id| fold.remove(id));
                    }
                    (PatchOpKind::Remove, None) => match &op.value {
                        Some(v) if !v.is_null() => {
                            member_ids(at, Some(v))?
                                .into_iter()
                                .for_each(|id| fold.remove(id));
                        }
                        _ => fold.replace(Vec::new()),
                    },
                    (_, Some(_)) => {
                        return Err(PatchError::InvalidPath(format!(
                            "Operations[{at}]: {} of members takes no filter",
                            op.op
                        )));
                    }
                    (PatchOpKind::Replace, None) => {
                        fold.replace(member_ids(at, op.value.as_ref())?)
                    }
                    (PatchOpKind::Add, None) => {
                        member_ids(at, op.value.as_ref())?
                            .into_iter()
                            .for_each(|id| fold.add(id));
                    }
                }
            }
            Some(path) if path.attr.eq_ignore_ascii_case("displayName") => match (op.op, &op.value)
            {
                (PatchOpKind::Remove, _) => {
                    return Err(PatchError::Mutability(format!(
                        "Operations[{at}]: displayName is required and cannot be removed"
                    )));
                }
                (_, Some(Value::String(name))) => fold.display_names.push(name.clone()),
                _ => {
                    return Err(PatchError::InvalidValue(format!(
                        "Operations[{at}]: displayName must be a string"
                    )));
                }
            },
            Some(path) if IGNORED.iter().any(|a| path.attr.eq_ignore_ascii_case(a)) => {}
            Some(path) => {
                return Err(PatchError::InvalidPath(format!(
                    "Operations[{at}]: a group has no attribute {:?}",
                    path.attr
                )));
            }
        }
    }
    let members = match fold.replaced {
        Some(all) => MemberChange::Replace(all.into_vec()),
        None => MemberChange::Delta {
            add: fold.add.into_vec(),
            remove: fold.remove.into_vec(),
        },
    };
    Ok(GroupPatch {
        display_names: fold.display_names,
        members,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::ScimType;
    use crate::patch::parse_request;

    fn run(ops: Value) -> Result<GroupPatch, PatchError> {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        group_patch(&parse_request(&body)?)
    }

    fn delta(add: &[&str], remove: &[&str]) -> MemberChange {
        MemberChange::Delta {
            add: add.iter().map(|s| (*s).to_owned()).collect(),
            remove: remove.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn okta_forms() {
        let p = run(json!([{"op": "add", "path": "members", "value": [
            {"value": "u1", "display": "a@x"}, {"value": "u2", "display": "b@x"}]}]))
        .unwrap();
        assert_eq!(p.members, delta(&["u1", "u2"], &[]));
        let p = run(json!([{"op": "remove", "path": "members[value eq \"u1\"]"}])).unwrap();
        assert_eq!(p.members, delta(&[], &["u1"]));
        let p =
            run(json!([{"op": "replace", "path": "members", "value": [{"value": "u3"}]}])).unwrap();
        assert_eq!(p.members, MemberChange::Replace(vec!["u3".into()]));
        let p = run(json!([{"op": "replace", "path": "members", "value": []}])).unwrap();
        assert_eq!(p.members, MemberChange::Replace(vec![]));
        let p = run(json!([{"op": "replace", "value": {"id": "G-1", "displayName": "Sales Ops"}}]))
            .unwrap();
        assert_eq!(
            (p.display_names, p.members),
            (vec!["Sales Ops".to_owned()], delta(&[], &[]))
        );
    }

    #[test]
    fn entra_forms() {
        let p = run(json!([
            {"op": "Add", "path": "members", "value": [{"value": "u1"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "u2"}, {"value": "u3"}]}
        ]))
        .unwrap();
        assert_eq!(p.members, delta(&["u1"], &["u2", "u3"]));
        let p = run(json!([{"op": "Replace", "path": "displayName", "value": "New"}])).unwrap();
        assert_eq!(p.display_names, ["New"]);
    }

    #[test]
    fn operations_apply_in_order() {
        let p = run(json!([
            {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
            {"op": "remove", "path": "members[value eq \"u1\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u2"}]}
        ]))
        .unwrap();
        assert_eq!(p.members, delta(&["u2"], &["u1"]));
        let p = run(json!([
            {"op": "remove", "path": "members"},
            {"op": "add", "value": {"members": [{"value": "u9"}]}},
            {"op": "remove", "path": "members[value eq \"u9\" or value eq \"u8\"]"},
            {"op": "add", "path": "members", "value": {"value": "u7"}}
        ]))
        .unwrap();
        assert_eq!(p.members, MemberChange::Replace(vec!["u7".into()]));
        assert_eq!(p.named_members(), ["u7"]);
    }

    #[test]
    fn refusals() {
        let e = run(json!([{"op": "remove", "path": "members[display eq \"x\"]"}])).unwrap_err();
        assert_eq!(e.scim_type(), ScimType::InvalidPath);
        let e = run(json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]))
            .unwrap_err();
        assert_eq!(e.scim_type(), ScimType::InvalidValue);
        let e = run(json!([{"op": "remove", "path": "displayName"}])).unwrap_err();
        assert_eq!(e.scim_type(), ScimType::Mutability);
        let e = run(json!([{"op": "add", "path": "nickName", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type(), ScimType::InvalidPath);
        let e = run(json!([{"op": "replace", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type(), ScimType::InvalidValue);
        let p = run(json!([{"op": "replace", "path": "externalId", "value": "x"}])).unwrap();
        assert_eq!(p.members, delta(&[], &[]));
    }
}
