//! `scim-sidecar reconcile`, run as its own process against the same SQLite file a running
//! sidecar uses: it finds drift planted in the legacy app and the xref, repairs what can be
//! repaired, and reports duplicates for a person to decide.

use std::path::Path;
use std::process::Command;

use mapping::ids::{ExternalId, LegacyId, ScimId, TenantId};
use scim_sidecar::xref::Seen;
use serde_json::{Value, json};

use crate::process::server_section;
use crate::support::{API_KEY, CUSTOMER, Harness, okta_user};

pub(crate) async fn run(h: &Harness, dir: &std::path::Path, fix: bool) -> (bool, Value) {
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            r#"{server}[tenants.acme]
customer_id = "{CUSTOMER}"
legacy_base_url = "{legacy}"
mapping = "{mapping}"
api_key = {{ value = "{API_KEY}" }}
tokens = [{{ value = "unused-here" }}]
"#,
            server = server_section(h.xref.path().and_then(Path::parent).unwrap()),
            legacy = h.legacy_base_url(),
            mapping = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/mappings/marketing-center.toml"
            ),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"));
    cmd.args(["reconcile", "--json", "--config"]).arg(&config);
    if fix {
        cmd.arg("--fix");
    }
    // The simulator runs on this test's runtime: wait for the child off it.
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

#[tokio::test]
async fn reconcile_finds_and_repairs_drift() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let u1 = h
        .post("/Users", okta_user("r1@example.com", "R", "One", "ext-1"))
        .await
        .body;
    assert_eq!(
        h.get("/Users?count=100").await.status,
        200,
        "the sidecar meets everyone"
    );
    let (ok, clean) = run(&h, dir.path(), false).await;
    assert!(ok, "no drift yet: {clean}");

    // Drift: an externalId changed in the legacy app, a user created there by hand, two users
    // sharing an externalId, and an xref row whose legacy user does not exist.
    let l1 = h.legacy_user("r1@example.com").unwrap()["UserID"]
        .as_u64()
        .unwrap();
    h.sim()
        .patch_user(
            CUSTOMER,
            l1,
            json!({"ExternalIdentityProviderID": "ext-1-new"}),
        )
        .unwrap();
    let ghost = h
        .sim()
        .insert_user(CUSTOMER, json!({"LogonName": "ghost@example.com"}))
        .unwrap();
    let d1 = h
        .sim()
        .insert_user(
            CUSTOMER,
            json!({"LogonName": "d1@example.com", "ExternalIdentityProviderID": "ext-dup"}),
        )
        .unwrap();
    let d2 = h
        .sim()
        .insert_user(
            CUSTOMER,
            json!({"LogonName": "d2@example.com", "ExternalIdentityProviderID": "ext-dup"}),
        )
        .unwrap();
    let tenant = TenantId::new("acme");
    let vanished = LegacyId::new("999999");
    let vanished_id = ScimId::derive(&tenant, "User", &vanished);
    h.xref
        .seen(
            &tenant,
            "User",
            vec![Seen {
                scim_id: vanished_id.clone(),
                legacy_id: vanished.clone(),
                external_id: Some(ExternalId::new("ext-v")),
                user_name: Some("v@example.com".into()),
                fingerprint: None,
            }],
        )
        .await
        .unwrap();

    let (ok, found) = run(&h, dir.path(), false).await;
    assert!(!ok, "drift makes reconcile fail: {found}");
    assert_eq!(found["vanished"], json!(["999999"]));
    let mut unrecorded: Vec<String> = serde_json::from_value(found["unrecorded"].clone()).unwrap();
    unrecorded.sort();
    let mut expected = vec![ghost.to_string(), d1.to_string(), d2.to_string()];
    expected.sort();
    assert_eq!(unrecorded, expected);
    assert_eq!(
        found["external_id_mismatch"],
        json!([{"legacy_id": l1.to_string(), "xref": "ext-1", "legacy": "ext-1-new"}])
    );
    assert_eq!(
        found["duplicates"],
        json!([{"external_id": "ext-dup", "legacy_ids": [d1.to_string(), d2.to_string()]}])
    );

    // Fix while the sidecar serves.
    let (ok, fixed) = run(&h, dir.path(), true).await;
    assert!(!ok, "duplicates remain for a person to decide: {fixed}");
    assert_eq!(fixed["vanished"], json!(["999999"]));
    let (_, after) = run(&h, dir.path(), false).await;
    assert_eq!(after["vanished"], json!([]));
    assert_eq!(after["unrecorded"], json!([]));
    assert_eq!(after["external_id_mismatch"], json!([]));
    assert_eq!(after["duplicates"].as_array().unwrap().len(), 1);
    // The running sidecar sees the repairs.
    assert_eq!(h.get(&format!("/Users/{vanished_id}")).await.status, 404);
    let x = h
        .xref
        .get(&tenant, "User", &ScimId::new(u1["id"].as_str().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(x.external_id, Some(ExternalId::new("ext-1-new")));
    h.stop().await;
}

/// A tombstone written to the SQLite file by another connection (what `reconcile --fix` in
/// another process does; here a second store on the file, with its own connections and writer
/// thread) is seen by the very next request, though the sidecar had just answered that user
/// from the rows it keeps in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_written_elsewhere_is_seen_by_the_next_request() {
    let h = Harness::start().await;
    let created = h
        .post("/Users", okta_user("t1@example.com", "T", "One", "ext-t1"))
        .await
        .body;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    for _ in 0..3 {
        assert_eq!(h.get(&path).await.status, 200);
    }
    let other = scim_sidecar::xref::Store::open(h.xref.path().unwrap())
        .await
        .unwrap();
    assert!(
        other
            .tombstone(&TenantId::new("acme"), "User", &ScimId::new(id.as_str()))
            .await
            .unwrap()
    );
    assert_eq!(h.get(&path).await.status, 404, "the next request sees it");
    other.close().await.unwrap();
    h.stop().await;
}
