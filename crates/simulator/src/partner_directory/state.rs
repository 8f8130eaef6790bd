//! The Partner Directory data and every rule that touches it: accounts, teams, memberships,
//! the indexes that keep lookups off O(n) scans, and the JSON shapes answered. No HTTP here:
//! the server and the direct test API both call these operations.
//!
//! One directory behind one `std::sync::Mutex`, never held across `.await` (nothing here is
//! async). Accounts are kept in creation order and indexed by uid, lower-cased login and
//! lower-cased email; teams are kept by `team_id` (creation order) and indexed by lower-cased
//! title; a team's members are an insertion-ordered set, and every account remembers its
//! teams so that deleting it drops its memberships without a scan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::error::ApiError;
use super::query::{ListQuery, Paging};
use super::validate::AccountFields;

/// The first `team_id` handed out (the reserved teams get the first ones).
pub(crate) const FIRST_TEAM_ID: u64 = 50;
/// The teams every directory has, `reserved: true`, in `team_id` order.
pub(crate) const RESERVED_TEAMS: [&str; 2] = ["Everyone", "Admin Center Administrators"];

/// The account list filters, as query parameter names.
pub(crate) const ACCOUNT_FILTERS: [&str; 2] = ["login", "email"];
/// The team list filter.
pub(crate) const TEAM_FILTERS: [&str; 1] = ["title"];

/// Who manages an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Managed through provisioning.
    Idp,
    /// Created by hand in the application.
    Local,
}

impl Origin {
    /// The JSON spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Origin::Idp => "idp",
            Origin::Local => "local",
        }
    }

    /// Parses the JSON spelling.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "idp" => Some(Origin::Idp),
            "local" => Some(Origin::Local),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Account {
    uid: String,
    /// Creation sequence number (the list order; the uid is derived from it).
    seq: u64,
    fields: AccountFields,
    origin: Origin,
    created_at: i64,
    updated_at: i64,
    /// The teams the account is a member of.
    teams: BTreeSet<u64>,
}

