//! Parser for the PATCH request body: `{"schemas":[PatchOp URN],"Operations":[{op,path,value}]}`.
//!
//! Lenient where real clients differ (key case of `Operations`/`op`/`path`/`value`, `op` value
//! case, `"path": ""`/`null` meaning "no path"), strict on structure. Knows nothing about
//! resource schemas.

use serde_json::{Map, Value};

use super::path::echo;
use super::{MAX_OPERATIONS, PatchError, PatchOpKind, PatchOperation, at_operation, parse_path};
use crate::schema::PATCH_OP;

/// The member of `obj` whose key equals `name` case-insensitively (exact spelling preferred).
fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn syntax(msg: impl Into<String>) -> PatchError {
    PatchError::InvalidSyntax(msg.into())
}

pub(super) fn parse(body: &Value) -> Result<Vec<PatchOperation>, PatchError> {
    let obj = body
        .as_object()
        .ok_or_else(|| syntax("PATCH body must be a JSON object"))?;

    let has_patch_urn = member(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| {
            schemas
                .iter()
                .filter_map(Value::as_str)
                .any(|s| s.trim().eq_ignore_ascii_case(PATCH_OP))
        });
    if !has_patch_urn {
        return Err(syntax(format!(
            "PATCH body must have \"schemas\": [\"{PATCH_OP}\"]"
        )));
    }

    let ops = match member(obj, "Operations") {
        None => return Err(syntax("PATCH body must have an \"Operations\" array")),
        Some(Value::Array(ops)) => ops,
        Some(_) => return Err(syntax("\"Operations\" must be an array")),
    };
    if ops.is_empty() {
        return Err(syntax("\"Operations\" must contain at least one operation"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(syntax(format!(
            "too many operations: {} (at most {MAX_OPERATIONS} per request)",
            ops.len()
        )));
    }

    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op).map_err(|e| at_operation(i, e)))
        .collect()
}

fn parse_operation(op: &Value) -> Result<PatchOperation, PatchError> {
    let obj = op
        .as_object()
        .ok_or_else(|| syntax("an operation must be an object"))?;

    let kind = match member(obj, "op") {
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "add" => PatchOpKind::Add,
            "remove" => PatchOpKind::Remove,
            "replace" => PatchOpKind::Replace,
            _ => {
                return Err(syntax(format!(
                    "unsupported op '{}' (expected add, remove or replace)",
                    echo(s)
                )));
            }
        },
        Some(_) => return Err(syntax("\"op\" must be a string")),
        None => return Err(syntax("missing \"op\"")),
    };

    let path = match member(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_path(s)?),
        Some(_) => {
            return Err(PatchError::InvalidPath(
                "\"path\" must be a string".to_owned(),
            ));
        }
    };

    let value = member(obj, "value").cloned();

    match kind {
        PatchOpKind::Remove => {
            if path.is_none() {
                return Err(PatchError::NoTarget(
                    "remove requires a \"path\"".to_owned(),
                ));
            }
        }
        PatchOpKind::Add | PatchOpKind::Replace => match (&path, &value) {
            (_, None) => {
                return Err(PatchError::InvalidValue(format!(
                    "{kind} requires a \"value\""
                )));
            }
            (None, Some(v)) if !v.is_object() => {
                return Err(PatchError::InvalidValue(format!(
                    "{kind} without a \"path\" requires an object \"value\""
                )));
            }
            _ => {}
        },
    }

    Ok(PatchOperation {
        op: kind,
        path,
        value,
    })
}
