//! SCIM resources of legacy records: the User and Group a record is, with `id`, `schemas` and
//! `meta` (its ETag included), and the identity facts the cross-reference keeps of them.

use scim::resource::{Meta, assemble, location, version};
use scim::schema;
use serde_json::{Map, Value, json};

use crate::apply::pointer_text;
use crate::ids::{ExternalId, LegacyId, ScimId, TenantId};
use crate::plan::groups::Member;
use crate::plan::groups::RESOURCE_TYPE as GROUP;
use crate::plan::users::RESOURCE_TYPE as USER;
use crate::{GroupIdSpec, GroupMapping, TranslateError, UserMapping};

/// When the sidecar first met a record and last saw it change (from the cross-reference),
/// for records whose legacy app does not say.
#[derive(Clone, Copy, Debug)]
pub struct Remembered<'a> {
    /// First met (RFC 3339).
    pub created: &'a str,
    /// Last changed (RFC 3339).
    pub last_modified: &'a str,
    /// The `externalId` the identity provider gave, kept by the sidecar (shown when the
    /// mapping has no field for it).
    pub external_id: Option<&'a str>,
}

/// What the cross-reference keeps of a user: its `externalId` and `userName`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserKeys {
    /// `externalId`, when the record has one.
    pub external_id: Option<ExternalId>,
    /// `userName`, when the record has one.
    pub user_name: Option<String>,
}

/// The SCIM id of the user `legacy_id` of `tenant`.
pub fn user_id(tenant: &TenantId, legacy_id: &LegacyId) -> ScimId {
    ScimId::derive(tenant, USER, legacy_id)
}

impl UserMapping {
    /// Whether the sidecar keeps `externalId` itself: the mapping has no field for it.
    pub fn keeps_external_id(&self) -> bool {
        !self.attributes.iter().any(|a| a.scim == "externalId")
    }

    /// The record's fingerprint, when the mapping names one and the record holds it.
    pub fn fingerprint_of(&self, record: &Value) -> Option<String> {
        pointer_text(record, self.fingerprint.as_deref()?)
    }

    /// The legacy id and SCIM id of a legacy record: the id derived from (tenant, legacy id),
    /// joined by the record's fingerprint when the mapping names one. A record without its
    /// id, or without the fingerprint the mapping names, has no SCIM id.
    pub fn ids_of(
        &self,
        tenant: &TenantId,
        record: &Value,
    ) -> Result<(LegacyId, ScimId), TranslateError> {
        let legacy_id = self
            .legacy_id_of(record)
            .ok_or_else(|| TranslateError::Answer("has no record id".into()))?;
        let id = match &self.fingerprint {
            None => user_id(tenant, &legacy_id),
            Some(at) => {
                let fingerprint = self.fingerprint_of(record).ok_or_else(|| {
                    TranslateError::Answer(format!(
                        "has a user without its fingerprint (users.fingerprint = {at:?})"
                    ))
                })?;
                ScimId::derive_fingerprinted(tenant, USER, &legacy_id, &fingerprint)
            }
        };
        Ok((legacy_id, id))
    }

    /// The keys the cross-reference keeps, from a record's SCIM attributes ([`Self::read`]).
    pub fn keys(&self, attrs: &Map<String, Value>) -> UserKeys {
        let text = |k: &str| attrs.get(k).and_then(Value::as_str).map(str::to_owned);
        UserKeys {
            external_id: text("externalId").map(ExternalId::new),
            user_name: text("userName"),
        }
    }

    /// The SCIM User of a legacy record whose attributes are `attrs` ([`Self::read`]): `id`
    /// as [`Self::ids_of`], `meta` times from the record when the mapping says
    /// where, else as `remembered`.
    pub fn resource(
        &self,
        tenant: &TenantId,
        record: &Value,
        attrs: Map<String, Value>,
        remembered: Option<Remembered<'_>>,
        base_url: &str,
    ) -> Result<Value, TranslateError> {
        let (_, id) = self.ids_of(tenant, record)?;
        Ok(self.resource_of(&id, record, attrs, remembered, base_url))
    }

