//! Load: 200 concurrent clients, 20,000 mixed operations (create, get, patch, group member
//! add, deactivate) against the simulator; zero unexpected statuses and an exact final state.
//! Bounded (every client does a fixed number of operations); prints its own figures.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;

use crate::support::{CUSTOMER, Harness, okta_user};

const CLIENTS: usize = 200;
const USERS_PER_CLIENT: usize = 20;
const GROUPS: [&str; 3] = ["G-LOAD-A", "G-LOAD-B", "G-LOAD-C"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_twenty_thousand_operations() {
    let h = Arc::new(
        Harness::start_with(|sim| {
            for (i, g) in GROUPS.iter().enumerate() {
                sim.add_group(CUSTOMER, g, &format!("Load {i}"));
            }
        })
        .await,
    );
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let h = Arc::clone(&h);
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(USERS_PER_CLIENT * 5);
            let mut timed = |t: Instant| latencies.push(t.elapsed());
            for u in 0..USERS_PER_CLIENT {
                let n = c * USERS_PER_CLIENT + u;
                let name = format!("load{n:05}@example.com");
                let t = Instant::now();
                let a = h.post("/Users", okta_user(&name, "L", &format!("U{n}"), &format!("00u-load-{n}"))).await;
                assert_eq!(a.status, 201, "create {name}: {:?}", a.body);
                timed(t);
                let id = a.body["id"].as_str().unwrap().to_owned();
                let t = Instant::now();
                assert_eq!(h.get(&format!("/Users/{id}")).await.status, 200, "get {name}");
                timed(t);
                let t = Instant::now();
                let a = h
                    .patch(&format!("/Users/{id}"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "value": {"title": format!("T{n}")}}]}))
                    .await;
                assert_eq!(a.status, 200, "patch {name}: {:?}", a.body);
                timed(t);
                let t = Instant::now();
                let a = h
                    .send(Method::PATCH, &format!("/Groups/{}", GROUPS[n % 3]), Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]})))
                    .await;
                assert_eq!(a.status, 204, "group add {name}: {:?}", a.body);
                timed(t);
                let t = Instant::now();
                let active = n % 2 == 1;
                let a = h
                    .patch(&format!("/Users/{id}"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "value": {"active": active}}]}))
                    .await;
                assert_eq!((a.status.as_u16(), a.body["active"].clone()), (200, json!(active)), "{name}");
                timed(t);
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for c in clients {
        latencies.extend(c.await.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(latencies.len(), CLIENTS * USERS_PER_CLIENT * 5);

    // Exact final state: every user once, titled; odd ones active and in their group, even
    // ones archived (and so, by the storefront's rule, in no group).
    let users = h.sim().users(CUSTOMER);
    assert_eq!(users.len(), CLIENTS * USERS_PER_CLIENT);
    let mut expected: [HashSet<u64>; 3] = Default::default();
    for u in &users {
        let login = u["LogonName"].as_str().unwrap();
        let n: usize = login
            .trim_start_matches("load")
            .trim_end_matches("@example.com")
            .parse()
            .unwrap();
        assert_eq!(u["UserProfileTitle"], format!("T{n}"));
        assert_eq!(u["IsArchived"], json!(n % 2 == 0), "{login}");
        if n % 2 == 1 {
            expected[n % 3].insert(u["UserID"].as_u64().unwrap());
        }
    }
    for (i, g) in GROUPS.iter().enumerate() {
        let members: HashSet<u64> = h.sim().group_members(CUSTOMER, g).into_iter().collect();
        assert_eq!(members, expected[i], "{g}");
    }
    let tenant = mapping::ids::TenantId::new("acme");
    assert_eq!(
        h.xref.counts(&tenant, "User").await.unwrap(),
        ((CLIENTS * USERS_PER_CLIENT) as u64, 0)
    );

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "load: {} clients, {} operations in {:.1} s ({:.0} ops/s); latency p50 {:?}, p99 {:?}, max {:?} (debug build, simulator in-process)",
        CLIENTS,
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
    Arc::try_unwrap(h).ok().unwrap().stop().await;
}
