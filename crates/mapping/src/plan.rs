//! Planners: for each SCIM operation, which legacy calls to make, in which order, with which
//! bodies; how to read each answer; what a conflict means.
//!
//! A plan is an `async fn` over an [`Exchange`]: it decides every call and hands it to the
//! exchange, which sends it and brings back the [`Answer`]. The plan does no I/O itself: the
//! sidecar's exchange is its gateway to the legacy app (build, send, retry, decode), the golden
//! cases' exchange is a script of expected calls and canned answers (`tests/mapping_cases`).
//! Both run the same plan, so the cases test the code that runs.
//!
//! What is not the legacy app's business stays with the caller: the cross-reference (which
//! legacy record a SCIM id is, tombstones), logs, and the SCIM answer.
//!
//! - [`users`]: read, create (with `on_conflict`), replace, patch, delete, set `active`.
//! - [`groups`]: read, members, the membership push, create, rename, delete.
//! - [`Pages`]: the pages of a list call.

pub mod groups;
pub mod users;

use std::future::Future;

use scim::patch::PatchError;
use scim::request::BodyError;
use serde_json::Value;

use crate::apply::LegacyFailure;
use crate::ids::LegacyId;
use crate::template::TenantValues;
use crate::{Call, Legacy, ListShape, Paging, PagingStyle, PreparedCall, TranslateError, Vars};

pub use crate::apply::Answer;

/// A legacy call a plan asks for: a declared call, about which record, with what.
#[derive(Clone, Debug)]
pub struct Outbound<'m> {
    /// The declared call.
    pub call: &'m Call,
    /// `{legacy_id}`: the record the call is about.
    pub legacy_id: Option<LegacyId>,
    /// `{member_legacy_id}`: the group member the call is about.
    pub member_legacy_id: Option<LegacyId>,
    /// Query parameters after the call's own (a pushed-down filter, paging).
    pub query: Vec<(String, String)>,
    /// The JSON body of a write.
    pub body: Option<Value>,
    /// A list page's URL as the legacy app gave it (`next_url`, `link_header` paging): sent
    /// instead of the call's path and query.
    pub url: Option<String>,
    /// `If-Match`: the version of the record the call was computed from.
    pub if_match: Option<String>,
}

impl<'m> Outbound<'m> {
    /// `call` about no particular record.
    pub fn new(call: &'m Call) -> Self {
        Outbound {
            call,
            legacy_id: None,
            member_legacy_id: None,
            query: Vec::new(),
            body: None,
            url: None,
            if_match: None,
        }
    }

    /// `call` about the record `legacy_id`.
    pub fn about(call: &'m Call, legacy_id: &LegacyId) -> Self {
        Outbound {
            legacy_id: Some(legacy_id.clone()),
            ..Outbound::new(call)
        }
    }

    /// With a body.
    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// With query parameters added after the call's own.
    pub fn with_query(mut self, query: Vec<(String, String)>) -> Self {
        self.query.extend(query);
        self
    }

    /// The call ready to send for a tenant (its values for the placeholders).
    pub fn prepare(
        &self,
        legacy: &Legacy,
        tenant: &TenantValues,
    ) -> Result<PreparedCall, TranslateError> {
        let vars = Vars {
            legacy_id: self.legacy_id.as_ref().map(LegacyId::as_str),
            member_legacy_id: self.member_legacy_id.as_ref().map(LegacyId::as_str),
            tenant: Some(tenant),
        };
        let mut prepared = legacy.prepare(self.call, &vars, &self.query, self.body.clone())?;
        if let Some(url) = &self.url {
            prepared.path_and_query.clone_from(url);
            prepared.followed = true;
        }
        if let Some(version) = &self.if_match {
            prepared
                .headers
                .push(("If-Match".into(), version.clone(), false));
        }
        Ok(prepared)
    }
}

