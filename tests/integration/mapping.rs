//! The mapping engine against the shipped Marketing Center mapping: translation both ways,
//! change sets, push-down, prepared calls, error reading, and compile diagnostics.

use mapping::ids::LegacyId;
use mapping::{BodySpec, Mapping, TranslateError, Vars};
use serde_json::{Value, json};

fn mc() -> Mapping {
    Mapping::from_toml(
        include_str!("../../mappings/marketing-center.toml"),
        "marketing-center.toml",
    )
    .unwrap()
}

fn record() -> Value {
    json!({
        "UserID": 1042,
        "LogonName": "jane.doe@example.com",
        "UserProfileFirstName": "Jane",
        "UserProfileLastName": "Doe",
        "UserProfileFullName": "Jane Doe",
        "UserProfileTitle": "Field Marketing Lead",
        "UserProfileEmailAddress": "jane.doe@example.com",
        "UserProfilePhone": "+1 555 0100",
        "UserProfileAddress1": "100 Main St",
        "UserProfileAddress2": "Suite 4",
        "UserProfileCity": "Springfield",
        "UserProfileState": "IL",
        "UserProfilePostalCode": "62701",
        "UserProfileCountry": "US",
        "IsActive": true,
        "IsArchived": false,
        "ExternalIdentityProviderID": "00u1f2e3d4c5b6a7Z8x9",
        "CreatedUtc": "2026-03-01T10:00:00Z",
        "ModifiedUtc": "2026-03-04T08:15:30Z"
    })
}

#[test]
fn reads_all_fourteen_rows() {
    let m = mc();
    assert_eq!(
        m.users.attributes.len(),
        13,
        "13 rows + active = the seed's 14"
    );
    let scim = Value::Object(m.users.read(&record()));
    assert_eq!(
        scim,
        json!({
            "userName": "jane.doe@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "displayName": "Jane Doe",
            "title": "Field Marketing Lead",
            "emails": [{"type": "work", "primary": true, "value": "jane.doe@example.com"}],
            "phoneNumbers": [{"type": "work", "primary": true, "value": "+1 555 0100"}],
            "addresses": [{
                "type": "work", "primary": true,
                "streetAddress": "100 Main St\nSuite 4",
                "locality": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"
            }],
            "externalId": "00u1f2e3d4c5b6a7Z8x9",
            "active": true
        })
    );
    assert_eq!(m.users.legacy_id_of(&record()), Some(LegacyId::new("1042")));
    let mut archived = record();
    archived["IsArchived"] = json!(true);
    assert!(!m.users.is_active(&archived));
}

#[test]
fn writes_primary_element_and_transforms() {
    let m = mc();
    let scim = json!({
        "userName": "a@example.com",
        "emails": [
            {"value": "other@example.com", "type": "home"},
            {"value": "a@example.com", "type": "work", "primary": true}
        ],
        "addresses": [{"streetAddress": "1 Road\nFlat 2", "region": "california", "country": "us"}],
        "password": "secret"
    });
    let written = m.users.write(&scim).unwrap();
    let fields: std::collections::BTreeMap<&str, &Value> =
        written.iter().map(|(f, v)| (f.as_str(), v)).collect();
    assert_eq!(*fields["LogonName"], json!("a@example.com"));
    assert_eq!(*fields["UserProfileEmailAddress"], json!("a@example.com"));
    assert_eq!(*fields["UserProfileAddress1"], json!("1 Road"));
    assert_eq!(*fields["UserProfileAddress2"], json!("Flat 2"));
    assert_eq!(*fields["UserProfileState"], json!("CA"));
    assert_eq!(*fields["UserProfileCountry"], json!("US"));
    assert_eq!(fields["UserProfileTitle"], &Value::Null);
    let body = m.users.body(BodySpec::Mapped, &written, None);
    assert!(body.get("UserProfileTitle").is_none());
    assert!(body.get("password").is_none() && !body.to_string().contains("secret"));
}

#[test]
fn refuses_bad_values_naming_the_scim_attribute() {
    let m = mc();
    let e = m
        .users
        .write(&json!({"userName": "x", "addresses": [{"region": "Bavaria"}]}));
    assert_eq!(
        e.unwrap_err().to_string(),
        "addresses[primary].region: \"Bavaria\" is not a US state or Canadian province"
    );
    let e = m
        .users
        .write(&json!({"name": {"givenName": "x"}}))
        .unwrap_err();
    assert_eq!(e, TranslateError::Required("userName".into()));
}

#[test]
fn changed_body_has_only_differences_and_clears() {
    let m = mc();
    let mut scim = Value::Object(m.users.read(&record()));
    scim["title"] = json!("Director");
    scim.as_object_mut().unwrap().remove("phoneNumbers");
    let fields = m.users.write(&scim).unwrap();
    let body = m.users.body(BodySpec::Changed, &fields, Some(&record()));
    assert_eq!(
        body,
        json!({"UserProfilePhone": null, "UserProfileTitle": "Director"})
    );
}

#[test]
fn push_down_of_eq_filters() {
    let m = mc();
    let f = scim::filter::parse("userName eq \"A@B.com\"").unwrap();
    assert_eq!(
        m.users.push_down(&f),
        Some(vec![("LogonName".into(), "A@B.com".into())])
    );
    let f = scim::filter::parse("emails.value eq \"x\" and externalId eq \"e\"").unwrap();
    assert_eq!(
        m.users.push_down(&f),
        Some(vec![
            ("EmailAddress".into(), "x".into()),
            ("ExternalIdentityProviderID".into(), "e".into())
        ])
    );
    for not_pushed in [
        "userName co \"x\"",
        "userName eq \"a\" or userName eq \"b\"",
        "title eq \"x\"",
    ] {
        let f = scim::filter::parse(not_pushed).unwrap();
        assert_eq!(m.users.push_down(&f), None, "{not_pushed}");
    }
}

