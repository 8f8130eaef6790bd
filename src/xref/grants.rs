//! OAuth 2.0 grants in the store (`oauth_grants`): authorization codes, access tokens and
//! refresh tokens, each kept by the SHA-256 of its secret only, so that every replica honours
//! and revokes what any replica issued. A *family* is a code and every token issued from it
//! (or one client-credentials token): the unit of revocation.

use mapping::ids::TenantId;

use super::StoreError;

/// What a grant row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantKind {
    /// An authorization code (redeemed once).
    Code,
    /// An access token.
    Access,
    /// A refresh token (spent once: each refresh gives a new one).
    Refresh,
}

impl GrantKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Code => "code",
            GrantKind::Access => "access",
            GrantKind::Refresh => "refresh",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "code" => Ok(GrantKind::Code),
            "access" => Ok(GrantKind::Access),
            "refresh" => Ok(GrantKind::Refresh),
            _ => Err(StoreError::Column(1)),
        }
    }
}

/// One row of `oauth_grants`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Hex SHA-256 of the code or token.
    pub digest: String,
    /// What it is.
    pub kind: GrantKind,
    /// The tenant it opens.
    pub tenant: TenantId,
    /// The client it was issued to.
    pub client_id: String,
    /// Its family's id.
    pub family: String,
    /// `authorization_code` or `client_credentials`: how the family began.
    pub grant_type: String,
    /// Issued, Unix seconds.
    pub issued_at: i64,
    /// Expires, Unix seconds.
    pub expires_at: i64,
    /// When a code was redeemed or a refresh token spent.
    pub used_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// A code's redirect URI.
    pub redirect_uri: Option<String>,
    /// A code's PKCE S256 challenge.
    pub challenge: Option<String>,
}

impl Grant {
    /// Whether it opens anything at `now`: not expired, not revoked.
    pub fn live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Which grants to revoke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// One family.
    Family(String),
    /// Every family of a client.
    Client(String),
    /// Every family of a tenant.
    Tenant(TenantId),
}

impl Revoke {
    /// The `WHERE` column and value.
    pub(super) fn column(&self) -> (&'static str, &str) {
        match self {
            Revoke::Family(f) => ("family", f),
            Revoke::Client(c) => ("client_id", c),
            Revoke::Tenant(t) => ("tenant", t.as_str()),
        }
    }
}

/// The columns, in the order rows are written.
pub(super) const COLUMNS: &str = "digest, kind, tenant, client_id, family, grant_type, issued_at, \
     expires_at, used_at, revoked_at, redirect_uri, challenge";

/// A read of rows `g` in the order of [`COLUMNS`], where a row counts as revoked when any row
/// of its family is: a token issued from a family while it was being revoked (a refresh racing
/// a replay, or `tokens revoke`) opens nothing either.
pub(super) const SELECT_EFFECTIVE: &str = "SELECT g.digest, g.kind, g.tenant, g.client_id, \
     g.family, g.grant_type, g.issued_at, g.expires_at, g.used_at, COALESCE(g.revoked_at, \
     (SELECT MIN(f.revoked_at) FROM oauth_grants f WHERE f.family = g.family)), \
     g.redirect_uri, g.challenge FROM oauth_grants g";

/// A row from its columns, read by `get(i)`.
pub(super) fn from_columns(
    text: impl Fn(usize) -> Result<Option<String>, StoreError>,
    int: impl Fn(usize) -> Result<Option<i64>, StoreError>,
) -> Result<Grant, StoreError> {
    let req = |i: usize| text(i)?.ok_or(StoreError::Column(i));
    let req_int = |i: usize| int(i)?.ok_or(StoreError::Column(i));
    Ok(Grant {
        digest: req(0)?,
        kind: GrantKind::parse(&req(1)?)?,
        tenant: TenantId::new(req(2)?),
        client_id: req(3)?,
        family: req(4)?,
        grant_type: req(5)?,
        issued_at: req_int(6)?,
        expires_at: req_int(7)?,
        used_at: int(8)?,
        revoked_at: int(9)?,
        redirect_uri: text(10)?,
        challenge: text(11)?,
    })
}

