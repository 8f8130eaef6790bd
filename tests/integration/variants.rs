//! Capabilities of the mapping language over real sockets, on the Marketing Center simulator
//! through variants of its shipped mapping: an operation as a sequence of calls (`then`: a
//! deactivation that clears the title, then archives), and a `read_only` attribute.

use http::Method;
use serde_json::json;

use crate::support::{Harness, okta_user};

#[tokio::test]
async fn deactivation_clears_the_title_then_archives() {
    let shipped = simulator::marketing_center::MAPPING;
    let from = r#"deactivate = { method = "POST", path = "/users/{legacy_id}/archive", idempotent = true }"#;
    assert!(shipped.contains(from));
    let mapping = shipped.replace(
        from,
        r#"deactivate = { method = "PATCH", path = "/users/{legacy_id}", body = '{"UserProfileTitle": null}', then = [{ method = "POST", path = "/users/{legacy_id}/archive", idempotent = true }] }"#,
    );
    let h = Harness::start_with_mapping(&mapping).await;
    let mut user = okta_user("seq.user@example.com", "Seq", "User", "00useq");
    user["title"] = json!("Buyer");
    let created = h.post("/Users", user).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    h.clear_legacy_requests();

    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    let a = h.patch(&format!("/Users/{id}"), off).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["active"], false);
    assert!(a.body.get("title").is_none(), "{:?}", a.body);
    let legacy = h.legacy_user("seq.user@example.com").unwrap();
    assert_eq!(legacy["IsArchived"], true, "{legacy}");
    assert_eq!(legacy["UserProfileTitle"], "", "cleared: {legacy}");
    let writes: Vec<(Method, String)> = h
        .legacy_requests()
        .into_iter()
        .filter(|(m, _)| *m != Method::GET)
        .collect();
    let uid = legacy["UserID"].to_string();
    assert_eq!(
        writes,
        [
            (Method::PATCH, format!("/api/v1/users/{uid}")),
            (Method::POST, format!("/api/v1/users/{uid}/archive")),
        ]
    );
    h.stop().await;
}

/// A `read_only` row over real sockets: the Marketing Center's `LogonName` shown a second time
/// as `nickName`; what a client sends for `nickName` never reaches the simulator.
#[tokio::test]
async fn a_read_only_attribute_is_shown_and_never_written() {
    let shipped = simulator::marketing_center::MAPPING;
    let mapping = format!(
        "{shipped}\n[[users.attributes]]\nscim = \"nickName\"\nlegacy = \"LogonName\"\nread_only = true\n"
    );
    let h = Harness::start_with_mapping(&mapping).await;
    let mut user = okta_user("nick.user@example.com", "Nick", "User", "00unick");
    user["nickName"] = json!("not-the-logon-name");
    let created = h.post("/Users", user).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["nickName"], "nick.user@example.com");
    let legacy = h.legacy_user("nick.user@example.com").unwrap();
    assert!(
        !legacy.to_string().contains("not-the-logon-name"),
        "{legacy}"
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    h.clear_legacy_requests();
    let p = h
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "nickName", "value": "other"}]}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["nickName"], "nick.user@example.com");
    assert!(
        h.legacy_requests().iter().all(|(m, _)| *m == Method::GET),
        "no write: {:?}",
        h.legacy_requests()
    );
    h.stop().await;
}
