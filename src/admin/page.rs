//! The `/admin/` page: plain HTML with an inline style sheet, no script and no external
//! asset. Every value from the log or the request is escaped.

use std::fmt::Write as _;

use crate::html::escape;
use crate::provisioning::{Entry, LogError, Query, format_ms};
use crate::xref::{OutboxRow, StoreError};
use mapping::ids::TenantId;

/// The filter form's values as the user typed them.
#[derive(Debug, Default)]
pub(super) struct Filters {
    tenant: String,
    q: String,
    since: String,
}

impl Filters {
    pub(super) fn from_query(query: &str) -> Self {
        let mut f = Filters::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "tenant" => f.tenant = v.into_owned(),
                "q" => f.q = v.into_owned(),
                "since" => f.since = v.into_owned(),
                _ => {}
            }
        }
        f
    }
}

/// Everything the page shows.
pub(super) struct View<'a> {
    pub(super) query: &'a Query,
    pub(super) raw: Filters,
    pub(super) draining: bool,
    pub(super) tenants: Vec<String>,
    /// Per tenant: its legacy app and how the identity provider authenticates (mode names,
    /// never a secret).
    pub(super) auth: Vec<(String, String, Vec<&'static str>)>,
    pub(super) failures: Result<Vec<Entry>, LogError>,
    pub(super) recent: Result<Vec<Entry>, LogError>,
    pub(super) counts: Result<Vec<(TenantId, String, u64, u64)>, StoreError>,
    /// The event queues of the configured endpoints and the dead-lettered events; `None`
    /// when no tenant has an endpoint.
    pub(super) events: Option<Result<EventsView, StoreError>>,
    pub(super) now_ms: i64,
}

/// The events part of the page.
#[derive(Debug)]
pub(super) struct EventsView {
    /// Every configured endpoint's queue, then those of endpoints no longer configured.
    pub(super) endpoints: Vec<super::Queue>,
    /// The newest dead-lettered rows.
    pub(super) dead: Vec<OutboxRow>,
}

