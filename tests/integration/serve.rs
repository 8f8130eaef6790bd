//! The production command: `scim-sidecar serve --config FILE`, run as a real process with a
//! config file, `SCIM_SIDECAR_*` overrides and secrets from env, file and SHA-256 digest.

use std::process::Command;
use std::time::Duration;

use http::Method;
use rustix::process::Signal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use simulator::marketing_center::{Knobs, MarketingCenter};

use crate::process::{Served, call, succeeded};
use crate::support::wait_until;

pub(crate) const FILE_TOKEN: &str = "file-token-9d8f7e6a";
const HASHED_TOKEN: &str = "hashed-token-1a2b3c4d";
pub(crate) const API_KEY: &str = "serve-api-key-5e5e5e";
const PASSWORD: &str = "Pa55word-not-for-logs";

/// `sidecar.toml` in `dir` for one tenant `acme` in front of `legacy`, its mapping file and
/// token file beside it. The SCIM listener says port 1, a port no test may end up on: every
/// test that starts the process overrides it with `SCIM_SIDECAR_SERVER__LISTEN=127.0.0.1:0`.
/// The admin listener is on port 0, never the default 9464 (a `dev` may run beside the tests).
pub(crate) fn write_config(dir: &std::path::Path, legacy: &str) -> std::path::PathBuf {
    let token_file = dir.join("okta-token");
    std::fs::write(&token_file, format!("{FILE_TOKEN}\n")).unwrap();
    let digest: String = Sha256::digest(HASHED_TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mapping = dir.join("marketing-center.toml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mappings/marketing-center.toml"
        ),
        &mapping,
    )
    .unwrap();
    let mapping = mapping.display().to_string();
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:1"
admin_listen = "127.0.0.1:0"
data_dir = "{data}"
log_format = "json"

[tenants.acme]
customer_id = "ACME"
legacy_base_url = "{legacy}"
mapping = "{mapping}"
api_key = {{ env = "TEST_SERVE_MC_KEY" }}
tokens = [{{ file = "{token}" }}, {{ sha256 = "{digest}" }}]
"#,
            data = dir.join("data").display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn serve_from_config_file_and_env() {
    let sim = MarketingCenter::new(API_KEY, ["ACME"]);
    sim.seed_demo("ACME");
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim_handle.base_url());
    // The file says port 1; the environment overrides it (and the request timeout).
    let served = Served::start(
        &config,
        &[
            ("TEST_SERVE_MC_KEY", API_KEY),
            ("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0"),
            ("SCIM_SIDECAR_SERVER__REQUEST_TIMEOUT_SECS", "2"),
            ("SCIM_SIDECAR_SERVER__MAPPING_POLL_SECS", "0"),
        ],
    );
    assert_ne!(
        served.addr().port(),
        1,
        "the environment overrides the file"
    );
    let base = served.base.clone();
    for token in [FILE_TOKEN, HASHED_TOKEN] {
        let (status, body) = call(
            &base,
            Method::GET,
            "/Users?startIndex=1&count=2",
            token,
            None,
        )
        .await;
        assert_eq!((status, body["totalResults"].clone()), (200, json!(2)));
    }
    assert_eq!(
        call(&base, Method::GET, "/Users", "wrong", None).await.0,
        401
    );
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "sv@example.com",
        "password": PASSWORD, "emails": [{"value": "sv@example.com", "primary": true}]});
    let (status, created) = call(&base, Method::POST, "/Users", FILE_TOKEN, Some(user)).await;
    assert_eq!(status, 201, "{created}");
    // The rest of an Okta flow, so the log scan below covers every kind of request.
    let id = created["id"].as_str().unwrap().to_owned();
    let user = format!("/Users/{id}");
    assert_eq!(
        call(&base, Method::GET, &user, FILE_TOKEN, None).await.0,
        200
    );
    let mut full = created.clone();
    full["password"] = json!(PASSWORD);
    full["title"] = json!("Engineer");
    assert_eq!(
        call(&base, Method::PUT, &user, HASHED_TOKEN, Some(full))
            .await
            .0,
        200
    );
    let op = |v: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [v]});
    let groups = "/Groups?filter=displayName%20eq%20%22Sales%20Ops%22";
    let (_, found) = call(&base, Method::GET, groups, FILE_TOKEN, None).await;
    let gid = found["Resources"][0]["id"].as_str().unwrap().to_owned();
    let add = op(json!({"op": "add", "path": "members", "value": [{"value": id}]}));
    assert_eq!(
        call(
            &base,
            Method::PATCH,
            &format!("/Groups/{gid}"),
            FILE_TOKEN,
            Some(add)
        )
        .await
        .0,
        204
    );
    let off = op(json!({"op": "replace", "value": {"active": false, "password": PASSWORD}}));
    assert_eq!(
        call(&base, Method::PATCH, &user, FILE_TOKEN, Some(off))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&base, Method::DELETE, &user, FILE_TOKEN, None).await.0,
        204
    );
    // SIGHUP reloads the mapping (polling is off here): title and displayName swap fields.
    let jane = "/Users?filter=userName%20eq%20%22jane.doe%40example.com%22";
    let (_, found) = call(&base, Method::GET, jane, FILE_TOKEN, None).await;
    assert_eq!(found["Resources"][0]["title"], "Field Marketing Lead");
    let path = dir.path().join("marketing-center.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let swapped = text
        .replacen(
            "scim = \"displayName\"\nlegacy = \"UserProfileFullName\"",
            "@DN@",
            1,
        )
        .replacen(
            "scim = \"title\"\nlegacy = \"UserProfileTitle\"",
            "scim = \"title\"\nlegacy = \"UserProfileFullName\"",
            1,
        )
        .replacen(
            "@DN@",
            "scim = \"displayName\"\nlegacy = \"UserProfileTitle\"",
            1,
        );
    assert_ne!(swapped, text);
    std::fs::write(&path, swapped).unwrap();
    served.signal(Signal::HUP);
    wait_until("SIGHUP to reload the mapping", async || {
        let (_, found) = call(&base, Method::GET, jane, FILE_TOKEN, None).await;
        found["Resources"][0]["title"] == "Jane Doe"
    })
    .await;

    // A legacy app slower than the request limit: 504 with a SCIM body, not a hang.
    sim.set_knobs(Knobs {
        latency: Duration::from_secs(4),
        ..Knobs::default()
    });
    let (status, body) = call(&base, Method::GET, "/Users", FILE_TOKEN, None).await;
    assert_eq!(status, 504, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("longer than 2 s"));
    sim.set_knobs(Knobs::default());

    let log = served.stop();
    assert!(
        log.iter().any(|l| l.contains("request done")),
        "one line per request"
    );
    assert!(
        log.iter().any(|l| l.contains("mapping reloaded")),
        "the reload is logged"
    );
    assert!(
        log.last()
            .is_some_and(|l| l.contains("all connections closed")),
        "the last line, logged just before the process ends, is written out: {:?}",
        log.last()
    );
    for secret in [FILE_TOKEN, HASHED_TOKEN, API_KEY, PASSWORD] {
        assert!(
            !log.iter().any(|l| l.contains(secret)),
            "{secret} leaked into the log"
        );
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("data"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    sim_handle.stop().await;
}

#[test]
fn serve_refuses_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nlistn = 1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listn"), "{err}");

    let legacy = "http://127.0.0.1:9/api/v1";
    let config = write_config(dir.path(), legacy);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("marketing-center.toml", "missing.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("TEST_SERVE_MC_KEY", API_KEY)
        .env("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.toml"), "{err}");
    assert!(!err.contains(API_KEY) && !err.contains(FILE_TOKEN));
}

#[test]
fn serve_refuses_a_corrupt_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9/api/v1");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("xref.sqlite3"),
        b"this is not a database, it was damaged by a crash",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("TEST_SERVE_MC_KEY", API_KEY)
        .env("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("xref.sqlite3"),
        "the message names the file: {err}"
    );
    assert!(err.contains("failed its integrity check"), "{err}");
    assert!(
        err.contains("restore it from a backup"),
        "the message says what to do: {err}"
    );
}

