//! `scim-sidecar check`: every shipped mapping passes; a dozen broken mappings each get one
//! clear line with `file:line:column`, all reported in one run, exit code 1.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::server_section;

const MC: &str = include_str!("../../mappings/marketing-center.toml");
const PD: &str = include_str!("../../mappings/partner-directory.toml");
const STATE: &str = include_str!("../mapping_cases/active-field-write/mapping.toml");
const SEQ: &str = include_str!("../mapping_cases/call-sequence/mapping.toml");
const WHOLE: &str = include_str!("../mapping_cases/members-whole-list/mapping.toml");
const READ_ONLY: &str = include_str!("../mapping_cases/read-only-attribute/mapping.toml");
const OAUTH: &str = include_str!("../mapping_cases/auth-oauth2-client-credentials/mapping.toml");

fn check(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
        .arg("check")
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// 1-based line and column where `needle` starts in `text` (the edit a case makes).
fn at(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the mapping"));
    let before = &text[..offset];
    (
        before.matches('\n').count() + 1,
        before.rsplit('\n').next().unwrap().chars().count() + 1,
    )
}

fn edit(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "{from:?} not in the mapping");
    base.replacen(from, to, 1)
}

#[test]
fn shipped_mappings_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let (ok, out) = check(&[
        root.join("marketing-center.toml"),
        root.join("partner-directory.toml"),
        root.join("redmine.toml"),
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with(": ok")).count(),
        3,
        "{out}"
    );
}

#[test]
fn a_dozen_broken_mappings() {
    // (name, broken text, where the problem is (a needle in the text), expected message)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "syntax",
            edit(
                MC,
                "name = \"Marketing Center\"",
                "name = \"Marketing Center",
            ),
            "\n\n# Sent with every call",
            "invalid basic string",
        ),
        (
            "unknown-key",
            edit(MC, "first_page = 1", "first_page = 1\npagesize = 50"),
            "pagesize",
            "unknown field `pagesize`",
        ),
        (
            "unknown-attribute",
            edit(MC, "scim = \"title\"", "scim = \"titel\""),
            "scim = \"titel\"",
            "users.attributes[4].scim: unknown SCIM attribute \"titel\"",
        ),
        (
            "unknown-transform",
            edit(MC, "transform = \"iso_country\"", "transform = \"country\""),
            "transform = \"country\"",
            "users.attributes[11].transform: unknown transform \"country\"",
        ),
        (
            "unknown-placeholder",
            edit(MC, "/users/{legacy_id}/archive", "/users/{user_id}/archive"),
            "path = \"/users/{user_id}/archive\"",
            "users.calls.deactivate.path: template \"/users/{user_id}/archive\": unknown placeholder {user_id}",
        ),
        (
            "missing-operation",
            edit(
                MC,
                "update = { method = \"PATCH\", path = \"/users/{legacy_id}\", body = \"changed\" }\n",
                "",
            ),
            "[users.calls]",
            "missing field `update`",
        ),
        (
            "field-mapped-twice",
            edit(
                MC,
                "legacy = \"UserProfileTitle\"",
                "legacy = \"UserProfileFullName\"",
            ),
            "legacy = \"UserProfileFullName\"\nmax_length = 100\n\n[[users.attributes]]\nscim = \"emails",
            "users.attributes[4].legacy: legacy field \"UserProfileFullName\" is mapped twice",
        ),
        (
            "not-a-pointer",
            edit(MC, "legacy_id = \"/UserID\"", "legacy_id = \"UserID\""),
            "legacy_id = \"UserID\"",
            "users.legacy_id: \"UserID\" is not a JSON pointer",
        ),
        (
            "bad-pattern",
            edit(
                MC,
                "max_length = 256",
                "max_length = 256\npattern = \"[a-\"",
            ),
            "pattern = \"[a-\"",
            "users.attributes[0].pattern: pattern \"[a-\" is not a regular expression",
        ),
        (
            "unknown-scim-type",
            edit(
                MC,
                "scim_type = \"uniqueness\", conflict",
                "scim_type = \"unique\", conflict",
            ),
            "LOGON_NAME_TAKEN =",
            "legacy.errors.codes.LOGON_NAME_TAKEN: unknown scim_type \"unique\"",
        ),
        (
            "find-existing-by-no-filter",
            edit(
                PD,
                "find_existing_by = \"emails.value\"",
                "find_existing_by = \"displayName\"",
            ),
            "find_existing_by = \"displayName\"",
            "legacy.errors.codes.email_taken.find_existing_by: \"displayName\" is not one of [users.filters]",
        ),
        (
            "batch-without-batch",
            edit(
                PD,
                ", batch = { field = \"uids\", max = 100 }, idempotent = true }\nremove_members",
                ", idempotent = true }\nremove_members",
            ),
            "add_members =",
            "groups.calls.add_members needs batch",
        ),
        (
            "placeholder-without-value",
            edit(
                MC,
                "list = { method = \"GET\", path = \"/users\"",
                "list = { method = \"GET\", path = \"/users/{legacy_id}\"",
            ),
            "path = \"/users/{legacy_id}\", query",
            "users.calls.list.path: {legacy_id} has no value in this call",
        ),
    ];
    assert_eq!(cases.len(), 13);
    expect_one_line_each(&cases);
}

