//! The outbox of directory-sync events (`webhook_outbox`): one row per event and endpoint,
//! written in the same transaction as the store change the event tells of (or alone, for a
//! change the store does not keep: a group member added, a failure answered), then leased,
//! delivered, retried, dead-lettered and replayed by `crate::events`.
//!
//! Order per resource: a row is due only while no earlier row of the same endpoint and
//! ordering key (the resource) is still undelivered and not dead, so one resource's events
//! reach an endpoint one at a time, in the order they were committed, whichever replica
//! delivers them. A lease (owner, until) keeps two replicas from sending the same row at once;
//! a replica that dies holding one loses it when it expires.

use mapping::ids::TenantId;

use super::rules::{check_same_legacy, now};
use super::sqlite::{find, insert, lift_row, tombstone_row, upsert_row};
use super::{Seen, StoreError, XrefRecord};

/// A change of a record written together with its events
/// ([`Store::change_with_events`](super::Store::change_with_events)).
#[derive(Clone, Debug)]
pub enum Change {
    /// [`Store::upsert`](super::Store::upsert), then the tombstone lifted if there is one (a
    /// create or an update through SCIM).
    Upsert(Seen),
    /// The record recorded if it never was, then tombstoned (a delete through SCIM).
    Tombstone(Seen),
}

/// An event to put in the outbox, for each endpoint that takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The event id (`msg_…`), the same for every endpoint.
    pub id: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The event type (`user.created`, …).
    pub event_type: String,
    /// What the event is about (`User/<scim id>`): its events are delivered in order.
    pub ordering_key: String,
    /// The JSON body, as sent.
    pub body: String,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The names of the tenant's endpoints that take it.
    pub endpoints: Vec<String>,
}

/// A row leased for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leased {
    /// The row's sequence number.
    pub seq: i64,
    /// The event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The JSON body.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Since when it is being retried (its creation, or its last replay), in milliseconds.
    pub window_start_ms: i64,
}

/// How a delivery attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered 2xx.
    Delivered {
        /// The status.
        status: u16,
    },
    /// It failed; try again at `next_ms`.
    Retry {
        /// The status, when the endpoint answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again (ms since the epoch).
        next_ms: i64,
    },
    /// It failed and its retry window is over: dead-lettered.
    Dead {
        /// The status, when the endpoint answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// Where an outbox row stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    /// Waiting for its (next) attempt.
    Pending,
    /// Delivered.
    Delivered,
    /// Dead-lettered: not tried again until replayed.
    Dead,
}

impl RowState {
    /// `pending`, `delivered` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Pending => "pending",
            RowState::Delivered => "delivered",
            RowState::Dead => "dead",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<RowState> {
        match s {
            "pending" => Some(RowState::Pending),
            "delivered" => Some(RowState::Delivered),
            "dead" => Some(RowState::Dead),
            _ => None,
        }
    }

    fn condition(self) -> &'static str {
        match self {
            RowState::Pending => "delivered_ms IS NULL AND dead_ms IS NULL",
            RowState::Delivered => "delivered_ms IS NOT NULL",
            RowState::Dead => "dead_ms IS NOT NULL",
        }
    }
}

/// One row of the outbox, for `events list|show` and the admin page.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRow {
    /// Sequence number (commit order).
    pub seq: i64,
    /// The event id.
    pub event_id: String,
    /// The tenant.
    pub tenant: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// The event type.
    pub event_type: String,
    /// The ordering key (`User/<id>`).
    pub ordering_key: String,
    /// When the event happened (ms since the epoch).
    pub created_ms: i64,
    /// Attempts made.
    pub attempts: i64,
    /// When it is tried next (ms), while pending.
    pub next_attempt_ms: i64,
    /// The last answer's status.
    pub last_status: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was last tried (ms).
    pub last_attempt_ms: Option<i64>,
    /// When it was delivered (ms).
    pub delivered_ms: Option<i64>,
    /// When it was dead-lettered (ms).
    pub dead_ms: Option<i64>,
    /// The JSON body (only by `events show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl OutboxRow {
    /// Where it stands.
    pub fn state(&self) -> RowState {
        if self.delivered_ms.is_some() {
            RowState::Delivered
        } else if self.dead_ms.is_some() {
            RowState::Dead
        } else {
            RowState::Pending
        }
    }
}