    /// [`Self::resource`] of a record whose SCIM id is known already (the cross-reference's
    /// row of it): the id is not derived again.
    pub fn resource_of(
        &self,
        id: &ScimId,
        record: &Value,
        attrs: Map<String, Value>,
        remembered: Option<Remembered<'_>>,
        base_url: &str,
    ) -> Value {
        let mut attrs = attrs;
        if let Some(ext) = remembered.and_then(|r| r.external_id)
            && self.keeps_external_id()
        {
            attrs.insert("externalId".into(), Value::String(ext.to_owned()));
        }
        let mut schemas = vec![schema::USER];
        for ext in &self.schema.extensions {
            if attrs.contains_key(&ext.id) {
                schemas.push(ext.id.as_str());
            }
        }
        let created = self
            .time(record, self.created.as_deref())
            .or_else(|| remembered.map(|r| r.created.to_owned()));
        let last_modified = self
            .time(record, self.last_modified.as_deref())
            .or_else(|| remembered.map(|r| r.last_modified.to_owned()))
            .or_else(|| created.clone());
        let meta = Meta {
            resource_type: USER,
            created,
            last_modified,
            location: location(base_url, "Users", id.as_str()),
            version: Some(version(&attrs)),
        };
        assemble(&schemas, id.as_str(), attrs, meta)
    }

    /// [`Self::resource`] of a record whose legacy app deleted it just now: its last state,
    /// `active: false` (the id answers 404 from now on).
    pub fn deleted_resource(
        &self,
        tenant: &TenantId,
        record: &Value,
        base_url: &str,
    ) -> Result<Value, TranslateError> {
        let mut resource = self.resource(tenant, record, self.read(record), None, base_url)?;
        resource["active"] = Value::Bool(false);
        Ok(resource)
    }
}

impl GroupMapping {
    /// The legacy id of a group record.
    pub fn legacy_id_of(&self, record: &Value) -> Result<LegacyId, TranslateError> {
        pointer_text(record, &self.legacy_id)
            .map(LegacyId::new)
            .ok_or_else(|| TranslateError::Answer("has a group without id".into()))
    }

    /// The display name of a group record.
    pub fn display_name_of(&self, record: &Value) -> Option<String> {
        pointer_text(record, &self.display_name)
    }

    /// The SCIM id of the group `legacy_id` of `tenant`: the legacy id itself, or derived.
    pub fn scim_id(&self, tenant: &TenantId, legacy_id: &LegacyId) -> ScimId {
        match self.scim_id {
            GroupIdSpec::Legacy => ScimId::new(legacy_id.as_str()),
            GroupIdSpec::Derived => ScimId::derive(tenant, GROUP, legacy_id),
        }
    }

    /// The SCIM Group of a record, with `members` when given (each with its SCIM id, as the
    /// caller resolved it: [`user_id`], or the cross-reference's for fingerprinted users).
    pub fn resource(
        &self,
        tenant: &TenantId,
        record: &Value,
        members: Option<&[(ScimId, Member)]>,
        base_url: &str,
    ) -> Result<(LegacyId, Value), TranslateError> {
        let legacy_id = self.legacy_id_of(record)?;
        let id = self.scim_id(tenant, &legacy_id);
        let mut attrs = Map::new();
        if let Some(name) = self.display_name_of(record) {
            attrs.insert("displayName".into(), json!(name));
        }
        if let Some(members) = members {
            let list = members
                .iter()
                .map(|(sid, m)| {
                    let mut v = Map::new();
                    v.insert("value".into(), json!(sid.as_str()));
                    if let Some(d) = &m.display {
                        v.insert("display".into(), json!(d));
                    }
                    v.insert(
                        "$ref".into(),
                        json!(location(base_url, "Users", sid.as_str())),
                    );
                    v.insert("type".into(), json!(USER));
                    Value::Object(v)
                })
                .collect();
            attrs.insert("members".into(), Value::Array(list));
        }
        let meta = Meta {
            resource_type: GROUP,
            location: location(base_url, "Groups", id.as_str()),
            ..Meta::default()
        };
        Ok((
            legacy_id,
            assemble(&[schema::GROUP], id.as_str(), attrs, meta),
        ))
    }
}
