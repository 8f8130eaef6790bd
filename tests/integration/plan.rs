//! `scim-sidecar plan`: one SCIM request through a mapping, the legacy calls it makes and the
//! SCIM answer, from canned answers; nothing is sent (the command has no legacy URL at all).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const DEACTIVATE: &str = r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations": [{"op": "replace", "value": {"active": false}}]}"#;
const JANE: &str = r#"{"user": {"id": 6, "login": "jdoe", "firstname": "Jane", "lastname": "Doe",
 "mail": "jane@example.com", "status": 1, "created_on": "2026-12-03T13:22:53Z",
 "custom_fields": [{"id": 1, "value": "00u1jane"}]}}"#;

/// Runs `plan` in the repository root: (exit success, stdout, stderr).
fn plan(args: &[&str]) -> (bool, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .current_dir(root)
        .arg("plan")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON after "SCIM answer: NNN".
fn scim_answer(stdout: &str) -> (u16, Option<Value>) {
    let (_, rest) = stdout.split_once("SCIM answer: ").expect("an answer");
    let (status, rest) = rest.split_once('\n').unwrap();
    let status: u16 = status.split_whitespace().next().unwrap().parse().unwrap();
    let json = rest.split("\nnote: ").next().unwrap().trim();
    (status, serde_json::from_str(json).ok())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// "What does Okta's deactivate do to my app?": the get, the lock with its fixed body, the
/// re-read; the second answer of the get call from the answers file; the secret masked.
#[test]
fn okta_deactivate_through_the_redmine_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let answers = write(
        dir.path(),
        "answers.toml",
        r#"
[[answer]]
method = "GET"
path = "/users/6.json"
body = '{"user": {"id": 6, "login": "jdoe", "status": 3, "created_on": "2026-12-03T13:22:53Z"}}'
"#,
    );
    let (ok, out, err) = plan(&[
        "mappings/redmine.toml",
        "PATCH",
        "/Users/6",
        "--body",
        DEACTIVATE,
        "--current",
        JANE,
        "--answers",
        &answers,
        "--set",
        "secret.api_key=very-secret-key",
    ]);
    assert!(ok, "{out}\n{err}");
    let calls: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(". ") && l.contains('['))
        .map(str::trim)
        .collect();
    assert_eq!(
        calls,
        [
            "1. GET /users/6.json   [users.get]",
            "2. PUT /users/6.json   [users.update]",
            "3. GET /users/6.json   [users.get]",
        ],
        "{out}"
    );
    assert!(out.contains(r#"{"user":{"status":3}}"#), "{out}");
    assert!(out.contains("X-Redmine-API-Key: ••• (secret)"), "{out}");
    assert!(!out.contains("very-secret-key"), "{out}");
    assert!(out.contains("→ 204 (assumed: no answer given)"), "{out}");
    assert!(out.contains("note: call #2 had no answer"), "{out}");
    let (status, body) = scim_answer(&out);
    let body = body.unwrap();
    assert_eq!((status, body["active"].clone()), (200, Value::Bool(false)));
    assert_eq!(body["userName"], "jdoe");
}

/// Without the record as the app answers it after the write, the re-read repeats --current:
/// said plainly, since the answer then shows no change.
#[test]
fn a_repeated_current_is_flagged() {
    let (ok, out, _) = plan(&[
        "mappings/redmine.toml",
        "PATCH",
        "/Users/6",
        "--body",
        DEACTIVATE,
        "--current",
        JANE,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("(--current again)"), "{out}");
    assert!(
        out.contains("note: call #3 was answered with --current again"),
        "{out}"
    );
}

/// The Marketing Center's create with active false: create, then archive, 201; the same
/// calls as the golden case `create-inactive-archived`.
#[test]
fn marketing_center_create_inactive() {
    let dir = tempfile::tempdir().unwrap();
    let answers = write(
        dir.path(),
        "answers.toml",
        r#"
[[answer]]
method = "POST"
path = "/users"
status = 201
body = '{"UserID": 2001, "LogonName": "sam@example.com", "IsActive": true, "IsArchived": false}'

[[answer]]
method = "POST"
path = "/users/2001/archive"
body = '{"UserID": 2001, "LogonName": "sam@example.com", "IsActive": false, "IsArchived": true}'
"#,
    );
    let (ok, out, err) = plan(&[
        "mappings/marketing-center.toml",
        "POST",
        "/scim/v2/Users",
        "--body",
        r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "sam@example.com", "active": false}"#,
        "--answers",
        &answers,
        "--set",
        "customer_id=ACME",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1. POST /users   [users.create]"), "{out}");
    assert!(out.contains("2. POST /users/2001/archive"), "{out}");
    assert!(out.contains("X-MC-Customer: ACME"), "{out}");
    let (status, body) = scim_answer(&out);
    let body = body.unwrap();
    assert_eq!(status, 201);
    assert_eq!(body["active"], false);
    assert_eq!(body["userName"], "sam@example.com");
}

/// A create without its answer stops the plan, says which answer to add, exits 1.
#[test]
fn a_missing_answer_stops_the_plan_and_names_it() {
    let (ok, out, err) = plan(&[
        "mappings/redmine.toml",
        "POST",
        "/Users",
        "--body",
        r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x@example.com"}"#,
    ]);
    assert!(!ok);
    assert!(
        out.contains("SCIM answer: none: the plan stopped."),
        "{out}"
    );
    assert!(
        out.contains("[[answer]]\nmethod = \"POST\"\npath = \"/users.json\"\nstatus = 201"),
        "{out}"
    );
    assert!(err.contains("the plan needs more legacy answers"), "{err}");
}

/// Refusals are the SCIM answer, as the sidecar would give it, before any write.
#[test]
fn refusals_are_answers() {
    let (ok, out, _) = plan(&[
        "mappings/redmine.toml",
        "PATCH",
        "/Users/6",
        "--body",
        r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": "active"}]}"#,
        "--current",
        JANE,
    ]);
    assert!(ok, "{out}");
    // As in the sidecar: the record is read, then the PATCH refused before any write.
    assert!(out.contains("  1. GET /users/6.json"), "{out}");
    assert!(!out.contains("  2. "), "{out}");
    assert!(out.contains("SCIM answer: 400 mutability"), "{out}");
    let (ok, out, _) = plan(&[
        "mappings/redmine.toml",
        "POST",
        "/Users",
        "--body",
        r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": {"login": 1}}"#,
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("legacy calls (nothing was sent):\n  none"),
        "{out}"
    );
    assert!(out.contains("SCIM answer: 400 invalidValue"), "{out}");
    assert!(out.contains("userName: must be a string"), "{out}");
}

/// Group pushes: member values are legacy ids (plan has no cross-reference); Redmine's member
/// call sends the id as a JSON number; a link-only group refuses a delete.
#[test]
fn group_push_and_link_only() {
    let (ok, out, err) = plan(&[
        "mappings/redmine.toml",
        "PATCH",
        "/Groups/4",
        "--body",
        r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": "7"}]}]}"#,
        "--current",
        r#"{"group": {"id": 4, "name": "Support"}}"#,
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("2. POST /groups/4/users.json"), "{out}");
    assert!(out.contains(r#"{"user_id":7}"#), "{out}");
    assert!(out.contains("SCIM answer: 204"), "{out}");
    let (ok, out, _) = plan(&["mappings/redmine.toml", "DELETE", "/Groups/4"]);
    assert!(ok, "{out}");
    assert!(out.contains("SCIM answer: 405"), "{out}");
}

/// `plan` of a `GET` of a list through the Redmine mapping, answered by `answers`: the SCIM
/// ListResponse.
fn list_through(path: &str, answers: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let answers = write(dir.path(), "answers.toml", answers);
    let (ok, out, err) = plan(&["mappings/redmine.toml", "GET", path, "--answers", &answers]);
    assert!(ok, "{out}\n{err}");
    let (status, body) = scim_answer(&out);
    assert_eq!(status, 200, "{out}");
    body.unwrap()
}

/// A list: the filter pushed down, the page answered, each user completed, the ListResponse.
#[test]
fn a_filtered_list() {
    let body = list_through(
        "/Users?filter=userName%20eq%20%22jdoe%22",
        r#"
[[answer]]
method = "GET"
path = "/users.json?status=&name=jdoe&offset=0&limit=100"
body = '{"users": [{"id": 6, "login": "jdoe"}], "total_count": 1}'

[[answer]]
method = "GET"
path = "/users/6.json"
body = '{"user": {"id": 6, "login": "jdoe", "status": 1, "created_on": "2026-12-03T13:22:53Z"}}'
"#,
    );
    assert_eq!(body["totalResults"], 1);
    assert_eq!(body["Resources"][0]["userName"], "jdoe");
}

/// A group list: the filter matched on the groups answered, the ListResponse.
#[test]
fn a_group_list() {
    let body = list_through(
        "/Groups?filter=displayName%20eq%20%22Support%22",
        r#"
[[answer]]
method = "GET"
path = "/groups.json"
body = '{"groups": [{"id": 4, "name": "Support"}, {"id": 5, "name": "Engineering"}]}'
"#,
    );
    assert_eq!(body["totalResults"], 1);
    assert_eq!(body["Resources"][0]["displayName"], "Support");
}

/// What plan cannot take: a clear line on standard error, exit 1.
#[test]
fn bad_invocations() {
    for (args, says) in [
        (
            vec!["mappings/redmine.toml", "FETCH /", "/Users"],
            "is not an HTTP method",
        ),
        (
            vec!["mappings/redmine.toml", "GET", "/Widgets"],
            "plan knows GET/POST /Users",
        ),
        (
            vec!["mappings/redmine.toml", "POST", "/Users"],
            "POST /Users needs --body",
        ),
        (
            vec!["mappings/redmine.toml", "GET", "/Users/6", "--set", "nope"],
            "write NAME=VALUE",
        ),
        (
            vec!["mappings/nope.toml", "GET", "/Users/6"],
            "cannot read mapping",
        ),
    ] {
        let (ok, out, err) = plan(&args);
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