impl Account {
    fn to_json(&self) -> Value {
        json!({
            "uid": self.uid,
            "login": self.fields.login,
            "email": self.fields.email,
            "first_name": self.fields.first_name,
            "last_name": self.fields.last_name,
            "origin": self.origin.as_str(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// An insertion-ordered set of uids: O(log n) insert and remove, in-order iteration.
#[derive(Debug, Default)]
struct Members {
    next: u64,
    order: BTreeMap<u64, String>,
    position: HashMap<String, u64>,
}

impl Members {
    /// Adds `uid` at the end; `false` if it was already there (its place is kept).
    fn insert(&mut self, uid: &str) -> bool {
        if self.position.contains_key(uid) {
            return false;
        }
        let at = self.next;
        self.next += 1;
        self.order.insert(at, uid.to_owned());
        self.position.insert(uid.to_owned(), at);
        true
    }

    /// Removes `uid`; `false` if it was not there.
    fn remove(&mut self, uid: &str) -> bool {
        match self.position.remove(uid) {
            Some(at) => {
                self.order.remove(&at);
                true
            }
            None => false,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &String> {
        self.order.values()
    }
}

#[derive(Debug)]
struct Team {
    id: u64,
    title: String,
    reserved: bool,
    members: Members,
}

impl Team {
    fn to_json(&self) -> Value {
        json!({ "team_id": self.id, "title": self.title, "reserved": self.reserved })
    }
}

/// `acc_` and six lower-case hex digits for the first 2^24 accounts, sixteen after that:
/// a bijection of the creation sequence number, so uids look random, are stable from run to
/// run, and are never reused.
pub(crate) fn uid_for(seq: u64) -> String {
    const MASK: u64 = (1 << 24) - 1;
    if seq <= MASK {
        let mut x = seq;
        x = x.wrapping_mul(0x9E_3779) & MASK;
        x ^= x >> 12;
        x = x.wrapping_mul(0x5B_D1E9) & MASK;
        x ^= x >> 11;
        x ^= 0xA5_C3E1;
        format!("acc_{x:06x}")
    } else {
        // The splitmix64 finalizer, a bijection of u64.
        let mut x = seq;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        format!("acc_{x:016x}")
    }
}

/// A `team_id` path segment: canonical decimal only (`55`, not `055` or `+55`).
pub(crate) fn parse_team_id(segment: &str) -> Result<u64, ApiError> {
    let canonical = !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    match segment.parse::<u64>() {
        Ok(id) if canonical => Ok(id),
        _ => Err(ApiError::TeamNotFound(segment.to_owned())),
    }
}

/// A page of `candidates` (already filtered and in order): skips `offset`, keeps `limit`,
/// and looks one further to tell `has_more`.
fn page<T>(
    candidates: impl Iterator<Item = T>,
    render: impl Fn(T) -> Value,
    paging: Paging,
) -> Value {
    let skip = usize::try_from(paging.offset).unwrap_or(usize::MAX);
    let mut data = Vec::new();
    let mut has_more = false;
    for candidate in candidates.skip(skip) {
        if data.len() as u64 >= paging.limit {
            has_more = true;
            break;
        }
        data.push(render(candidate));
    }
    json!({
        "data": data,
        "offset": paging.offset,
        "limit": paging.limit,
        "has_more": has_more,
    })
}

/// The whole directory.
#[derive(Debug, Default)]
struct Directory {
    accounts: HashMap<String, Account>,
    /// Creation sequence number → uid.
    order: BTreeMap<u64, String>,
    /// Lower-cased login → uid.
    by_login: HashMap<String, String>,
    /// Lower-cased email → uid.
    by_email: HashMap<String, String>,
    next_seq: u64,
    teams: BTreeMap<u64, Team>,
    /// Lower-cased title → `team_id`.
    by_title: HashMap<String, u64>,
    next_team_id: u64,
}

impl Directory {
    fn new() -> Self {
        let mut directory = Directory {
            next_team_id: FIRST_TEAM_ID,
            ..Directory::default()
        };
        for title in RESERVED_TEAMS {
            directory.get_or_add_team(title, true);
        }
        directory
    }

    fn account(&self, uid: &str) -> Result<&Account, ApiError> {
        self.accounts
            .get(uid)
            .ok_or_else(|| ApiError::AccountNotFound(uid.to_owned()))
    }

    fn account_mut(&mut self, uid: &str) -> Result<&mut Account, ApiError> {
        self.accounts
            .get_mut(uid)
            .ok_or_else(|| ApiError::AccountNotFound(uid.to_owned()))
    }

    /// Refuses a login or email held by another account than `owner` (login first).
    fn check_unique(&self, fields: &AccountFields, owner: Option<&str>) -> Result<(), ApiError> {
        let taken = |index: &HashMap<String, String>, value: &str| {
            index
                .get(&value.to_lowercase())
                .filter(|holder| Some(holder.as_str()) != owner)
                .cloned()
        };
        if let Some(holder) = taken(&self.by_login, &fields.login) {
            return Err(ApiError::LoginTaken(holder));
        }
        if let Some(holder) = taken(&self.by_email, &fields.email) {
            return Err(ApiError::EmailTaken(holder));
        }
        Ok(())
    }

    fn create_account(
        &mut self,
        fields: AccountFields,
        origin: Origin,
        now: i64,
    ) -> Result<Value, ApiError> {
        self.check_unique(&fields, None)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let uid = uid_for(seq);
        self.by_login
            .insert(fields.login.to_lowercase(), uid.clone());
        self.by_email
            .insert(fields.email.to_lowercase(), uid.clone());
        self.order.insert(seq, uid.clone());
        let account = Account {
            uid: uid.clone(),
            seq,
            fields,
            origin,
            created_at: now,
            updated_at: now,
            teams: BTreeSet::new(),
        };
        let json = account.to_json();
        self.accounts.insert(uid, account);
        Ok(json)
    }

    fn replace_account(
        &mut self,
        uid: &str,
        fields: AccountFields,
        now: i64,
    ) -> Result<Value, ApiError> {
        let old = self.account(uid)?.fields.clone();
        self.check_unique(&fields, Some(uid))?;
        self.by_login.remove(&old.login.to_lowercase());
        self.by_login
            .insert(fields.login.to_lowercase(), uid.to_owned());
        self.by_email.remove(&old.email.to_lowercase());
        self.by_email
            .insert(fields.email.to_lowercase(), uid.to_owned());
        let account = self.account_mut(uid)?;
        account.fields = fields;
        account.updated_at = now;
        Ok(account.to_json())
    }

    fn claim(&mut self, uid: &str, now: i64) -> Result<Value, ApiError> {
        let account = self.account_mut(uid)?;
        if account.origin != Origin::Idp {
            account.origin = Origin::Idp;
            account.updated_at = now;
        }
        Ok(account.to_json())
    }

    fn delete_account(&mut self, uid: &str) -> Result<(), ApiError> {
        let account = self
            .accounts
            .remove(uid)
            .ok_or_else(|| ApiError::AccountNotFound(uid.to_owned()))?;
        self.order.remove(&account.seq);
        self.by_login.remove(&account.fields.login.to_lowercase());
        self.by_email.remove(&account.fields.email.to_lowercase());
        for team_id in &account.teams {
            if let Some(team) = self.teams.get_mut(team_id) {
                team.members.remove(uid);
            }
        }
        Ok(())
    }

    fn list_accounts(&self, query: &ListQuery) -> Value {
        let login = query.filter("login").map(str::to_lowercase);
        let email = query.filter("email").map(str::to_lowercase);
        let render = |account: &Account| account.to_json();
        let keep = |account: &&Account| {
            login
                .as_ref()
                .is_none_or(|l| account.fields.login.to_lowercase() == *l)
                && email
                    .as_ref()
                    .is_none_or(|e| account.fields.email.to_lowercase() == *e)
        };
        let indexed = match (&login, &email) {
            (Some(login), _) => Some(self.by_login.get(login)),
            (None, Some(email)) => Some(self.by_email.get(email)),
            (None, None) => None,
        };
        match indexed {
            Some(uid) => {
                let found = uid.and_then(|uid| self.accounts.get(uid));
                page(found.into_iter().filter(keep), render, query.paging)
            }
            None => {
                let all = self.order.values().filter_map(|uid| self.accounts.get(uid));
                page(all, render, query.paging)
            }
        }
    }

    fn team(&self, id: u64) -> Result<&Team, ApiError> {
        self.teams
            .get(&id)
            .ok_or_else(|| ApiError::TeamNotFound(id.to_string()))
    }

    /// The team, if the identity provider may change it (`404`, then `403 reserved`).
    fn writable_team(&mut self, id: u64) -> Result<&mut Team, ApiError> {
        let team = self
            .teams
            .get_mut(&id)
            .ok_or_else(|| ApiError::TeamNotFound(id.to_string()))?;
        if team.reserved {
            return Err(ApiError::Reserved(id));
        }
        Ok(team)
    }

    fn add_team(&mut self, title: &str, reserved: bool) -> u64 {
        let id = self.next_team_id;
        self.next_team_id += 1;
        let team = Team {
            id,
            title: title.to_owned(),
            reserved,
            members: Members::default(),
        };
        self.teams.insert(id, team);
        self.by_title.insert(title.to_lowercase(), id);
        id
    }

    fn get_or_add_team(&mut self, title: &str, reserved: bool) -> u64 {
        match self.by_title.get(&title.to_lowercase()) {
            Some(&id) => id,
            None => self.add_team(title, reserved),
        }
    }

    fn create_team(&mut self, title: &str) -> Result<Value, ApiError> {
        if let Some(&holder) = self.by_title.get(&title.to_lowercase()) {
            return Err(ApiError::TitleTaken(holder));
        }
        let id = self.add_team(title, false);
        Ok(self.team(id)?.to_json())
    }

    fn rename_team(&mut self, id: u64, title: &str) -> Result<Value, ApiError> {
        let old = self.writable_team(id)?.title.to_lowercase();
        let new = title.to_lowercase();
        if let Some(&holder) = self.by_title.get(&new).filter(|holder| **holder != id) {
            return Err(ApiError::TitleTaken(holder));
        }
        self.by_title.remove(&old);
        self.by_title.insert(new, id);
        let team = self.writable_team(id)?;
        team.title = title.to_owned();
        Ok(team.to_json())
    }

    fn delete_team(&mut self, id: u64) -> Result<(), ApiError> {
        self.writable_team(id)?;
        let Some(team) = self.teams.remove(&id) else {
            return Err(ApiError::TeamNotFound(id.to_string()));
        };
        self.by_title.remove(&team.title.to_lowercase());
        for uid in team.members.iter() {
            if let Some(account) = self.accounts.get_mut(uid) {
                account.teams.remove(&id);
            }
        }
        Ok(())
    }

    /// Adds every uid or none: an unknown team, a reserved one (unless `force`) or an unknown
    /// account refuses the whole call.
    fn add_members(&mut self, id: u64, uids: &[String], force: bool) -> Result<(), ApiError> {
        if force {
            self.team(id)?;
        } else {
            self.writable_team(id)?;
        }
        if let Some(unknown) = uids.iter().find(|uid| !self.accounts.contains_key(*uid)) {
            return Err(ApiError::AccountNotFound(unknown.clone()));
        }
        let Some(team) = self.teams.get_mut(&id) else {
            return Err(ApiError::TeamNotFound(id.to_string()));
        };
        for uid in uids {
            team.members.insert(uid);
            if let Some(account) = self.accounts.get_mut(uid) {
                account.teams.insert(id);
            }
        }
        Ok(())
    }

    /// Removes the uids that are members; others (unknown accounts included) are skipped.
    fn remove_members(&mut self, id: u64, uids: &[String], force: bool) -> Result<(), ApiError> {
        if force {
            self.team(id)?;
        } else {
            self.writable_team(id)?;
        }
        let Some(team) = self.teams.get_mut(&id) else {
            return Err(ApiError::TeamNotFound(id.to_string()));
        };
        for uid in uids {
            if !team.members.remove(uid) {
                continue;
            }
            if let Some(account) = self.accounts.get_mut(uid) {
                account.teams.remove(&id);
            }
        }
        Ok(())
    }
}

/// The directory plus the clock behind the timestamps.
#[derive(Debug)]
pub(crate) struct Store {
    directory: Mutex<Directory>,
    frozen_clock: Mutex<Option<OffsetDateTime>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// A directory holding only the reserved teams.
    pub(crate) fn new() -> Self {
        Self {
            directory: Mutex::new(Directory::new()),
            frozen_clock: Mutex::new(None),
        }
    }

    /// Freezes the clock used for `created_at`/`updated_at` (`None`: the wall clock).
    pub(crate) fn set_clock(&self, at: Option<OffsetDateTime>) {
        *lock(&self.frozen_clock) = at;
    }

    fn now(&self) -> i64 {
        lock(&self.frozen_clock)
            .unwrap_or_else(OffsetDateTime::now_utc)
            .unix_timestamp()
    }

    fn directory(&self) -> MutexGuard<'_, Directory> {
        lock(&self.directory)
    }

    /// `POST /accounts` with validated fields (and, from the direct API, another origin).
    pub(crate) fn create_account(
        &self,
        fields: AccountFields,
        origin: Origin,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        self.directory().create_account(fields, origin, now)
    }

    /// `GET /accounts/{uid}`.
    pub(crate) fn account(&self, uid: &str) -> Result<Value, ApiError> {
        Ok(self.directory().account(uid)?.to_json())
    }

    /// Every account, in creation order.
    pub(crate) fn all_accounts(&self) -> Vec<Value> {
        let directory = self.directory();
        directory
            .order
            .values()
            .filter_map(|uid| directory.accounts.get(uid))
            .map(Account::to_json)
            .collect()
    }

    /// `GET /accounts`.
    pub(crate) fn list_accounts(&self, query: &ListQuery) -> Value {
        self.directory().list_accounts(query)
    }

    /// `PUT /accounts/{uid}` with validated fields.
    pub(crate) fn replace_account(
        &self,
        uid: &str,
        fields: AccountFields,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        self.directory().replace_account(uid, fields, now)
    }

    /// `POST /accounts/{uid}/claim`.
    pub(crate) fn claim(&self, uid: &str) -> Result<Value, ApiError> {
        let now = self.now();
        self.directory().claim(uid, now)
    }

    /// `DELETE /accounts/{uid}`.
    pub(crate) fn delete_account(&self, uid: &str) -> Result<(), ApiError> {
        self.directory().delete_account(uid)
    }

    /// The account holding `login` (case-insensitively).
    pub(crate) fn account_by_login(&self, login: &str) -> Option<String> {
        self.directory()
            .by_login
            .get(&login.to_lowercase())
            .cloned()
    }

    /// `POST /teams` with a validated title.
    pub(crate) fn create_team(&self, title: &str) -> Result<Value, ApiError> {
        self.directory().create_team(title)
    }

    /// The team titled `title` (case-insensitively), created with `reserved` if there is none.
    pub(crate) fn get_or_add_team(&self, title: &str, reserved: bool) -> u64 {
        self.directory().get_or_add_team(title, reserved)
    }

    /// `GET /teams/{id}`.
    pub(crate) fn team(&self, id: u64) -> Result<Value, ApiError> {
        Ok(self.directory().team(id)?.to_json())
    }

    /// Every team, by `team_id`.
    pub(crate) fn all_teams(&self) -> Vec<Value> {
        self.directory().teams.values().map(Team::to_json).collect()
    }

    /// `GET /teams`.
    pub(crate) fn list_teams(&self, query: &ListQuery) -> Value {
        let directory = self.directory();
        let render = |team: &Team| team.to_json();
        match query.filter("title") {
            Some(title) => {
                let found = directory
                    .by_title
                    .get(&title.to_lowercase())
                    .and_then(|id| directory.teams.get(id));
                page(found.into_iter(), render, query.paging)
            }
            None => page(directory.teams.values(), render, query.paging),
        }
    }

    /// `404`, then `403 reserved`, for a team the identity provider wants to change.
    pub(crate) fn check_writable_team(&self, id: u64) -> Result<(), ApiError> {
        self.directory().writable_team(id).map(|_| ())
    }

    /// `PATCH /teams/{id}` with a validated title.
    pub(crate) fn rename_team(&self, id: u64, title: &str) -> Result<Value, ApiError> {
        self.directory().rename_team(id, title)
    }

    /// `DELETE /teams/{id}`.
    pub(crate) fn delete_team(&self, id: u64) -> Result<(), ApiError> {
        self.directory().delete_team(id)
    }

    /// `GET /teams/{id}/members`.
    pub(crate) fn members(&self, id: u64, paging: Paging) -> Result<Value, ApiError> {
        let directory = self.directory();
        let team = directory.team(id)?;
        Ok(page(
            team.members.iter(),
            |uid| json!({ "uid": uid }),
            paging,
        ))
    }

    /// The member uids of a team, in insertion order.
    pub(crate) fn member_uids(&self, id: u64) -> Result<Vec<String>, ApiError> {
        Ok(self.directory().team(id)?.members.iter().cloned().collect())
    }

    /// `POST /teams/{id}/members`; `force` (the direct API) also reaches reserved teams.
    pub(crate) fn add_members(
        &self,
        id: u64,
        uids: &[String],
        force: bool,
    ) -> Result<(), ApiError> {
        self.directory().add_members(id, uids, force)
    }

    /// `POST /teams/{id}/members/remove`; `force` (the direct API) also reaches reserved teams.
    pub(crate) fn remove_members(
        &self,
        id: u64,
        uids: &[String],
        force: bool,
    ) -> Result<(), ApiError> {
        self.directory().remove_members(id, uids, force)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn fields(login: &str, email: &str) -> AccountFields {
        AccountFields {
            login: login.into(),
            email: email.into(),
            ..AccountFields::default()
        }
    }

    fn uid_of(value: &Value) -> String {
        value["uid"].as_str().unwrap().to_owned()
    }

    #[test]
    fn uids_are_distinct_and_shaped() {
        let mut seen = HashSet::new();
        for seq in (0..200_000).chain((1 << 24) - 10..(1 << 24) + 10) {
            let uid = uid_for(seq);
            let hex = uid.strip_prefix("acc_").unwrap();
            let width = if seq < 1 << 24 { 6 } else { 16 };
            assert_eq!(hex.len(), width, "{uid}");
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(seen.insert(uid), "seq {seq} collides");
        }
        assert!(uid_for(u64::MAX).starts_with("acc_"));
    }

    #[test]
    fn canonical_team_ids_only() {
        assert_eq!(parse_team_id("55").ok(), Some(55));
        for bad in [
            "055",
            "+55",
            "-1",
            "",
            "5e1",
            "99999999999999999999999",
            "x",
        ] {
            assert!(
                matches!(parse_team_id(bad), Err(ApiError::TeamNotFound(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn members_keep_insertion_order_and_requeue_after_removal() {
        let mut members = Members::default();
        assert!(members.insert("b"));
        assert!(members.insert("a"));
        assert!(!members.insert("b"));
        assert!(members.insert("c"));
        assert!(members.remove("b"));
        assert!(!members.remove("b"));
        assert!(members.insert("b"));
        let order: Vec<&str> = members.iter().map(String::as_str).collect();
        assert_eq!(order, ["a", "c", "b"]);
    }

    #[test]
    fn indexes_follow_replace_and_delete() {
        let store = Store::new();
        let a = uid_of(
            &store
                .create_account(fields("Ann", "Ann@X.com"), Origin::Idp)
                .unwrap(),
        );
        store
            .replace_account(&a, fields("ann2", "ann2@x.com"))
            .unwrap();
        assert_eq!(store.account_by_login("ANN"), None);
        assert_eq!(store.account_by_login("Ann2").as_deref(), Some(a.as_str()));
        // The old login and email are free again.
        let b = uid_of(
            &store
                .create_account(fields("ann", "ann@x.com"), Origin::Idp)
                .unwrap(),
        );
        store.delete_account(&a).unwrap();
        assert_eq!(store.account_by_login("ann2"), None);
        store
            .create_account(fields("ann2", "ann2@x.com"), Origin::Local)
            .unwrap();
        assert!(matches!(
            store.replace_account(&b, fields("ANN2", "b@x.com")),
            Err(ApiError::LoginTaken(_))
        ));
    }

    #[test]
    fn reserved_teams_exist_from_the_start() {
        let store = Store::new();
        assert_eq!(
            store.all_teams(),
            vec![
                json!({ "team_id": 50, "title": "Everyone", "reserved": true }),
                json!({ "team_id": 51, "title": "Admin Center Administrators", "reserved": true }),
            ]
        );
        assert!(matches!(
            store.check_writable_team(50),
            Err(ApiError::Reserved(50))
        ));
        assert!(matches!(
            store.check_writable_team(49),
            Err(ApiError::TeamNotFound(_))
        ));
    }

    #[test]
    fn paging_looks_one_item_ahead() {
        let items = || 0..5u64;
        let render = |n: u64| json!(n);
        let at = |offset, limit| page(items(), render, Paging { offset, limit });
        assert_eq!(at(0, 5)["has_more"], false);
        assert_eq!(at(0, 4)["has_more"], true);
        assert_eq!(at(3, 2)["data"], json!([3, 4]));
        assert_eq!(at(3, 2)["has_more"], false);
        assert_eq!(at(9, 2)["data"], json!([]));
        assert_eq!(at(u64::MAX, 2)["data"], json!([]));
    }
}