/// Which rows `events list` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    /// One tenant's.
    pub tenant: Option<String>,
    /// In one state.
    pub state: Option<RowState>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// What to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// One event (every endpoint's row, or one endpoint's).
    Event {
        /// The event id.
        id: String,
        /// Only this endpoint's row.
        endpoint: Option<String>,
    },
    /// Every dead row (of a tenant, of an endpoint).
    Dead {
        /// Only this tenant's.
        tenant: Option<String>,
        /// Only this endpoint's.
        endpoint: Option<String>,
    },
}

/// The queue of one endpoint, for the metrics and the admin page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    /// The tenant.
    pub tenant: String,
    /// The endpoint.
    pub endpoint: String,
    /// Rows waiting for delivery.
    pub pending: u64,
    /// Dead rows.
    pub dead: u64,
    /// When the oldest pending event happened (ms).
    pub oldest_pending_ms: Option<i64>,
}

/// A 64-bit hash of a row's resource (tenant, endpoint, ordering key), kept in the pending
/// index beside `seq`: whether an earlier row of the same resource is still on its way is
/// read from that index alone (a walk over the endpoint's earlier pending rows, which a due
/// row has few of: due rows are at the front). The index is appended to in `seq` order, so a
/// growing backlog does not make writes dearer; a collision only makes the check compare
/// the ordering keys of more rows.
fn order_hash(tenant: &TenantId, endpoint: &str, key: &str) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [tenant.as_str(), endpoint, key] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    i64::from_le_bytes(h.digest().to_le_bytes())
}

/// The columns of an [`OutboxRow`], in the order they are read.
const ROW_COLUMNS: &str = "seq, event_id, tenant, endpoint, event_type, ordering_key, \
     created_ms, attempts, next_attempt_ms, last_status, last_error, last_attempt_ms, \
     delivered_ms, dead_ms";

/// The condition of a row due for delivery at `now` (parameter `$now`) for one endpoint: not
/// delivered, not dead, its attempt time come, not leased, and no earlier row of its
/// resource still on its way.
macro_rules! due_rows {
    ($tenant:literal, $endpoint:literal, $now:literal, $limit:literal, $lock:literal) => {
        concat!(
            "SELECT o.seq FROM webhook_outbox o WHERE o.tenant = ",
            $tenant,
            " AND o.endpoint = ",
            $endpoint,
            " AND o.delivered_ms IS NULL AND o.dead_ms IS NULL AND o.next_attempt_ms <= ",
            $now,
            " AND (o.lease_until_ms IS NULL OR o.lease_until_ms <= ",
            $now,
            ") AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.tenant = o.tenant \
             AND p.endpoint = o.endpoint AND p.order_hash = o.order_hash \
             AND p.ordering_key = o.ordering_key AND p.seq < o.seq \
             AND p.delivered_ms IS NULL AND p.dead_ms IS NULL) ORDER BY o.seq LIMIT ",
            $limit,
            $lock
        )
    };
}

/// The columns an attempt sets.
struct Settled<'a> {
    status: Option<i64>,
    error: Option<&'a str>,
    next: Option<i64>,
    delivered: Option<i64>,
    dead: Option<i64>,
}

/// What the update of an attempt ending at `now` writes.
fn settled(a: &Attempt, now: i64) -> Settled<'_> {
    let none = Settled {
        status: None,
        error: None,
        next: None,
        delivered: None,
        dead: None,
    };
    match a {
        Attempt::Delivered { status } => Settled {
            status: Some(i64::from(*status)),
            delivered: Some(now),
            ..none
        },
        Attempt::Retry {
            status,
            error,
            next_ms,
        } => Settled {
            status: status.map(i64::from),
            error: Some(error),
            next: Some(*next_ms),
            ..none
        },
        Attempt::Dead { status, error } => Settled {
            status: status.map(i64::from),
            error: Some(error),
            dead: Some(now),
            ..none
        },
    }
}

