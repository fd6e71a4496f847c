//! Key and identity hashing.
//!
//! Every hashing strategy hashes with xxh3-64 and the fixed seed [`SEED`], so placement is
//! the same in every process, on every restart and on every machine: two balancers with the
//! same membership send a key to the same backend without talking to each other. Changing
//! the seed moves every key; it is part of the on-disk contract and never changes.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The fixed seed of every placement hash (`"lb-ring1"` as little-endian bytes).
pub const SEED: u64 = u64::from_le_bytes(*b"lb-ring1");

/// Hashes a request key (a path capture, a header value, a client IP, ...).
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, SEED)
}

/// Hashes a backend's stable identity (its `id`, which defaults to its address).
#[inline]
pub fn hash_id(id: &str) -> u64 {
    xxh3_64_with_seed(id.as_bytes(), SEED ^ 0x9e37_79b9_7f4a_7c15)
}

/// A 64-bit finaliser (splitmix64's): spreads the bits of `x` over the whole word.
///
/// Used to derive per-node and per-vnode hashes from one id hash without hashing strings
/// again, and to step cheap pseudo-random numbers.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A fast per-thread pseudo-random `u64` (no syscall, no lock).
///
/// Seeded once per thread from the clock and the thread's stack address; only used where
/// the spec asks for randomness (`random`, `least-conn`, slow start, jitter), never for
/// placement.
pub fn thread_random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let local = 0u8;
            let addr = &local as *const u8 as u64;
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            mix64(addr ^ t.rotate_left(17))
        });
    }
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        mix64(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_fixed_across_processes() {
        // The placement contract: these values must never change.
        assert_eq!(hash_key(b""), xxh3_64_with_seed(b"", SEED));
        assert_ne!(hash_key(b"a"), hash_key(b"b"));
        assert_ne!(hash_id("a"), hash_key(b"a"));
    }

    #[test]
    fn thread_random_varies() {
        let a = thread_random();
        let b = thread_random();
        assert_ne!(a, b);
    }
}
