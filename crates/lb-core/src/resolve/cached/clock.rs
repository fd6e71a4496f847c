//! The CLOCK eviction ring and the name hasher of the cache map.
//!
//! CLOCK keeps the cached names in a ring of at most `capacity` slots. While the ring
//! has room a new name takes the next free slot. When it is full, the hand walks the
//! ring: an entry whose "referenced" bit is set (it was hit since the hand last passed)
//! has the bit cleared and is skipped; the first entry with a clear bit is evicted and
//! its slot reused. After one full turn every bit is clear, so the walk is bounded by
//! two turns.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// The eviction ring; guarded by the cache's writer lock.
#[derive(Debug)]
pub(super) struct Clock {
    slots: Vec<Arc<str>>,
    hand: usize,
    capacity: usize,
}

impl Clock {
    /// A ring for at most `capacity` (≥ 1) names.
    pub(super) fn new(capacity: usize) -> Self {
        Clock {
            slots: Vec::new(),
            hand: 0,
            capacity: capacity.max(1),
        }
    }

    /// The name in `slot`.
    pub(super) fn key(&self, slot: usize) -> Option<Arc<str>> {
        self.slots.get(slot).cloned()
    }

    /// Places a new name; returns its slot and the name evicted for it, if any.
    /// `referenced(name)` must return the name's bit and clear it.
    pub(super) fn place(
        &mut self,
        key: Arc<str>,
        mut referenced: impl FnMut(&str) -> bool,
    ) -> (usize, Option<Arc<str>>) {
        if self.slots.len() < self.capacity {
            self.slots.push(key);
            return (self.slots.len() - 1, None);
        }
        let len = self.slots.len();
        let mut victim = self.hand;
        for _ in 0..2 * len {
            victim = self.hand;
            self.hand = (self.hand + 1) % len;
            if !referenced(&self.slots[victim]) {
                break;
            }
        }
        let evicted = std::mem::replace(&mut self.slots[victim], key);
        (victim, Some(evicted))
    }
}

/// xxh3 over the name with a per-cache random seed (names come from clients, so a fixed
/// seed would let them aim collisions at one bucket).
#[derive(Clone, Debug)]
pub(super) struct NameHasher {
    seed: u64,
}

impl NameHasher {
    /// A hasher with a seed from the process's random source.
    pub(super) fn random() -> Self {
        NameHasher {
            seed: RandomState::new().hash_one(0x6c62_u64),
        }
    }
}

impl BuildHasher for NameHasher {
    type Hasher = NameHash;

    fn build_hasher(&self) -> NameHash {
        NameHash { state: self.seed }
    }
}

/// One hash computation; `str` hashes as `write(bytes)` then `write_u8(0xff)`.
#[derive(Debug)]
pub(super) struct NameHash {
    state: u64,
}

impl Hasher for NameHash {
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.state);
    }

    fn write_u8(&mut self, b: u8) {
        self.state = (self.state ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn clock_fills_then_evicts_unreferenced_first() {
        let mut clock = Clock::new(3);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(clock.place(Arc::from(name), |_| false), (i, None));
        }
        // "a" and "b" were referenced: the hand spares them once and evicts "c".
        let mut bits: HashSet<&str> = ["a", "b"].into_iter().collect();
        let (slot, evicted) = clock.place(Arc::from("d"), |k| bits.remove(k));
        assert_eq!((slot, evicted.as_deref()), (2, Some("c")));
        // Bits are now clear: the hand continues at "a".
        let (slot, evicted) = clock.place(Arc::from("e"), |_| false);
        assert_eq!((slot, evicted.as_deref()), (0, Some("a")));
        assert_eq!(clock.key(0).as_deref(), Some("e"));
    }

    #[test]
    fn clock_terminates_when_everything_is_referenced() {
        let mut clock = Clock::new(2);
        clock.place(Arc::from("a"), |_| true);
        clock.place(Arc::from("b"), |_| true);
        let (_, evicted) = clock.place(Arc::from("c"), |_| true);
        assert!(evicted.is_some());
    }

    #[test]
    fn hasher_is_seeded_and_deterministic_per_instance() {
        let h = NameHasher::random();
        assert_eq!(h.hash_one("a.example"), h.hash_one("a.example"));
        assert_ne!(h.hash_one("a.example"), h.hash_one("b.example"));
    }
}
