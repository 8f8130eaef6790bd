//! Micro-benchmarks of the per-request hot path: the SCIM filter parser, PATCH parsing and
//! application, group membership folding, and the mapping's SCIM ⇄ legacy translation.
//!
//! `cargo bench --bench hot_path` runs them (divan prints one table); `cargo bench --bench
//! hot_path -- patch` runs the ones whose name contains `patch`. The inputs are what Okta and
//! Entra ID send and what the Marketing Center answers, through the shipped mapping file.

#![allow(missing_docs)]

use divan::{Bencher, black_box};
use mapping::{BodySpec, Mapping};
use scim::{filter, patch};
use serde_json::{Value, json};
use simulator::marketing_center::MarketingCenter;

fn main() {
    divan::main();
}

/// The shipped Marketing Center mapping, compiled once per benchmark.
fn mapping() -> Mapping {
    let text = simulator::marketing_center::MAPPING;
    match Mapping::from_toml(text, "marketing-center.toml") {
        Ok(m) => m,
        Err(e) => panic!("the shipped mapping does not compile: {e}"),
    }
}

/// A Marketing Center user record as the legacy API answers it: the simulator's demo user
/// with every profile field filled in.
fn legacy_record() -> Value {
    let sim = MarketingCenter::new("bench", ["acme"]);
    sim.seed_demo("acme");
    sim.users("acme")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("the simulator's demo has no user"))
}

/// The body of Okta's `POST /Users`.
fn okta_create() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "jane.doe@example.com",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"primary": true, "value": "jane.doe@example.com", "type": "work"}],
        "displayName": "Jane Doe",
        "externalId": "00u1abcd2EFGH3ijk4x7",
        "active": true,
    })
}

const FILTERS: [(&str, &str); 3] = [
    ("okta_lookup", r#"userName eq "jane.doe@example.com""#),
    (
        "entra_lookup",
        r#"externalId eq "3c4e9a10-95f6-4a7e-b2d1-7a50f3c2e8b1""#,
    ),
    (
        "complex",
        r#"(userName sw "j" or title pr) and emails[type eq "work" and value co "@example.com"] and not (active eq false)"#,
    ),
];

#[divan::bench(args = ["okta_lookup", "entra_lookup", "complex"])]
fn filter_parse(bencher: Bencher, name: &str) {
    let text = FILTERS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, t)| t);
    bencher.bench(|| filter::parse(black_box(text)));
}

#[divan::bench]
fn filter_match(bencher: Bencher) {
    let m = mapping();
    let f = match filter::parse(FILTERS[2].1) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let mut user = okta_create();
    user["title"] = json!("Buyer");
    assert!(
        f.matches(&user, &m.users.schema),
        "the filter does not match the user"
    );
    bencher.bench(|| f.matches(black_box(&user), &m.users.schema));
}

/// Okta's deactivation: one `replace` of `active`.
fn okta_deactivate() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}],
    })
}

/// Entra ID's attribute update: several operations with value-filter paths.
fn entra_update() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "name.givenName", "value": "Janet"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "janet.doe@example.com"},
            {"op": "Add", "path": "title", "value": "Head buyer"},
            {"op": "Replace", "path": "active", "value": "False"},
        ],
    })
}

#[divan::bench(args = ["okta_deactivate", "entra_update"])]
fn patch_parse_apply(bencher: Bencher, which: &str) {
    let m = mapping();
    let body = if which == "okta_deactivate" {
        okta_deactivate()
    } else {
        entra_update()
    };
    let user = Value::Object(m.users.read(&legacy_record()));
    // Measure the path that succeeds, not an early error.
    let mut check = user.clone();
    let applied =
        patch::parse_request(&body).and_then(|ops| patch::apply(&mut check, &ops, &m.users.schema));
    assert!(applied.is_ok(), "{which}: {applied:?}");
    assert_ne!(check, user, "{which} changed nothing");
    bencher
        .with_inputs(|| user.clone())
        .bench_local_values(|resource| {
            let ops = patch::parse_request(black_box(&body))?;
            patch::apply_owned(resource, &ops, &m.users.schema)
        });
}

/// A group PATCH adding `n` members in one operation, then removing up to 999 of them one
/// operation each (a request holds at most 1,000 operations): the membership fold must stay
/// linear in the members however many operations remove them.
#[divan::bench(args = [100, 1_000, 10_000])]
fn group_patch_fold(bencher: Bencher, n: usize) {
    let add: Vec<Value> = (0..n).map(|i| json!({"value": format!("m{i}")})).collect();
    let mut ops = vec![json!({"op": "add", "path": "members", "value": add})];
    ops.extend(
        (0..n)
            .step_by(2)
            .take(999)
            .map(|i| json!({"op": "remove", "path": format!("members[value eq \"m{i}\"]")})),
    );
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": ops,
    });
    let ops = match patch::parse_request(&body) {
        Ok(ops) => ops,
        Err(e) => panic!("{e}"),
    };
    assert!(patch::members::group_patch(&ops).is_ok());
    bencher.bench(|| patch::members::group_patch(black_box(&ops)));
}

#[divan::bench]
fn mapping_read(bencher: Bencher) {
    let m = mapping();
    let record = legacy_record();
    bencher.bench(|| m.users.read(black_box(&record)));
}

#[divan::bench]
fn mapping_write_create(bencher: Bencher) {
    let m = mapping();
    let body = okta_create();
    assert!(m.users.write(&body).is_ok(), "the Okta body does not map");
    bencher.bench(|| {
        let fields = m.users.write(black_box(&body))?;
        Ok::<_, mapping::TranslateError>(m.users.body(BodySpec::Mapped, &fields, None))
    });
}

#[divan::bench]
fn mapping_write_changed(bencher: Bencher) {
    let m = mapping();
    let record = legacy_record();
    let before = Value::Object(m.users.read(&record));
    let mut after = before.clone();
    after["name"]["givenName"] = json!("Janet");
    after["active"] = json!(false);
    assert!(
        m.users
            .write_changed(&before, &after)
            .is_ok_and(|f| !f.is_empty())
    );
    bencher.bench(|| {
        let fields = m
            .users
            .write_changed(black_box(&before), black_box(&after))?;
        Ok::<_, mapping::TranslateError>(m.users.body(BodySpec::Changed, &fields, Some(&record)))
    });
}

#[divan::bench]
fn mapping_compile(bencher: Bencher) {
    let text = simulator::marketing_center::MAPPING;
    bencher.bench(|| Mapping::from_toml(black_box(text), "marketing-center.toml"));
}