#[test]
fn broken_record_shapes_and_fields() {
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "fields-overlap",
            edit(PD, "legacy = \"last_name\"", "legacy = \"/first_name/x\""),
            "legacy = \"/first_name/x\"",
            "users.attributes[3].legacy: legacy field \"/first_name/x\" overlaps \"first_name\"",
        ),
        (
            "selector-without-value",
            edit(
                PD,
                "legacy = \"last_name\"",
                "legacy = \"/custom_fields[id]/value\"",
            ),
            "legacy = \"/custom_fields[id]/value\"",
            "users.attributes[3].legacy: \"/custom_fields[id]/value\": an element selector needs a key and a value",
        ),
        (
            "envelope-on-get",
            edit(
                PD,
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\" }",
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\", envelope = \"/account\" }",
            ),
            "envelope = \"/account\"",
            "users.calls.get.envelope: a GET call sends no body to wrap",
        ),
        (
            "items-on-a-record-call",
            edit(
                PD,
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\" }",
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\", items = \"/data\" }",
            ),
            "items = \"/data\" }",
            "users.calls.get.items: only list calls answer pages",
        ),
        (
            "paging-parameter-in-the-path",
            edit(
                PD,
                "list = { method = \"GET\", path = \"/accounts\" }",
                "list = { method = \"GET\", path = \"/accounts?limit=10\" }",
            ),
            "path = \"/accounts?limit=10\"",
            "users.calls.list.path: the query parameter \"limit\" is written in the path and also sent by the sidecar",
        ),
        (
            "status-that-is-no-error",
            edit(
                PD,
                "[legacy.errors.codes]",
                "[legacy.errors.by_status]\n200 = { status = 400 }\n\n[legacy.errors.codes]",
            ),
            "200 = { status = 400 }",
            "legacy.errors.by_status.200: \"200\" is not an HTTP error status",
        ),
        (
            "done-on-a-read",
            edit(
                PD,
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\" }",
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\", done = [{ status = 404 }] }",
            ),
            "done = [{",
            "users.calls.get.done: a read is never \"already done\"",
        ),
        (
            "done-entry-empty",
            edit(
                PD,
                "delete = { method = \"DELETE\", path = \"/accounts/{legacy_id}\" }",
                "delete = { method = \"DELETE\", path = \"/accounts/{legacy_id}\", done = [{}] }",
            ),
            "{}]",
            "users.calls.delete.done[0]: give status, code or matches",
        ),
        (
            "paging-on-a-record-call",
            edit(
                PD,
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\" }",
                "get = { method = \"GET\", path = \"/accounts/{legacy_id}\", paging = \"none\" }",
            ),
            "paging = \"none\"",
            "users.calls.get.paging: only list calls are paged",
        ),
        (
            "complete-on-groups",
            edit(
                PD,
                "list = { method = \"GET\", path = \"/teams\" }",
                "list = { method = \"GET\", path = \"/teams\", complete = \"get\" }",
            ),
            "complete = \"get\"",
            "groups.calls.list.complete: only users.calls.list completes its records",
        ),
        (
            "page-parameter-is-the-size-parameter",
            edit(MC, "page_param = \"Page\"", "page_param = \"PageSize\""),
            "size_param = \"PageSize\"",
            "legacy.paging.size_param: \"PageSize\" is also page_param: one parameter cannot be both",
        ),
        (
            "cursor-style-without-cursor",
            edit(
                &edit(PD, "more = \"/has_more\"", ""),
                "style = \"offset\"\noffset_param = \"offset\"",
                "style = \"cursor\"\ncursor_param = \"after\"",
            ),
            "paging]\nstyle",
            "legacy.paging: style \"cursor\" needs cursor",
        ),
        (
            "key-of-another-style",
            edit(
                PD,
                "style = \"offset\"\noffset_param = \"offset\"",
                "style = \"link_header\"",
            ),
            "more = ",
            "legacy.paging.more: with style \"link_header\" the cursor or link says whether a page follows",
        ),
        (
            "envelope-not-a-pointer",
            edit(
                PD,
                "create = { method = \"POST\", path = \"/accounts\", body = \"mapped\" }",
                "create = { method = \"POST\", path = \"/accounts\", body = \"mapped\", envelope = \"account\" }",
            ),
            "envelope = \"account\"",
            "users.calls.create.envelope: \"account\" must be a JSON pointer",
        ),
        (
            "fingerprint-not-a-pointer",
            edit(
                PD,
                "created = \"/created_at\"",
                "created = \"/created_at\"\nfingerprint = \"created_at\"",
            ),
            "fingerprint = \"created_at\"",
            "users.fingerprint: \"created_at\" is not a JSON pointer (it must start with '/')",
        ),
        (
            "set-active-reads-inactive",
            edit(STATE, "set_active = \"ACTIVE\"", "set_active = \"ENABLED\""),
            "set_active = \"ENABLED\"",
            "users.active.set_active: \"ENABLED\" is not one of active",
        ),
        (
            "set-inactive-reads-active",
            edit(
                STATE,
                "set_inactive = \"SUSPENDED\"",
                "set_inactive = \"ACTIVE\"",
            ),
            "set_inactive = \"ACTIVE\"",
            "users.active.set_inactive: \"ACTIVE\" is one of active",
        ),
        (
            "set-active-alone",
            edit(STATE, "set_inactive = \"SUSPENDED\"", ""),
            "active]",
            "users.active: set_active and set_inactive go together",
        ),
        (
            "state-written-and-a-lock-call",
            edit(
                STATE,
                "[users.lifecycle]",
                "deactivate = { method = \"POST\", path = \"/accounts/{legacy_id}/lock\" }\n\n[users.lifecycle]",
            ),
            "deactivate = {",
            "users.calls.deactivate is never used",
        ),
        (
            "sequence-on-update",
            edit(
                SEQ,
                "body = \"changed\" }",
                "body = \"changed\", then = [{ method = \"POST\", path = \"/audit\" }] }",
            ),
            "then = [",
            "users.calls.update.then: only deactivate, reactivate and delete calls can be a sequence",
        ),
        (
            "sequence-nested",
            edit(
                SEQ,
                "method = \"DELETE\"\npath = \"/users/{legacy_id}\"",
                "method = \"DELETE\"\npath = \"/users/{legacy_id}\"\nthen = [{ method = \"POST\", path = \"/audit\" }]",
            ),
            "then = [",
            "users.calls.delete.then[0].then: a sequence is one list",
        ),
        (
            "sequence-step-mapped-body",
            edit(
                SEQ,
                "method = \"DELETE\"\npath = \"/users/{legacy_id}\"",
                "method = \"DELETE\"\npath = \"/users/{legacy_id}\"\nbody = \"mapped\"",
            ),
            "body = \"mapped\"\n",
            "users.calls.delete.then[0].body: a call of a sequence sends no mapped fields",
        ),
        (
            "set-members-and-add-calls",
            edit(
                WHOLE,
                "set_members = {",
                "add_member = { method = \"PUT\", path = \"/groups/{legacy_id}/users/{member_legacy_id}\" }\nremove_member = { method = \"DELETE\", path = \"/groups/{legacy_id}/users/{member_legacy_id}\" }\nset_members = {",
            ),
            "set_members = {",
            "groups.calls.set_members replaces the whole list: declare it, or add and remove calls, not both",
        ),
        (
            "set-members-without-batch",
            edit(
                WHOLE,
                ", batch = { field = \"user_ids\", max = 3, ids = \"number\" } }",
                " }",
            ),
            "set_members = {",
            "groups.calls.set_members needs batch",
        ),
        (
            "version-without-set-members",
            edit(
                &edit(WHOLE, "set_members = {", "add_members = {"),
                "[groups.calls]",
                "[groups.calls]\nremove_members = { method = \"POST\", path = \"/groups/{legacy_id}/drop\", batch = { field = \"user_ids\", max = 3 } }",
            ),
            "version = ",
            "groups.version is sent with groups.calls.set_members, which is not declared",
        ),
        (
            "read-only-and-required",
            edit(
                READ_ONLY,
                "read_only = true",
                "read_only = true\nrequired = true",
            ),
            "read_only = true",
            "users.attributes[1].read_only: a read-only attribute is never written",
        ),
        (
            "one-field-two-writers",
            edit(READ_ONLY, "read_only = true ", "# "),
            "legacy = \"email\"\n# ",
            "users.attributes[1].legacy: legacy field \"email\" is mapped twice",
        ),
        (
            "etag-and-version",
            edit(
                WHOLE,
                "version = \"/lock_version\"",
                "version = \"/lock_version\"\netag = true",
            ),
            "etag = true",
            "groups.etag: the version is the ETag or a field (groups.version), not both",
        ),
        (
            "oauth-token-url-https",
            edit(
                OAUTH,
                "token_url = \"/oauth/token\"",
                "token_url = \"https://idp.example/oauth/token\"",
            ),
            "token_url = \"https",
            "legacy.auth.token_url: \"https://idp.example/oauth/token\" must be a path on the legacy app",
        ),
        (
            "oauth-secret-in-the-mapping",
            edit(
                OAUTH,
                "client_secret = \"{secret.client_secret}\"",
                "client_secret = \"hunter2\"",
            ),
            "client_secret = \"hunter2\"",
            "legacy.auth.client_secret: put the secret in the tenant's secrets",
        ),
        (
            "oauth-unknown-client-auth",
            edit(
                OAUTH,
                "scope = \"users:read users:write\"",
                "scope = \"users:read users:write\"\nclient_auth = \"jwt\"",
            ),
            // A tagged table is read whole: the problem is told at the table.
            "[legacy.auth]",
            "unknown variant `jwt`, expected `basic` or `body`",
        ),
        (
            "same-external-id-unmapped",
            edit(
                PD,
                "then = \"take_over_and_update\" },\n",
                "then = \"take_over_and_update\" },\n    { when = \"same_external_id\", then = \"adopt\" },\n",
            ),
            "on_conflict = [",
            "users.lifecycle.on_conflict: same_external_id reads the existing record's externalId through the attribute rows: map externalId to a legacy field",
        ),
        (
            "fingerprint-is-the-id",
            edit(
                PD,
                "created = \"/created_at\"",
                "created = \"/created_at\"\nfingerprint = \"/uid\"",
            ),
            "fingerprint = \"/uid\"",
            "users.fingerprint: the legacy id itself tells no two accounts apart; name a value that never changes, such as the creation time",
        ),
    ];
    expect_one_line_each(&cases);
}

