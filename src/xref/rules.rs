//! The rules both engines of the store keep, whatever the SQL: how a `seen` row changes a
//! remembered record, when ids disagree, and the time format of the rows.
//!
//! Depends only on the parent's types.

use time::OffsetDateTime;
use time::macros::format_description;

use super::{Seen, StoreError, XrefRecord};
use mapping::ids::ExternalId;

/// The current time as RFC 3339 UTC with milliseconds.
pub(super) fn now() -> Result<String, StoreError> {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    Ok(OffsetDateTime::now_utc().format(&format)?)
}

/// Refuses a row whose SCIM id is stored for another legacy id.
pub(super) fn check_same_legacy(current: &XrefRecord, row: &Seen) -> Result<(), StoreError> {
    if current.legacy_id == row.legacy_id {
        Ok(())
    } else {
        Err(StoreError::IdConflict {
            scim_id: row.scim_id.clone(),
            legacy_id: row.legacy_id.clone(),
        })
    }
}

/// A record's remembered `(external_id, user_name)`.
pub(super) type Names = (Option<ExternalId>, Option<String>);

/// The `(external_id, user_name)` a `seen` row leaves on `current`, or `None` when it changes
/// nothing. A `None` in the row keeps the remembered value. Fails when the ids disagree.
pub(super) fn seen_names(current: &XrefRecord, row: &Seen) -> Result<Option<Names>, StoreError> {
    check_same_legacy(current, row)?;
    let external_id = row
        .external_id
        .clone()
        .or_else(|| current.external_id.clone());
    let user_name = row.user_name.clone().or_else(|| current.user_name.clone());
    Ok(
        (external_id != current.external_id || user_name != current.user_name)
            .then_some((external_id, user_name)),
    )
}