/// SIGTERM lets a request in flight finish (within the grace period), then the process exits
/// cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_in_flight() {
    let sim = MarketingCenter::new(API_KEY, ["ACME"]);
    sim.seed_demo("ACME");
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim_handle.base_url());
    let served = Served::start(
        &config,
        &[
            ("TEST_SERVE_MC_KEY", API_KEY),
            ("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0"),
        ],
    );
    let base = served.base.clone();
    // The legacy app answers once: readiness then counts it as up (`legacy_ready_window_secs`)
    // and, during the drain below, answers at once instead of probing the slowed legacy app.
    let (status, _) = call(&base, Method::GET, "/Users?count=1", FILE_TOKEN, None).await;
    assert_eq!(status, 200);
    sim.set_knobs(Knobs {
        latency: Duration::from_secs(2),
        ..Knobs::default()
    });
    sim.clear_requests();
    let slow =
        tokio::spawn(
            async move { call(&base, Method::GET, "/Users?count=2", FILE_TOKEN, None).await },
        );
    // SIGTERM once the request is in flight: the legacy app has received it (and holds it).
    wait_until("the request to reach the legacy app", async || {
        sim.requests()
            .iter()
            .any(|(m, p)| m == Method::GET && p.contains("/users"))
    })
    .await;
    served.signal(Signal::TERM);
    // While the request drains, readiness says 503 (the pod leaves the Service endpoints)
    // and the admin listener still answers.
    wait_until(
        "readiness to turn 503 (draining) during the drain",
        async || {
            assert!(
                !slow.is_finished(),
                "readiness did not turn 503 during the drain"
            );
            let r = reqwest_get(&format!("{}/readyz", served.admin)).await;
            r.0 == 503 && r.1.contains("\"draining\":true")
        },
    )
    .await;
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200, "the request in flight finished: {body}");
    let log = tokio::task::spawn_blocking(move || served.stop_after_term())
        .await
        .unwrap();
    assert!(log.iter().any(|l| l.contains("shutdown signal received")));
    sim_handle.stop().await;
}

