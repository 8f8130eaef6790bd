//! The Marketing Center data and every rule that touches it: users, groups, memberships, the
//! indexes that keep lookups off O(n) scans, and the JSON shapes answered. No HTTP here:
//! the server and the direct test API both call these operations.
//!
//! One `std::sync::Mutex` per customer (customers are fixed at construction, so the map of
//! them needs no lock); locks are never held across `.await` (nothing here is async).
//! `UserID`s come from one counter shared by all customers, so an id is never reused and a
//! user id of one customer is never a user of another.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::error::ApiError;
use super::query::{ListQuery, Paging};
use super::validate::{Changes, Field};
use crate::Refused;

/// The first `UserID` handed out.
pub(crate) const FIRST_USER_ID: u64 = 1001;
/// Longest `IdentityID`.
pub(crate) const IDENTITY_ID_MAX_CHARS: usize = 64;

/// The user list filters, as query parameter names.
pub(crate) const USER_FILTERS: [&str; 4] = [
    "LogonName",
    "EmailAddress",
    "ExternalIdentityProviderID",
    "IncludeArchived",
];
/// The group list filter.
pub(crate) const GROUP_FILTERS: [&str; 1] = ["Name"];

/// The writable values of a user; an empty field is `""`.
#[derive(Clone, Debug, Default)]
struct Values {
    logon_name: String,
    first_name: String,
    last_name: String,
    full_name: String,
    title: String,
    email_address: String,
    phone: String,
    address1: String,
    address2: String,
    city: String,
    state: String,
    postal_code: String,
    country: String,
    external_id: String,
}

impl Values {
    fn get(&self, field: Field) -> &str {
        match field {
            Field::LogonName => &self.logon_name,
            Field::FirstName => &self.first_name,
            Field::LastName => &self.last_name,
            Field::FullName => &self.full_name,
            Field::Title => &self.title,
            Field::EmailAddress => &self.email_address,
            Field::Phone => &self.phone,
            Field::Address1 => &self.address1,
            Field::Address2 => &self.address2,
            Field::City => &self.city,
            Field::State => &self.state,
            Field::PostalCode => &self.postal_code,
            Field::Country => &self.country,
            Field::ExternalIdentityProviderId => &self.external_id,
        }
    }

    fn slot(&mut self, field: Field) -> &mut String {
        match field {
            Field::LogonName => &mut self.logon_name,
            Field::FirstName => &mut self.first_name,
            Field::LastName => &mut self.last_name,
            Field::FullName => &mut self.full_name,
            Field::Title => &mut self.title,
            Field::EmailAddress => &mut self.email_address,
            Field::Phone => &mut self.phone,
            Field::Address1 => &mut self.address1,
            Field::Address2 => &mut self.address2,
            Field::City => &mut self.city,
            Field::State => &mut self.state,
            Field::PostalCode => &mut self.postal_code,
            Field::Country => &mut self.country,
            Field::ExternalIdentityProviderId => &mut self.external_id,
        }
    }

    fn apply(&mut self, changes: Changes) {
        for (field, value) in changes {
            *self.slot(field) = value;
        }
    }
}

#[derive(Debug)]
struct User {
    id: u64,
    values: Values,
    archived: bool,
    created: OffsetDateTime,
    modified: OffsetDateTime,
    /// IdentityIDs of the groups the user is a member of.
    groups: BTreeSet<String>,
}

impl User {
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("UserID".into(), self.id.into());
        for field in Field::ALL {
            if field == Field::ExternalIdentityProviderId {
                object.insert("IsActive".into(), (!self.archived).into());
                object.insert("IsArchived".into(), self.archived.into());
            }
            object.insert(field.name().into(), self.values.get(field).into());
        }
        object.insert("CreatedUtc".into(), timestamp(self.created).into());
        object.insert("ModifiedUtc".into(), timestamp(self.modified).into());
        Value::Object(object)
    }

    fn member_json(&self) -> Value {
        json!({ "UserID": self.id, "LogonName": self.values.logon_name })
    }
}