const STYLE: &str = "
:root { color-scheme: light; --ink: #1d2433; --muted: #5b6475; --line: #dde2ea; --bad: #b42318;
  --bad-bg: #fef3f2; --ok: #067647; --head: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--ink); }
header { padding: 16px 24px; border-bottom: 1px solid var(--line); display: flex; gap: 16px;
  align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .state { color: var(--muted); }
main { padding: 8px 24px 32px; max-width: 1400px; }
h2 { font-size: 15px; margin: 24px 0 8px; }
h2 .n { color: var(--muted); font-weight: normal; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.time, td.action, td.outcome { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.id { font-family: ui-monospace, monospace; font-size: 12px; color: var(--muted);
  word-break: break-all; min-width: 9em; }
#failures td.detail { color: var(--bad); }
tr.failed td.outcome { color: var(--bad); font-weight: 600; }
tr.ok td.outcome { color: var(--ok); }
section.failures { border: 1px solid #fecdca; background: var(--bad-bg); padding: 4px 12px 12px;
  border-radius: 6px; }
.empty { color: var(--muted); padding: 8px 0; }
.problem { color: var(--bad); }
form { display: flex; gap: 8px; flex-wrap: wrap; align-items: end; margin: 16px 0 0; }
label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input, select { font: inherit; padding: 4px 6px; border: 1px solid var(--line); border-radius: 4px; }
button { font: inherit; padding: 5px 12px; border-radius: 4px; border: 1px solid var(--ink);
  background: var(--ink); color: white; cursor: pointer; }
table.counts { width: auto; min-width: 480px; }
.counts td:nth-child(n+3), .counts th:nth-child(n+3) { text-align: right; }
";

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
}

/// A page that only says what went wrong.
pub(super) fn error(message: &str) -> String {
    let mut out = String::new();
    head(&mut out, "scim-sidecar: bad request");
    let _ = write!(
        out,
        "<main><h2>Bad request</h2><p class=\"problem\">{}</p>\
         <p><a href=\"/admin/\">Back to the provisioning log</a></p></main></body></html>",
        escape(message)
    );
    out
}

/// The whole page.
pub(super) fn render(v: &View<'_>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, "scim-sidecar: provisioning log");
    let state = if v.draining {
        "draining (shutting down)"
    } else {
        "serving"
    };
    let _ = write!(
        out,
        "<header><h1>scim-sidecar</h1><span class=\"state\">{state} · {} tenant(s) · page \
         generated {}</span></header><main>",
        v.tenants.len(),
        escape(&format_ms(v.now_ms))
    );
    form(&mut out, v);
    let _ = write!(
        out,
        "<section class=\"failures\" aria-labelledby=\"failures-title\">"
    );
    match &v.failures {
        Ok(list) => {
            let _ = write!(
                out,
                "<h2 id=\"failures-title\">Failed operations <span class=\"n\">({} shown, newest \
                 first)</span></h2>",
                list.len()
            );
            table(
                &mut out,
                "failures",
                list,
                "No failed operation in this view.",
            );
        }
        Err(e) => problem(&mut out, "Failed operations", &e.to_string()),
    }
    out.push_str("</section>");
    match &v.recent {
        Ok(list) => {
            let _ = write!(
                out,
                "<h2 id=\"recent-title\">Recent operations <span class=\"n\">({} shown, newest \
                 first)</span></h2>",
                list.len()
            );
            table(
                &mut out,
                "recent",
                list,
                "No operation recorded in this view.",
            );
        }
        Err(e) => problem(&mut out, "Recent operations", &e.to_string()),
    }
    counts(&mut out, &v.counts);
    if let Some(e) = &v.events {
        events(&mut out, e, v.now_ms);
    }
    auth_modes(&mut out, &v.auth);
    out.push_str("</main></body></html>");
    out
}

fn form(out: &mut String, v: &View<'_>) {
    let _ = write!(
        out,
        "<form method=\"get\" action=\"/admin/\"><label>Tenant<select name=\"tenant\">\
         <option value=\"\">all</option>"
    );
    for t in &v.tenants {
        let selected = if *t == v.raw.tenant { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{0}\"{selected}>{0}</option>",
            escape(t)
        );
    }
    let _ = write!(
        out,
        "</select></label><label>userName, group or SCIM id contains<input name=\"q\" \
         value=\"{}\"></label><label>Since (24h, 7d or a time)<input name=\"since\" \
         value=\"{}\"></label><label>Rows<input name=\"limit\" value=\"{}\" size=\"4\"></label>\
         <button type=\"submit\">Filter</button></form>",
        escape(&v.raw.q),
        escape(&v.raw.since),
        v.query.limit
    );
}

fn problem(out: &mut String, what: &str, e: &str) {
    let _ = write!(
        out,
        "<h2>{}</h2><p class=\"problem\">The provisioning log could not be read: {}</p>",
        escape(what),
        escape(e)
    );
}

fn table(out: &mut String, id: &str, entries: &[Entry], empty: &str) {
    if entries.is_empty() {
        let _ = write!(
            out,
            "<p class=\"empty\" id=\"{id}-empty\">{}</p>",
            escape(empty)
        );
        return;
    }
    let _ = write!(
        out,
        "<table id=\"{id}\"><thead><tr><th>Time (UTC)</th><th>Tenant</th><th>Operation</th>\
         <th>userName / group</th><th>Outcome</th><th>SCIM error</th><th>SCIM id</th>\
         <th>Request id</th></tr></thead><tbody>"
    );
    for e in entries {
        let class = if e.failed { "failed" } else { "ok" };
        let outcome = if e.failed {
            format!("failed ({})", e.status)
        } else {
            format!("ok ({})", e.status)
        };
        let error = match (&e.scim_type, &e.detail) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (None, Some(d)) => d.clone(),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td class=\"time\">{}</td><td>{}</td><td class=\"action\">{} \
             {}</td><td class=\"subject\">{}</td><td class=\"outcome\">{}</td>\
             <td class=\"detail\">{}</td><td class=\"id\">{}</td><td class=\"id\">{}</td></tr>",
            escape(&format_ms(e.at_ms)),
            escape(&e.tenant),
            escape(&e.action),
            escape(&e.resource),
            escape(e.subject.as_deref().unwrap_or("")),
            escape(&outcome),
            escape(&error),
            escape(e.scim_id.as_deref().unwrap_or("")),
            escape(e.request_id.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
}

fn counts(out: &mut String, counts: &Result<Vec<(TenantId, String, u64, u64)>, StoreError>) {
    out.push_str("<h2 id=\"xref-title\">Cross-reference</h2>");
    let rows = match counts {
        Ok(rows) => rows,
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"problem\">The cross-reference could not be read: {}</p>",
                escape(&e.to_string())
            );
            return;
        }
    };
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No record yet.</p>");
        return;
    }
    out.push_str(
        "<table id=\"xref\" class=\"counts\"><thead><tr><th>Tenant</th><th>Resource</th>\
         <th>Live</th><th>Tombstoned (deleted in SCIM)</th></tr></thead><tbody>",
    );
    for (tenant, resource, live, dead) in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{live}</td><td>{dead}</td></tr>",
            escape(tenant.as_str()),
            escape(resource)
        );
    }
    out.push_str("</tbody></table>");
}

