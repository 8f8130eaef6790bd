//! The answers to `GET /Users/{id}` kept by what they were made of, per tenant (bounded).
//!
//! A user's SCIM resource is a function of the legacy record's bytes, the mapping in force,
//! the facts the cross-reference remembers of it (first met, last changed, `externalId`) and
//! the base URL of the request. A GET still asks the legacy app every time; when the bytes it
//! answers, and every other input, are those of an answer already made, that answer's JSON is
//! sent again instead of decoding, translating and serialising the same record once more.
//! Anything changed (a field in the legacy app, a reloaded mapping, a remembered fact, another
//! host name) is a different key, so a kept answer is never a stale one: it is the answer the
//! full path would make.
//!
//! Bounded by entries and by bytes: two generations; when the newer holds [`HALF_ENTRIES`]
//! answers or [`HALF_BYTES`] bytes the older is dropped; an answer read from the older moves to
//! the newer. One answer per SCIM id: a new one takes the old one's place. Answers over
//! [`LARGEST`] bytes are not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use mapping::Mapping;
use mapping::ids::ScimId;
use xxhash_rust::xxh3::Xxh3;

/// Answers in one generation at most.
pub const HALF_ENTRIES: usize = 2_048;
/// Bytes of answers in one generation at most.
pub const HALF_BYTES: usize = 2 * 1024 * 1024;
/// The largest answer kept, in bytes.
pub const LARGEST: usize = 16 * 1024;

/// A tenant's kept answers.
#[derive(Debug, Default)]
pub struct Answers(Mutex<Generations>);

#[derive(Debug, Default)]
struct Generations {
    newer: HashMap<ScimId, Kept>,
    newer_bytes: usize,
    older: HashMap<ScimId, Kept>,
}

#[derive(Debug)]
struct Kept {
    made_of: u128,
    /// The mapping the answer was made with. A `Weak` keeps the allocation, so no later
    /// mapping can have its address while the answer is kept.
    mapping: Weak<Mapping>,
    json: Bytes,
}

impl Kept {
    fn answers(&self, mapping: &Arc<Mapping>, made_of: u128) -> bool {
        self.made_of == made_of && std::ptr::eq(self.mapping.as_ptr(), Arc::as_ptr(mapping))
    }
}

impl Answers {
    /// The answer of `id` made of `made_of` (see [`MadeOf`]) with `mapping`, when kept.
    pub fn get(&self, mapping: &Arc<Mapping>, id: &ScimId, made_of: u128) -> Option<Bytes> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = g.newer.get(id) {
            return kept.answers(mapping, made_of).then(|| kept.json.clone());
        }
        let kept = g.older.remove(id)?;
        let json = kept.answers(mapping, made_of).then(|| kept.json.clone());
        if json.is_some() {
            g.insert(id.clone(), kept);
        }
        json
    }

    /// Keeps `json`, the answer of `id` made of `made_of` with `mapping`, in place of the one
    /// kept before.
    pub fn put(&self, mapping: &Arc<Mapping>, id: &ScimId, made_of: u128, json: Bytes) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.older.remove(id);
        if json.len() > LARGEST {
            g.remove_newer(id);
            return;
        }
        let kept = Kept {
            made_of,
            mapping: Arc::downgrade(mapping),
            json,
        };
        g.insert(id.clone(), kept);
    }

    /// Answers kept now, and their bytes.
    pub fn size(&self) -> (usize, usize) {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let older: usize = g.older.values().map(|k| k.json.len()).sum();
        (g.newer.len() + g.older.len(), g.newer_bytes + older)
    }
}

impl Generations {
    fn insert(&mut self, id: ScimId, kept: Kept) {
        self.remove_newer(&id);
        if self.newer.len() >= HALF_ENTRIES || self.newer_bytes + kept.json.len() > HALF_BYTES {
            self.older = std::mem::take(&mut self.newer);
            self.newer_bytes = 0;
        }
        self.newer_bytes += kept.json.len();
        self.newer.insert(id, kept);
    }

    fn remove_newer(&mut self, id: &ScimId) {
        if let Some(old) = self.newer.remove(id) {
            self.newer_bytes -= old.json.len();
        }
    }
}

/// What an answer is made of besides the mapping, hashed (128-bit xxh3): every input is fed
/// with its length, so no two different inputs run together into the same bytes.
pub struct MadeOf(Xxh3);

