//! `patch_path`: arbitrary bytes (UTF-8, lossily) through the PATCH `path` parser.
//!
//! Checks: `patch::parse_path` never panics. Every parsed path round-trips through its text
//! form: `Display` itself for paths without a filter (it shows a filter as `[…]`, on
//! purpose), and `urn:attr[<filter Display>].sub` for paths with one. Each parsed path is
//! also used as the target of a `remove` and of a `replace` on the fixture User and Group,
//! which must never panic and must leave the resource unchanged when they fail.
//! A rendering beyond the filter parser's bounds need not parse again (see README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim::filter::AttrPath;
use scim::patch::{self, PatchOpKind, PatchOperation, PatchPath};
use scim_sidecar_fuzz::{apply_checked, fixtures, known_bound_error, same_filter};
use serde_json::json;

/// The full text form of a path, filter included.
fn full_text(p: &PatchPath) -> String {
    let mut s = String::new();
    if let Some(urn) = &p.urn {
        s.push_str(urn);
        s.push(':');
    }
    s.push_str(&p.attr);
    if let Some(f) = &p.filter {
        s.push('[');
        s.push_str(&f.to_string());
        s.push(']');
    }
    if let Some(sub) = &p.sub {
        s.push('.');
        s.push_str(sub);
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(path) = patch::parse_path(&input) else {
        return;
    };

    let shown = path.to_string();
    if path.filter.is_none() {
        assert_eq!(
            patch::parse_path(&shown).as_ref(),
            Ok(&path),
            "Display round trip\n input: {input:?}\n shown: {shown:?}"
        );
    }
    let text = full_text(&path);
    match patch::parse_path(&text) {
        Ok(again) => assert!(
            again == path
                || (again.urn == path.urn
                    && again.attr == path.attr
                    && again.sub == path.sub
                    && match (&again.filter, &path.filter) {
                        (Some(a), Some(b)) => same_filter(a, b),
                        _ => false,
                    }),
            "text round trip changed the path\n input: {input:?}\n text: {text:?}\n before: {path:?}\n after:  {again:?}"
        ),
        Err(e) if known_bound_error(&text, &e.to_string()) => {}
        Err(e) => panic!("text form does not parse again: {e}\n input: {input:?}\n text: {text:?}"),
    }

    let fx = fixtures();
    let _ = fx.user_schema.resolve(&AttrPath {
        urn: path.urn.clone(),
        name: path.attr.clone(),
        sub: path.sub.clone(),
    });
    let ops = [
        PatchOperation {
            op: PatchOpKind::Remove,
            path: Some(path.clone()),
            value: None,
        },
        PatchOperation {
            op: PatchOpKind::Replace,
            path: Some(path),
            value: Some(json!("fuzz@example.com")),
        },
    ];
    for op in &ops {
        let _ = apply_checked(&fx.user, std::slice::from_ref(op), &fx.user_schema);
        let _ = apply_checked(&fx.group, std::slice::from_ref(op), &fx.group_schema);
    }
});