fn events(out: &mut String, view: &Result<EventsView, StoreError>, now_ms: i64) {
    out.push_str("<h2 id=\"events-title\">Events (webhooks)</h2>");
    let v = match view {
        Ok(v) => v,
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"problem\">The event outbox could not be read: {}</p>",
                escape(&e.to_string())
            );
            return;
        }
    };
    out.push_str(
        "<table id=\"event-queues\" class=\"counts\"><thead><tr><th>Tenant</th>\
         <th>Endpoint</th><th>Waiting</th><th>Oldest waiting</th><th>Dead-lettered</th></tr>\
         </thead><tbody>",
    );
    for queue in &v.endpoints {
        let (pending, dead, oldest) = match &queue.stats {
            Some(q) => (
                q.pending,
                q.dead,
                q.oldest_pending_ms
                    .map(|at| format!("{} s", (now_ms - at).max(0) / 1000))
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            None => (0, 0, "-".to_owned()),
        };
        // An endpoint removed from the configuration or renamed: its rows wait for it.
        let (class, note) = if queue.configured {
            ("", "")
        } else {
            (
                " class=\"failed\"",
                "<br><span class=\"problem\">not configured: its events wait until an endpoint \
                 of this name is configured again</span>",
            )
        };
        let _ = write!(
            out,
            "<tr{class}><td>{}</td><td>{}{note}</td><td>{pending}</td><td>{}</td>\
             <td>{dead}</td></tr>",
            escape(&queue.tenant),
            escape(&queue.endpoint),
            escape(&oldest)
        );
    }
    out.push_str("</tbody></table>");
    if v.dead.is_empty() {
        out.push_str("<p class=\"empty\">No dead-lettered event.</p>");
        return;
    }
    let _ = write!(
        out,
        "<h2 id=\"dead-title\">Dead-lettered events <span class=\"n\">({} shown, newest \
         first; send again with <code>scim-sidecar events replay &lt;event&gt;</code> or \
         <code>events replay --dead</code>)</span></h2><table id=\"dead-events\"><thead><tr>\
         <th>Occurred</th><th>Event</th><th>Type</th><th>Tenant</th><th>Endpoint</th>\
         <th>Attempts</th><th>Last error</th></tr></thead><tbody>",
        v.dead.len()
    );
    for r in &v.dead {
        let _ = write!(
            out,
            "<tr class=\"failed\"><td class=\"time\">{}</td><td class=\"id\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"detail\">{}</td></tr>",
            escape(&format_ms(r.created_ms)),
            escape(&r.event_id),
            escape(&r.event_type),
            escape(&r.tenant),
            escape(&r.endpoint),
            r.attempts,
            escape(r.last_error.as_deref().unwrap_or("-")),
        );
    }
    out.push_str("</tbody></table>");
}

/// What each mode is called on the page, with the identity provider's name for it.
fn mode_text(mode: &str) -> &'static str {
    match mode {
        "bearer" => "Bearer token (Okta: HTTP Header; Entra ID: Secret Token)",
        "basic" => "HTTP Basic (Okta: Basic Auth)",
        "oauth2-code" => "OAuth 2.0 authorization code (Okta: OAuth 2)",
        "oauth2-client" => {
            "OAuth 2.0 client credentials (Entra ID: OAuth2 client credentials grant)"
        }
        _ => "other",
    }
}