/// The `WHERE` clause and parameters of a list (`?` placeholders numbered from `first`).
fn list_where(f: &OutboxFilter, placeholder: impl Fn(usize) -> String) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(t) = &f.tenant {
        params.push(t.clone());
        clauses.push(format!("tenant = {}", placeholder(params.len())));
    }
    if let Some(s) = f.state {
        clauses.push(s.condition().to_owned());
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (clause, params)
}

/// The `WHERE` clause and parameters of a replay.
fn replay_where(r: &Replay, placeholder: impl Fn(usize) -> String) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let mut add = |column: &str, value: &String, clauses: &mut Vec<String>| {
        params.push(value.clone());
        clauses.push(format!("{column} = {}", placeholder(params.len())));
    };
    match r {
        Replay::Event { id, endpoint } => {
            add("event_id", id, &mut clauses);
            if let Some(e) = endpoint {
                add("endpoint", e, &mut clauses);
            }
        }
        Replay::Dead { tenant, endpoint } => {
            clauses.push("dead_ms IS NOT NULL".to_owned());
            if let Some(t) = tenant {
                add("tenant", t, &mut clauses);
            }
            if let Some(e) = endpoint {
                add("endpoint", e, &mut clauses);
            }
        }
    }
    (clauses.join(" AND "), params)
}

/// Inserts `events` (one row per endpoint) on an SQLite connection inside the caller's
/// transaction.
pub(super) fn insert_sqlite(
    conn: &rusqlite::Connection,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO webhook_outbox (event_id, tenant, endpoint, event_type, ordering_key, \
         order_hash, body, created_ms, window_start_ms, next_attempt_ms, attempts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8, 0)",
    )?;
    for e in events {
        for endpoint in &e.endpoints {
            stmt.execute(rusqlite::params![
                e.id,
                e.tenant.as_str(),
                endpoint,
                e.event_type,
                e.ordering_key,
                order_hash(&e.tenant, endpoint, &e.ordering_key),
                e.body,
                e.at_ms,
            ])?;
        }
    }
    Ok(())
}

fn sqlite_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        seq: row.get(0)?,
        event_id: row.get(1)?,
        tenant: row.get(2)?,
        endpoint: row.get(3)?,
        event_type: row.get(4)?,
        ordering_key: row.get(5)?,
        created_ms: row.get(6)?,
        attempts: row.get(7)?,
        next_attempt_ms: row.get(8)?,
        last_status: row.get(9)?,
        last_error: row.get(10)?,
        last_attempt_ms: row.get(11)?,
        delivered_ms: row.get(12)?,
        dead_ms: row.get(13)?,
        body: None,
    })
}

impl super::sqlite::Sqlite {
    /// See [`Store::change_with_events`](super::Store::change_with_events): the change and
    /// the events in one savepoint of the writer's transaction.
    pub(super) async fn change_with_events(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        change: Change,
        events: Vec<NewEvent>,
    ) -> Result<XrefRecord, StoreError> {
        let tenant = tenant.clone();
        let resource_type = resource_type.to_owned();
        self.write(move |tx| {
            let now = now()?;
            let record = match change {
                Change::Upsert(row) => {
                    let mut record = upsert_row(tx, &tenant, &resource_type, row, &now)?;
                    if record.tombstoned_at.is_some() {
                        lift_row(tx, &record, &now)?;
                        record.tombstoned_at = None;
                        record.version += 1;
                        record.last_modified.clone_from(&now);
                    }
                    record
                }
                Change::Tombstone(row) => {
                    let mut record = match find(tx, &tenant, &resource_type, &row.scim_id)? {
                        Some(current) => current,
                        None => insert(tx, &tenant, &resource_type, row, &now)?,
                    };
                    if record.tombstoned_at.is_none() {
                        tombstone_row(tx, &tenant, &resource_type, &record.scim_id, &now)?;
                        record.tombstoned_at = Some(now.clone());
                        record.version += 1;
                        record.last_modified = now;
                    }
                    record
                }
            };
            insert_sqlite(tx, &events)?;
            Ok(record)
        })
        .await
    }

