//! Microsoft Entra ID's dialect.

use serde_json::json;

use crate::support::{Harness, q};

fn patch(ops: serde_json::Value) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

#[tokio::test]
async fn entra_create_lookup_and_patch() {
    let h = Harness::start().await;
    // Test connection: a random GUID on the matching attribute answers an empty list.
    let a = h
        .get("/Users?filter=externalId+eq+%22c5c8b5d4-3f1f-4cde-9a4e-000000000000%22")
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["totalResults"].clone()),
        (200, json!(0))
    );
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "Test_User_dfeef4c5@contoso.com""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 0);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@contoso.com",
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    });
    let a = h.post("/Users", body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    // Lookup by the (non-RFC) filtered-email form Entra uses for matching.
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"emails[type eq "work"].value eq "test_user_fd0ea19b@contoso.com""#)
        ))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["totalResults"].clone()),
        (200, json!(1)),
        "{:?}",
        a.body
    );
    // Capitalised ops, string booleans, filtered paths, dotted paths.
    let a = h
        .patch(
            &format!("/Users/{id}"),
            patch(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0199"},
                {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"},
                {"op": "Replace", "path": "title", "value": "Engineer"}
            ])),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(a.body["name"]["familyName"], "updatedFamilyName");
    assert_eq!(a.body["phoneNumbers"][0]["value"], "+1 555 0199");
    assert_eq!(a.body["addresses"][0]["locality"], "Redmond");
    let legacy = h.legacy_user("Test_User_ab6490ee@contoso.com").unwrap();
    assert_eq!(
        legacy["UserProfileEmailAddress"],
        "updatedEmail@microsoft.com"
    );
    assert_eq!(legacy["UserProfileCity"], "Redmond");
    // Path-less replace whose keys are paths (aadOptscim062020).
    let a = h
        .patch(&format!("/Users/{id}"), patch(json!([{"op": "replace", "value": {"name.givenName": "Gina", "displayName": "Gina F"}}])))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        (
            a.body["name"]["givenName"].clone(),
            a.body["displayName"].clone()
        ),
        (json!("Gina"), json!("Gina F"))
    );
    // Disable with a string boolean.
    let a = h
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["active"].clone()),
        (200, json!(false))
    );
    assert_eq!(
        h.legacy_user("Test_User_ab6490ee@contoso.com").unwrap()["IsArchived"],
        true
    );
    let a = h
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "active", "value": "True"}])),
        )
        .await;
    assert_eq!(a.body["active"], true);
    // Enterprise extension attributes the mapping does not map are accepted and ignored.
    let a = h
        .patch(
            &format!("/Users/{id}"),
            patch(json!([
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            ])),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert!(
        a.body
            .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
            .is_none()
    );
    // Remove an attribute.
    let a = h
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Remove", "path": "title"}])),
        )
        .await;
    assert!(a.body.get("title").is_none());
    assert_eq!(
        h.legacy_user("Test_User_ab6490ee@contoso.com").unwrap()["UserProfileTitle"],
        ""
    );
    // Hard delete after the retention period.
    assert_eq!(h.delete(&format!("/Users/{id}")).await.status, 204);
    h.stop().await;
}