#[test]
fn prepares_calls_with_templates_and_paging() {
    let m = mc();
    let tenant = mapping::TenantValues {
        customer_id: "C-1".into(),
        api_key: "k".into(),
        ..mapping::TenantValues::default()
    };
    let vars = Vars {
        legacy_id: Some("7"),
        tenant: Some(&tenant),
        ..Vars::default()
    };
    let q = m.legacy.paging.query(400, 200);
    let call = m.prepare(&m.users.calls.list, &vars, &q, None).unwrap();
    assert_eq!(
        call.path_and_query,
        "/users?IncludeArchived=true&Page=3&PageSize=200"
    );
    assert!(
        call.headers
            .iter()
            .any(|(n, v, s)| &**n == "X-MC-Api-Key" && v == "k" && *s)
    );
    assert!(
        call.headers
            .iter()
            .any(|(n, v, s)| &**n == "X-MC-Customer" && v == "C-1" && !*s)
    );
    let call = m
        .prepare(m.users.calls.deactivate.as_ref().unwrap(), &vars, &[], None)
        .unwrap();
    assert_eq!(call.path_and_query, "/users/7/archive");
}

#[test]
fn interprets_errors() {
    let m = mc();
    let body = br#"{"ErrorCode":"LOGON_NAME_TAKEN","Message":"taken","ExistingUserID":17}"#;
    let f = m.legacy.errors.interpret(409, body, None);
    assert!(f.is_conflict());
    assert_eq!(f.existing_id, Some(LegacyId::new("17")));
    let body = br#"{"ErrorCode":"VALIDATION_FAILED","Message":"bad",
        "Fields":[{"Field":"UserProfileState","Problem":"not a state"}]}"#;
    let f = m.legacy.errors.interpret(422, body, None);
    assert_eq!(
        f.fields,
        vec![("UserProfileState".into(), "not a state".into())]
    );
    assert_eq!(
        m.users.row_for_field("UserProfileState").unwrap().scim,
        "addresses[primary].region"
    );
    let hint = m.legacy.errors.retry_after_format.seconds("7", 0);
    let f = m.legacy.errors.interpret(429, b"not json", hint);
    assert_eq!((f.code, f.retry_after), (None, Some(7)));
}

#[test]
fn compile_reports_every_problem() {
    let text = include_str!("../../mappings/marketing-center.toml")
        .replace("transform = \"iso_country\"", "transform = \"shout\"")
        .replace("scim = \"title\"", "scim = \"titel\"")
        .replace(
            "path = \"/users/{legacy_id}/archive\"",
            "path = \"/users/{user}/archive\"",
        );
    let e = Mapping::from_toml(&text, "m.toml").unwrap_err().to_string();
    assert!(e.contains("unknown transform \"shout\""), "{e}");
    assert!(e.contains("unknown SCIM attribute \"titel\""), "{e}");
    assert!(e.contains("unknown placeholder {user}"), "{e}");
    assert_eq!(e.lines().count(), 3, "{e}");
    let e = Mapping::from_toml("[legacy]\nname = 1\n", "m.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "m.toml:2:8: invalid type: integer `1`, expected a string"
    );
}

#[test]
fn field_problems_never_name_legacy_fields() {
    let m = mc();
    assert_eq!(
        m.users.field_problem(
            "UserProfileTitle",
            "UserProfileTitle is longer than 100 characters"
        ),
        "title: title is longer than 100 characters"
    );
    assert_eq!(
        m.users.field_problem(
            "SomethingElse",
            "LogonName clashes with UserProfileEmailAddress"
        ),
        "a value was refused: userName clashes with emails[primary].value"
    );
}

#[test]
fn compile_checks_lifecycle_and_pointers() {
    let base = include_str!("../../mappings/marketing-center.toml");
    let no_active = base.replace(
        "[users.active]\nall_true = [\"/IsActive\"]\nall_false = [\"/IsArchived\"]\n",
        "",
    );
    assert_ne!(no_active, base);
    let e = Mapping::from_toml(&no_active, "m.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs [users.active]"), "{e}");
    let bad_ptr = base.replace("all_true = [\"/IsActive\"]", "all_true = [\"IsActive\"]");
    let e = Mapping::from_toml(&bad_ptr, "m.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("users.active: \"IsActive\" is not a JSON pointer"),
        "{e}"
    );
}

#[test]
fn compile_checks_validation_rules() {
    let base = include_str!("../../mappings/marketing-center.toml");
    let text = base
        .replacen(
            "max_length = 256",
            "max_length = 0\npattern = \"([a-z\"\nequals = \"emails[primary].valu\"",
            1,
        )
        .replacen(
            "phoneNumbers = { type = \"work\", primary = true }",
            "phoneNumbers = { type = \"work\", primary = true, accepted = [\"work\"] }",
            1,
        );
    let e = Mapping::from_toml(&text, "m.toml").unwrap_err().to_string();
    assert!(e.contains("unknown field `accepted`"), "{e}");
    let text = base.replacen(
        "max_length = 256",
        "max_length = 0\npattern = \"([a-z\"\nequals = \"emails[primary].valu\"",
        1,
    );
    let e = Mapping::from_toml(&text, "m.toml").unwrap_err().to_string();
    assert!(e.contains("max_length must be at least 1"), "{e}");
    assert!(
        e.contains("pattern \"([a-z\" is not a regular expression"),
        "{e}"
    );
    assert!(
        e.contains("equals: unknown SCIM attribute \"emails[primary].valu\""),
        "{e}"
    );
}
