//! `scim-sidecar bench` in miniature: the processes start, every scenario runs against the
//! simulator, the forwarder and the sidecar without a single failed request, and the table
//! and the JSON report carry every figure of the targets. Behaviour only: no figure
//! is compared with a target here (the bench measures; its report says what is met).

use std::process::Command;

use serde_json::Value;

fn run_bench(extra: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args([
            "bench",
            "--users",
            "300",
            "--clients",
            "4",
            "--peak-clients",
            "8",
            "--latency-secs",
            "0.2",
            "--throughput-secs",
            "0.2",
            "--push-users",
            "200",
            "--group-members",
            "60",
            "--group-latency-ms",
            "2",
            "--small-rows",
            "100",
            "--scale-rows",
            "3000",
            "--out",
        ])
        .arg(&out_path)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    (stdout, report)
}

/// Every `health` object anywhere in the report: (where, errors).
fn health(v: &Value, at: &str, out: &mut Vec<(String, u64)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "health" {
                    out.push((at.to_owned(), x["errors"].as_u64().unwrap()));
                } else {
                    health(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                health(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn bench_measures_every_figure_without_errors() {
    let (stdout, report) = run_bench(&[]);
    for scenario in [
        "get_by_id",
        "lookup_by_username",
        "create",
        "patch_deactivate",
        "group_member_add_remove",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(scenario)),
            "{scenario} missing from the table:\n{stdout}"
        );
        for kind in ["direct", "forwarder", "sidecar"] {
            for load in ["one_client", "many_clients"] {
                let s = &report["scenarios"][scenario][kind][load];
                assert!(
                    s["ops"].as_u64().unwrap() > 0,
                    "{scenario}/{kind}/{load}: {s}"
                );
                assert!(s["p50_us"].as_f64().unwrap() > 0.0, "{s}");
            }
            // Every turn's p50 is kept; a read scenario first reads each user once.
            let path = &report["scenarios"][scenario][kind];
            let turns = path["turn_p50_us"].as_array().unwrap();
            assert!(!turns.is_empty(), "{scenario}/{kind}: {path}");
            let first = path["first_pass"]["ops"].as_u64();
            if scenario == "get_by_id" || scenario == "lookup_by_username" {
                assert_eq!(first, Some(300), "{scenario}/{kind}: {path}");
            } else {
                assert_eq!(first, None, "{scenario}/{kind}: {path}");
            }
        }
    }
    assert!(
        stdout.contains("get_by_id: first read of each user, p50 µs"),
        "{stdout}"
    );
    let mut checked = Vec::new();
    health(&report, "", &mut checked);
    assert!(checked.len() >= 30, "too few runs: {checked:?}");
    let failed: Vec<_> = checked.iter().filter(|(_, e)| *e > 0).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}\n{stdout}");

    assert_eq!(report["initial_push"]["users"], 200);
    assert!(report["group_replace"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(report["rss_idle_bytes"].as_u64().unwrap() > 0);
    assert!(
        report["rss_peak_bytes"].as_u64().unwrap() >= report["rss_idle_bytes"].as_u64().unwrap()
    );
    for rows in ["100", "3000"] {
        let s = &report["scale"][rows];
        assert!(s["start_to_ready_ms"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["get_by_id"]["ops"].as_u64().unwrap() > 0, "{s}");
        assert!(s["id_eq_lookup"]["ops"].as_u64().unwrap() > 0, "{s}");
    }
    // Every target figure has a measured value, printed and in the JSON. A verdict is given
    // only where the run's parameters are the target's: here, the two that take none.
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 12);
    for t in targets {
        assert!(t["value"].as_f64().is_some(), "{t}");
        let name = t["figure"].as_str().unwrap();
        assert!(stdout.contains(name), "{name} not printed:\n{stdout}");
        let judged = name.starts_with("added latency")
            || name == "RSS idle"
            || name.contains("5 s endpoint vs prompt");
        assert_eq!(t["met"].is_boolean(), judged, "{t}");
    }
    assert!(stdout.contains("(other parameters)"), "{stdout}");
    // Creates through no endpoint, a prompt one and a 5 s one; the prompt one got events.
    for side in ["without", "fast_endpoint", "slow_endpoint"] {
        for load in ["one_client", "many_clients"] {
            let s = &report["webhooks"][side][load];
            assert!(s["ops"].as_u64().unwrap() > 0, "{side}/{load}: {s}");
        }
    }
    assert!(
        report["webhooks"]["deliveries_received"]["fast"]
            .as_u64()
            .unwrap()
            > 0
    );
    // The state was where the report says: the imported users are in the SQLite files.
    assert_eq!(report["store"]["engine"], "sqlite", "{}", report["store"]);
    assert!(stdout.contains("store: sqlite"), "{stdout}");
    let main = report["store"]["xref_rows"]["main"].as_u64().unwrap();
    assert!(main >= 300, "{}", report["store"]);
}

#[test]
fn bench_only_runs_the_named_parts() {
    let (stdout, report) = run_bench(&["--only", "get_by_id,push"]);
    let rows: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(rows.contains(&"get_by_id"), "{stdout}");
    assert!(!rows.contains(&"create"), "{stdout}");
    assert!(report["scenarios"]["create"].is_null());
    assert_eq!(report["initial_push"]["users"], 200);
    assert!(report.get("group_replace").is_none());
    assert!(report.get("scale").is_none());
    let not_run: Vec<&Value> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["value"].is_null())
        .collect();
    // creates/s, replace, peak RSS, the three scale figures, the two webhook figures.
    assert_eq!(not_run.len(), 8, "{not_run:?}");
    assert!(stdout.contains("not run"), "{stdout}");
}

/// With `--store`, every sidecar keeps its state in a database of its own on the server: the
/// imported users, the created ones and the filled rows are there (counted by the bench after
/// each sidecar stopped), the side-by-side comparison with SQLite gives its three figures, and
/// every database is dropped at the end.
#[tokio::test]
async fn bench_keeps_the_state_in_postgresql_with_store() {
    let mut cluster = pgtest::Cluster::start();
    let url = cluster.create_database().await;
    let (stdout, report) = run_bench(&[
        "--only",
        "get_by_id,create,stores,scale,replace",
        "--store",
        &url,
    ]);
    let store = &report["store"];
    assert_eq!(store["engine"], "postgresql", "{store}");
    assert!(stdout.contains("store: postgresql"), "{stdout}");
    let rows = |name: &str| store["xref_rows"][name].as_u64().unwrap_or(0);
    // 300 imported users and the creates through the sidecar.
    let created = report["scenarios"]["create"]["sidecar"]["many_clients"]["ops"]
        .as_u64()
        .unwrap()
        + report["scenarios"]["create"]["sidecar"]["one_client"]["ops"]
            .as_u64()
            .unwrap();
    assert_eq!(rows("main"), 300 + created, "{store}");
    // The filled rows (through `seen`, and past 1,000 the bulk path) and the imported users
    // (the same for both: the simulator's, including the users the create scenario made).
    assert!(rows("rows100") >= 100 + 300, "{store}");
    assert_eq!(rows("rows3000") - rows("rows100"), 3000 - 100, "{store}");
    assert!(rows("replace") >= 60 + 1_000, "{store}");
    // The side-by-side comparison: one sidecar on each store, both measured.
    for engine in ["sqlite", "postgresql"] {
        let side = &report["stores"][engine];
        for load in [
            &side["get_by_id"]["one_client"],
            &side["get_by_id"]["many_clients"],
            &side["create"]["many_clients"],
        ] {
            assert!(load["ops"].as_u64().unwrap() > 0, "{engine}: {side}");
        }
        assert!(rows(&format!("stores-{engine}")) >= 300, "{store}");
    }
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 15, "{targets:?}");
    for t in &targets[12..] {
        assert!(t["value"].as_f64().is_some(), "{t}");
        assert!(
            stdout.contains(t["figure"].as_str().unwrap()),
            "{t}\n{stdout}"
        );
    }
    let mut checked = Vec::new();
    health(&report, "", &mut checked);
    let failed: Vec<_> = checked.iter().filter(|(_, e)| *e > 0).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}\n{stdout}");

    let client = cluster.connect("postgres").await;
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'scim\\_bench\\_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the bench's databases were not dropped");
}

