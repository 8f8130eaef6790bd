//! Mapping reload under load: a changed mapping is put in force without losing a request,
//! and a broken one is refused while the one in force keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{Harness, okta_user, wait_until};

#[tokio::test]
async fn reload_under_load_loses_no_request() {
    let h = Arc::new(Harness::start_reloadable(Duration::from_millis(20)).await);
    let mut body = okta_user("reload@example.com", "Re", "Load", "00u1rl");
    body["title"] = serde_json::json!("Field Engineer");
    let created = h.post("/Users", body).await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_owned();

    // Eight clients read the user in a loop until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (h, stop, id) = (Arc::clone(&h), Arc::clone(&stop), id.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut titles) = (0u32, std::collections::BTreeSet::new());
            while !stop.load(Ordering::Relaxed) {
                let a = h.get(&format!("/Users/{id}")).await;
                assert_eq!(
                    a.status, 200,
                    "a request failed during a reload: {:?}",
                    a.body
                );
                titles.insert(a.body["title"].as_str().unwrap_or("").to_owned());
                ok += 1;
            }
            (ok, titles)
        }));
    }

    // Change the attribute map: title and displayName swap their legacy fields.
    let text = std::fs::read_to_string(&h.mapping_file).unwrap();
    let changed = text
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
    assert_ne!(changed, text);
    std::fs::write(&h.mapping_file, &changed).unwrap();
    wait_for_title(&h, &id, "Re Load").await;

    // A broken mapping is refused; the one in force keeps serving, until the refusal and
    // after it.
    let reloads = |outcome: &str| {
        format!("scim_sidecar_mapping_reloads_total{{tenant=\"acme\",outcome=\"{outcome}\"}}")
    };
    let refusals = h.metric(&reloads("refused")).await;
    std::fs::write(
        &h.mapping_file,
        changed.replace("scim = \"userName\"", "scim = \"userNam\""),
    )
    .unwrap();
    let in_force = async || {
        let a = h.get(&format!("/Users/{id}")).await;
        assert_eq!(
            (a.status.as_u16(), a.body["title"].as_str()),
            (200, Some("Re Load"))
        );
    };
    wait_until("the broken mapping to be refused", async || {
        in_force().await;
        h.metric(&reloads("refused")).await > refusals
    })
    .await;
    in_force().await;
    // And a good one after it is taken again.
    std::fs::write(&h.mapping_file, &text).unwrap();
    wait_for_title(&h, &id, "Field Engineer").await;
    // The metrics count the two reloads and the refusal between them (at least: a poll may
    // also catch a file half-written by the test).
    assert!(h.metric(&reloads("reloaded")).await >= 2.0);
    assert!(h.metric(&reloads("refused")).await >= 1.0);

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        let (ok, titles) = c.await.unwrap();
        total += ok;
        seen.extend(titles);
    }
    assert!(total > 0);
    assert!(
        seen.contains("Re Load") && seen.contains("Field Engineer"),
        "{seen:?}"
    );
    assert_eq!(
        seen.len(),
        2,
        "every answer came from one mapping or the other: {seen:?}"
    );
    Arc::try_unwrap(h).ok().unwrap().stop().await;
}

/// Polls until the user's title reads `want` (the reload is asynchronous), bounded.
async fn wait_for_title(h: &Harness, id: &str, want: &str) {
    wait_until(
        &format!("the reload that makes the title {want:?}"),
        async || h.get(&format!("/Users/{id}")).await.body["title"] == want,
    )
    .await;
}

/// A mapping file that cannot be read is reported once, not at every poll; the mapping in
/// force keeps serving, and the file's return is taken.
#[tokio::test]
async fn an_unreadable_mapping_is_reported_once() {
    let h = Harness::start_reloadable(Duration::from_millis(10)).await;
    let text = std::fs::read_to_string(&h.mapping_file).unwrap();
    std::fs::remove_file(&h.mapping_file).unwrap();
    let refused = "scim_sidecar_mapping_reloads_total{tenant=\"acme\",outcome=\"refused\"}";
    wait_until("the missing mapping file to be refused", async || {
        h.metric(refused).await > 0.0
    })
    .await;
    // Twenty more polls of the same missing file: still one refusal. Each poll reads every
    // tenant's file in turn, so each change to the `other` tenant's file that is taken marks
    // one more poll (the file is replaced whole, by a rename, so no poll reads half of it).
    let other = std::fs::read_to_string(&h.other_mapping_file).unwrap();
    let marked = "scim_sidecar_mapping_reloads_total{tenant=\"other\",outcome=\"reloaded\"}";
    let next = h.other_mapping_file.with_extension("toml.next");
    for poll in 1..=20u32 {
        std::fs::write(&next, format!("{other}\n# poll {poll}\n")).unwrap();
        std::fs::rename(&next, &h.other_mapping_file).unwrap();
        wait_until(&format!("poll {poll} after the refusal"), async || {
            h.metric(marked).await >= f64::from(poll)
        })
        .await;
    }
    assert_eq!(h.metric(refused).await, 1.0);
    assert_eq!(h.get("/Users?count=1").await.status, 200);
    std::fs::write(&h.mapping_file, text).unwrap();
    let reloaded = "scim_sidecar_mapping_reloads_total{tenant=\"acme\",outcome=\"reloaded\"}";
    wait_until("the restored mapping file to be taken", async || {
        h.metric(reloaded).await > 0.0
    })
    .await;
    h.stop().await;
}

/// A reloaded mapping that uses a placeholder the tenant's configuration does not give is
/// refused (every call using it would fail); the mapping in force keeps serving.
#[tokio::test]
async fn a_mapping_needing_a_value_the_tenant_lacks_is_refused() {
    let h = Harness::start_reloadable(Duration::from_millis(10)).await;
    let text = std::fs::read_to_string(&h.mapping_file).unwrap();
    // First a change that is taken, so the watcher is known to be running.
    let next = h.mapping_file.with_extension("toml.next");
    std::fs::write(&next, format!("{text}\n# watched\n")).unwrap();
    std::fs::rename(&next, &h.mapping_file).unwrap();
    let reloaded = "scim_sidecar_mapping_reloads_total{tenant=\"acme\",outcome=\"reloaded\"}";
    wait_until("a first change to be taken", async || {
        h.metric(reloaded).await > 0.0
    })
    .await;
    let needy = text.replacen(
        "[legacy.headers]\n",
        "[legacy.headers]\nX-Region = \"{var.region}\"\n",
        1,
    );
    assert_ne!(needy, text, "the edit applies");
    std::fs::write(&next, &needy).unwrap();
    std::fs::rename(&next, &h.mapping_file).unwrap();
    let refused = "scim_sidecar_mapping_reloads_total{tenant=\"acme\",outcome=\"refused\"}";
    wait_until(
        "the mapping needing {var.region} to be refused",
        async || h.metric(refused).await > 0.0,
    )
    .await;
    let page = h.get("/Users?count=1").await;
    assert_eq!(
        page.status, 200,
        "the mapping in force serves: {:?}",
        page.body
    );
    assert!(
        !h.legacy_requests().is_empty(),
        "the legacy app is still called"
    );
    h.stop().await;
}