#[derive(Debug)]
struct Group {
    id: String,
    name: String,
    members: BTreeSet<u64>,
}

impl Group {
    fn to_json(&self) -> Value {
        json!({ "IdentityID": self.id, "Name": self.name, "MemberCount": self.members.len() })
    }
}

/// `2026-03-04T08:15:30Z`: RFC 3339, UTC, whole seconds.
fn timestamp(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}

/// Adds `id` under `key` in a multi-valued index (empty keys are not indexed).
fn index_add(index: &mut HashMap<String, BTreeSet<u64>>, key: String, id: u64) {
    if !key.is_empty() {
        index.entry(key).or_default().insert(id);
    }
}

fn index_remove(index: &mut HashMap<String, BTreeSet<u64>>, key: &str, id: u64) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

/// One customer's data.
#[derive(Debug, Default)]
struct Tenant {
    users: BTreeMap<u64, User>,
    /// Lower-cased `LogonName` → user (archived users included).
    by_logon: HashMap<String, u64>,
    /// Lower-cased non-empty `UserProfileEmailAddress` → users.
    by_email: HashMap<String, BTreeSet<u64>>,
    /// Non-empty `ExternalIdentityProviderID` → users.
    by_external: HashMap<String, BTreeSet<u64>>,
    groups: HashMap<String, Group>,
    /// `Name` → `IdentityID`, in `Name` order.
    group_by_name: BTreeMap<String, String>,
}

/// The user list filters of one request.
struct UserFilter<'q> {
    logon_name: Option<String>,
    email: Option<String>,
    external_id: Option<&'q str>,
    include_archived: bool,
}

impl<'q> UserFilter<'q> {
    fn parse(query: &'q ListQuery) -> Result<Self, ApiError> {
        let include_archived = match query.filter("IncludeArchived") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "IncludeArchived must be true or false".into(),
                ));
            }
        };
        Ok(Self {
            logon_name: query.filter("LogonName").map(str::to_lowercase),
            email: query.filter("EmailAddress").map(str::to_lowercase),
            external_id: query.filter("ExternalIdentityProviderID"),
            include_archived,
        })
    }

    fn matches(&self, user: &User) -> bool {
        (self.include_archived || !user.archived)
            && self
                .logon_name
                .as_ref()
                .is_none_or(|l| user.values.logon_name.to_lowercase() == *l)
            && self
                .email
                .as_ref()
                .is_none_or(|e| user.values.email_address.to_lowercase() == *e)
            && self
                .external_id
                .is_none_or(|x| user.values.external_id == x)
    }
}

/// A page of `items` out of `total` matches.
fn page_json(items: Vec<Value>, paging: Paging, total: u64) -> Value {
    json!({ "Items": items, "Page": paging.page, "PageSize": paging.size, "Total": total })
}

/// Pages over `candidates` (already in order), keeping those `keep` accepts.
fn collect_page<'a, T: 'a>(
    candidates: impl Iterator<Item = &'a T>,
    keep: impl Fn(&T) -> bool,
    render: impl Fn(&T) -> Value,
    paging: Paging,
) -> Value {
    let mut total = 0u64;
    let mut items = Vec::new();
    for candidate in candidates.filter(|c| keep(c)) {
        if paging.contains(total) {
            items.push(render(candidate));
        }
        total += 1;
    }
    page_json(items, paging, total)
}

impl Tenant {
    fn user(&self, id: u64) -> Result<&User, ApiError> {
        self.users
            .get(&id)
            .ok_or_else(|| ApiError::UserNotFound(id.to_string()))
    }