/// Slow clients: one that never finishes its headers is disconnected after
/// `header_read_timeout_secs`; one that never finishes its body gets 504 after
/// `request_timeout_secs`. The server keeps serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = MarketingCenter::new(API_KEY, ["ACME"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim_handle.base_url());
    let served = Served::start(
        &config,
        &[
            ("TEST_SERVE_MC_KEY", API_KEY),
            ("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0"),
            ("SCIM_SIDECAR_SERVER__HEADER_READ_TIMEOUT_SECS", "1"),
            ("SCIM_SIDECAR_SERVER__REQUEST_TIMEOUT_SECS", "1"),
        ],
    );
    let addr = served
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/scim/v2")
        .to_owned();
    let read_all = |mut s: tokio::net::TcpStream| async move {
        let mut out = Vec::new();
        let done = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        (done.is_ok(), String::from_utf8_lossy(&out).into_owned())
    };
    // Headers never finished.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (closed, answer) = read_all(s).await;
    assert!(closed, "the connection is closed, not left open");
    assert!(!answer.contains("200 OK"), "{answer}");
    // Body never finished.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {FILE_TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"userName\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (_, answer) = read_all(s).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("longer than 1 s"), "{answer}");
    // Others are served.
    assert_eq!(
        call(
            &served.base,
            Method::GET,
            "/Users?count=1",
            FILE_TOKEN,
            None
        )
        .await
        .0,
        200
    );
    served.stop();
    sim_handle.stop().await;
}

