//! `store migrate`: a single-replica installation (SQLite in its data directory) moved to
//! PostgreSQL while it serves, copied again after it stopped, then served from PostgreSQL:
//! ids, tombstones, remembered externalIds and the provisioning log come along.

use std::process::Command;

use http::Method;
use serde_json::{Value, json};
use simulator::marketing_center::MarketingCenter;

use crate::process::{Served, call, mc_tenant, server_section};
use crate::support::okta_user;

const KEY: &str = "migrate-api-key";
const TOKEN: &str = "migrate-token";

/// Runs `store migrate --from DATA --to URL`; its exit status and standard output.
async fn migrate(from: &std::path::Path, to: &str) -> (bool, String) {
    let (from, to) = (from.to_path_buf(), to.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
            .args(["store", "migrate", "--from"])
            .arg(&from)
            .args(["--to", &to])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_installation_moves_to_postgresql() {
    let sim = MarketingCenter::new(KEY, ["ACME"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let mut cluster = pgtest::Cluster::start();
    let url = cluster.create_database().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tenant = mc_tenant(&sim_handle.base_url(), "MIGRATE_MC_KEY", TOKEN);
    let sqlite_config = dir.path().join("sqlite.toml");
    std::fs::write(&sqlite_config, format!("{}{tenant}", server_section(&data))).unwrap();
    let pg_config = dir.path().join("postgres.toml");
    std::fs::write(
        &pg_config,
        format!(
            "{}[store]\nurl = \"{url}\"\n\n{tenant}",
            server_section(&dir.path().join("unused"))
        ),
    )
    .unwrap();
    let env = [("MIGRATE_MC_KEY", KEY)];

    // The single-replica installation at work.
    let old = Served::start(&sqlite_config, &env);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, user) = call(
            &old.base,
            Method::POST,
            "/Users",
            TOKEN,
            Some(okta_user(
                &format!("mig{i}@example.com"),
                "M",
                &format!("N{i}"),
                &format!("00u-mig-{i}"),
            )),
        )
        .await;
        assert_eq!(status, 201, "{user}");
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    let (status, _) = call(
        &old.base,
        Method::DELETE,
        &format!("/Users/{}", ids[0]),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 204);

    // Copied while it serves; then one more change, which the first copy missed.
    let (ok, out) = migrate(&data, &url).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("xref acme/User: 5 rows (4 live, 1 tombstoned), 5 written, 5 verified"),
        "{out}"
    );
    let (status, _) = call(
        &old.base,
        Method::DELETE,
        &format!("/Users/{}", ids[1]),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 204);
    old.stop();

    // The second copy writes only what changed, and verifies everything.
    let (ok, out) = migrate(&data, &url).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("5 rows (3 live, 2 tombstoned), 1 written, 5 verified"),
        "{out}"
    );
    assert!(
        out.contains("provisioning log: 7 entries, 1 inserted, 7 verified"),
        "{out}"
    );
    // And a third copy writes nothing.
    let (ok, out) = migrate(&data, &url).await;
    assert!(ok, "{out}");
    assert!(out.contains("0 written, 5 verified"), "{out}");
    assert!(out.contains("7 entries, 0 inserted"), "{out}");

    // The replicas serve from PostgreSQL what the single one knew.
    let new = Served::start(&pg_config, &env);
    for id in &ids[..2] {
        let (status, body) =
            call(&new.base, Method::GET, &format!("/Users/{id}"), TOKEN, None).await;
        assert_eq!(status, 404, "the tombstone came along: {body}");
    }
    let (status, user) = call(
        &new.base,
        Method::GET,
        &format!("/Users/{}", ids[2]),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(user["externalId"], "00u-mig-2");
    let (status, list) = call(&new.base, Method::GET, "/Users?count=100", TOKEN, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 3, "{list}");
    new.stop();
    let log = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
            .args(["log", "--json", "--config"])
            .arg(&pg_config)
            .env("MIGRATE_MC_KEY", KEY)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    let entries: Vec<Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == json!("create"))
            .count(),
        5,
        "the log command reads the copied log: {entries:?}"
    );

    // A wrong source or a password in the URL is refused, and says why.
    let (ok, out) = migrate(&dir.path().join("nowhere"), &url).await;
    assert!(!ok && out.contains("no cross-reference at"), "{out}");
    let (ok, out) = migrate(&data, "postgres://scim:hunter2@localhost/x").await;
    assert!(
        !ok && out.contains("store.password") && !out.contains("hunter2"),
        "{out}"
    );
    sim_handle.stop().await;
    drop(cluster);
}