    fn create_user(
        &mut self,
        changes: Changes,
        id_source: &AtomicU64,
        now: OffsetDateTime,
    ) -> Result<Value, ApiError> {
        let mut values = Values::default();
        values.apply(changes);
        let logon_key = values.logon_name.to_lowercase();
        if let Some(&existing) = self.by_logon.get(&logon_key) {
            return Err(ApiError::LogonNameTaken { existing });
        }
        let id = id_source.fetch_add(1, Ordering::Relaxed);
        self.by_logon.insert(logon_key, id);
        index_add(&mut self.by_email, values.email_address.to_lowercase(), id);
        index_add(&mut self.by_external, values.external_id.clone(), id);
        let user = User {
            id,
            values,
            archived: false,
            created: now,
            modified: now,
            groups: BTreeSet::new(),
        };
        let json = user.to_json();
        self.users.insert(id, user);
        Ok(json)
    }

    fn patch_user(
        &mut self,
        id: u64,
        changes: Changes,
        now: OffsetDateTime,
    ) -> Result<Value, ApiError> {
        let old = self.user(id)?.values.clone();
        let mut new = old.clone();
        new.apply(changes);
        let (old_logon, new_logon) = (old.logon_name.to_lowercase(), new.logon_name.to_lowercase());
        if old_logon != new_logon {
            if let Some(&existing) = self.by_logon.get(&new_logon) {
                return Err(ApiError::LogonNameTaken { existing });
            }
            self.by_logon.remove(&old_logon);
            self.by_logon.insert(new_logon, id);
        }
        let (old_email, new_email) = (
            old.email_address.to_lowercase(),
            new.email_address.to_lowercase(),
        );
        if old_email != new_email {
            index_remove(&mut self.by_email, &old_email, id);
            index_add(&mut self.by_email, new_email, id);
        }
        if old.external_id != new.external_id {
            index_remove(&mut self.by_external, &old.external_id, id);
            index_add(&mut self.by_external, new.external_id.clone(), id);
        }
        let user = self
            .users
            .get_mut(&id)
            .ok_or_else(|| ApiError::UserNotFound(id.to_string()))?;
        user.values = new;
        user.modified = now;
        Ok(user.to_json())
    }

    fn set_archived(
        &mut self,
        id: u64,
        archived: bool,
        now: OffsetDateTime,
    ) -> Result<Value, ApiError> {
        let user = self
            .users
            .get_mut(&id)
            .ok_or_else(|| ApiError::UserNotFound(id.to_string()))?;
        if user.archived != archived {
            user.archived = archived;
            user.modified = now;
            if archived {
                for group_id in std::mem::take(&mut user.groups) {
                    if let Some(group) = self.groups.get_mut(&group_id) {
                        group.members.remove(&id);
                    }
                }
            }
        }
        Ok(user.to_json())
    }

    fn list_users(&self, query: &ListQuery) -> Result<Value, ApiError> {
        let filter = UserFilter::parse(query)?;
        let paging = query.paging;
        let render = |u: &User| u.to_json();
        let keep = |u: &User| filter.matches(u);
        let by_ids = |ids: Option<&BTreeSet<u64>>| {
            let users = ids
                .into_iter()
                .flatten()
                .filter_map(|id| self.users.get(id));
            collect_page(users, keep, render, paging)
        };
        Ok(if let Some(logon) = &filter.logon_name {
            let ids: Option<BTreeSet<u64>> = self.by_logon.get(logon).map(|id| [*id].into());
            by_ids(ids.as_ref())
        } else if let Some(external) = filter.external_id.filter(|x| !x.is_empty()) {
            by_ids(self.by_external.get(external))
        } else if let Some(email) = filter.email.as_ref().filter(|e| !e.is_empty()) {
            by_ids(self.by_email.get(email))
        } else {
            collect_page(self.users.values(), keep, render, paging)
        })
    }

    fn group(&self, id: &str) -> Result<&Group, ApiError> {
        self.groups
            .get(id)
            .ok_or_else(|| ApiError::GroupNotFound(id.to_owned()))
    }

    fn list_groups(&self, query: &ListQuery) -> Value {
        let name = query.filter("Name");
        let groups = self
            .group_by_name
            .iter()
            .filter(|(n, _)| name.is_none_or(|wanted| wanted == n.as_str()))
            .filter_map(|(_, id)| self.groups.get(id));
        collect_page(groups, |_| true, Group::to_json, query.paging)
    }