/// Why a plan gives up: what the SCIM client is told is decided by the error funnel.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// A value cannot go through the mapping, or an answer has not the declared shape.
    #[error(transparent)]
    Translate(#[from] TranslateError),
    /// The request body is refused before any call.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The PATCH request is refused.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// The legacy app refused a call.
    #[error("{app} answered {}{}", .failure.status, .failure.code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Legacy {
        /// Its answer, read through the mapping.
        failure: Box<LegacyFailure>,
        /// The legacy app's name.
        app: String,
        /// For a write refused with a listed code: the field problems told in SCIM terms.
        fields: Option<String>,
    },
    /// The record is not there (any more).
    #[error("{resource} {id:?} not found")]
    NotFound {
        /// `User` or `Group`.
        resource: &'static str,
        /// The id the client gave (or the legacy id, when a write lost its record).
        id: String,
    },
    /// A create met a record with the same unique key, and no `on_conflict` rule applies.
    #[error("userName {user_name:?} is already taken")]
    Taken {
        /// The userName asked for.
        user_name: String,
        /// Why the legacy app said so (for the log).
        cause: String,
    },
    /// A PATCH removes `active`.
    #[error(
        "active cannot be removed: an account is either active or deactivated; replace it with \
         true or false"
    )]
    ActiveRemoved,
    /// A group rename where the legacy app owns names.
    #[error(
        "displayName is read-only: groups are renamed in {app}, not through SCIM (asked \
         {asked:?}, the group is {current:?}); {hint}"
    )]
    NameReadOnly {
        /// The legacy app's name.
        app: String,
        /// The name asked for.
        asked: String,
        /// The group's name.
        current: String,
        /// The mapping's advice.
        hint: String,
    },
    /// A membership change where the mapping declares no member calls.
    #[error("group members cannot be changed in {app}: {hint}")]
    MembersFixed {
        /// The legacy app's name.
        app: String,
        /// The mapping's advice.
        hint: String,
    },
    /// Creating or deleting a group where the mapping declares no such call.
    #[error("{hint}")]
    LinkOnly {
        /// The methods the path does take.
        allow: &'static str,
        /// The mapping's advice.
        hint: String,
    },
    /// A group the mapping locks.
    #[error("{detail}")]
    Locked {
        /// The mapping's detail.
        detail: String,
    },
    /// A whole-list membership change past the app's largest group.
    #[error(
        "the group would have {count} members; {app} takes at most {max} in one list \
         (groups.calls.set_members batch.max)"
    )]
    TooManyMembers {
        /// The legacy app's name.
        app: String,
        /// Members the change would leave.
        count: usize,
        /// The app's limit.
        max: usize,
    },
    /// A whole-list change refused twice because the group changed meanwhile.
    #[error(
        "the group changed in {app} while its member list was written (its version moved \
         twice); retry the request"
    )]
    GroupChanged {
        /// The legacy app's name.
        app: String,
    },
    /// Member ids that are no user of this tenant.
    #[error("members: unknown user id{} {}{}", if .0.len() == 1 { "" } else { "s" },
        .0.iter().take(5).map(|id| format!("{id:?}")).collect::<Vec<_>>().join(", "),
        if .0.len() > 5 { format!(" and {} more", .0.len() - 5) } else { String::new() })]
    UnknownMembers(Vec<String>),
}

impl Refusal {
    /// The legacy app refused a call that is not a write.
    pub fn legacy(failure: LegacyFailure, legacy: &Legacy) -> Self {
        Refusal::Legacy {
            failure: Box::new(failure),
            app: legacy.name.clone(),
            fields: None,
        }
    }
}

/// How a plan's calls are made: by the sidecar's gateway, or by a golden case's script.
pub trait Exchange: Send {
    /// What can go wrong making a call (no answer at all); a plan's own refusals become one.
    type Error: From<Refusal> + Send;