/// A plain GET: (status, body).
async fn reqwest_get(url: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client
        .request(http::Request::get(url).body(Default::default()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Without debug logging: one line per SCIM request carrying tenant, operation, SCIM id,
/// status, latency, legacy calls and the request id, and no e-mail address or name in any
/// line. The `log` command then reads the provisioning log of the stopped sidecar.
#[tokio::test]
async fn one_line_per_request_without_personal_data_and_the_log_command() {
    let sim = MarketingCenter::new(API_KEY, ["ACME"]);
    sim.seed_demo("ACME");
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim_handle.base_url());
    let served = Served::start(
        &config,
        &[
            ("TEST_SERVE_MC_KEY", API_KEY),
            ("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0"),
            ("SCIM_SIDECAR_LOG", "info"),
        ],
    );
    let base = served.base.clone();
    let login = "pii.person@example.com";
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": login,
        "externalId": "00u-pii", "name": {"givenName": "Augusta", "familyName": "Kingsworth"},
        "emails": [{"value": login, "primary": true}]});
    let (status, created) = call(
        &base,
        Method::POST,
        "/Users",
        FILE_TOKEN,
        Some(user.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut taken = user;
    taken["externalId"] = json!("00u-somebody-else");
    taken["active"] = json!(true);
    let (status, refused) = call(&base, Method::POST, "/Users", FILE_TOKEN, Some(taken)).await;
    assert_eq!(status, 409, "{refused}");
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    let (status, _) = call(
        &base,
        Method::PATCH,
        &format!("/Users/{id}"),
        FILE_TOKEN,
        Some(off),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&base, Method::GET, "/Users", "wrong", None).await.0,
        401
    );
    let log = served.stop();

    let lines: Vec<Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("request "))
        })
        .collect();
    assert_eq!(lines.len(), 4, "one line per request: {log:#?}");
    for v in &lines {
        for field in [
            "tenant",
            "operation",
            "resource",
            "scim_id",
            "status",
            "latency_us",
            "legacy_calls",
        ] {
            assert!(!v[field].is_null(), "{field} missing in {v}");
        }
        assert!(
            v["span"]["request_id"]
                .as_str()
                .is_some_and(|r| r.len() >= 32),
            "no request id in {v}"
        );
    }
    assert_eq!(lines[0]["operation"], "create");
    assert_eq!(lines[0]["scim_id"], id.as_str());
    assert_eq!(lines[0]["tenant"], "acme");
    assert!(lines[0]["legacy_calls"].as_u64().unwrap() >= 1);
    assert_eq!(lines[1]["status"], 409);
    assert_eq!(lines[1]["scim_type"], "uniqueness");
    assert_eq!(lines[2]["operation"], "patch");
    assert_eq!(lines[3]["tenant"], "none");
    // The span names the request and, once authenticated, its tenant.
    assert_eq!(lines[0]["span"]["method"], "POST");
    assert_eq!(lines[0]["span"]["path"], "/scim/v2/Users");
    assert_eq!(lines[0]["span"]["tenant"], "acme");
    assert!(lines[3]["span"].get("tenant").is_none(), "{}", lines[3]);
    for personal in [login, "Augusta", "Kingsworth"] {
        assert!(
            !log.iter().any(|l| l.contains(personal)),
            "{personal} appears in the log without debug: {log:#?}"
        );
    }

    // The provisioning log, read by the `log` command after the sidecar stopped.
    let bin = env!("CARGO_BIN_EXE_scim-sidecar");
    let data = dir.path().join("data");
    let mut log = Command::new(bin);
    log.args(["log", "--failed", "--json", "--data-dir"])
        .arg(&data);
    let failed: Vec<Value> = succeeded(log)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], 409);
    assert_eq!(failed[0]["subject"], login);
    assert_eq!(failed[0]["detail"], refused["detail"]);
    let mut log = Command::new(bin);
    log.args(["log", "--since", "1h", "--config"])
        .arg(&config)
        .env("TEST_SERVE_MC_KEY", API_KEY)
        .env("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0");
    let table = succeeded(log);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "a header and three writes:\n{table}");
    assert!(rows[0].starts_with("TIME (UTC)"));
    assert!(
        rows[2].contains("FAILED 409") && rows[2].contains("uniqueness"),
        "{table}"
    );
    assert!(
        rows[1].contains("deactivate User") && rows[1].contains("ok 200"),
        "{table}"
    );
    assert!(
        rows[3].contains("create User") && rows[3].contains(login),
        "{table}"
    );
    let bad = Command::new(bin)
        .args(["log", "--since", "yesterday", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("24h"));
    let missing = Command::new(bin)
        .args(["log", "--data-dir"])
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no provisioning log"));
    sim_handle.stop().await;
}

