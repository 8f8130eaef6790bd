//! Crash test: the `serve` process is killed with SIGKILL at random moments (20 times) while
//! Okta-shaped creates and updates stream in; each failed request is replayed after a restart,
//! as Okta retries. Afterwards every user exists exactly once, every update is applied, and
//! `reconcile` finds zero drift.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use simulator::marketing_center::MarketingCenter;

use crate::process::{Served, assert_no_drift, mc_tenant, reconcile, server_section, try_call};
use crate::support::okta_user;

const KEY: &str = "crash-api-key";
const TOKEN: &str = "crash-token";
const KILLS: usize = 20;

/// A small deterministic PRNG (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_converges() {
    converges_after_kills("").await;
}

/// The same with the state in PostgreSQL (`[store]`): a killed sidecar leaves its pooled
/// sessions and any create claim behind; the restarted one carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_converges_on_postgresql() {
    let mut cluster = pgtest::Cluster::start();
    let url = cluster.create_database().await;
    converges_after_kills(&format!("[store]\nurl = \"{url}\"\n\n")).await;
    drop(cluster);
}

/// Runs the crash test with `store` (a `[store]` table, or nothing for SQLite) in the
/// configuration.
async fn converges_after_kills(store: &str) {
    let sim = MarketingCenter::new(KEY, ["ACME"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "{}{store}{}",
            server_section(&dir.path().join("data")),
            mc_tenant(&sim_handle.base_url(), "CRASH_MC_KEY", TOKEN),
        ),
    )
    .unwrap();

    // 40 creates and 40 updates, in Okta's order (create, then profile update).
    let mut ops: Vec<(Method, String, Value, u16)> = Vec::new();
    for i in 0..40 {
        let name = format!("crash{i:02}@example.com");
        ops.push((
            Method::POST,
            "/Users".into(),
            okta_user(&name, "C", &format!("N{i}"), &format!("00u-crash-{i}")),
            201,
        ));
        ops.push((
            Method::PATCH,
            name.clone(),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"title": format!("Title {i}")}}]}),
            200,
        ));
    }
    let mut rng = Rng(0x5eed_c0ff_ee11_2233);
    let env = [("CRASH_MC_KEY", KEY)];
    let mut sidecar = Served::start(&config, &env);
    let mut ids = std::collections::HashMap::new();
    let (mut kills, mut replays) = (0usize, 0usize);
    for (k, (method, target, body, want)) in ops.into_iter().enumerate() {
        let path = if method == Method::PATCH {
            format!("/Users/{}", ids[&target])
        } else {
            target.clone()
        };
        let mut kill_now = k % 4 == 1 && kills < KILLS;
        loop {
            let (base, m, p, b) = (
                sidecar.base.clone(),
                method.clone(),
                path.clone(),
                body.clone(),
            );
            let request = tokio::spawn(async move { try_call(&base, m, &p, TOKEN, Some(b)).await });
            if kill_now {
                // Kill at a random moment around this request: before, during or after it.
                tokio::time::sleep(Duration::from_micros(rng.next() % 4000)).await;
                sidecar.kill();
                kills += 1;
                kill_now = false;
                let _ = request.await.unwrap();
                sidecar = Served::start(&config, &env);
                replays += 1;
                continue; // Okta retries the request.
            }
            match request.await.unwrap() {
                Ok((status, answer)) => {
                    assert_eq!(
                        status, want,
                        "{method} {path} after {kills} kills: {answer}"
                    );
                    if method == Method::POST {
                        ids.insert(
                            answer["userName"].as_str().unwrap().to_owned(),
                            answer["id"].as_str().unwrap().to_owned(),
                        );
                    }
                    break;
                }
                Err(e) => panic!("{method} {path}: the sidecar is up, yet {e}"),
            }
        }
    }
    assert_eq!(kills, KILLS);
    sidecar.stop();

    // Exactly one account per user, every update applied.
    let users = sim.users("ACME");
    assert_eq!(users.len(), 40, "no user lost, none duplicated");
    for i in 0..40 {
        let u: Vec<&Value> = users
            .iter()
            .filter(|u| u["LogonName"] == format!("crash{i:02}@example.com"))
            .collect();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0]["UserProfileTitle"], format!("Title {i}"));
        assert_eq!(u[0]["ExternalIdentityProviderID"], format!("00u-crash-{i}"));
    }
    // And the cross-reference agrees with the legacy app: zero drift.
    assert_no_drift(&reconcile(&config, ("CRASH_MC_KEY", KEY)).await, 40);
    println!("crash test: {kills} SIGKILLs, {replays} replayed requests, zero drift");
    sim_handle.stop().await;
}
