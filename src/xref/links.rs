//! The SCIM id → legacy id links a store has met, kept in memory (bounded). A link never
//! changes (the SCIM id is derived from the legacy id), so a copy cannot be stale; what can
//! change (a tombstone, a remembered `externalId`) is never kept here. A read that knows the
//! link asks the legacy app while the store is asked whether the id still stands.
//!
//! Owns nothing but the map; used by the PostgreSQL engine, whose every lookup is a round
//! trip.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use mapping::ids::{LegacyId, ScimId, TenantId};

/// Links kept: two generations of at most half as many each. When the newer one is full the
/// older is dropped, so links read again stay (a read moves a link to the newer one).
const CAPACITY: usize = 32_768;

#[derive(Debug, Default)]
pub(super) struct Links {
    generations: Mutex<Generations>,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Debug, Default)]
struct Generations {
    newer: HashMap<u64, Link>,
    older: HashMap<u64, Link>,
}

#[derive(Debug, Clone)]
struct Link {
    tenant: TenantId,
    resource_type: Box<str>,
    scim_id: ScimId,
    legacy_id: LegacyId,
}

impl Link {
    fn is(&self, tenant: &TenantId, resource_type: &str, id: &ScimId) -> bool {
        self.scim_id == *id && *self.resource_type == *resource_type && self.tenant == *tenant
    }
}

impl Links {
    fn key(&self, tenant: &TenantId, resource_type: &str, id: &ScimId) -> u64 {
        self.hasher
            .hash_one((tenant.as_str(), resource_type, id.as_str()))
    }

    /// The legacy id of `id`, when met.
    pub(super) fn get(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Option<LegacyId> {
        let key = self.key(tenant, resource_type, id);
        let mut g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(link) = g.newer.get(&key) {
            return link
                .is(tenant, resource_type, id)
                .then(|| link.legacy_id.clone());
        }
        let link = g.older.remove(&key)?;
        if !link.is(tenant, resource_type, id) {
            return None;
        }
        let legacy_id = link.legacy_id.clone();
        g.insert(key, link);
        Some(legacy_id)
    }

    /// Remembers the link of `id` to `legacy_id`.
    pub(super) fn put(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
        legacy_id: &LegacyId,
    ) {
        let key = self.key(tenant, resource_type, id);
        let mut g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        if g.newer
            .get(&key)
            .is_some_and(|l| l.is(tenant, resource_type, id))
        {
            return;
        }
        g.insert(
            key,
            Link {
                tenant: tenant.clone(),
                resource_type: resource_type.into(),
                scim_id: id.clone(),
                legacy_id: legacy_id.clone(),
            },
        );
    }

    /// Links kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        g.newer.len() + g.older.len()
    }
}

impl Generations {
    fn insert(&mut self, key: u64, link: Link) {
        if self.newer.len() >= CAPACITY / 2 {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(key, link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> ScimId {
        ScimId::new(format!("id-{i}"))
    }

    #[test]
    fn links_are_found_by_tenant_type_and_id_only() {
        let links = Links::default();
        let t = TenantId::new("t".to_owned());
        links.put(&t, "User", &id(1), &LegacyId::new("41".to_owned()));
        assert_eq!(
            links.get(&t, "User", &id(1)),
            Some(LegacyId::new("41".to_owned()))
        );
        assert_eq!(links.get(&t, "Group", &id(1)), None);
        assert_eq!(
            links.get(&TenantId::new("u".to_owned()), "User", &id(1)),
            None
        );
        assert_eq!(links.get(&t, "User", &id(2)), None);
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_links_read_again() {
        let links = Links::default();
        let t = TenantId::new("t".to_owned());
        links.put(&t, "User", &id(0), &LegacyId::new("0".to_owned()));
        for i in 1..CAPACITY * 3 {
            links.put(&t, "User", &id(i), &LegacyId::new(i.to_string()));
            // Read all along, the first link stays.
            assert!(links.get(&t, "User", &id(0)).is_some(), "lost at {i}");
        }
        assert!(links.len() <= CAPACITY);
        assert_eq!(links.get(&t, "User", &id(1)), None);
    }
}