    /// Whether `error` leaves a write's outcome unknown: the call may have been carried out
    /// although no answer came (a timeout, a connection broken after sending). A create that
    /// ends so is looked for before it is answered.
    fn outcome_unknown(error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// Makes one call and brings back its answer.
    fn send(
        &mut self,
        call: Outbound<'_>,
    ) -> impl Future<Output = Result<Answer, Self::Error>> + Send;

    /// Makes one call of a list and brings back its answer with the target of the answer's
    /// `Link: <…>; rel="next"` header, if it has one (`link_header` paging).
    fn send_page(
        &mut self,
        call: Outbound<'_>,
    ) -> impl Future<Output = Result<(Answer, Option<String>), Self::Error>> + Send {
        async move { Ok((self.send(call).await?, None)) }
    }

    /// Makes one call and brings back its answer with the answer's `ETag` header, if it has
    /// one (a record's version, sent back as `If-Match`).
    fn send_versioned(
        &mut self,
        call: Outbound<'_>,
    ) -> impl Future<Output = Result<(Answer, Option<String>), Self::Error>> + Send {
        async move { Ok((self.send(call).await?, None)) }
    }

    /// Makes `calls`, at most `limit` at a time, handing each answer to `each` (with the
    /// call's index) as it comes; stops sending at the first error `each` or a call returns.
    fn send_all<'m>(
        &mut self,
        calls: Vec<Outbound<'m>>,
        limit: usize,
        each: &mut (dyn FnMut(usize, Answer) -> Result<(), Self::Error> + Send),
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// An exchange that answers each call at once, one after the other (no network): the
/// golden-case harness's script, `plan`'s canned answers. Every such type is an
/// [`Exchange`] that sends batches in order.
pub trait AnswerNow: Send {
    /// What stops a plan run on it.
    type Error: From<Refusal> + Send;

    /// The answer to `call`, with the target of its `Link` `rel="next"`, if any.
    fn answer_now(&mut self, call: &Outbound<'_>) -> Result<(Answer, Option<String>), Self::Error>;

    /// The answer to `call`, with its `ETag`, if any (default: none).
    fn answer_versioned(
        &mut self,
        call: &Outbound<'_>,
    ) -> Result<(Answer, Option<String>), Self::Error> {
        Ok((self.answer_now(call)?.0, None))
    }
}

impl<T: AnswerNow> Exchange for T {
    type Error = T::Error;

    async fn send(&mut self, call: Outbound<'_>) -> Result<Answer, T::Error> {
        Ok(self.answer_now(&call)?.0)
    }

    async fn send_page(
        &mut self,
        call: Outbound<'_>,
    ) -> Result<(Answer, Option<String>), T::Error> {
        self.answer_now(&call)
    }

    async fn send_versioned(
        &mut self,
        call: Outbound<'_>,
    ) -> Result<(Answer, Option<String>), T::Error> {
        self.answer_versioned(&call)
    }

    async fn send_all<'m>(
        &mut self,
        calls: Vec<Outbound<'m>>,
        _limit: usize,
        each: &mut (dyn FnMut(usize, Answer) -> Result<(), T::Error> + Send),
    ) -> Result<(), T::Error> {
        for (i, call) in calls.iter().enumerate() {
            let (answer, _) = self.answer_now(call)?;
            each(i, answer)?;
        }
        Ok(())
    }
}

/// Sends `out` through `x`. A 2xx answer comes back as the call's record (at its `record`
/// pointer, when it says one): a plan reads records, never envelopes; an "already done"
/// answer as an empty success ([`Call::settle`]).
///
/// A call with `then` steps is one operation: each step is sent after the previous one
/// succeeded (or was "already done"), about the same record and member; the first failure
/// is the answer (the steps before it stay done: the app has no transaction to undo them),
/// else the last step's.
pub async fn exchange<X: Exchange>(x: &mut X, out: Outbound<'_>) -> Result<Answer, X::Error> {
    let call = out.call;
    let steps = call.then.iter().map(|step| Outbound {
        call: step,
        legacy_id: out.legacy_id.clone(),
        member_legacy_id: out.member_legacy_id.clone(),
        query: Vec::new(),
        body: None,
        url: None,
        if_match: None,
    });
    let steps: Vec<Outbound<'_>> = steps.collect();
    let mut answer = x.send(out).await?;
    call.settle(&mut answer);
    for step in steps {
        if answer.is_err() {
            break;
        }
        let step_call = step.call;
        answer = x.send(step).await?;
        step_call.settle(&mut answer);
    }
    Ok(answer)
}

/// Where a walk over a list's pages stands, to resume it later (an RFC 9865 cursor holds
/// one): the 0-based index of the next record and, for the styles whose answers say where
/// the next page is, the app's cursor or next page's URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// 0-based index of the next record.
    pub index: u64,
    /// The app's cursor or next URL for the next page (`cursor`, `next_url`, `link_header`).
    pub after: Option<String>,
    /// Records of that page already answered (a page longer than the walk's count is
    /// answered in parts).
    pub skip: u64,
    /// A fingerprint of the first record of the page before: an app that ignores the paging
    /// parameters answers it again, which would otherwise page forever.
    pub first: Option<u64>,
}

/// The pages of a list call, one call per page: the paging parameters of each, and whether
/// more follow (the app's flag, else its total, else a full page).
#[derive(Clone, Debug)]
pub struct Pages<'m> {
    call: &'m Call,
    paging: &'m Paging,
    shape: &'m ListShape,
    legacy_id: Option<LegacyId>,
    query: Vec<(String, String)>,
    index: u64,
    size: u64,
    done: bool,
    total: Option<u64>,
    last: u64,
    /// The first record of the last page read: an app that ignores the paging parameters
    /// answers it again, which would otherwise page forever.
    first: Option<Value>,
    /// Where the next page is, for the styles whose answers say it: its cursor or its URL.
    after: Option<String>,
    /// [`fingerprint`] of the first record of the last page read (or of the page before a
    /// resumed walk).
    first_print: Option<u64>,
}