    /// See [`Store::emit`](super::Store::emit).
    pub(super) async fn emit(&self, events: Vec<NewEvent>) -> Result<(), StoreError> {
        self.write(move |conn| insert_sqlite(conn, &events)).await
    }

    /// See [`Store::outbox_lease`](super::Store::outbox_lease).
    pub(super) async fn outbox_lease(
        &self,
        tenant: &str,
        endpoint: &str,
        owner: &str,
        now: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<Leased>, StoreError> {
        let (tenant, endpoint, owner) = (tenant.to_owned(), endpoint.to_owned(), owner.to_owned());
        // Most looks find nothing due: a reader says so without a write transaction.
        let (t, e) = (tenant.clone(), endpoint.clone());
        let any = self
            .read(move |conn| {
                let sql = concat!("SELECT EXISTS (", due_rows!("?1", "?2", "?3", "1", ""), ")");
                Ok(conn
                    .prepare_cached(sql)?
                    .query_row(rusqlite::params![t, e, now], |r| r.get::<_, bool>(0))?)
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        self.write(move |conn| {
            let sql = concat!(
                "UPDATE webhook_outbox SET lease_owner = ?3, lease_until_ms = ?5 WHERE seq IN (",
                due_rows!("?1", "?2", "?4", "?6", ""),
                ") RETURNING seq, event_id, event_type, body, attempts, window_start_ms"
            );
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(
                rusqlite::params![tenant, endpoint, owner, now, until, limit],
                |r| {
                    Ok(Leased {
                        seq: r.get(0)?,
                        event_id: r.get(1)?,
                        event_type: r.get(2)?,
                        body: r.get(3)?,
                        attempts: r.get(4)?,
                        window_start_ms: r.get(5)?,
                    })
                },
            )?;
            let mut out = rows.collect::<Result<Vec<_>, _>>()?;
            out.sort_by_key(|l| l.seq);
            Ok(out)
        })
        .await
    }

    /// See [`Store::outbox_settle`](super::Store::outbox_settle).
    pub(super) async fn outbox_settle(
        &self,
        seq: i64,
        owner: &str,
        attempt: Attempt,
        now: i64,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_owned();
        self.write(move |conn| {
            let Settled {
                status,
                error,
                next,
                delivered,
                dead,
            } = settled(&attempt, now);
            let n = conn
                .prepare_cached(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, last_status = ?2, \
                 last_error = ?3, last_attempt_ms = ?4, \
                 next_attempt_ms = COALESCE(?5, next_attempt_ms), delivered_ms = ?6, \
                 dead_ms = ?7, lease_owner = NULL, lease_until_ms = NULL \
                 WHERE seq = ?1 AND lease_owner = ?8",
                )?
                .execute(rusqlite::params![
                    seq, status, error, now, next, delivered, dead, owner
                ])?;
            Ok(n == 1)
        })
        .await
    }

    /// See [`Store::outbox_release`](super::Store::outbox_release).
    pub(super) async fn outbox_release(&self, owner: Option<String>) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let n = match &owner {
                Some(o) => conn
                    .prepare_cached(
                        "UPDATE webhook_outbox SET lease_owner = NULL, lease_until_ms = NULL \
                         WHERE lease_owner = ?1",
                    )?
                    .execute([o])?,
                None => conn
                    .prepare_cached(
                        "UPDATE webhook_outbox SET lease_owner = NULL, lease_until_ms = NULL \
                         WHERE lease_owner IS NOT NULL",
                    )?
                    .execute([])?,
            };
            Ok(n as u64)
        })
        .await
    }