impl super::sqlite::Sqlite {
    /// See [`Store::grant_issue`](super::Store::grant_issue).
    pub(super) async fn grant_issue(
        &self,
        rows: Vec<Grant>,
        purge_before: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| insert_sqlite(conn, &rows, purge_before))
            .await
    }

    /// See [`Store::grant_find`](super::Store::grant_find).
    pub(super) async fn grant_find(&self, digest: &str) -> Result<Option<Grant>, StoreError> {
        let digest = digest.to_owned();
        self.read(move |conn| find(conn, &digest)).await
    }

    /// See [`Store::grant_exchange`](super::Store::grant_exchange): one transaction on the
    /// writer.
    pub(super) async fn grant_exchange(
        &self,
        spend: &str,
        kind: GrantKind,
        now: i64,
        issue: Vec<Grant>,
        purge_before: i64,
    ) -> Result<bool, StoreError> {
        let spend = spend.to_owned();
        self.write(move |conn| {
            let spent = conn
                .prepare_cached(
                    "UPDATE oauth_grants SET used_at = ?2 \
                     WHERE digest = ?1 AND kind = ?3 AND used_at IS NULL",
                )?
                .execute(rusqlite::params![spend, now, kind.as_str()])?;
            if spent == 0 {
                return Ok(false);
            }
            insert_sqlite(conn, &issue, purge_before)?;
            Ok(true)
        })
        .await
    }

    /// See [`Store::grant_revoke`](super::Store::grant_revoke).
    pub(super) async fn grant_revoke(&self, what: Revoke, now: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let (column, value) = what.column();
            let n = conn
                .prepare_cached(&format!(
                    "UPDATE oauth_grants SET revoked_at = ?2 \
                     WHERE {column} = ?1 AND revoked_at IS NULL"
                ))?
                .execute(rusqlite::params![value, now])?;
            Ok(n as u64)
        })
        .await
    }

    /// See [`Store::grant_list`](super::Store::grant_list).
    pub(super) async fn grant_list(&self) -> Result<Vec<Grant>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM oauth_grants ORDER BY tenant, client_id, issued_at, digest"
            ))?;
            let rows = stmt.query_map([], |row| Ok(sqlite_row(row)))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r??);
            }
            Ok(out)
        })
        .await
    }
}

/// Inserts `rows` and deletes the rows that expired before `purge_before`.
fn insert_sqlite(
    conn: &rusqlite::Connection,
    rows: &[Grant],
    purge_before: i64,
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO oauth_grants ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?;
    for g in rows {
        insert.execute(rusqlite::params![
            g.digest,
            g.kind.as_str(),
            g.tenant.as_str(),
            g.client_id,
            g.family,
            g.grant_type,
            g.issued_at,
            g.expires_at,
            g.used_at,
            g.revoked_at,
            g.redirect_uri,
            g.challenge,
        ])?;
    }
    conn.prepare_cached("DELETE FROM oauth_grants WHERE expires_at < ?1")?
        .execute([purge_before])?;
    Ok(())
}

fn find(conn: &rusqlite::Connection, digest: &str) -> Result<Option<Grant>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT_EFFECTIVE} WHERE g.digest = ?1"))?;
    let mut rows = stmt.query([digest])?;
    match rows.next()? {
        Some(row) => Ok(Some(sqlite_row(row)?)),
        None => Ok(None),
    }
}

fn sqlite_row(row: &rusqlite::Row<'_>) -> Result<Grant, StoreError> {
    from_columns(
        |i| {
            row.get::<_, Option<String>>(i)
                .map_err(|_| StoreError::Column(i))
        },
        |i| {
            row.get::<_, Option<i64>>(i)
                .map_err(|_| StoreError::Column(i))
        },
    )
}