/// A SIGHUP sent the moment the sidecar says it serves reloads (or finds nothing changed);
/// it never meets the default action, which would end the process.
#[tokio::test]
async fn a_sighup_right_after_start_is_handled() {
    let sim = MarketingCenter::new(API_KEY, ["ACME"]);
    sim.seed_demo("ACME");
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim_handle.base_url());
    let served = Served::start(
        &config,
        &[
            ("TEST_SERVE_MC_KEY", API_KEY),
            ("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0"),
            ("SCIM_SIDECAR_SERVER__MAPPING_POLL_SECS", "0"),
        ],
    );
    served.signal(Signal::HUP);
    assert_lists_users(&served.base).await;
    let log = served.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("SIGHUP: mapping unchanged") || l.contains("mapping reloaded")),
        "{log:#?}"
    );
    sim_handle.stop().await;
}

/// The tunables in the environment of the running process `pid`, as the kernel holds it:
/// glibc cuts the value at each `:` in place while it reads it, so every tunable is a
/// NUL-terminated piece of its own there.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_tunables(pid: u32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut pieces = environ.split(|&b| b == 0 || b == b':');
    let mut tunables = Vec::new();
    let Some(first) = pieces
        .by_ref()
        .find_map(|var| var.strip_prefix(b"GLIBC_TUNABLES="))
    else {
        return tunables;
    };
    tunables.push(String::from_utf8_lossy(first).into_owned());
    tunables.extend(
        pieces
            .map_while(|piece| piece.starts_with(b"glibc.").then_some(piece))
            .map(|piece| String::from_utf8_lossy(piece).into_owned()),
    );
    tunables
}

/// `serve` runs with glibc's mmap threshold fixed (`scim_sidecar::malloc`): the binary has
/// executed itself again, in the same process, with the tunable added to those it was given;
/// a threshold the environment sets already is kept as it is.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn serve_runs_with_a_fixed_malloc_threshold_and_keeps_one_already_set() {
    let sim = MarketingCenter::new(API_KEY, ["ACME"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim_handle.base_url());
    let cases: [(&str, &[&str]); 2] = [
        (
            "glibc.malloc.tcache_count=7",
            &[
                "glibc.malloc.tcache_count=7",
                "glibc.malloc.mmap_threshold=131072",
            ],
        ),
        (
            "glibc.malloc.mmap_threshold=262144",
            &["glibc.malloc.mmap_threshold=262144"],
        ),
    ];
    for (given, running) in cases {
        let served = Served::start(
            &config,
            &[
                ("TEST_SERVE_MC_KEY", API_KEY),
                ("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0"),
                ("GLIBC_TUNABLES", given),
            ],
        );
        // The process that answers is the child spawned: the new image replaced it.
        assert_lists_users(&served.base).await;
        assert_eq!(glibc_tunables(served.child.id()), running, "given {given}");
        served.stop();
    }
    sim_handle.stop().await;
}

/// A served sidecar at `base` answers a list of users with the file token.
async fn assert_lists_users(base: &str) {
    let (status, body) = call(base, Method::GET, "/Users?count=1", FILE_TOKEN, None).await;
    assert_eq!(status, 200, "{body}");
}
