//! `events list|show|replay|secret`: the outbox of directory-sync events (one row per event
//! and endpoint), one event's body and deliveries, dead-lettered events sent again (safe while
//! serving: the delivery task of every replica reads the outbox), and a new signing secret.

use std::io::Write;

use anyhow::bail;

use crate::events::rfc3339_ms;
use crate::webhooks::sign;
use crate::xref::{OutboxFilter, OutboxRow, Replay, RowState};

/// `events` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    command: EventsCommand,
}

/// The `events` subcommands.
#[derive(Debug, clap::Subcommand)]
enum EventsCommand {
    /// One line per event and endpoint, newest first: type, state, attempts, last error.
    List {
        #[command(flatten)]
        at: super::StoreAt,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Only those in this state: `pending`, `delivered` or `dead`.
        #[arg(long, value_parser = ["pending", "delivered", "dead"])]
        state: Option<String>,
        /// At most this many lines.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One event: its body and how each endpoint's delivery stands.
    Show {
        #[command(flatten)]
        at: super::StoreAt,
        /// The event id (`msg_…`).
        id: String,
    },
    /// Send events again: one (to every endpoint, or `--endpoint`), or every dead-lettered
    /// one (`--dead`, of a `--tenant`, an `--endpoint`). They are due at once, with a new
    /// retry window, in their order.
    Replay {
        #[command(flatten)]
        at: super::StoreAt,
        /// The event id.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<String>,
        /// Every dead-lettered event.
        #[arg(long)]
        dead: bool,
        /// Only this tenant's (with `--dead`).
        #[arg(long, requires = "dead")]
        tenant: Option<String>,
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Print a new signing secret (`whsec_…`) for a webhook endpoint.
    Secret,
}

pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    let at = match &args.command {
        EventsCommand::Secret => {
            println!("{}", sign::new_secret());
            return Ok(());
        }
        EventsCommand::List { at, .. }
        | EventsCommand::Show { at, .. }
        | EventsCommand::Replay { at, .. } => at,
    };
    let store = at.open().await?;
    let outcome = async {
        match &args.command {
            EventsCommand::List {
                tenant,
                state,
                limit,
                json,
                ..
            } => {
                let rows = store
                    .outbox_list(OutboxFilter {
                        tenant: tenant.clone(),
                        state: state.as_deref().and_then(RowState::parse),
                        limit: *limit,
                    })
                    .await?;
                print_list(&rows, *json)
            }
            EventsCommand::Show { id, .. } => {
                let rows = store.outbox_event(id).await?;
                if rows.is_empty() {
                    bail!("no event {id} in the outbox: see `scim-sidecar events list`");
                }
                print_event(&rows)
            }
            EventsCommand::Replay {
                id,
                dead,
                tenant,
                endpoint,
                ..
            } => {
                let what = match (id, dead) {
                    (Some(id), _) => Replay::Event {
                        id: id.clone(),
                        endpoint: endpoint.clone(),
                    },
                    (None, true) => Replay::Dead {
                        tenant: tenant.clone(),
                        endpoint: endpoint.clone(),
                    },
                    (None, false) => bail!("name an event id, or --dead"),
                };
                let n = store
                    .outbox_replay(what.clone(), crate::events::now_ms())
                    .await?;
                if n == 0
                    && let Replay::Event { id, .. } = &what
                {
                    if store.outbox_event(id).await?.is_empty() {
                        bail!("no such event in the outbox: see `scim-sidecar events list`");
                    }
                    bail!(
                        "nothing replayed: no row of that endpoint, or its delivery is in \
                         flight now (try again in a moment)"
                    );
                }
                println!("{n} delivery(ies) due again");
                Ok(())
            }
            EventsCommand::Secret => Ok(()),
        }
    }
    .await;
    store.close().await.ok();
    outcome
}

fn print_list(rows: &[OutboxRow], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for r in rows {
            let mut v = serde_json::to_value(r)?;
            v["state"] = serde_json::json!(r.state().as_str());
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "no events")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24}  {:<36}  {:<12}  {:<12}  {:<19}  {:<9}  {:>3}  LAST",
        "OCCURRED", "EVENT", "TENANT", "ENDPOINT", "TYPE", "STATE", "TRY"
    )?;
    for r in rows {
        let last = match (&r.last_error, r.last_status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("HTTP {s}"),
            (None, None) => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<24}  {:<36}  {:<12}  {:<12}  {:<19}  {:<9}  {:>3}  {last}",
            rfc3339_ms(r.created_ms),
            r.event_id,
            r.tenant,
            r.endpoint,
            r.event_type,
            r.state().as_str(),
            r.attempts,
        )?;
    }
    Ok(())
}

fn print_event(rows: &[OutboxRow]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let Some(first) = rows.first() else {
        return Ok(());
    };
    writeln!(out, "event     {}", first.event_id)?;
    writeln!(out, "type      {}", first.event_type)?;
    writeln!(out, "tenant    {}", first.tenant)?;
    writeln!(out, "occurred  {}", rfc3339_ms(first.created_ms))?;
    for r in rows {
        let when = |ms: Option<i64>| ms.map(rfc3339_ms).unwrap_or_else(|| "-".to_owned());
        writeln!(
            out,
            "endpoint  {}: {}, {} attempt(s), last {} {}{}",
            r.endpoint,
            r.state().as_str(),
            r.attempts,
            when(r.last_attempt_ms),
            r.last_error.as_deref().unwrap_or(""),
            if r.state() == RowState::Pending {
                format!(", next {}", rfc3339_ms(r.next_attempt_ms))
            } else {
                String::new()
            },
        )?;
    }
    let body = first.body.as_deref().unwrap_or("{}");
    let pretty = serde_json::from_str::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| body.to_owned());
    writeln!(out, "{pretty}")?;
    Ok(())
}