    fn members(&self, group_id: &str, paging: Paging) -> Result<Value, ApiError> {
        let group = self.group(group_id)?;
        let members = group.members.iter().filter_map(|id| self.users.get(id));
        Ok(collect_page(members, |_| true, User::member_json, paging))
    }

    fn add_member(&mut self, group_id: &str, user_id: u64) -> Result<(), ApiError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or_else(|| ApiError::GroupNotFound(group_id.to_owned()))?;
        let user = self
            .users
            .get_mut(&user_id)
            .ok_or_else(|| ApiError::UserNotFound(user_id.to_string()))?;
        if user.archived {
            return Err(ApiError::UserArchived(user_id));
        }
        group.members.insert(user_id);
        user.groups.insert(group.id.clone());
        Ok(())
    }

    fn remove_member(&mut self, group_id: &str, user_id: u64) -> Result<(), ApiError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or_else(|| ApiError::GroupNotFound(group_id.to_owned()))?;
        let user = self
            .users
            .get_mut(&user_id)
            .ok_or_else(|| ApiError::UserNotFound(user_id.to_string()))?;
        group.members.remove(&user_id);
        user.groups.remove(group_id);
        Ok(())
    }

    fn put_group(&mut self, id: &str, name: &str) -> Result<(), Refused> {
        if id.is_empty() || id.chars().count() > IDENTITY_ID_MAX_CHARS {
            return Err(Refused(format!(
                "IdentityID must be 1 to {IDENTITY_ID_MAX_CHARS} characters"
            )));
        }
        if name.is_empty() {
            return Err(Refused("a group Name cannot be empty".into()));
        }
        if let Some(holder) = self.group_by_name.get(name) {
            return if holder == id {
                Ok(())
            } else {
                Err(Refused(format!("group {holder} is already named {name:?}")))
            };
        }
        match self.groups.get_mut(id) {
            Some(group) => {
                self.group_by_name.remove(&group.name);
                group.name = name.to_owned();
            }
            None => {
                let group = Group {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    members: BTreeSet::new(),
                };
                self.groups.insert(id.to_owned(), group);
            }
        }
        self.group_by_name.insert(name.to_owned(), id.to_owned());
        Ok(())
    }
}

/// All customers' data plus the id counter and the clock.
#[derive(Debug)]
pub(crate) struct Store {
    tenants: HashMap<String, Mutex<Tenant>>,
    next_user_id: AtomicU64,
    frozen_clock: Mutex<Option<OffsetDateTime>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `UserID` path segment: canonical decimal only (`1042`, not `01042` or `+1042`).
pub(crate) fn parse_user_id(segment: &str) -> Result<u64, ApiError> {
    let canonical = !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    match segment.parse::<u64>() {
        Ok(id) if canonical => Ok(id),
        _ => Err(ApiError::UserNotFound(segment.to_owned())),
    }
}

impl Store {
    /// A store serving exactly `customers`.
    pub(crate) fn new(customers: impl IntoIterator<Item = String>) -> Self {
        Self {
            tenants: customers
                .into_iter()
                .map(|c| (c, Mutex::default()))
                .collect(),
            next_user_id: AtomicU64::new(FIRST_USER_ID),
            frozen_clock: Mutex::new(None),
        }
    }

    /// Whether `customer` is configured.
    pub(crate) fn has_customer(&self, customer: &str) -> bool {
        self.tenants.contains_key(customer)
    }

    /// Freezes the clock used for `CreatedUtc`/`ModifiedUtc` (`None`: the wall clock).
    pub(crate) fn set_clock(&self, at: Option<OffsetDateTime>) {
        *lock(&self.frozen_clock) = at;
    }

    fn now(&self) -> OffsetDateTime {
        lock(&self.frozen_clock).unwrap_or_else(OffsetDateTime::now_utc)
    }