#[test]
fn broken_states_values_bodies_and_sentences() {
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "active-names-nothing",
            edit(
                MC,
                "all_true = [\"/IsActive\"]\nall_false = [\"/IsArchived\"]\n",
                "",
            ),
            "active]",
            "users.active: names no flag and no field, so every user would read active",
        ),
        (
            "active-field-without-values",
            edit(
                MC,
                "all_true = [\"/IsActive\"]\nall_false = [\"/IsArchived\"]\n",
                "field = \"/Status\"\n",
            ),
            "field = \"/Status\"",
            "users.active.field needs active, the values meaning active",
        ),
        (
            "values-with-transform",
            edit(
                MC,
                "legacy = \"UserProfileTitle\"",
                "legacy = \"UserProfileTitle\"\ntransform = \"trim\"\nvalues = [{ scim = \"Boss\", legacy = 1 }]",
            ),
            "values = [{",
            "users.attributes[4].values: a row has a transform or a value map, not both",
        ),
        (
            "values-empty",
            edit(
                MC,
                "legacy = \"UserProfileTitle\"",
                "legacy = \"UserProfileTitle\"\nvalues = []",
            ),
            "values = []",
            "users.attributes[4].values: an empty value map would refuse every value",
        ),
        (
            "values-of-the-wrong-type",
            edit(
                MC,
                "legacy = \"UserProfileTitle\"",
                "legacy = \"UserProfileTitle\"\nvalues = [{ scim = 7, legacy = 1 }]",
            ),
            "scim = 7",
            "users.attributes[4].values[0].scim: 7 is not a value of title (a string)",
        ),
        (
            "fixed-body-not-json",
            edit(
                MC,
                "path = \"/users/{legacy_id}/archive\", idempotent = true }",
                "path = \"/users/{legacy_id}/archive\", idempotent = true, body = '{\"status\": 3' }",
            ),
            "body = '{\"status\": 3'",
            "users.calls.deactivate.body: not JSON",
        ),
        (
            "fixed-body-with-a-secret",
            edit(
                MC,
                "path = \"/users/{legacy_id}/archive\", idempotent = true }",
                "path = \"/users/{legacy_id}/archive\", idempotent = true, body = '{\"key\": \"{secret.api_key}\"}' }",
            ),
            "body = '{\"key\"",
            "users.calls.deactivate.body: a secret cannot go in a body",
        ),
        (
            "fixed-body-on-a-mapped-write",
            edit(
                MC,
                "update = { method = \"PATCH\", path = \"/users/{legacy_id}\", body = \"changed\" }",
                "update = { method = \"PATCH\", path = \"/users/{legacy_id}\", body = '{\"a\": 1}' }",
            ),
            "body = '{\"a\": 1}'",
            "users.calls.update.body: this call sends the mapped fields",
        ),
        (
            "body-keyword-misspelt",
            edit(
                MC,
                "update = { method = \"PATCH\", path = \"/users/{legacy_id}\", body = \"changed\" }",
                "update = { method = \"PATCH\", path = \"/users/{legacy_id}\", body = \"chnged\" }",
            ),
            "body = \"chnged\"",
            "users.calls.update.body: \"chnged\" is neither \"mapped\", \"changed\", \"full\" nor a JSON body",
        ),
        (
            "member-id-outside-member-calls",
            edit(
                MC,
                "path = \"/users/{legacy_id}/archive\"",
                "path = \"/users/{legacy_id}/archive/{member_legacy_id}\"",
            ),
            "deactivate = {",
            "users.calls.deactivate: {member_legacy_id} has a value only in groups.calls.add_member",
        ),
        (
            "field-pattern-without-groups",
            edit(
                MC,
                "problem = \"/Problem\"",
                "problem = \"/Problem\"\nsentences = \"/Errors\"\nfield_pattern = \"^(\\\\S+) (.+)$\"",
            ),
            "field_pattern =",
            "legacy.errors.field_pattern: \"^(\\\\S+) (.+)$\" needs the named groups",
        ),
        (
            "field-name-of-no-row",
            edit(
                MC,
                "problem = \"/Problem\"",
                "problem = \"/Problem\"\nfield_names = { \"Job title\" = \"Title\" }",
            ),
            "field_names =",
            "legacy.errors.field_names.Job title: \"Title\" is no legacy field of [[users.attributes]]",
        ),
        (
            "auth-password-written-in-the-mapping",
            edit(
                &edit(PD, "Authorization = \"Token {secret.api_key}\"", ""),
                "[legacy.paging]",
                "[legacy.auth]\ntype = \"basic\"\nusername = \"bot\"\npassword = \"hunter2\"\n\n[legacy.paging]",
            ),
            "password = \"hunter2\"",
            "legacy.auth.password: put the password in the tenant's secrets",
        ),
        (
            "take-over-never-used",
            edit(
                PD,
                "    { when = { field = \"/origin\", equals = \"local\" }, then = \"take_over_and_update\" },\n",
                "",
            ),
            "take_over = {",
            "users.calls.take_over is never used: no lifecycle.on_conflict rule says take_over_and_update",
        ),
        (
            "delete-never-used",
            edit(
                MC,
                "reactivate = { method = \"POST\", path = \"/users/{legacy_id}/restore\", idempotent = true }",
                "reactivate = { method = \"POST\", path = \"/users/{legacy_id}/restore\", idempotent = true }\ndelete = { method = \"DELETE\", path = \"/users/{legacy_id}\" }",
            ),
            "delete = { method = \"DELETE\"",
            "users.calls.delete is never used: neither lifecycle.delete nor lifecycle.deactivate is \"delete\"",
        ),
        (
            "patterns-without-sentences",
            edit(
                MC,
                "[legacy.errors.codes]",
                "[[legacy.errors.patterns]]\nmatches = \"taken\"\nstatus = 409\n\n[legacy.errors.codes]",
            ),
            "errors]\ncode",
            "legacy.errors: field_pattern and patterns read sentences",
        ),
    ];
    expect_one_line_each(&cases);
}

