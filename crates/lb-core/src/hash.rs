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

/// The seed of [`sticky_id`] (`"lb-stick"` as little-endian bytes): like [`SEED`], part
/// of the contract (a change makes every sticky cookie in the wild name no backend).
pub const STICKY_SEED: u64 = u64::from_le_bytes(*b"lb-stick");

/// The value a sticky-session cookie carries for a backend: a hash of its stable `id`
/// (never its address), the same in every process, so every balancer with the same
/// membership maps a cookie to the same backend. Distinct from [`hash_id`], so cookies
/// reveal nothing about ring placement. lb-proxy writes it as 16 lowercase hex digits.
#[inline]
pub fn sticky_id(id: &str) -> u64 {
    xxh3_64_with_seed(id.as_bytes(), STICKY_SEED)
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
    use proptest::prelude::*;

    #[test]
    fn key_hash_is_fixed_across_processes() {
        // The placement contract: these values must never change (a change moves every
        // key of every hashing strategy in every deployment).
        assert_eq!(hash_key(b""), xxh3_64_with_seed(b"", SEED));
        assert_eq!(hash_key(b""), 0xafc5_2a3b_fdd9_9a12);
        assert_eq!(hash_key(b"/documents/42"), 0xde20_0f71_99a2_be47);
        assert_eq!(hash_id("127.0.0.1:19001"), 0x6449_53f9_b82f_04c4);
        assert_eq!(SEED, 0x3167_6e69_722d_626c);
        assert_ne!(hash_key(b"a"), hash_key(b"b"));
        assert_ne!(hash_id("a"), hash_key(b"a"));
        assert_eq!(sticky_id("web-1"), xxh3_64_with_seed(b"web-1", STICKY_SEED));
        assert_ne!(sticky_id("a"), hash_id("a"));
    }

    #[test]
    fn mix64_is_splitmix64() {
        // splitmix64's published first outputs for state 0 (state += golden gamma, then
        // this finaliser): 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4.
        assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn thread_random_varies() {
        let a = thread_random();
        let b = thread_random();
        assert_ne!(a, b);
    }

    proptest! {
        /// Hashing is a pure function of the bytes, and a one-bit change of the key flips
        /// about half of the hash bits (what makes `hash mod n` and ring positions uniform).
        #[test]
        fn key_hash_is_pure_and_avalanches(key in proptest::collection::vec(any::<u8>(), 1..64), bit in 0usize..512) {
            prop_assert_eq!(hash_key(&key), hash_key(&key.clone()));
            let mut flipped = key.clone();
            let bit = bit % (key.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
            let diff = (hash_key(&key) ^ hash_key(&flipped)).count_ones();
            prop_assert!((10..=54).contains(&diff), "{} bits differ", diff);
        }

        /// `mix64` is a bijection (no two vnode/permutation inputs collide) and avalanches.
        #[test]
        fn mix64_is_injective_and_avalanches(a in any::<u64>(), b in any::<u64>(), bit in 0u32..64) {
            prop_assume!(a != b);
            prop_assert_ne!(mix64(a), mix64(b));
            let diff = (mix64(a) ^ mix64(a ^ (1 << bit))).count_ones();
            prop_assert!((10..=54).contains(&diff), "{} bits differ", diff);
        }
    }
}
