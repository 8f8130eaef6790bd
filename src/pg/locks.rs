//! The session holding a replica's advisory locks (the create claims), with its statements
//! prepared once. Locks and unlocks are each sent one statement at a time; those arriving
//! meanwhile go together in the next (`unnest` of their keys, see `coalesce`), so that under
//! load many claims cost the server one statement. Alone, a call is one round trip.
//!
//! Owns the lock session's connection; `crate::pg` opens it, times the calls and classifies
//! their errors.

use std::sync::Arc;

use tokio_postgres::{Client, Statement};

use super::coalesce::{Coalescer, Runner};

/// A replica's lock session.
pub(super) struct LockSession {
    pub(super) client: Client,
    lock: Batched,
    unlock: Batched,
}

#[derive(Clone, Copy)]
enum Kind {
    Lock,
    Unlock,
}

/// One function of advisory locks, for one key or for many.
struct Batched {
    one: Statement,
    many: Statement,
    calls: Arc<Coalescer<i64, bool>>,
}

impl Batched {
    async fn prepare(client: &Client, function: &str) -> Result<Batched, tokio_postgres::Error> {
        Ok(Batched {
            one: client.prepare(&format!("SELECT {function}($1)")).await?,
            many: client
                .prepare(&format!(
                    "SELECT {function}(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, i) \
                     ORDER BY i"
                ))
                .await?,
            calls: Coalescer::new(1),
        })
    }
}

/// The statement of the calls that waited.
struct Many {
    session: Arc<LockSession>,
    kind: Kind,
}

impl Runner<i64, bool> for Many {
    async fn run(&self, keys: Vec<i64>) -> Vec<Option<bool>> {
        let b = self.session.batched(self.kind);
        match self.session.client.query(&b.many, &[&keys]).await {
            Ok(rows) if rows.len() == keys.len() => {
                rows.iter().map(|row| row.try_get(0).ok()).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl LockSession {
    pub(super) async fn open(client: Client) -> Result<LockSession, tokio_postgres::Error> {
        let lock = Batched::prepare(&client, "pg_try_advisory_lock").await?;
        let unlock = Batched::prepare(&client, "pg_advisory_unlock").await?;
        Ok(LockSession {
            client,
            lock,
            unlock,
        })
    }

    /// `pg_try_advisory_lock(key)`: whether this session holds the lock now.
    pub(super) async fn try_lock(
        self: &Arc<Self>,
        key: i64,
    ) -> Result<bool, tokio_postgres::Error> {
        self.call(Kind::Lock, key).await
    }

    /// `pg_advisory_unlock(key)`: whether this session held the lock.
    pub(super) async fn unlock(self: &Arc<Self>, key: i64) -> Result<bool, tokio_postgres::Error> {
        self.call(Kind::Unlock, key).await
    }

    fn batched(&self, kind: Kind) -> &Batched {
        match kind {
            Kind::Lock => &self.lock,
            Kind::Unlock => &self.unlock,
        }
    }

    async fn call(self: &Arc<Self>, kind: Kind, key: i64) -> Result<bool, tokio_postgres::Error> {
        let b = self.batched(kind);
        let many = Many {
            session: Arc::clone(self),
            kind,
        };
        b.calls
            .call(
                || key,
                many,
                || async { self.client.query_one(&b.one, &[&key]).await?.try_get(0) },
            )
            .await
    }
}