/// Checks every broken mapping in one run: exit code 1, and for each file exactly one line,
/// at the edit's `line:column`, carrying the expected message.
fn expect_one_line_each(cases: &[(&str, String, &str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = cases
        .iter()
        .map(|(name, text, _, _)| {
            let path = dir.path().join(format!("{name}.toml"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let (ok, out) = check(&files);
    assert!(!ok, "check must fail:\n{out}");
    for ((name, text, needle, message), file) in cases.iter().zip(&files) {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(&format!("{}:", file.display())))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: one line per problem:\n{out}");
        let (line, col) = at(text, needle);
        let prefix = format!("{}:{line}:{col}: ", file.display());
        assert!(
            lines[0].starts_with(&prefix),
            "{name}: expected {prefix}…, got {}",
            lines[0]
        );
        assert!(
            lines[0].contains(message),
            "{name}: expected {message:?} in {}",
            lines[0]
        );
    }
}

#[test]
fn check_config_names_every_placeholder_a_tenant_does_not_give() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = edit(
        &edit(
            PD,
            "Authorization = \"Token {secret.api_key}\"",
            "X-Region = \"{var.region}\"",
        ),
        "[legacy.paging]",
        "[legacy.auth]\ntype = \"basic\"\nusername = \"{var.api_user}\"\npassword = \"{secret.api_password}\"\n\n[legacy.paging]",
    );
    std::fs::write(dir.path().join("mapping.toml"), &mapping).unwrap();
    let config = |extra: &str| {
        let path = dir.path().join("sidecar.toml");
        std::fs::write(
            &path,
            format!(
                "{}[tenants.pd]\nlegacy_base_url = \"http://127.0.0.1:9\"\nmapping = \"mapping.toml\"\n\
                 tokens = [{{ value = \"t\" }}]\n{extra}",
                server_section(&dir.path().join("data"))
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = config("");
    assert!(!ok, "{out}");
    for line in [
        "tenants.pd: the mapping uses {var.region}, and tenants.pd.vars.region is not set",
        "tenants.pd: the mapping uses {var.api_user}, and tenants.pd.vars.api_user is not set",
        "tenants.pd: the mapping uses {secret.api_password}, and tenants.pd.secrets.api_password is not set",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} not in:\n{out}");
    }
    let (ok, out) = config(
        "vars = { region = \"eu\", api_user = \"bot\" }\nsecrets = { api_password = { value = \"pw\" } }\n",
    );
    assert!(ok, "{out}");
}

/// `check --live --config`: read-only calls to the legacy app (the Marketing Center
/// simulator, over loopback) report that the shipped mapping reads it; a pointer that finds
/// nothing in the real answers is a problem, with the members it could have named.
#[tokio::test]
async fn check_live_reads_the_legacy_app_through_the_mapping() {
    use simulator::marketing_center::MarketingCenter;
    let sim = MarketingCenter::new("live-key", ["ACME"]);
    sim.seed_demo("ACME");
    let handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, base) = (dir.path().to_owned(), handle.base_url());
    // The command blocks: it runs beside the simulator, which answers on this runtime.
    let run = move |mapping: String| {
        let (data, base) = (data.clone(), base.clone());
        tokio::task::spawn_blocking(move || {
            std::fs::write(data.join("mapping.toml"), mapping).unwrap();
            let path = data.join("sidecar.toml");
            std::fs::write(
                &path,
                format!(
                    "{}[tenants.acme]\ncustomer_id = \"ACME\"\nlegacy_base_url = \"{base}\"\nmapping = \"mapping.toml\"\n\
                     api_key = {{ value = \"live-key\" }}\ntokens = [{{ value = \"t\" }}]\n",
                    server_section(&data.join("data")),
                ),
            )
            .unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
                .args(["check", "--live", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        })
    };
    let (ok, out) = run(MC.to_owned()).await.unwrap();
    assert!(ok, "{out}");
    for expected in [
        "tenant acme: users.calls.list: answered 1 record(s) on a first page",
        "tenant acme: users.calls.get: reads user",
        "tenant acme: users.filters.username: LogonName=",
        "tenant acme: groups.calls.get: group",
        "tenant acme: groups.calls.members: group",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(expected) && l.ends_with(": ok")),
            "{expected:?} not in:\n{out}"
        );
    }
    assert!(!dir.path().join("data").exists(), "nothing is recorded");
    let broken = edit(MC, "legacy_id = \"/UserID\"", "legacy_id = \"/UserId\"");
    let (ok, out) = run(broken).await.unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(
            "tenant acme: users.legacy_id: \"/UserId\" finds no id in a listed user (its members: UserID,"
        )),
        "{out}"
    );
}

/// `check --config` reads `[store]` as the sidecar will when it starts (the URL, the TLS mode,
/// a password where it must not be), without connecting.
#[test]
fn check_config_reads_the_store_as_the_sidecar_will() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/marketing-center.toml");
    let check = |url: &str| {
        let path = dir.path().join("sidecar.toml");
        std::fs::write(
            &path,
            format!(
                "{}[store]\nurl = \"{url}\"\n\n[tenants.mc]\ncustomer_id = \"C\"\nlegacy_base_url = \"http://127.0.0.1:9\"\n\
                 mapping = \"{}\"\napi_key = {{ value = \"k\" }}\ntokens = [{{ value = \"t\" }}]\n",
                server_section(&dir.path().join("data")),
                mapping.display()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = check("postgres://scim@db.example:5433/scim?sslmode=require");
    assert!(ok, "{out}");
    assert!(
        out.contains("store: postgres://scim@db.example:5433/scim: ok"),
        "{out}"
    );
    for (url, says) in [
        (
            "postgres://scim@db.example/scim?sslmode=verify-ca",
            "sslmode=verify-ca is not supported",
        ),
        (
            "postgres://scim:hunter2@db.example/scim",
            "store.url holds a password",
        ),
        (
            "mysql://scim@db.example/scim",
            "store.url must be a postgres:// URL",
        ),
        (
            "postgres://scim@%2Frun%2Fpostgresql/scim?sslmode=require",
            "a Unix socket carries no TLS",
        ),
    ] {
        let (ok, out) = check(url);
        assert!(!ok, "{url}: {out}");
        assert!(out.contains(says), "{url}: {says:?} not in:\n{out}");
        assert!(!out.contains("hunter2"), "{out}");
    }
}
