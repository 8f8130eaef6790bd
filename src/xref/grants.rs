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

/// What spending a code or refresh token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spent {
    /// Spent now, for the first time: the row as it was.
    First(Grant),
    /// Spent before: a replay (the caller revokes the family).
    Again(Grant),
    /// No such row.
    Unknown,
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

/// The columns, in the order rows are read.
pub(super) const COLUMNS: &str = "digest, kind, tenant, client_id, family, grant_type, issued_at, \
     expires_at, used_at, revoked_at, redirect_uri, challenge";

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
        self.write(move |conn| {
            let mut insert = conn.prepare_cached(&format!(
                "INSERT INTO oauth_grants ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            for g in &rows {
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
        })
        .await
    }

    /// See [`Store::grant_find`](super::Store::grant_find).
    pub(super) async fn grant_find(&self, digest: &str) -> Result<Option<Grant>, StoreError> {
        let digest = digest.to_owned();
        self.read(move |conn| find(conn, &digest)).await
    }

    /// See [`Store::grant_spend`](super::Store::grant_spend). On the writer: the check and
    /// the mark are one transaction, so of two spends of one row only the first is `First`.
    pub(super) async fn grant_spend(&self, digest: &str, now: i64) -> Result<Spent, StoreError> {
        let digest = digest.to_owned();
        self.write(move |conn| {
            let Some(row) = find(conn, &digest)? else {
                return Ok(Spent::Unknown);
            };
            if row.used_at.is_some() {
                return Ok(Spent::Again(row));
            }
            conn.prepare_cached("UPDATE oauth_grants SET used_at = ?2 WHERE digest = ?1")?
                .execute(rusqlite::params![digest, now])?;
            Ok(Spent::First(row))
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

fn find(conn: &rusqlite::Connection, digest: &str) -> Result<Option<Grant>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM oauth_grants WHERE digest = ?1"
    ))?;
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
    /// See [`Store::grant_issue`](super::Store::grant_issue).
    pub(super) async fn grant_issue(
        &self,
        rows: Vec<Grant>,
        purge_before: i64,
    ) -> Result<(), StoreError> {
        for g in &rows {
            self.query(
                &format!(
                    "INSERT INTO oauth_grants ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ),
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
            .await?;
        }
        self.query(
            "DELETE FROM oauth_grants WHERE expires_at < $1",
            &[&purge_before],
        )
        .await?;
        Ok(())
    }

    /// See [`Store::grant_find`](super::Store::grant_find).
    pub(super) async fn grant_find(&self, digest: &str) -> Result<Option<Grant>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM oauth_grants WHERE digest = $1"),
                &[&digest],
            )
            .await?;
        rows.first().map(pg_row).transpose()
    }

    /// See [`Store::grant_spend`](super::Store::grant_spend): one `UPDATE … WHERE used_at IS
    /// NULL`, so of two spends on any replicas only one changes the row.
    pub(super) async fn grant_spend(&self, digest: &str, now: i64) -> Result<Spent, StoreError> {
        let rows = self
            .query(
                &format!(
                    "UPDATE oauth_grants SET used_at = $2 WHERE digest = $1 AND used_at IS NULL \
                     RETURNING {COLUMNS}"
                ),
                &[&digest, &now],
            )
            .await?;
        if let Some(row) = rows.first() {
            let mut g = pg_row(row)?;
            g.used_at = None;
            return Ok(Spent::First(g));
        }
        Ok(match self.grant_find(digest).await? {
            Some(g) => Spent::Again(g),
            None => Spent::Unknown,
        })
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