/// `bench --profile` counts instructions and allocations per request under callgrind, for
/// GET by id and create through the sidecar and GET by id through the forwarder.
#[test]
fn bench_profile_counts_instructions_and_allocations_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("profile.json");
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args([
            "bench",
            "--profile",
            "--profile-requests",
            "20",
            "--users",
            "300",
            "--out",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench --profile failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("instructions"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let rows = report["profile"].as_array().unwrap();
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["process"].as_str().unwrap(),
                r["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("sidecar", "get_by_id"),
            ("sidecar", "create"),
            ("sidecar", "get_changed"),
            ("hooked", "create"),
            ("forwarder", "get_by_id")
        ]
    );
    for r in rows {
        assert_eq!(r["requests"], 20);
        // A request through either process runs code and allocates: counts of zero would
        // mean the dump was not read.
        assert!(
            r["instructions_per_request"].as_f64().unwrap() > 1_000.0,
            "{r}"
        );
        assert!(r["allocations_per_request"].as_f64().unwrap() >= 1.0, "{r}");
    }
    let sidecar = rows[0]["instructions_per_request"].as_f64().unwrap();
    let changed = rows[2]["instructions_per_request"].as_f64().unwrap();
    let create = rows[1]["instructions_per_request"].as_f64().unwrap();
    let hooked = rows[3]["instructions_per_request"].as_f64().unwrap();
    let forwarder = rows[4]["instructions_per_request"].as_f64().unwrap();
    // A create of a tenant with a webhook endpoint also records its event (the body, the
    // outbox row in the same transaction).
    assert!(
        hooked > create,
        "recording an event costs: {hooked} (with an endpoint) vs {create}"
    );
    assert!(
        sidecar > forwarder,
        "the sidecar does more than forward: {sidecar} vs {forwarder}"
    );
    // A record read again unchanged is answered with the answer kept for it; a changed one is
    // translated again (counts, not timings: callgrind's do not move with the machine's load).
    assert!(
        changed > 1.2 * sidecar,
        "a kept answer spares the translation: {changed} (changed) vs {sidecar} (unchanged)"
    );
}

/// `bench --soak` runs the mixed load without a failed request and reports the memory curve
/// and the growth after the warm-up.
#[test]
fn bench_soak_prints_the_memory_curve() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("soak.json");
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .args([
            "bench",
            "--soak",
            "--soak-secs",
            "12",
            "--soak-clients",
            "8",
            "--users",
            "300",
            "--out",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench --soak failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("RSS growth after the first"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let soak = &report["soak"];
    assert_eq!(soak["errors"], 0, "{soak}");
    assert!(soak["operations"].as_u64().unwrap() > 0);
    let curve = soak["curve"].as_array().unwrap();
    assert!(
        curve.len() >= 3,
        "a sample every 5 s and one at the end: {curve:?}"
    );
    assert!(curve.iter().all(|p| p[1].as_u64().unwrap() > 0));
    assert!(soak["growth_after_warm_up"].is_number());
}