impl std::fmt::Debug for MadeOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MadeOf").field(&self.finish()).finish()
    }
}

impl MadeOf {
    /// Starts with the legacy record's bytes, as the legacy app answered them.
    pub fn new(legacy_body: &[u8]) -> MadeOf {
        let mut h = MadeOf(Xxh3::new());
        h.add(legacy_body);
        h
    }

    /// Adds an input.
    pub fn add(&mut self, input: &[u8]) -> &mut MadeOf {
        self.0.update(&(input.len() as u64).to_le_bytes());
        self.0.update(input);
        self
    }

    /// Adds an input that may be absent (absent and empty differ).
    pub fn add_option(&mut self, input: Option<&[u8]>) -> &mut MadeOf {
        match input {
            None => self.0.update(&[0]),
            Some(input) => {
                self.0.update(&[1]);
                self.add(input);
            }
        }
        self
    }

    /// The key.
    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Arc<Mapping> {
        Arc::new(
            mapping::Mapping::from_toml(
                include_str!("../mappings/marketing-center.toml"),
                "marketing-center.toml",
            )
            .unwrap(),
        )
    }

    fn id(n: usize) -> ScimId {
        ScimId::new(format!("id-{n}"))
    }

    #[test]
    fn an_answer_is_given_back_only_for_the_same_inputs_and_mapping() {
        let (m, other) = (mapping(), mapping());
        let answers = Answers::default();
        let key = MadeOf::new(b"{\"UserID\":1}")
            .add(b"http://h/scim/v2")
            .finish();
        answers.put(&m, &id(1), key, Bytes::from_static(b"{\"id\":\"id-1\"}"));
        assert_eq!(
            answers.get(&m, &id(1), key).as_deref(),
            Some(&b"{\"id\":\"id-1\"}"[..])
        );
        // Another record's bytes, another host, another id, another mapping: not this answer.
        let changed = MadeOf::new(b"{\"UserID\":2}")
            .add(b"http://h/scim/v2")
            .finish();
        let host = MadeOf::new(b"{\"UserID\":1}")
            .add(b"http://g/scim/v2")
            .finish();
        assert_eq!(answers.get(&m, &id(1), changed), None);
        assert_eq!(answers.get(&m, &id(1), host), None);
        assert_eq!(answers.get(&m, &id(2), key), None);
        assert_eq!(answers.get(&other, &id(1), key), None);
        // A new answer for the id takes the old one's place.
        answers.put(&m, &id(1), changed, Bytes::from_static(b"{}"));
        assert_eq!(answers.get(&m, &id(1), key), None);
        assert_eq!(answers.size(), (1, 2));
    }

    #[test]
    fn inputs_do_not_run_together() {
        let a = MadeOf::new(b"ab").add(b"c").finish();
        let b = MadeOf::new(b"a").add(b"bc").finish();
        assert_ne!(a, b);
        let none = MadeOf::new(b"x").add_option(None).finish();
        let empty = MadeOf::new(b"x").add_option(Some(b"")).finish();
        assert_ne!(none, empty);
    }

    #[test]
    fn bounded_by_entries_and_bytes_keeping_what_is_read_again() {
        let m = mapping();
        let answers = Answers::default();
        let key = 7u128;
        for n in 0..HALF_ENTRIES {
            answers.put(&m, &id(n), key, Bytes::from_static(b"x"));
        }
        // Read again: moves to the newer generation when the older is dropped.
        answers.put(&m, &id(HALF_ENTRIES), key, Bytes::from_static(b"x"));
        assert!(answers.get(&m, &id(0), key).is_some());
        for n in HALF_ENTRIES + 1..3 * HALF_ENTRIES {
            answers.put(&m, &id(n), key, Bytes::from_static(b"x"));
        }
        assert!(answers.size().0 <= 2 * HALF_ENTRIES);
        assert!(
            answers.get(&m, &id(1), key).is_none(),
            "dropped with its generation"
        );

        let big = Bytes::from(vec![b'x'; LARGEST]);
        let fresh = Answers::default();
        for n in 0..3 * HALF_BYTES / LARGEST {
            fresh.put(&m, &id(n), key, big.clone());
        }
        assert!(fresh.size().1 <= 2 * HALF_BYTES, "{:?}", fresh.size());
        fresh.put(&m, &id(0), key, Bytes::from(vec![b'x'; LARGEST + 1]));
        assert!(fresh.get(&m, &id(0), key).is_none(), "too large to keep");
    }
}
