//! `tokens list|revoke`: the OAuth 2.0 grants the sidecar issued, one line per family (a code
//! and every token issued from it, or one client-credentials token), and their revocation
//! (safe while serving: every replica reads the store on each request).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::bail;
use mapping::ids::TenantId;
use serde::Serialize;

use crate::xref::{Grant, GrantKind, Revoke};

/// `tokens` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    command: TokensCommand,
}

/// The `tokens` subcommands.
#[derive(Debug, clap::Subcommand)]
enum TokensCommand {
    /// One line per family of tokens: its tenant, client, grant, times and state.
    List {
        #[command(flatten)]
        at: super::StoreAt,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a family (as `list` shows it), every family of a client, or of a tenant: its
    /// access tokens stop working at once, its refresh tokens refresh nothing.
    Revoke {
        #[command(flatten)]
        at: super::StoreAt,
        /// The family id (one that begins with `-`, as older ones may, is taken as it is).
        #[arg(allow_hyphen_values = true, required_unless_present_any = ["client", "tenant"], conflicts_with_all = ["client", "tenant"])]
        family: Option<String>,
        /// Every family of this client id.
        #[arg(long, conflicts_with = "tenant")]
        client: Option<String>,
        /// Every family of this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// One family, as `list` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Family {
    /// Its id.
    pub family: String,
    /// The tenant.
    pub tenant: String,
    /// The client id.
    pub client_id: String,
    /// How it began: `authorization_code` or `client_credentials`.
    pub grant: String,
    /// When it began (RFC 3339).
    pub issued: String,
    /// When its latest access token was issued (RFC 3339), if any.
    pub last_issued: Option<String>,
    /// Until when its latest access token is valid (RFC 3339).
    pub access_until: Option<String>,
    /// Until when its current refresh token is valid (RFC 3339).
    pub refresh_until: Option<String>,
    /// `active`, `expired`, `revoked` or `code` (authorized, not yet exchanged).
    pub state: &'static str,
}

/// The families of `rows` at `now` (Unix seconds), in the rows' order.
pub fn families(rows: &[Grant], now: i64) -> Vec<Family> {
    let mut order = Vec::new();
    let mut by: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for r in rows {
        let e = by.entry(r.family.as_str()).or_default();
        if e.is_empty() {
            order.push(r.family.as_str());
        }
        e.push(r);
    }
    order
        .into_iter()
        .map(|f| {
            let rs = &by[f];
            let first = rs[0];
            let access: Vec<&&Grant> = rs.iter().filter(|r| r.kind == GrantKind::Access).collect();
            let refresh = rs
                .iter()
                .filter(|r| r.kind == GrantKind::Refresh && r.used_at.is_none())
                .map(|r| r.expires_at)
                .max();
            let latest = access.iter().max_by_key(|r| (r.issued_at, r.expires_at));
            let revoked = rs.iter().any(|r| r.revoked_at.is_some());
            let live = rs
                .iter()
                .any(|r| r.kind != GrantKind::Code && r.used_at.is_none() && r.live(now));
            let state = if revoked {
                "revoked"
            } else if access.is_empty() && rs.iter().any(|r| r.live(now) && r.used_at.is_none()) {
                "code"
            } else if live {
                "active"
            } else {
                "expired"
            };
            Family {
                family: f.to_owned(),
                tenant: first.tenant.as_str().to_owned(),
                client_id: first.client_id.clone(),
                grant: first.grant_type.clone(),
                issued: rfc3339(rs.iter().map(|r| r.issued_at).min().unwrap_or(0)),
                last_issued: latest.map(|r| rfc3339(r.issued_at)),
                access_until: latest.map(|r| rfc3339(r.expires_at)),
                refresh_until: refresh.map(rfc3339),
                state,
            }
        })
        .collect()
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    let at = match &args.command {
        TokensCommand::List { at, .. } | TokensCommand::Revoke { at, .. } => at,
    };
    let store = at.open().await?;
    let now = crate::cursor::now();
    let outcome = match &args.command {
        TokensCommand::List { tenant, json, .. } => {
            let rows = store.grant_list().await?;
            let rows: Vec<Grant> = rows
                .into_iter()
                .filter(|r| tenant.as_ref().is_none_or(|t| r.tenant.as_str() == t))
                .collect();
            print(&families(&rows, now), *json)
        }
        TokensCommand::Revoke {
            family,
            client,
            tenant,
            ..
        } => {
            let what = match (family, client, tenant) {
                (Some(f), _, _) => Revoke::Family(f.clone()),
                (_, Some(c), _) => Revoke::Client(c.clone()),
                (_, _, Some(t)) => Revoke::Tenant(TenantId::new(t.clone())),
                _ => bail!("name a family, --client or --tenant"),
            };
            let n = store.grant_revoke(what.clone(), now).await?;
            if n == 0 {
                let known = store.grant_list().await?.iter().any(|g| match &what {
                    Revoke::Family(f) => &g.family == f,
                    Revoke::Client(c) => &g.client_id == c,
                    Revoke::Tenant(t) => &g.tenant == t,
                });
                if !known {
                    store.close().await.ok();
                    bail!("no tokens match: see `scim-sidecar tokens list`");
                }
            }
            println!("revoked {n} code(s) and token(s) not revoked before");
            Ok(())
        }
    };
    store.close().await.ok();
    outcome
}

fn print(families: &[Family], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for f in families {
            writeln!(out, "{}", serde_json::to_string(f)?)?;
        }
        return Ok(());
    }
    if families.is_empty() {
        writeln!(out, "no tokens issued")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<16}  {:<12}  {:<20}  {:<18}  {:<7}  {:<20}  {:<20}",
        "FAMILY", "TENANT", "CLIENT", "GRANT", "STATE", "ACCESS UNTIL", "REFRESH UNTIL"
    )?;
    for f in families {
        writeln!(
            out,
            "{:<16}  {:<12}  {:<20}  {:<18}  {:<7}  {:<20}  {:<20}",
            f.family,
            f.tenant,
            f.client_id,
            f.grant,
            f.state,
            f.access_until.as_deref().unwrap_or("-"),
            f.refresh_until.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(family: &str, kind: GrantKind, issued: i64, expires: i64) -> Grant {
        Grant {
            digest: format!("{family}-{}-{issued}", kind.as_str()),
            kind,
            tenant: TenantId::new("acme"),
            client_id: "okta".into(),
            family: family.into(),
            grant_type: "authorization_code".into(),
            issued_at: issued,
            expires_at: expires,
            used_at: None,
            revoked_at: None,
            redirect_uri: None,
            challenge: None,
        }
    }

    /// `revoke` with the family id as its first argument, then `tokens_cli`'s order.
    fn revoke_of(family: &str) -> Option<String> {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "scim-sidecar",
            "tokens",
            "revoke",
            family,
            "--config",
            "sidecar.toml",
        ])
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{family}: {e}"));
        match cli.command {
            crate::cli::Command::Tokens(Args {
                command: TokensCommand::Revoke { family, .. },
            }) => family,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_family_id_beginning_with_a_hyphen_is_taken_as_it_is() {
        // Older ids were base64url, and one in 64 began with `-`: `-c…` was read as
        // `--config`, and the command refused the real `--config`.
        for family in ["-cQ2x9", "-dAb", "--x", "abc-def"] {
            assert_eq!(revoke_of(family).as_deref(), Some(family));
        }
    }

    #[test]
    fn families_summarise_their_rows() {
        let mut spent_code = row("f1", GrantKind::Code, 100, 400);
        spent_code.used_at = Some(110);
        let mut spent_refresh = row("f1", GrantKind::Refresh, 110, 10_000);
        spent_refresh.used_at = Some(200);
        let rows = vec![
            spent_code,
            row("f1", GrantKind::Access, 110, 3_710),
            spent_refresh,
            row("f1", GrantKind::Access, 200, 3_800),
            row("f1", GrantKind::Refresh, 200, 20_000),
            row("f2", GrantKind::Code, 300, 600),
            {
                let mut r = row("f3", GrantKind::Access, 100, 3_700);
                r.revoked_at = Some(150);
                r
            },
            row("f4", GrantKind::Access, 100, 150),
        ];
        let f = families(&rows, 500);
        let states: Vec<(&str, &str)> = f.iter().map(|f| (f.family.as_str(), f.state)).collect();
        assert_eq!(
            states,
            [
                ("f1", "active"),
                ("f2", "code"),
                ("f3", "revoked"),
                ("f4", "expired")
            ]
        );
        assert_eq!(f[0].access_until.as_deref(), Some("1970-01-01T01:03:20Z"));
        assert_eq!(f[0].refresh_until.as_deref(), Some("1970-01-01T05:33:20Z"));
        assert_eq!(f[0].issued, "1970-01-01T00:01:40Z");
        assert_eq!(families(&rows, 30_000)[0].state, "expired");
    }
}
