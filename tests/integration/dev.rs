//! The `dev` demo as a newcomer runs it, for every shipped mapping that has a simulator:
//! `dev` (the Marketing Center) and `dev --app partner-directory`. The binary is started on
//! port 0, its banner read, and an Okta-like flow sent through the SCIM base URL it prints.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use http::Method;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::process::call;
use crate::support::WAIT_LIMIT;

const TOKEN: &str = "dev-test-token-41a9";

/// A running `dev` process and what its banner says.
struct Dev {
    child: Child,
    banner: Vec<String>,
    base: String,
    /// Kept, so the thread reading the process's stdout reads to its end.
    _lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Dev {
    /// `dev` with `args`, on port 0, in a data directory of its own; waits for the banner's
    /// `Try:` line.
    // The child is reaped by `stop`, which every test calls.
    #[allow(clippy::zombie_processes)]
    fn start(args: &[&str]) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
            .arg("dev")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--token", TOKEN, "--data-dir"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        while !banner.iter().any(|l: &String| l == "Try:") {
            match lines.recv_timeout(WAIT_LIMIT) {
                Ok(line) => banner.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("dev printed no banner within {WAIT_LIMIT:?}: {banner:?}");
                }
            }
        }
        let base = banner
            .iter()
            .find_map(|l| l.strip_prefix("SCIM base URL: "))
            .expect("the banner names the SCIM base URL")
            .to_owned();
        Dev {
            child,
            banner,
            base,
            _lines: lines,
            _dir: dir,
        }
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = Pid::from_raw(self.child.id() as i32).unwrap();
        kill_process(pid, Signal::TERM).unwrap();
        self.child.wait().unwrap()
    }
}

/// Lists, looks up, creates, deactivates and pushes a group member through a demo.
async fn okta_flow(base: &str) -> Value {
    let (status, listed) = call(
        base,
        Method::GET,
        "/Users?startIndex=1&count=2",
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed["totalResults"].as_u64().unwrap() >= 1, "{listed}");
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "primary": true}],
        "active": true,
    });
    let (status, created) = call(base, Method::POST, "/Users", TOKEN, Some(user)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, found) = call(
        base,
        Method::GET,
        "/Users?filter=userName%20eq%20%22ada%40example.com%22",
        TOKEN,
        None,
    )
    .await;
    assert_eq!((status, &found["Resources"][0]["id"]), (200, &json!(id)));
    let (status, groups) = call(
        base,
        Method::GET,
        "/Groups?filter=displayName%20eq%20%22Sales%20Ops%22",
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{groups}");
    let gid = groups["Resources"][0]["id"].as_str().unwrap().to_owned();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
    let (status, body) = call(
        base,
        Method::PATCH,
        &format!("/Groups/{gid}"),
        TOKEN,
        Some(add),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, group) = call(base, Method::GET, &format!("/Groups/{gid}"), TOKEN, None).await;
    assert!(
        group["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["value"] == json!(id)),
        "{group}"
    );
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    let (status, after) = call(
        base,
        Method::PATCH,
        &format!("/Users/{id}"),
        TOKEN,
        Some(off),
    )
    .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["active"], false);
    after
}

#[tokio::test]
async fn dev_runs_the_marketing_center_by_default() {
    let dev = Dev::start(&[]);
    assert!(
        dev.banner[0].contains("Marketing Center simulator")
            && dev.banner[0].contains("mappings/marketing-center.toml"),
        "{:?}",
        dev.banner
    );
    let after = okta_flow(&dev.base).await;
    // Deactivation archives: the user is still there, inactive.
    let (status, _) = call(
        &dev.base,
        Method::GET,
        &format!("/Users/{}", after["id"].as_str().unwrap()),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(dev.stop().success());
}

#[tokio::test]
async fn dev_runs_the_partner_directory_through_its_mapping() {
    let dev = Dev::start(&["--app", "partner-directory"]);
    assert!(
        dev.banner[0].contains("Partner Directory simulator")
            && dev.banner[0].contains("mappings/partner-directory.toml"),
        "{:?}",
        dev.banner
    );
    let after = okta_flow(&dev.base).await;
    // The Partner Directory deletes on deactivation: the id is gone.
    let (status, _) = call(
        &dev.base,
        Method::GET,
        &format!("/Users/{}", after["id"].as_str().unwrap()),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(dev.stop().success());
}

/// A SIGTERM the moment the banner is out stops the demo cleanly: the signal is listened for
/// before the banner, so it never meets the default action (which kills the process).
#[test]
fn a_sigterm_right_after_the_banner_stops_cleanly() {
    for app in ["marketing-center", "partner-directory"] {
        let dev = Dev::start(&["--app", app]);
        assert!(dev.stop().success(), "{app}");
    }
}

#[test]
fn dev_refuses_an_app_it_has_no_simulator_for() {
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args(["dev", "--app", "redmine"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("marketing-center") && err.contains("partner-directory"),
        "the error lists the apps: {err}"
    );
}