    /// See [`Store::outbox_list`](super::Store::outbox_list).
    pub(super) async fn outbox_list(&self, f: OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |conn| {
            let (clause, params) = list_where(&f, |i| format!("?{i}"));
            let mut stmt = conn.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM webhook_outbox {clause} ORDER BY seq DESC LIMIT {}",
                f.limit
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), sqlite_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// See [`Store::outbox_event`](super::Store::outbox_event).
    pub(super) async fn outbox_event(&self, id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS}, body FROM webhook_outbox WHERE event_id = ?1 \
                 ORDER BY endpoint"
            ))?;
            let rows = stmt.query_map([&id], |r| {
                let mut row = sqlite_row(r)?;
                row.body = Some(r.get(14)?);
                Ok(row)
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// See [`Store::outbox_replay`](super::Store::outbox_replay).
    pub(super) async fn outbox_replay(&self, what: Replay, now: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let (clause, params) = replay_where(&what, |i| format!("?{i}"));
            // `now` is a number: written into the statement, not a parameter.
            let sql = format!(
                "UPDATE webhook_outbox SET delivered_ms = NULL, dead_ms = NULL, attempts = 0, \
                 next_attempt_ms = {now}, window_start_ms = {now}, \
                 lease_owner = NULL, lease_until_ms = NULL WHERE {clause} \
                 AND (lease_until_ms IS NULL OR lease_until_ms <= {now})"
            );
            let n = conn.execute(&sql, rusqlite::params_from_iter(params))?;
            Ok(n as u64)
        })
        .await
    }

    /// See [`Store::outbox_stats`](super::Store::outbox_stats).
    pub(super) async fn outbox_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(STATS_SQLITE)?;
            let rows = stmt.query_map([], |r| {
                Ok(QueueStats {
                    tenant: r.get(0)?,
                    endpoint: r.get(1)?,
                    pending: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    dead: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    oldest_pending_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// See [`Store::outbox_purge`](super::Store::outbox_purge).
    pub(super) async fn outbox_purge(
        &self,
        delivered_before: i64,
        dead_before: i64,
    ) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached(PURGE_SQLITE)?
                .execute([delivered_before, dead_before])?;
            Ok(n as u64)
        })
        .await
    }
}

/// The queue of every endpoint that has rows not yet delivered: its pending rows and its
/// dead ones, each read through its partial index, never the delivered rows (kept 7 days,
/// the bulk of the table), since `/metrics` asks at every scrape. The two literals: how each
/// engine names those indexes in a query.
macro_rules! stats_sql {
    ($pending:literal, $dead:literal) => {
        concat!(
            "SELECT tenant, endpoint, SUM(p), SUM(d), MIN(created) FROM (\
             SELECT tenant, endpoint, 1 AS p, 0 AS d, created_ms AS created \
             FROM webhook_outbox ",
            $pending,
            " WHERE delivered_ms IS NULL AND dead_ms IS NULL \
             UNION ALL SELECT tenant, endpoint, 0, 1, NULL FROM webhook_outbox ",
            $dead,
            " WHERE dead_ms IS NOT NULL) AS q \
             GROUP BY tenant, endpoint ORDER BY tenant, endpoint"
        )
    };
}

/// [`stats_sql`] on SQLite, whose planner would rather scan the table than a partial index
/// without a constraint on its columns.
pub(super) const STATS_SQLITE: &str = stats_sql!(
    "INDEXED BY webhook_outbox_pending",
    "INDEXED BY webhook_outbox_dead"
);

/// [`stats_sql`] on PostgreSQL (its planner takes the partial indexes on its own).
const STATS_PG: &str = stats_sql!("", "");

const PURGE_SQLITE: &str = "DELETE FROM webhook_outbox WHERE delivered_ms < ?1 OR dead_ms < ?2";

