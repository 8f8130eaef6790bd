//! The SCIM id → legacy id links a store has met, kept in memory (bounded). A link never
//! changes (the SCIM id is derived from the legacy id), so a copy cannot be stale; what can
//! change (a tombstone, a remembered `externalId`) is never kept here. A read that knows the
//! link asks the legacy app while the store is asked whether the id still stands.
//!
//! Owns nothing but the maps: [`Links`] for the PostgreSQL engine, whose every lookup is a
//! round trip; [`Kept`], the bounded map under it, also holds the SQLite engine's recent
//! records (`recent`).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

use mapping::ids::{LegacyId, ScimId, TenantId};

/// Links kept: two generations of at most half as many each. When the newer one is full the
/// older is dropped, so links read again stay (a read moves a link to the newer one).
const CAPACITY: usize = 32_768;

/// The links met, shared by every request of the engine.
#[derive(Debug)]
pub(super) struct Links(Mutex<Kept<LegacyId>>);

impl Default for Links {
    fn default() -> Links {
        Links(Mutex::new(Kept::new(CAPACITY)))
    }
}

impl Links {
    /// The legacy id of `id`, when met.
    pub(super) fn get(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Option<LegacyId> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant, resource_type, id)
    }

    /// Remembers the link of `id` to `legacy_id`.
    pub(super) fn put(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
        legacy_id: &LegacyId,
    ) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.newer_has(tenant, resource_type, id) {
            return;
        }
        kept.put(tenant, resource_type, id, legacy_id.clone());
    }

    /// Links kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A bounded map from (tenant, resource type, SCIM id) to a `V`: two generations of at most
/// `capacity / 2` entries each; when the newer one is full the older is dropped, and an entry
/// read from the older one moves to the newer. Not shared by itself: its owner holds the lock.
#[derive(Debug)]
pub(super) struct Kept<V> {
    newer: HashMap<u64, Entry<V>, BuildHasherDefault<Spread>>,
    older: HashMap<u64, Entry<V>, BuildHasherDefault<Spread>>,
    hasher: RandomState,
    capacity: usize,
}

/// The hasher of keys that are already the output of a keyed hash (`Kept::key`, SipHash
/// with a random key): they are used as they are, not hashed a second time.
#[derive(Debug, Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else is folded in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

#[derive(Debug)]
struct Entry<V> {
    tenant: TenantId,
    resource_type: Box<str>,
    scim_id: ScimId,
    value: V,
}

impl<V> Entry<V> {
    fn is(&self, tenant: &TenantId, resource_type: &str, id: &ScimId) -> bool {
        self.scim_id == *id && *self.resource_type == *resource_type && self.tenant == *tenant
    }
}

impl<V: Clone> Kept<V> {
    /// An empty map keeping at most `capacity` entries.
    pub(super) fn new(capacity: usize) -> Kept<V> {
        Kept {
            newer: HashMap::default(),
            older: HashMap::default(),
            hasher: RandomState::new(),
            capacity,
        }
    }

    fn key(&self, tenant: &TenantId, resource_type: &str, id: &ScimId) -> u64 {
        self.hasher
            .hash_one((tenant.as_str(), resource_type, id.as_str()))
    }

    /// The value of `id`, when kept.
    pub(super) fn get(&mut self, tenant: &TenantId, resource_type: &str, id: &ScimId) -> Option<V> {
        let key = self.key(tenant, resource_type, id);
        if let Some(entry) = self.newer.get(&key) {
            return entry
                .is(tenant, resource_type, id)
                .then(|| entry.value.clone());
        }
        let entry = self.older.remove(&key)?;
        if !entry.is(tenant, resource_type, id) {
            return None;
        }
        let value = entry.value.clone();
        self.insert(key, entry);
        Some(value)
    }

    /// Whether the newer generation holds `id` (a put would change nothing but the value).
    fn newer_has(&self, tenant: &TenantId, resource_type: &str, id: &ScimId) -> bool {
        self.newer
            .get(&self.key(tenant, resource_type, id))
            .is_some_and(|e| e.is(tenant, resource_type, id))
    }

    /// Keeps `value` for `id`, in place of what was kept.
    pub(super) fn put(&mut self, tenant: &TenantId, resource_type: &str, id: &ScimId, value: V) {
        let key = self.key(tenant, resource_type, id);
        self.older.remove(&key);
        self.insert(
            key,
            Entry {
                tenant: tenant.clone(),
                resource_type: resource_type.into(),
                scim_id: id.clone(),
                value,
            },
        );
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.newer.clear();
        self.older.clear();
    }

    /// Entries kept now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }

    fn insert(&mut self, key: u64, entry: Entry<V>) {
        if self.newer.len() >= self.capacity / 2 && !self.newer.contains_key(&key) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(key, entry);
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
