//! Directory-sync events end to end: a real HTTP receiver on loopback, the sidecar's delivery
//! task, the outbox in the store. Every body is checked against the documented shape and every
//! signature verified (Standard Webhooks, with both secrets of a rotation).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use scim_sidecar::webhooks::{Endpoint, EventType, sign};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A closed gate for [`Reply::Hold`].
pub(crate) fn gate() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(0))
}

/// Opens a gate for good: every held answer goes out, and every later one at once.
pub(crate) fn open(gate: &Semaphore) {
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
}

use crate::support::{Harness, okta_user, wait_until};

/// What the receiver answers next.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// This status, with a `Retry-After` of so many seconds when given.
    Status(u16, Option<u64>),
    /// No answer until the gate opens ([`open`]), then 204.
    Hold(Arc<Semaphore>),
}

/// One request the receiver took.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) timestamp: i64,
    pub(crate) signature: String,
    pub(crate) raw: Bytes,
    pub(crate) body: Value,
    /// The status it answered (`None`: held, never answered).
    pub(crate) answered: Option<u16>,
    /// When it arrived.
    pub(crate) at: std::time::Instant,
}

#[derive(Default)]
struct Book {
    script: VecDeque<Reply>,
    /// Answered when the script is empty.
    otherwise: Option<Reply>,
    got: Vec<Delivery>,
}

