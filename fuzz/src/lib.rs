//! Shared fixtures for the fuzz targets in `fuzz_targets/`: the User and Group schemas and one
//! realistic resource of each (RFC 7643 §8.2 "Babs Jensen" with the Enterprise User
//! extension, and a two-member group), built once per process.
//!
//! Nothing here is fuzzed itself; see `README.md` for what each target checks.

use std::sync::OnceLock;

use scim::filter::{Filter, MAX_FILTER_LEN};
use scim::patch::{self, PatchError, PatchOperation};
use scim::schema::{ENTERPRISE_USER, GROUP, ResourceSchema, USER};
use serde_json::{Value, json};

/// Schemas and resources, shared by every run of a target.
pub struct Fixtures {
    /// `ResourceSchema::user()` (core User + Enterprise User extension).
    pub user_schema: ResourceSchema,
    /// `ResourceSchema::group()`.
    pub group_schema: ResourceSchema,
    /// A User with every RFC 7643 §4.1 attribute set, including multi-valued ones with
    /// several elements, `primary` flags, the read-only `groups` and `meta`, and the
    /// enterprise extension with a manager.
    pub user: Value,
    /// A Group with two members and `meta`.
    pub group: Value,
}

/// The fixtures, built on first use.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| Fixtures {
        user_schema: ResourceSchema::user(),
        group_schema: ResourceSchema::group(),
        user: user(),
        group: group(),
    })
}

fn user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "00u1esetp8uhWt0vb0h8",
        "userName": "bjensen@example.com",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III"
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [
            {"value": "555-555-5555", "type": "work"},
            {"value": "555-555-4444", "type": "mobile", "primary": true}
        ],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [
            {"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}
        ],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "US",
                "formatted": "100 Universal City Plaza\nHollywood, CA 91608 US",
                "primary": true
            },
            {
                "type": "home",
                "streetAddress": "456 Hollywood Blvd",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "US"
            }
        ],
        "groups": [
            {
                "value": "e9e30dba-f08f-4109-8486-d5c6a331660a",
                "$ref": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a",
                "display": "Tour Guides",
                "type": "direct"
            }
        ],
        "entitlements": [{"value": "vpn"}],
        "roles": [{"value": "guide", "primary": true}, {"value": "admin"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        ENTERPRISE_USER: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "John Smith"
            }
        },
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff591\"",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
        }
    })
}

fn group() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "externalId": "00g1emaKYZTWRYYRRTSK",
        "displayName": "Tour Guides",
        "members": [
            {
                "value": "2819c223-7f76-453a-919d-413861904646",
                "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
                "display": "Babs Jensen",
                "type": "User"
            },
            {
                "value": "902c246b-6245-4190-8e05-00816be7344a",
                "display": "Mandy Pepperidge",
                "type": "User"
            }
        ],
        "meta": {
            "resourceType": "Group",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff592\"",
            "location": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a"
        }
    })
}

/// Applies `ops` to a clone of `original` and checks the all-or-nothing contract of
/// `patch::apply`: on error the resource is byte-for-byte what it was (key order included);
/// on success it is still a JSON object. Returns the outcome for further checks.
pub fn apply_checked(
    original: &Value,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
) -> Result<Value, PatchError> {
    let mut resource = original.clone();
    match patch::apply(&mut resource, ops, schema) {
        Ok(()) => {
            assert!(
                resource.is_object(),
                "apply succeeded but left a non-object resource: {resource}"
            );
            Ok(resource)
        }
        Err(e) => {
            // Every error must map to a SCIM scimType and render a message.
            let _ = (e.scim_type(), e.to_string());
            let before = serde_json::to_string(original).expect("serialise original");
            let after = serde_json::to_string(&resource).expect("serialise patched");
            assert_eq!(
                before, after,
                "apply failed ({e:?}) but changed the resource (ops: {ops:?})"
            );
            Err(e)
        }
    }
}

/// Whether a re-parse error of a rendered text form is the documented limit of `Display`:
/// the rendering is longer than `MAX_FILTER_LEN` or deeper than `MAX_FILTER_DEPTH` (see
/// `impl Display for Filter`). Anything else is a finding.
pub fn known_bound_error(text: &str, message: &str) -> bool {
    text.chars().count() > MAX_FILTER_LEN
        || text.len() > MAX_FILTER_LEN
        || message.contains("nesting of at most")
}

/// The filters are the same (numbers compared exactly: serde_json's `float_roundtrip`).
pub fn same_filter(a: &Filter, b: &Filter) -> bool {
    a == b
}
