//! Identity newtypes: the four kinds of id the sidecar juggles, kept apart by type.
//!
//! Owns `TenantId`, `ScimId`, `LegacyId`, `ExternalId` and the derivation of a SCIM id
//! from (tenant, resource type, legacy id). Depends on nothing else in the crate.

use std::fmt;

use uuid::Uuid;

/// Namespace of the name-based (v5) UUIDs the sidecar hands out as SCIM ids.
///
/// Changing it would change every id ever handed to an identity provider: never do.
const SCIM_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5c1d_51de_ca2e_4c3a_9f0e_7d1b_5a1d_ec01);

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// Shared text: a copy (the cross-reference's rows, every call about a record) is a
        /// count, not an allocation.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// Wraps a raw value.
            pub fn new(value: impl Into<std::sync::Arc<str>>) -> Self {
                Self(value.into())
            }

            /// The raw value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The raw value, owned.
            pub fn into_inner(self) -> String {
                self.0.as_ref().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(
    /// The name of a tenant in the configuration (one storefront customer).
    TenantId
);
id_newtype!(
    /// The `id` of a SCIM resource as handed to the identity provider.
    ScimId
);
id_newtype!(
    /// The primary key of a record in the legacy application, as text.
    LegacyId
);
id_newtype!(
    /// The identity provider's own id for a resource (SCIM `externalId`).
    ExternalId
);

impl ScimId {
    /// The SCIM id of the legacy record `legacy_id` of `resource_type` in `tenant`.
    ///
    /// A name-based (v5) UUID: every replica computes the same id, and losing the
    /// cross-reference database loses no id.
    pub fn derive(tenant: &TenantId, resource_type: &str, legacy_id: &LegacyId) -> Self {
        let name = format!("{}\u{1f}{}\u{1f}{}", tenant.0, resource_type, legacy_id.0);
        Self::of_uuid(Uuid::new_v5(&SCIM_ID_NAMESPACE, name.as_bytes()))
    }

    /// The SCIM id of the legacy record `legacy_id` whose fingerprint (a value that never
    /// changes for one account, such as its creation time) is `fingerprint`: two accounts
    /// that held the same legacy id one after the other get two ids.
    pub fn derive_fingerprinted(
        tenant: &TenantId,
        resource_type: &str,
        legacy_id: &LegacyId,
        fingerprint: &str,
    ) -> Self {
        let name = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            tenant.0, resource_type, legacy_id.0, fingerprint
        );
        Self::of_uuid(Uuid::new_v5(&SCIM_ID_NAMESPACE, name.as_bytes()))
    }
}

impl ScimId {
    /// A UUID's hyphenated lower-case form, written once into the shared text.
    fn of_uuid(u: Uuid) -> Self {
        Self(std::sync::Arc::from(
            &*u.hyphenated().encode_lower(&mut Uuid::encode_buffer()),
        ))
    }

    /// A SCIM id as handed out: a name-based (v5) UUID, in its hyphenated lower-case form.
    /// Anything else a client sends cannot be one of ours.
    pub fn parse_derived(text: &str) -> Option<ScimId> {
        match Uuid::parse_str(text) {
            Ok(u) if u.get_version_num() == 5 => Some(Self::of_uuid(u)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let t = TenantId::new("acme");
        let a = ScimId::derive(&t, "User", &LegacyId::new("1042"));
        assert_eq!(a, ScimId::derive(&t, "User", &LegacyId::new("1042")));
        assert_ne!(a, ScimId::derive(&t, "User", &LegacyId::new("1043")));
        assert_ne!(
            a,
            ScimId::derive(&TenantId::new("other"), "User", &LegacyId::new("1042"))
        );
        assert_ne!(a, ScimId::derive(&t, "Group", &LegacyId::new("1042")));
        let lid = LegacyId::new("1042");
        let f1 = ScimId::derive_fingerprinted(&t, "User", &lid, "2026-01-01T00:00:00Z");
        let f2 = ScimId::derive_fingerprinted(&t, "User", &lid, "2026-02-01T00:00:00Z");
        assert_ne!(f1, f2);
        assert_ne!(f1, a);
        assert_eq!(ScimId::parse_derived(f1.as_str()), Some(f1.clone()));
        assert_eq!(
            Uuid::parse_str(a.as_str())
                .map(|u| u.get_version_num())
                .ok(),
            Some(5)
        );
        assert_eq!(ScimId::parse_derived(&a.as_str().to_uppercase()), Some(a));
        assert_eq!(ScimId::parse_derived("1042"), None);
        assert_eq!(ScimId::parse_derived(&Uuid::new_v4().to_string()), None);
    }
}