/// A webhook receiver on `127.0.0.1:0` that records every delivery and answers as scripted
/// (204 by default).
pub(crate) struct Receiver {
    pub(crate) url: String,
    book: Arc<Mutex<Book>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/scim", listener.local_addr().unwrap());
        let book = Arc::new(Mutex::new(Book::default()));
        let shared = Arc::clone(&book);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let book = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let book = Arc::clone(&book);
                        async move { Ok::<_, std::convert::Infallible>(take(&book, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { url, book, task }
    }

    /// Answers these next, in order.
    pub(crate) fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.book.lock().unwrap().script.extend(replies);
    }

    /// Answers this whenever the script is empty (`None`: 204).
    pub(crate) fn otherwise(&self, reply: Option<Reply>) {
        self.book.lock().unwrap().otherwise = reply;
    }

    /// Every request taken so far.
    pub(crate) fn got(&self) -> Vec<Delivery> {
        self.book.lock().unwrap().got.clone()
    }

    /// The deliveries it acknowledged with a 2xx.
    pub(crate) fn acknowledged(&self) -> Vec<Delivery> {
        (self.got().into_iter())
            .filter(|d| d.answered.is_some_and(|s| (200..300).contains(&s)))
            .collect()
    }

    /// Waits until `n` deliveries were acknowledged.
    pub(crate) async fn wait_acknowledged(&self, n: usize) -> Vec<Delivery> {
        let deadline = std::time::Instant::now() + crate::support::WAIT_LIMIT;
        while self.acknowledged().len() < n {
            let types: Vec<String> = (self.got().iter())
                .map(|d| format!("{} {:?}", d.body["type"], d.answered))
                .collect();
            assert!(
                std::time::Instant::now() < deadline,
                "{n} deliveries acknowledged: not within the limit; got {types:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.acknowledged()
    }
}

async fn take(book: &Mutex<Book>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp").parse().unwrap_or(0),
        header("webhook-signature"),
    );
    assert_eq!(req.method(), Method::POST);
    assert_eq!(header("content-type"), "application/json");
    let raw = req.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let (reply, index) = {
        let mut b = book.lock().unwrap();
        let reply = b.script.pop_front().or_else(|| b.otherwise.clone());
        let index = b.got.len();
        b.got.push(Delivery {
            id,
            timestamp,
            signature,
            raw,
            body,
            at: std::time::Instant::now(),
            answered: match &reply {
                Some(Reply::Hold(_)) => None,
                Some(Reply::Status(s, _)) => Some(*s),
                None => Some(204),
            },
        });
        (reply, index)
    };
    let (status, retry_after) = match reply {
        None => (204, None),
        Some(Reply::Status(s, r)) => (s, r),
        Some(Reply::Hold(gate)) => {
            let _pass = gate.acquire().await.unwrap();
            book.lock().unwrap().got[index].answered = Some(204);
            (204, None)
        }
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(r) = retry_after {
        resp.headers_mut()
            .insert("retry-after", r.to_string().parse().unwrap());
    }
    resp
}

/// Two secrets, as during a rotation: the endpoint signs with both.
pub(crate) fn secrets() -> (String, String) {
    (sign::new_secret(), sign::new_secret())
}

/// An endpoint named `name` to `url` taking every type, retrying quickly.
pub(crate) fn endpoint(name: &str, url: &str, secrets: &[&str]) -> Endpoint {
    let config = format!(
        "name = \"{name}\"\nurl = \"{url}\"\nallow_http = true\nfirst_retry_ms = 50\n\
         max_retry_secs = 1\ntimeout_secs = 5\nsecrets = [{}]\n",
        secrets
            .iter()
            .map(|s| format!("{{ value = \"{s}\" }}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hook: scim_sidecar::config::webhooks::WebhookConfig = toml::from_str(&config).unwrap();
    assert_eq!(hook.problems("w"), Vec::<String>::new());
    hook.endpoint().unwrap()
}

/// The `[[tenants.<tenant>.webhooks]]` table of a test configuration: an endpoint `name` to
/// `url`, every type, quick retries.
pub(crate) fn hook_table(tenant: &str, name: &str, url: &str, secret: &str) -> String {
    format!(
        "\n[[tenants.{tenant}.webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\nallow_http = true\n\
         first_retry_ms = 50\nmax_retry_secs = 1\ntimeout_secs = 2\n\
         secrets = [{{ value = \"{secret}\" }}]\n"
    )
}

/// Checks a delivery's signature under `secret`, its headers against its body, and that no
/// secret went out in it.
pub(crate) fn check_signed(d: &Delivery, secret: &str) {
    let key = sign::key_of(secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        sign::verify(&key, &d.id, d.timestamp, &d.raw, &d.signature, now, 300),
        "bad signature on {}: {}",
        d.id,
        d.signature
    );
    assert_eq!(d.body["id"], d.id.as_str(), "webhook-id is the event id");
    let text = String::from_utf8_lossy(&d.raw).to_lowercase();
    for never in ["password", "secret-p4ss", "bearer", "whsec_"] {
        assert!(!text.contains(never), "{never} in {text}");
    }
}

/// Checks an event body against the documented schema (`examples/webhook-event.schema.json`):
/// its required members, no other member, the enumerations and the id's form.
pub(crate) fn check_schema(body: &Value) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/webhook-event.schema.json"
    ))
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let props = schema["properties"].as_object().unwrap();
    let o = body.as_object().expect("an object");
    for key in schema["required"].as_array().unwrap() {
        assert!(
            o.contains_key(key.as_str().unwrap()),
            "{key} missing: {body}"
        );
    }
    for key in o.keys() {
        assert!(props.contains_key(key), "{key} is not documented: {body}");
    }
    for key in ["type", "resource_type"] {
        assert!(
            props[key]["enum"].as_array().unwrap().contains(&body[key]),
            "{key}: {body}"
        );
    }
    let data_props = props["data"]["properties"].as_object().unwrap();
    for key in body["data"].as_object().expect("data is an object").keys() {
        assert!(
            data_props.contains_key(key),
            "data.{key} is not documented: {body}"
        );
    }
    let id = body["id"].as_str().unwrap();
    assert!(
        id.len() == 36
            && id.starts_with("msg_")
            && id[4..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
}

fn ops(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// The types received, in order, of the events about `resource_id`.
fn types_of(got: &[Delivery], resource_id: &str) -> Vec<String> {
    got.iter()
        .filter(|d| d.body["resource_id"] == resource_id)
        .map(|d| d.body["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Okta's lifecycle of one user and one group push: every event type, its body, its
/// signature under both secrets, in order per resource; the failure of a duplicate create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_flows_emit_exactly_the_documented_events() {
    let r = Receiver::start().await;
    let (old, new) = secrets();
    let h = Harness::start_with_webhooks(vec![endpoint("crm", &r.url, &[&old, &new])]).await;

    let mut user = okta_user("wendy@example.com", "Wendy", "Webb", "00uWENDY");
    user["password"] = json!("secret-p4ss");
    let created = h.post("/Users", user.clone()).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    // The answer carries the store's times, as one without events does.
    let read = h.get(&format!("/Users/{id}")).await;
    assert_eq!(created.body, read.body);
    assert!(
        created.body["meta"]["created"]
            .as_str()
            .is_some_and(|c| c.len() > 10)
    );
    let renamed = h
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "value": {"name.givenName": "Wenda"}}])),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    // The same PUT Okta sends after a push: nothing changes, no event.
    let same = h.put(&format!("/Users/{id}"), renamed.body.clone()).await;
    assert_eq!(same.status, 200, "{:?}", same.body);
    for active in [false, true] {
        let a = h
            .patch(
                &format!("/Users/{id}"),
                ops(json!([{"op": "replace", "value": {"active": active}}])),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    let groups = h.get("/Groups?excludedAttributes=members").await;
    let gid = groups.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gname = groups.body["Resources"][0]["displayName"].clone();
    for op in ["add", "remove"] {
        let body = match op {
            "add" => ops(json!([{"op": "add", "path": "members", "value": [{"value": id}]}])),
            _ => ops(json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}])),
        };
        let a = h.patch(&format!("/Groups/{gid}"), body).await;
        assert_eq!(a.status, 204, "{op}: {:?}", a.body);
    }
    // A create Okta sends again meets the account it made: no failure, no second event.
    let again = h.post("/Users", user).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    let refused = h
        .post(
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "name": {"givenName": "No", "familyName": "Name"}}),
        )
        .await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    let gone = h.delete(&format!("/Users/{id}")).await;
    assert_eq!(gone.status, 204);

    let got = r.wait_acknowledged(8).await;
    for d in &got {
        check_signed(d, &old);
        check_signed(d, &new);
        check_schema(&d.body);
    }
    assert_eq!(
        types_of(&got, &id),
        [
            "user.created",
            "user.updated",
            "user.deactivated",
            "user.reactivated",
            "user.deleted"
        ]
    );
    assert_eq!(
        types_of(&got, &gid),
        ["group.user_added", "group.user_removed"]
    );
    let failed: Vec<&Delivery> = (got.iter())
        .filter(|d| d.body["type"] == "provisioning.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{got:#?}");
    assert_eq!(got.len(), 8, "nothing else: {got:#?}");

    let by_type = |t: &str| {
        (got.iter())
            .find(|d| d.body["type"] == t)
            .map(|d| d.body.clone())
            .unwrap()
    };
    let c = by_type("user.created");
    assert_eq!(c["tenant"], "acme");
    assert_eq!(c["resource_type"], "User");
    assert_eq!(c["resource_id"], id.as_str());
    assert_eq!(c["external_id"], "00uWENDY");
    assert!(c["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(c["id"].as_str().unwrap().starts_with("msg_"));
    let at = c["occurred_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 24, "{at}");
    assert_eq!(c["data"]["user"]["userName"], "wendy@example.com");
    assert_eq!(c["data"]["user"]["id"], id.as_str());
    assert!(c["data"]["user"].get("meta").is_none());
    let u = by_type("user.updated");
    assert_eq!(u["data"]["changed"], json!(["name.givenName"]));
    assert_eq!(u["data"]["user"]["name"]["givenName"], "Wenda");
    assert_eq!(by_type("user.deactivated")["data"]["user"]["active"], false);
    assert_eq!(by_type("user.reactivated")["data"]["user"]["active"], true);
    assert_eq!(by_type("user.deleted")["data"]["user"]["active"], false);
    let added = by_type("group.user_added");
    assert_eq!(added["resource_type"], "Group");
    assert_eq!(added["data"]["group"]["displayName"], gname);
    assert_eq!(added["data"]["user"]["id"], id.as_str());
    assert_eq!(
        by_type("group.user_removed")["data"]["user"]["id"],
        id.as_str()
    );
    let f = by_type("provisioning.failed");
    assert_eq!(f["resource_type"], "User");
    assert_eq!(f["resource_id"], Value::Null);
    assert_eq!(f["data"]["operation"], "create");
    assert_eq!(f["data"]["status"], 400);
    assert_eq!(f["data"]["scimType"], refused.body["scimType"]);
    assert_eq!(f["data"]["detail"], refused.body["detail"]);
    assert_eq!(
        h.metric("scim_sidecar_event_deliveries_total{tenant=\"acme\",endpoint=\"crm\",outcome=\"delivered\"}")
            .await,
        8.0
    );
    for (t, n) in [
        ("user.created", 1.0),
        ("user.updated", 1.0),
        ("provisioning.failed", 1.0),
    ] {
        let series = format!("scim_sidecar_events_total{{tenant=\"acme\",type=\"{t}\"}}");
        assert_eq!(h.metric(&series).await, n, "{series}");
    }
    assert_eq!(
        h.metric("scim_sidecar_events_pending{tenant=\"acme\",endpoint=\"crm\"}")
            .await,
        0.0
    );
    h.stop().await;
}

/// 500s and a 429 with `Retry-After`: each event is tried again until it is taken, and one
/// user's events still arrive in the order they happened (the second waits for the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_500s_and_retry_after_keep_the_order_per_user() {
    let r = Receiver::start().await;
    let (s, _) = secrets();
    r.script([
        Reply::Status(500, None),
        Reply::Status(503, None),
        Reply::Status(429, Some(1)),
    ]);
    let h = Harness::start_with_webhooks(vec![endpoint("crm", &r.url, &[&s])]).await;
    let created = h
        .post(
            "/Users",
            okta_user("ray@example.com", "Ray", "Tray", "00uRAY"),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    for given in ["Rae", "Raymond", "Ray"] {
        let a = h
            .patch(
                &format!("/Users/{id}"),
                ops(json!([{"op": "replace", "value": {"name.givenName": given}}])),
            )
            .await;
        assert_eq!(a.status, 200);
    }
    let acked = r.wait_acknowledged(4).await;
    let names: Vec<&str> = (acked.iter())
        .map(|d| {
            d.body["data"]["user"]["name"]["givenName"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["Ray", "Rae", "Raymond", "Ray"]);
    let got = r.got();
    // Three refusals of the first event, then each once.
    assert_eq!(got.len(), 7, "{got:#?}");
    assert!(got[..4].iter().all(|d| d.id == got[0].id));
    // The 429 asked for a second: the next try came no sooner.
    assert!(got[3].at - got[2].at >= Duration::from_secs(1), "{got:#?}");
    let retried = h
        .metric("scim_sidecar_event_deliveries_total{tenant=\"acme\",endpoint=\"crm\",outcome=\"retry\"}")
        .await;
    assert_eq!(retried, 3.0);
    h.stop().await;
}

/// A receiver down for a while (answering 503): everything committed meanwhile arrives once
/// it is back, in order per user, each event acknowledged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_in_order_once_back() {
    let r = Receiver::start().await;
    let (s, _) = secrets();
    r.otherwise(Some(Reply::Status(503, None)));
    let h = Harness::start_with_webhooks(vec![endpoint("crm", &r.url, &[&s])]).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let a = h
            .post(
                "/Users",
                okta_user(
                    &format!("down{n}@example.com"),
                    "D",
                    "N",
                    &format!("00uD{n}"),
                ),
            )
            .await;
        assert_eq!(a.status, 201);
        let id = a.body["id"].as_str().unwrap().to_owned();
        let b = h
            .patch(
                &format!("/Users/{id}"),
                ops(json!([{"op": "replace", "value": {"active": false}}])),
            )
            .await;
        assert_eq!(b.status, 200);
        ids.push(id);
    }
    wait_until("the receiver refused a few tries", async || {
        r.got().len() >= 10
    })
    .await;
    assert!(r.acknowledged().is_empty());
    r.otherwise(None);
    let acked = r.wait_acknowledged(10).await;
    for id in &ids {
        assert_eq!(
            types_of(&acked, id),
            ["user.created", "user.deactivated"],
            "{id}"
        );
    }
    let mut unique: Vec<&str> = acked.iter().map(|d| d.id.as_str()).collect();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 10, "each event acknowledged once");
    h.stop().await;
}

/// An event that fails past its retry window is dead-lettered (visible in `events list`),
/// later events of other resources go on, and `events replay` sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_from_the_command_line() {
    let r = Receiver::start().await;
    let (s, _) = secrets();
    r.otherwise(Some(Reply::Status(500, None)));
    let mut e = endpoint("crm", &r.url, &[&s]);
    e.max_age = Duration::from_millis(300);
    e.types = vec![EventType::UserCreated];
    // A second endpoint where nothing listens: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let mut gone = endpoint("gone", &nowhere, &[&s]);
    gone.max_age = Duration::from_millis(300);
    gone.types = vec![EventType::UserCreated];
    let h = Harness::start_with_webhooks(vec![e, gone]).await;
    let a = h
        .post("/Users", okta_user("dead@example.com", "D", "L", "00uDEAD"))
        .await;
    assert_eq!(a.status, 201);
    let cli = |args: &[&str]| {
        let mut cmd = crate::process::command();
        cmd.arg("events")
            .args(args)
            .arg("--data-dir")
            .arg(h.data_dir());
        crate::process::succeeded(cmd)
    };
    wait_until("the event is dead-lettered at both", async || {
        cli(&["list", "--state", "dead", "--json"]).lines().count() == 2
    })
    .await;
    let rows: Vec<Value> = (cli(&["list", "--json"]).lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refused = rows.iter().find(|r| r["endpoint"] == "gone").unwrap();
    let text = refused["last_error"].as_str().unwrap().to_lowercase();
    assert!(text.contains("connect"), "{refused}");
    assert_eq!(refused["last_status"], Value::Null);
    let row = rows
        .iter()
        .find(|r| r["endpoint"] == "crm")
        .unwrap()
        .clone();
    assert_eq!(row["state"], "dead");
    assert_eq!(row["event_type"], "user.created");
    assert_eq!(row["last_error"], "HTTP 500");
    let tries = row["attempts"].as_i64().unwrap();
    assert!(tries >= 1, "{row}");
    assert_eq!(
        h.metric("scim_sidecar_events_dead{tenant=\"acme\",endpoint=\"crm\"}")
            .await,
        1.0
    );
    let (status, _, page) = h.admin_get("/admin/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Dead-lettered events"), "{page}");
    assert!(page.contains(row["event_id"].as_str().unwrap()), "{page}");
    assert!(
        page.contains("<td>acme</td><td>crm</td><td>0</td><td>-</td><td>1</td>"),
        "{page}"
    );
    let shown = cli(&["show", row["event_id"].as_str().unwrap()]);
    assert!(
        shown.contains("\"userName\": \"dead@example.com\""),
        "{shown}"
    );
    assert!(shown.contains("crm: dead"), "{shown}");

    r.otherwise(None);
    assert_eq!(
        cli(&["replay", "--dead", "--endpoint", "crm"]).trim(),
        "1 delivery(ies) due again"
    );
    let acked = r.wait_acknowledged(1).await;
    assert_eq!(acked[0].id, row["event_id"].as_str().unwrap());
    check_signed(&acked[0], &s);
    wait_until("the row is delivered", async || {
        cli(&["list", "--state", "delivered", "--json"])
            .lines()
            .count()
            == 1
    })
    .await;
    // The other endpoint's row stays dead: a replay sends again what it names.
    assert_eq!(
        cli(&["list", "--state", "dead", "--json"]).lines().count(),
        1
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args(["events", "replay", "msg_nope", "--data-dir"])
        .arg(h.data_dir())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no such event"));
    h.stop().await;
}

/// A receiver that holds every delivery: SCIM writes answer all the same (delivery runs
/// apart), and nothing is delivered twice at once beyond the endpoint's concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_receiver_never_holds_up_scim_answers() {
    let r = Receiver::start().await;
    let (s, _) = secrets();
    let held = gate();
    r.otherwise(Some(Reply::Hold(Arc::clone(&held))));
    let mut e = endpoint("crm", &r.url, &[&s]);
    e.timeout = Duration::from_secs(120);
    let h = Harness::start_with_webhooks(vec![e]).await;
    let started = std::time::Instant::now();
    for n in 0..20 {
        let a = h
            .post(
                "/Users",
                okta_user(
                    &format!("slow{n}@example.com"),
                    "S",
                    "L",
                    &format!("00uS{n}"),
                ),
            )
            .await;
        assert_eq!(a.status, 201);
    }
    let took = started.elapsed();
    // Every answer came while the receiver held the first deliveries.
    wait_until("four deliveries held", async || r.got().len() == 4).await;
    assert!(r.acknowledged().is_empty());
    println!("20 creates with a stalled receiver: {took:?} in all");
    open(&held);
    wait_until("all delivered", async || {
        let mut ids: Vec<String> = r.acknowledged().into_iter().map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        ids.len() == 20
    })
    .await;
    h.stop().await;
}

/// SIGKILL with deliveries in flight (the receiver holds them): after a restart, exactly the
/// events the store committed are delivered, one for each create that was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_commit_and_delivery_loses_nothing() {
    use crate::process::{Served, call, mc_tenant, server_section};
    let sim = simulator::marketing_center::MarketingCenter::new("kill-key", ["ACME"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let r = Receiver::start().await;
    let held = gate();
    r.otherwise(Some(Reply::Hold(Arc::clone(&held))));
    let (secret, _) = secrets();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}{}",
            server_section(&data),
            mc_tenant(&sim_handle.base_url(), "KILL_MC_KEY", "kill-token"),
            hook_table("acme", "crm", &r.url, &secret),
        ),
    )
    .unwrap();
    let served = Served::start(&config, &[("KILL_MC_KEY", "kill-key")]);
    let mut names = Vec::new();
    for n in 0..10 {
        let name = format!("kill{n}@example.com");
        let (status, body) = call(
            &served.base,
            Method::POST,
            "/Users",
            "kill-token",
            Some(okta_user(&name, "K", "L", &format!("00uK{n}"))),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        names.push(name);
    }
    wait_until("deliveries in flight", async || !r.got().is_empty()).await;
    served.kill();

    let store = scim_sidecar::xref::Store::open(&data.join("xref.sqlite3"))
        .await
        .unwrap();
    let rows = store
        .outbox_list(scim_sidecar::xref::OutboxFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await.unwrap();
    let mut committed: Vec<String> = rows.iter().map(|r| r.event_id.clone()).collect();
    committed.sort();
    assert_eq!(
        committed.len(),
        10,
        "one event per answered create: {rows:?}"
    );
    assert!(rows.iter().all(|r| r.delivered_ms.is_none()));

    open(&held);
    let again = Served::start(&config, &[("KILL_MC_KEY", "kill-key")]);
    wait_until("every committed event acknowledged", async || {
        let mut ids: Vec<String> = r.acknowledged().into_iter().map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        ids.len() >= 10
    })
    .await;
    let acked = r.acknowledged();
    let mut ids: Vec<String> = acked.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, committed, "exactly the committed events");
    let mut users: Vec<String> = (acked.iter())
        .map(|d| {
            d.body["data"]["user"]["userName"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    users.sort();
    users.dedup();
    names.sort();
    assert_eq!(users, names);
    for d in &acked {
        check_signed(d, &secret);
    }
    again.stop();
    sim_handle.stop().await;
}

/// An endpoint renamed in the configuration: its waiting events are neither lost nor hidden.
/// The restarted sidecar warns of them, and its metrics and admin page show their queue as
/// not configured; once the endpoint has its old name again, they are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_an_endpoint_no_longer_configured_are_kept_and_shown() {
    use crate::process::{Served, call, mc_tenant, server_section};
    use crate::replicas::admin_text;
    let sim = simulator::marketing_center::MarketingCenter::new("gone-key", ["ACME"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let r = Receiver::start().await;
    r.otherwise(Some(Reply::Status(503, None)));
    let (secret, _) = secrets();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("sidecar.toml");
    let configure = |name: &str| {
        std::fs::write(
            &config,
            format!(
                "{}{}{}",
                server_section(&data),
                mc_tenant(&sim_handle.base_url(), "GONE_MC_KEY", "gone-token"),
                hook_table("acme", name, &r.url, &secret),
            ),
        )
        .unwrap();
    };
    let env = [("GONE_MC_KEY", "gone-key")];
    configure("crm");
    let served = Served::start(&config, &env);
    let (status, body) = call(
        &served.base,
        Method::POST,
        "/Users",
        "gone-token",
        Some(okta_user("gone@example.com", "G", "L", "00uGONE")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_until("a delivery was tried", async || !r.got().is_empty()).await;
    served.stop();

    configure("crm-v2");
    let mut renamed = Served::start(&config, &env);
    let warning = renamed.logged(scim_sidecar::events::UNCONFIGURED);
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["tenant"], "acme", "{warning}");
    assert_eq!(warning["endpoint"], "crm", "{warning}");
    assert_eq!(warning["pending"], 1, "{warning}");
    let metrics = admin_text(&format!("{}/metrics", renamed.admin)).await;
    for series in [
        "scim_sidecar_events_pending{tenant=\"acme\",endpoint=\"crm\"} 1",
        "scim_sidecar_events_pending{tenant=\"acme\",endpoint=\"crm-v2\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    let page = admin_text(&format!("{}/admin/", renamed.admin)).await;
    assert!(
        page.contains(
            "<tr class=\"failed\"><td>acme</td><td>crm<br><span class=\"problem\">not \
             configured"
        ),
        "{page}"
    );
    assert!(
        page.contains("<td>acme</td><td>crm-v2</td><td>0</td>"),
        "{page}"
    );
    renamed.stop();

    r.otherwise(None);
    configure("crm");
    let back = Served::start(&config, &env);
    let acked = r.wait_acknowledged(1).await;
    assert_eq!(acked[0].body["type"], "user.created");
    assert_eq!(
        acked[0].body["data"]["user"]["userName"],
        "gone@example.com"
    );
    check_signed(&acked[0], &secret);
    back.stop();
    sim_handle.stop().await;
}

/// The receiver of `examples/` (Python, standard library) as the endpoint: it verifies each
/// delivery and records it once; a forged or stale delivery is refused with 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_receiver_verifies_and_records_each_event_once() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let (old, new) = secrets();
    /// The receiver process, killed however the test ends.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/webhook-receiver.py"
        ))
        .args(["--listen", "127.0.0.1:0", "--out"])
        .arg(&out)
        .env("WEBHOOK_SECRETS", format!("{new} {old}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let mut first = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let listening: Value = serde_json::from_str(&first).unwrap();
    let url = format!("http://{}/events", listening["listening"].as_str().unwrap());
    // The sidecar still signs with the old secret only: the receiver knows both.
    let h = Harness::start_with_webhooks(vec![endpoint("shop", &url, &[&old])]).await;
    let a = h
        .post("/Users", okta_user("ex@example.com", "E", "X", "00uEX"))
        .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    let b = h
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (201, 200));
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_until("the example recorded both events", async || {
        lines().len() == 2
    })
    .await;
    let recorded = lines();
    assert_eq!(recorded[0]["type"], "user.created");
    assert_eq!(recorded[1]["type"], "user.deactivated");
    for e in &recorded {
        check_schema(e);
    }
    // A forged signature, and a genuine one replayed an hour late, are refused.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let key = sign::key_of(&old).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (ts, sig) in [
        (now, "v1,AAAA".to_owned()),
        (
            now - 3600,
            sign::signature(&key, "msg_x", now - 3600, b"{}"),
        ),
        (now, sign::signature(&key, "msg_x", now, b"{} ")),
    ] {
        let req = Request::post(&url)
            .header("webhook-id", "msg_x")
            .header("webhook-timestamp", ts)
            .header("webhook-signature", sig)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(lines().len(), 2);
    h.stop().await;
    drop(child);
}

/// An endpoint asking for more patience than the retry window has left gets its last try at
/// the window's end rather than the event being dead-lettered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_window_gets_a_last_try_at_its_end() {
    let r = Receiver::start().await;
    let (s, _) = secrets();
    r.script([Reply::Status(503, Some(3600))]);
    let mut e = endpoint("crm", &r.url, &[&s]);
    e.max_age = Duration::from_secs(2);
    let h = Harness::start_with_webhooks(vec![e]).await;
    let a = h
        .post("/Users", okta_user("late@example.com", "L", "T", "00uLATE"))
        .await;
    assert_eq!(a.status, 201);
    let acked = r.wait_acknowledged(1).await;
    let got = r.got();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(acked[0].id, got[0].id);
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    h.stop().await;
}