impl<'m> Pages<'m> {
    /// Every page of `call` (about `legacy_id`, filtered by `query`), from the first.
    pub fn new(
        call: &'m Call,
        paging: &'m Paging,
        legacy_id: Option<&LegacyId>,
        query: Vec<(String, String)>,
    ) -> Self {
        Pages {
            call,
            paging,
            shape: call.list.as_ref().unwrap_or(&paging.shape),
            legacy_id: legacy_id.cloned(),
            query,
            index: 0,
            size: paging.max_page_size,
            done: false,
            total: None,
            last: 0,
            first: None,
            after: None,
            first_print: None,
        }
    }

    /// Starts at 0-based record `index` (a multiple of the page size for page-numbered APIs).
    pub fn starting_at(mut self, index: u64) -> Self {
        self.index = index;
        self
    }

    /// Resumes a walk at `at` (a [`Pages::position`] of an earlier walk over the same call,
    /// query and page size).
    pub fn resume(mut self, at: Position) -> Self {
        self.index = at.index;
        self.after = at.after;
        self.first_print = at.first;
        self
    }

    /// Where the walk stands: the next page's position, `None` after the last page.
    pub fn position(&self) -> Option<Position> {
        (!self.done).then(|| Position {
            index: self.index,
            after: self.after.clone(),
            skip: 0,
            first: self.first_print,
        })
    }

    /// Whether the app is paged by record index or page number (so an earlier page's
    /// position can be computed: a previous cursor is cheap).
    pub fn addressable(&self) -> bool {
        self.paging.addressable() && !self.call.unpaged
    }

    /// Pages of `size` records (at most the app's largest).
    pub fn of_size(mut self, size: u64) -> Self {
        self.size = size.clamp(1, self.paging.max_page_size);
        self
    }

    /// The next page's call, `None` after the last page.
    pub fn next_call(&self) -> Option<Outbound<'m>> {
        if self.done {
            return None;
        }
        let mut query = self.query.clone();
        let mut url = None;
        if !self.call.unpaged {
            match (self.paging.style, &self.after) {
                (PagingStyle::Cursor, Some(cursor)) => {
                    query.extend(self.paging.after_cursor(cursor, self.size))
                }
                (PagingStyle::NextUrl | PagingStyle::LinkHeader, Some(next)) => {
                    // The app's own URL for the page: filter and size are in it already.
                    url = Some(next.clone());
                    query.clear();
                }
                _ => query.extend(self.paging.query(self.index, self.size)),
            }
        }
        Some(Outbound {
            call: self.call,
            legacy_id: self.legacy_id.clone(),
            member_legacy_id: None,
            query,
            body: None,
            url,
            if_match: None,
        })
    }

    /// Reads the answer to [`Pages::next_call`] (with its `Link` header's next target, for
    /// `link_header` paging): the page's records; moves to the next page.
    pub fn read(
        &mut self,
        answer: Answer,
        link_next: Option<&str>,
        legacy: &Legacy,
    ) -> Result<Vec<Value>, Refusal> {
        let answer = answer.map_err(|f| Refusal::legacy(f, legacy))?;
        let total = self.shape.total(&answer);
        let more = self.shape.more(&answer);
        let after = self.paging.following(&answer, link_next);
        let items = self.shape.items(answer)?;
        if let Some(first) = items.first() {
            let print = fingerprint(first);
            if self.first.as_ref() == Some(first) || self.first_print == Some(print) {
                return Err(TranslateError::Answer(
                    "repeats the previous page: the list call ignores the paging parameters \
                     (declare paging = \"none\" on it if it answers every record at once)"
                        .into(),
                )
                .into());
            }
            self.first = Some(first.clone());
            self.first_print = Some(print);
        }
        let n = items.len() as u64;
        self.index += n;
        self.last = n;
        self.total = total.or(self.total);
        let more = if self.paging.addressable() {
            match (more, total) {
                (Some(m), _) => m,
                (None, Some(t)) => self.index < t,
                (None, None) => n == self.size,
            }
        } else {
            // A cursor or a link says whether a page follows; the last page has none.
            after.is_some()
        };
        self.after = after;
        self.done = !more || n == 0 || self.call.unpaged;
        Ok(items)
    }

    /// Fetches the next page through `x`: its records, `None` after the last.
    pub async fn next<X: Exchange>(
        &mut self,
        x: &mut X,
        legacy: &Legacy,
    ) -> Result<Option<Vec<Value>>, X::Error> {
        let Some(call) = self.next_call() else {
            return Ok(None);
        };
        let (answer, link_next) = x.send_page(call).await?;
        Ok(Some(self.read(answer, link_next.as_deref(), legacy)?))
    }

    /// Where the records, total and more flag are in this call's answers.
    pub fn shape(&self) -> &'m ListShape {
        self.shape
    }

    /// The total the app reported on the last page read, if it reports one.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Records in the last page read.
    pub fn last_page_len(&self) -> u64 {
        self.last
    }

    /// Records asked for per page.
    pub fn page_size(&self) -> u64 {
        self.size
    }

    /// 0-based index of the next record to read.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Stops: no further page is read.
    pub fn stop(&mut self) {
        self.done = true;
    }
}