    fn tenant(&self, customer: &str) -> Result<MutexGuard<'_, Tenant>, ApiError> {
        self.tenants
            .get(customer)
            .map(lock)
            .ok_or_else(|| ApiError::UnknownCustomer(customer.to_owned()))
    }

    /// `POST /users` with validated changes.
    pub(crate) fn create_user(&self, customer: &str, changes: Changes) -> Result<Value, ApiError> {
        let now = self.now();
        self.tenant(customer)?
            .create_user(changes, &self.next_user_id, now)
    }

    /// `GET /users/{id}`.
    pub(crate) fn user(&self, customer: &str, id: u64) -> Result<Value, ApiError> {
        Ok(self.tenant(customer)?.user(id)?.to_json())
    }

    /// Every user, archived included, by `UserID`.
    pub(crate) fn all_users(&self, customer: &str) -> Result<Vec<Value>, ApiError> {
        Ok(self
            .tenant(customer)?
            .users
            .values()
            .map(User::to_json)
            .collect())
    }

    /// `PATCH /users/{id}` with validated changes.
    pub(crate) fn patch_user(
        &self,
        customer: &str,
        id: u64,
        changes: Changes,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        self.tenant(customer)?.patch_user(id, changes, now)
    }

    /// `POST /users/{id}/archive` (`true`) or `/restore` (`false`).
    pub(crate) fn set_archived(
        &self,
        customer: &str,
        id: u64,
        archived: bool,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        self.tenant(customer)?.set_archived(id, archived, now)
    }

    /// `GET /users`.
    pub(crate) fn list_users(&self, customer: &str, query: &ListQuery) -> Result<Value, ApiError> {
        self.tenant(customer)?.list_users(query)
    }

    /// `GET /groups`.
    pub(crate) fn list_groups(&self, customer: &str, query: &ListQuery) -> Result<Value, ApiError> {
        Ok(self.tenant(customer)?.list_groups(query))
    }

    /// `GET /groups/{id}`.
    pub(crate) fn group(&self, customer: &str, id: &str) -> Result<Value, ApiError> {
        Ok(self.tenant(customer)?.group(id)?.to_json())
    }

    /// `GET /groups/{id}/members`.
    pub(crate) fn members(
        &self,
        customer: &str,
        group_id: &str,
        paging: Paging,
    ) -> Result<Value, ApiError> {
        self.tenant(customer)?.members(group_id, paging)
    }

    /// The member ids of a group, in order.
    pub(crate) fn member_ids(&self, customer: &str, group_id: &str) -> Result<Vec<u64>, ApiError> {
        Ok(self
            .tenant(customer)?
            .group(group_id)?
            .members
            .iter()
            .copied()
            .collect())
    }

    /// `PUT /groups/{id}/members/{user}`.
    pub(crate) fn add_member(
        &self,
        customer: &str,
        group_id: &str,
        user_id: u64,
    ) -> Result<(), ApiError> {
        self.tenant(customer)?.add_member(group_id, user_id)
    }

    /// `DELETE /groups/{id}/members/{user}`.
    pub(crate) fn remove_member(
        &self,
        customer: &str,
        group_id: &str,
        user_id: u64,
    ) -> Result<(), ApiError> {
        self.tenant(customer)?.remove_member(group_id, user_id)
    }

    /// Creates a group, or renames an existing one (members kept).
    pub(crate) fn put_group(&self, customer: &str, id: &str, name: &str) -> Result<(), Refused> {
        self.tenant(customer)
            .map_err(|e| Refused(e.to_string()))?
            .put_group(id, name)
    }

    /// The user holding `logon_name` (case-insensitively), archived or not.
    pub(crate) fn user_by_logon(&self, customer: &str, logon_name: &str) -> Option<u64> {
        self.tenant(customer)
            .ok()?
            .by_logon
            .get(&logon_name.to_lowercase())
            .copied()
    }

    /// The id of the group named `name`.
    pub(crate) fn group_by_name(&self, customer: &str, name: &str) -> Option<String> {
        self.tenant(customer).ok()?.group_by_name.get(name).cloned()
    }