impl super::postgres::Postgres {
    /// See [`Store::grant_issue`](super::Store::grant_issue): one transaction.
    pub(super) async fn grant_issue(
        &self,
        rows: Vec<Grant>,
        purge_before: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg.error(&e))?;
        insert_pg(self, &tx, &rows, purge_before).await?;
        tx.commit().await.map_err(|e| self.pg.error(&e))?;
        Ok(())
    }

    /// See [`Store::grant_find`](super::Store::grant_find).
    pub(super) async fn grant_find(&self, digest: &str) -> Result<Option<Grant>, StoreError> {
        let rows = self
            .query(
                &format!("{SELECT_EFFECTIVE} WHERE g.digest = $1"),
                &[&digest],
            )
            .await?;
        rows.first().map(pg_row).transpose()
    }

    /// See [`Store::grant_exchange`](super::Store::grant_exchange): the conditional update and
    /// the inserts in one transaction, so of two exchanges on any replicas one wins and a
    /// failed one leaves the spent row unspent.
    pub(super) async fn grant_exchange(
        &self,
        spend: &str,
        kind: GrantKind,
        now: i64,
        issue: Vec<Grant>,
        purge_before: i64,
    ) -> Result<bool, StoreError> {
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await.map_err(|e| self.pg.error(&e))?;
        let spent = tx
            .execute(
                "UPDATE oauth_grants SET used_at = $2 \
                 WHERE digest = $1 AND kind = $3 AND used_at IS NULL",
                &[&spend, &now, &kind.as_str()],
            )
            .await
            .map_err(|e| self.pg.error(&e))?;
        if spent == 0 {
            return Ok(false);
        }
        insert_pg(self, &tx, &issue, purge_before).await?;
        tx.commit().await.map_err(|e| self.pg.error(&e))?;
        Ok(true)
    }

    /// See [`Store::grant_revoke`](super::Store::grant_revoke).
    pub(super) async fn grant_revoke(&self, what: Revoke, now: i64) -> Result<u64, StoreError> {
        let (column, value) = what.column();
        let rows = self
            .query(
                &format!(
                    "UPDATE oauth_grants SET revoked_at = $2 \
                     WHERE {column} = $1 AND revoked_at IS NULL RETURNING digest"
                ),
                &[&value, &now],
            )
            .await?;
        Ok(rows.len() as u64)
    }

    /// See [`Store::grant_list`](super::Store::grant_list).
    pub(super) async fn grant_list(&self) -> Result<Vec<Grant>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM oauth_grants \
                     ORDER BY tenant COLLATE \"C\", client_id COLLATE \"C\", issued_at, digest"
                ),
                &[],
            )
            .await?;
        rows.iter().map(pg_row).collect()
    }
}

/// Inserts `rows` in `tx` and deletes the rows that expired before `purge_before`.
async fn insert_pg(
    pg: &super::postgres::Postgres,
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[Grant],
    purge_before: i64,
) -> Result<(), StoreError> {
    let insert = format!(
        "INSERT INTO oauth_grants ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    for g in rows {
        tx.execute(
            &insert,
            &[
                &g.digest,
                &g.kind.as_str(),
                &g.tenant.as_str(),
                &g.client_id,
                &g.family,
                &g.grant_type,
                &g.issued_at,
                &g.expires_at,
                &g.used_at,
                &g.revoked_at,
                &g.redirect_uri,
                &g.challenge,
            ],
        )
        .await
        .map_err(|e| pg.pg.error(&e))?;
    }
    tx.execute(
        "DELETE FROM oauth_grants WHERE expires_at < $1",
        &[&purge_before],
    )
    .await
    .map_err(|e| pg.pg.error(&e))?;
    Ok(())
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Grant, StoreError> {
    from_columns(
        |i| {
            row.try_get::<_, Option<String>>(i)
                .map_err(|_| StoreError::Column(i))
        },
        |i| {
            row.try_get::<_, Option<i64>>(i)
                .map_err(|_| StoreError::Column(i))
        },
    )
}