impl super::postgres::Postgres {
    /// See [`Store::change_with_events`](super::Store::change_with_events): one
    /// transaction, run again when it loses a race (as every xref transaction).
    pub(super) async fn change_with_events(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        change: Change,
        events: Vec<NewEvent>,
    ) -> Result<XrefRecord, StoreError> {
        let mut attempt = 0;
        loop {
            match self
                .change_once(tenant, resource_type, &change, &events)
                .await
            {
                Err(StoreError::Pg(e))
                    if super::postgres::lost_race(&e)
                        && attempt < super::postgres::RACE_RETRIES =>
                {
                    attempt += 1;
                }
                Ok(record) => {
                    self.links
                        .put(tenant, resource_type, &record.scim_id, &record.legacy_id);
                    return Ok(record);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn change_once(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        change: &Change,
        events: &[NewEvent],
    ) -> Result<XrefRecord, StoreError> {
        let err = |e: tokio_postgres::Error| self.pg.error(&e);
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await.map_err(err)?;
        let now = now()?;
        let row = match change {
            Change::Upsert(row) | Change::Tombstone(row) => row,
        };
        let found = match self
            .find_for_update(&tx, tenant, resource_type, &row.scim_id)
            .await?
        {
            Some(current) => Some(current),
            None => match self.insert(&tx, tenant, resource_type, row, &now).await? {
                Some(inserted) => {
                    // Just made: live, its names those given.
                    let mut inserted = inserted;
                    if let Change::Tombstone(_) = change {
                        self.set_tombstone(&tx, &mut inserted, true, &now).await?;
                    }
                    insert_pg(self, &tx, events).await?;
                    tx.commit().await.map_err(err)?;
                    return Ok(inserted);
                }
                None => {
                    self.find_for_update(&tx, tenant, resource_type, &row.scim_id)
                        .await?
                }
            },
        };
        let Some(mut record) = found else {
            return Err(super::postgres::conflict(row));
        };
        match change {
            Change::Upsert(row) => {
                check_same_legacy(&record, row)?;
                record.external_id = row.external_id.clone();
                record.user_name = row.user_name.clone();
                self.update_names(&tx, &mut record, &now).await?;
                if record.tombstoned_at.is_some() {
                    self.retire_others(
                        &tx,
                        tenant,
                        resource_type,
                        &record.legacy_id,
                        &record.scim_id,
                        &now,
                    )
                    .await?;
                    self.set_tombstone(&tx, &mut record, false, &now).await?;
                }
            }
            Change::Tombstone(_) => {
                if record.tombstoned_at.is_none() {
                    self.set_tombstone(&tx, &mut record, true, &now).await?;
                }
            }
        }
        insert_pg(self, &tx, events).await?;
        tx.commit().await.map_err(err)?;
        Ok(record)
    }

    /// Tombstones `record` (`dead`) or lifts its tombstone, in `tx`.
    async fn set_tombstone(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        record: &mut XrefRecord,
        dead: bool,
        now: &str,
    ) -> Result<(), StoreError> {
        let at = dead.then_some(now);
        tx.execute(
            "UPDATE xref SET tombstoned_at = $4, last_modified = $5, version = version + 1 \
             WHERE tenant = $1 AND resource_type = $2 AND scim_id = $3",
            &[
                &record.tenant.as_str(),
                &record.resource_type.as_str(),
                &record.scim_id.as_str(),
                &at,
                &now,
            ],
        )
        .await
        .map_err(|e| self.pg.error(&e))?;
        record.tombstoned_at = at.map(str::to_owned);
        record.version += 1;
        now.clone_into(&mut record.last_modified);
        Ok(())
    }

    /// See [`Store::emit`](super::Store::emit).
    pub(super) async fn emit(&self, events: Vec<NewEvent>) -> Result<(), StoreError> {
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg.error(&e))?;
        insert_pg(self, &tx, &events).await?;
        tx.commit().await.map_err(|e| self.pg.error(&e))?;
        Ok(())
    }

    /// See [`Store::outbox_lease`](super::Store::outbox_lease): `FOR UPDATE SKIP LOCKED`, so
    /// two replicas leasing at once take different rows.
    pub(super) async fn outbox_lease(
        &self,
        tenant: &str,
        endpoint: &str,
        owner: &str,
        now: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<Leased>, StoreError> {
        let sql = concat!(
            "UPDATE webhook_outbox SET lease_owner = $3, lease_until_ms = $5 WHERE seq IN (",
            due_rows!("$1", "$2", "$4", "$6", " FOR UPDATE SKIP LOCKED"),
            ") RETURNING seq, event_id, event_type, body, attempts, window_start_ms"
        );
        let rows = self
            .query(
                sql,
                &[&tenant, &endpoint, &owner, &now, &until, &i64::from(limit)],
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let col = |i: usize| StoreError::Column(i);
                Ok(Leased {
                    seq: r.try_get(0).map_err(|_| col(0))?,
                    event_id: r.try_get(1).map_err(|_| col(1))?,
                    event_type: r.try_get(2).map_err(|_| col(2))?,
                    body: r.try_get(3).map_err(|_| col(3))?,
                    attempts: r.try_get(4).map_err(|_| col(4))?,
                    window_start_ms: r.try_get(5).map_err(|_| col(5))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|l| l.seq);
        Ok(out)
    }

    /// See [`Store::outbox_settle`](super::Store::outbox_settle).
    pub(super) async fn outbox_settle(
        &self,
        seq: i64,
        owner: &str,
        attempt: Attempt,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Settled {
            status,
            error,
            next,
            delivered,
            dead,
        } = settled(&attempt, now);
        let rows = self
            .query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_status = $2, \
                 last_error = $3, last_attempt_ms = $4, \
                 next_attempt_ms = COALESCE($5, next_attempt_ms), delivered_ms = $6, \
                 dead_ms = $7, lease_owner = NULL, lease_until_ms = NULL \
                 WHERE seq = $1 AND lease_owner = $8 RETURNING seq",
                &[
                    &seq, &status, &error, &now, &next, &delivered, &dead, &owner,
                ],
            )
            .await?;
        Ok(rows.len() == 1)
    }

    /// See [`Store::outbox_release`](super::Store::outbox_release).
    pub(super) async fn outbox_release(&self, owner: Option<String>) -> Result<u64, StoreError> {
        let rows = match &owner {
            Some(o) => {
                self.query(
                    "UPDATE webhook_outbox SET lease_owner = NULL, lease_until_ms = NULL \
                     WHERE lease_owner = $1 RETURNING seq",
                    &[o],
                )
                .await?
            }
            None => {
                self.query(
                    "UPDATE webhook_outbox SET lease_owner = NULL, lease_until_ms = NULL \
                     WHERE lease_owner IS NOT NULL RETURNING seq",
                    &[],
                )
                .await?
            }
        };
        Ok(rows.len() as u64)
    }

    /// See [`Store::outbox_list`](super::Store::outbox_list).
    pub(super) async fn outbox_list(&self, f: OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        let (clause, params) = list_where(&f, |i| format!("${i}"));
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let rows = self
            .query(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM webhook_outbox {clause} ORDER BY seq DESC LIMIT {}",
                    f.limit
                ),
                &params,
            )
            .await?;
        rows.iter().map(|r| pg_row(r, false)).collect()
    }

    /// See [`Store::outbox_event`](super::Store::outbox_event).
    pub(super) async fn outbox_event(&self, id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {ROW_COLUMNS}, body FROM webhook_outbox WHERE event_id = $1 \
                     ORDER BY endpoint COLLATE \"C\""
                ),
                &[&id],
            )
            .await?;
        rows.iter().map(|r| pg_row(r, true)).collect()
    }

    /// See [`Store::outbox_replay`](super::Store::outbox_replay).
    pub(super) async fn outbox_replay(&self, what: Replay, now: i64) -> Result<u64, StoreError> {
        let (clause, params) = replay_where(&what, |i| format!("${}", i + 1));
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&now];
        all.extend(
            params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        let rows = self
            .query(
                &format!(
                    "UPDATE webhook_outbox SET delivered_ms = NULL, dead_ms = NULL, \
                     attempts = 0, next_attempt_ms = $1, window_start_ms = $1, \
                     lease_owner = NULL, lease_until_ms = NULL WHERE {clause} \
                     AND (lease_until_ms IS NULL OR lease_until_ms <= $1) RETURNING seq"
                ),
                &all,
            )
            .await?;
        Ok(rows.len() as u64)
    }

    /// See [`Store::outbox_stats`](super::Store::outbox_stats).
    pub(super) async fn outbox_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let rows = self.query(STATS_PG, &[]).await?;
        rows.iter()
            .map(|r| {
                let col = |i: usize| StoreError::Column(i);
                Ok(QueueStats {
                    tenant: r.try_get(0).map_err(|_| col(0))?,
                    endpoint: r.try_get(1).map_err(|_| col(1))?,
                    pending: u64::try_from(r.try_get::<_, i64>(2).map_err(|_| col(2))?)
                        .unwrap_or(0),
                    dead: u64::try_from(r.try_get::<_, i64>(3).map_err(|_| col(3))?).unwrap_or(0),
                    oldest_pending_ms: r.try_get(4).map_err(|_| col(4))?,
                })
            })
            .collect()
    }

    /// See [`Store::outbox_purge`](super::Store::outbox_purge).
    pub(super) async fn outbox_purge(
        &self,
        delivered_before: i64,
        dead_before: i64,
    ) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "DELETE FROM webhook_outbox WHERE delivered_ms < $1 OR dead_ms < $2 RETURNING seq",
                &[&delivered_before, &dead_before],
            )
            .await?;
        Ok(rows.len() as u64)
    }
}