    /// Whether `id` is a group of `customer`.
    pub(crate) fn has_group(&self, customer: &str, id: &str) -> bool {
        self.tenant(customer)
            .is_ok_and(|t| t.groups.contains_key(id))
    }

    /// Every group of `customer`, by `Name`.
    pub(crate) fn all_groups(&self, customer: &str) -> Result<Vec<Value>, ApiError> {
        let tenant = self.tenant(customer)?;
        Ok(tenant
            .group_by_name
            .values()
            .filter_map(|id| tenant.groups.get(id))
            .map(Group::to_json)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn changes(logon: &str) -> Changes {
        vec![(Field::LogonName, logon.to_owned())]
    }

    #[test]
    fn timestamps_are_whole_second_utc() {
        let at = datetime!(2026-03-04 08:15:30.987 +02:00);
        assert_eq!(timestamp(at), "2026-03-04T06:15:30Z");
    }

    #[test]
    fn canonical_user_ids_only() {
        assert_eq!(parse_user_id("1042").ok(), Some(1042));
        assert_eq!(parse_user_id("0").ok(), Some(0));
        for bad in ["01042", "+1042", "-1", "", "1e3", "99999999999999999999999"] {
            assert!(
                matches!(parse_user_id(bad), Err(ApiError::UserNotFound(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn indexes_follow_patches() {
        let store = Store::new(["acme".to_owned()]);
        let mut first = changes("Ann@x.com");
        first.push((Field::EmailAddress, "Ann@X.com".into()));
        first.push((Field::ExternalIdentityProviderId, "okta-1".into()));
        let id = store.create_user("acme", first).unwrap()["UserID"]
            .as_u64()
            .unwrap();
        store
            .patch_user(
                "acme",
                id,
                vec![
                    (Field::LogonName, "bea@x.com".into()),
                    (Field::EmailAddress, String::new()),
                    (Field::ExternalIdentityProviderId, "okta-2".into()),
                ],
            )
            .unwrap();
        let tenant = store.tenant("acme").unwrap();
        assert_eq!(tenant.by_logon.get("bea@x.com"), Some(&id));
        assert!(!tenant.by_logon.contains_key("ann@x.com"));
        assert!(tenant.by_email.is_empty());
        assert!(!tenant.by_external.contains_key("okta-1"));
        assert!(
            tenant
                .by_external
                .get("okta-2")
                .is_some_and(|s| s.contains(&id))
        );
    }

    #[test]
    fn group_names_stay_unique_and_renames_keep_members() {
        let store = Store::new(["acme".to_owned()]);
        store.put_group("acme", "G-1", "Sales").unwrap();
        assert!(store.put_group("acme", "G-2", "Sales").is_err());
        assert!(store.put_group("acme", "", "Empty").is_err());
        assert!(store.put_group("acme", &"x".repeat(65), "Long").is_err());
        let id = store.create_user("acme", changes("a")).unwrap()["UserID"]
            .as_u64()
            .unwrap();
        store.add_member("acme", "G-1", id).unwrap();
        store.put_group("acme", "G-1", "Sales EMEA").unwrap();
        assert_eq!(store.group_by_name("acme", "Sales"), None);
        assert_eq!(
            store.group_by_name("acme", "Sales EMEA").as_deref(),
            Some("G-1")
        );
        assert_eq!(store.member_ids("acme", "G-1").unwrap(), vec![id]);
        store.put_group("acme", "G-2", "Sales").unwrap();
        assert_eq!(store.all_groups("acme").unwrap().len(), 2);
    }

    #[test]
    fn unknown_customer_is_an_error_not_a_panic() {
        let store = Store::new(["acme".to_owned()]);
        assert!(matches!(
            store.user("other", 1),
            Err(ApiError::UnknownCustomer(_))
        ));
        assert!(store.put_group("other", "G", "N").is_err());
        assert_eq!(store.user_by_logon("other", "a"), None);
        assert!(!store.has_group("other", "G"));
    }
}