/// A fingerprint of a record (stable across processes of one build).
fn fingerprint(record: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    record.to_string().hash(&mut h);
    h.finish()
}

/// One page of an RFC 9865 cursor walk: exactly one legacy list call, from a position an
/// earlier page gave out (or the first page), at most `count` of its records, and the
/// positions around it. A legacy page longer than `count` (a list call that is not paged,
/// or an app that ignores the page size) is answered in parts, reading it again for each.
#[derive(Debug)]
pub struct CursorPage<'m> {
    pages: Pages<'m>,
    start: Position,
    count: u64,
    read: bool,
    /// Where the rest of the legacy page starts, when `count` cut it.
    rest: Option<Position>,
}

impl<'m> CursorPage<'m> {
    /// The page of `count` records (legacy pages of at most the app's largest) of `pages`
    /// at `at`.
    pub fn new(pages: Pages<'m>, count: u64, at: Position) -> Self {
        let count = count.max(1);
        CursorPage {
            pages: pages.of_size(count).resume(at.clone()),
            start: at,
            count,
            read: false,
            rest: None,
        }
    }

    /// A page answered without a list call (by lookups): no next or previous page.
    pub fn done(mut pages: Pages<'m>) -> Self {
        pages.stop();
        CursorPage {
            pages,
            start: Position::default(),
            count: 1,
            read: true,
            rest: None,
        }
    }

    /// Records asked for per legacy page (the walk's count, at most the app's largest).
    pub fn page_size(&self) -> u64 {
        self.pages.page_size()
    }

    /// The page's one legacy call; `None` once its answer was read.
    pub fn call(&self) -> Option<Outbound<'m>> {
        if self.read {
            return None;
        }
        self.pages.next_call()
    }

    /// Reads the answer to [`CursorPage::call`]: the page's records, past those answered
    /// before and at most `count`.
    pub fn read(
        &mut self,
        answer: Answer,
        link_next: Option<&str>,
        legacy: &Legacy,
    ) -> Result<Vec<Value>, Refusal> {
        self.read = true;
        if self.start.skip > 0 {
            // The same legacy page again: its first record is the one met before.
            self.pages.first_print = None;
        }
        let records = self.pages.read(answer, link_next, legacy)?;
        let skip = usize::try_from(self.start.skip).unwrap_or(usize::MAX);
        let count = usize::try_from(self.count).unwrap_or(usize::MAX);
        let mut records: Vec<Value> = records.into_iter().skip(skip).collect();
        if records.len() > count {
            records.truncate(count);
            self.rest = Some(Position {
                skip: self.start.skip + self.count,
                first: None,
                ..self.start.clone()
            });
        }
        Ok(records)
    }

    /// Where the next page starts, `None` after the last.
    pub fn next(&self) -> Option<Position> {
        self.rest.clone().or_else(|| self.pages.position())
    }

    /// Where the previous page starts: within the same legacy page, or, for apps paged by
    /// index or page number (others only say where the next page is), one page back;
    /// `None` on the first page.
    pub fn previous(&self) -> Option<Position> {
        if self.start.skip > 0 {
            return Some(Position {
                skip: self.start.skip.saturating_sub(self.count),
                first: None,
                ..self.start.clone()
            });
        }
        (self.pages.addressable() && self.start.index > 0).then(|| Position {
            index: self.start.index.saturating_sub(self.pages.page_size()),
            ..Position::default()
        })
    }

    /// The total the app reported, if it reports one.
    pub fn total(&self) -> Option<u64> {
        self.pages.total()
    }
}