/// Inserts `events` (one row per endpoint) in `tx`.
pub(super) async fn insert_pg(
    pg: &super::postgres::Postgres,
    tx: &tokio_postgres::Transaction<'_>,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    // Rows get their seq at insert, not at commit: two transactions writing events of one
    // resource take its lock first (in one order), so the first to commit has the lower seq.
    let mut keys: Vec<i64> = (events.iter())
        .flat_map(|e| (e.endpoints.iter()).map(|n| order_hash(&e.tenant, n, &e.ordering_key)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
            .await
            .map_err(|err| pg.pg.error(&err))?;
    }
    for e in events {
        for endpoint in &e.endpoints {
            tx.execute(
                "INSERT INTO webhook_outbox (event_id, tenant, endpoint, event_type, \
                 ordering_key, order_hash, body, created_ms, window_start_ms, next_attempt_ms, \
                 attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, 0)",
                &[
                    &e.id,
                    &e.tenant.as_str(),
                    endpoint,
                    &e.event_type,
                    &e.ordering_key,
                    &order_hash(&e.tenant, endpoint, &e.ordering_key),
                    &e.body,
                    &e.at_ms,
                ],
            )
            .await
            .map_err(|err| pg.pg.error(&err))?;
        }
    }
    Ok(())
}

fn pg_row(r: &tokio_postgres::Row, body: bool) -> Result<OutboxRow, StoreError> {
    let col = |i: usize| StoreError::Column(i);
    Ok(OutboxRow {
        seq: r.try_get(0).map_err(|_| col(0))?,
        event_id: r.try_get(1).map_err(|_| col(1))?,
        tenant: r.try_get(2).map_err(|_| col(2))?,
        endpoint: r.try_get(3).map_err(|_| col(3))?,
        event_type: r.try_get(4).map_err(|_| col(4))?,
        ordering_key: r.try_get(5).map_err(|_| col(5))?,
        created_ms: r.try_get(6).map_err(|_| col(6))?,
        attempts: r.try_get(7).map_err(|_| col(7))?,
        next_attempt_ms: r.try_get(8).map_err(|_| col(8))?,
        last_status: r.try_get(9).map_err(|_| col(9))?,
        last_error: r.try_get(10).map_err(|_| col(10))?,
        last_attempt_ms: r.try_get(11).map_err(|_| col(11))?,
        delivered_ms: r.try_get(12).map_err(|_| col(12))?,
        dead_ms: r.try_get(13).map_err(|_| col(13))?,
        body: if body {
            Some(r.try_get(14).map_err(|_| col(14))?)
        } else {
            None
        },
    })
}
