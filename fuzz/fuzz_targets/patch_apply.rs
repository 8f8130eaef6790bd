//! `patch_apply`: arbitrary bytes as a PATCH request body (non-JSON input is skipped).
//!
//! Checks: `patch::parse_request` never panics; for every parsed request, `patch::apply` to a
//! clone of the fixture User (User schema) and of the fixture Group (Group schema) never
//! panics, and when it fails the resource is byte-for-byte unchanged (RFC 7644 §3.5.2: "all or
//! nothing"); `patch::members::group_patch` never panics and, when it succeeds, returns
//! disjoint add/remove sets without duplicates (the documented `MemberChange` invariants).
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use scim::patch::{self, members};
use scim_sidecar_fuzz::{apply_checked, fixtures};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(ops) = patch::parse_request(&body) else {
        return;
    };
    let fx = fixtures();
    let _ = apply_checked(&fx.user, &ops, &fx.user_schema);
    let _ = apply_checked(&fx.group, &ops, &fx.group_schema);

    if let Ok(change) = members::group_patch(&ops) {
        let _ = change.named_members();
        match &change.members {
            members::MemberChange::Delta { add, remove } => {
                let added: HashSet<&String> = add.iter().collect();
                let removed: HashSet<&String> = remove.iter().collect();
                assert_eq!(added.len(), add.len(), "duplicate ids in add: {change:?}");
                assert_eq!(
                    removed.len(),
                    remove.len(),
                    "duplicate ids in remove: {change:?}"
                );
                assert!(
                    added.is_disjoint(&removed),
                    "group_patch Delta add/remove not disjoint: {change:?}"
                );
            }
            members::MemberChange::Replace(all) => {
                let set: HashSet<&String> = all.iter().collect();
                assert_eq!(set.len(), all.len(), "duplicate ids in replace: {change:?}");
            }
        }
    }
});