fn auth_modes(out: &mut String, tenants: &[(String, String, Vec<&'static str>)]) {
    out.push_str(
        "<h2 id=\"tenants-title\">Tenants</h2><table id=\"tenants\"><thead><tr><th>Tenant</th>\
         <th>Legacy app</th><th>The identity provider authenticates with</th></tr></thead><tbody>",
    );
    for (tenant, legacy, modes) in tenants {
        let modes: Vec<&str> = modes.iter().map(|m| mode_text(m)).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(tenant),
            escape(legacy),
            escape(&modes.join(" · "))
        );
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: &str, failed: bool) -> Entry {
        Entry {
            id: 1,
            at_ms: 1_795_420_800_000,
            tenant: "acme".into(),
            resource: "User".into(),
            action: "create".into(),
            scim_id: Some("2819c223".into()),
            subject: Some(subject.into()),
            failed,
            status: if failed { 400 } else { 201 },
            scim_type: failed.then(|| "invalidValue".into()),
            detail: failed.then(|| "emails: <b>not</b> an address".into()),
            request_id: Some("r-1".into()),
            legacy_calls: 1,
            duration_ms: 2,
        }
    }

    #[test]
    fn values_are_escaped_everywhere() {
        let q = Query {
            limit: 100,
            ..Query::default()
        };
        let view = View {
            query: &q,
            raw: Filters::from_query("q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"),
            draining: false,
            tenants: vec!["acme".into()],
            auth: vec![("acme".into(), "<b>shop</b>".into(), vec!["bearer", "basic"])],
            failures: Ok(vec![entry("<script>alert(1)</script>", true)]),
            recent: Ok(vec![entry("ada@example.com", false)]),
            counts: Ok(vec![(TenantId::new("acme"), "User".into(), 3, 1)]),
            events: Some(Ok(EventsView {
                endpoints: vec![
                    super::super::Queue {
                        tenant: "acme".into(),
                        endpoint: "<i>crm</i>".into(),
                        configured: true,
                        stats: None,
                    },
                    super::super::Queue {
                        tenant: "acme".into(),
                        endpoint: "old".into(),
                        configured: false,
                        stats: Some(crate::xref::QueueStats {
                            tenant: "acme".into(),
                            endpoint: "old".into(),
                            pending: 4,
                            dead: 1,
                            oldest_pending_ms: Some(1_795_420_740_000),
                        }),
                    },
                ],
                dead: vec![OutboxRow {
                    seq: 1,
                    event_id: "msg_1".into(),
                    tenant: "acme".into(),
                    endpoint: "<i>crm</i>".into(),
                    event_type: "user.created".into(),
                    ordering_key: "User/1".into(),
                    created_ms: 1_795_420_800_000,
                    attempts: 9,
                    next_attempt_ms: 0,
                    last_status: None,
                    last_error: Some("<script>x</script>".into()),
                    last_attempt_ms: None,
                    delivered_ms: None,
                    dead_ms: Some(1),
                    body: None,
                }],
            })),
            now_ms: 1_795_420_800_000,
        };
        let html = render(&view);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("<td class=\"detail\">&lt;script&gt;x&lt;/script&gt;</td>"));
        assert!(html.contains("<td>&lt;i&gt;crm&lt;/i&gt;</td><td>0</td><td>-</td><td>0</td>"));
        assert!(html.contains(
            "<tr class=\"failed\"><td>acme</td><td>old<br><span class=\"problem\">not \
             configured: its events wait until an endpoint of this name is configured \
             again</span></td><td>4</td><td>60 s</td><td>1</td></tr>"
        ));
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("invalidValue: emails: &lt;b&gt;not&lt;/b&gt; an address"));
        assert_eq!(escape("a&'\""), "a&amp;&#39;&quot;");
        assert!(html.contains(
            "<td>acme</td><td>&lt;b&gt;shop&lt;/b&gt;</td><td>Bearer token (Okta: HTTP Header; \
             Entra ID: Secret Token) · HTTP Basic (Okta: Basic Auth)</td>"
        ));
    }
}
