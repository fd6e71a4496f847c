//! A rate limit's memory is bounded: a counting global allocator shows that its table is
//! allocated once, when it is built (about 70 bytes per key of `max_keys`), and that a
//! million requests of distinct keys allocate nothing more, while the table never holds
//! more than `max_keys` keys.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use lb_core::config::{KeySpec, RateLimitConfig};
use lb_proxy::limit::RateLimit;
use lb_test_support::alloc::{live_bytes, thread_allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations on this thread, and the heap's live bytes (this binary runs one test).
fn counts() -> (u64, u64) {
    (thread_allocations(), live_bytes() as u64)
}

#[test]
fn a_million_distinct_keys_allocate_nothing_after_the_table() {
    const MAX_KEYS: usize = 100_000;
    let config = RateLimitConfig {
        key: KeySpec::ClientIp,
        count: NonZeroU32::new(1).unwrap_or(NonZeroU32::MIN),
        per: Duration::from_secs(60),
        burst: NonZeroU32::new(1).unwrap_or(NonZeroU32::MIN),
        max_keys: NonZeroUsize::new(MAX_KEYS).unwrap_or(NonZeroUsize::MIN),
    };
    let (a0, b0) = counts();
    let limit = RateLimit::new(config, "t".into(), Arc::default());
    let (a1, b1) = counts();
    let table = b1 - b0;
    println!(
        "table for {MAX_KEYS} keys: {table} bytes ({} per key) in {} allocations",
        table / MAX_KEYS as u64,
        a1 - a0
    );
    // Printing allocates (the harness captures the output): count from here.
    let (a1, b1) = counts();
    assert!(
        table <= 100 * MAX_KEYS as u64,
        "{table} bytes for {MAX_KEYS} keys"
    );
    let mut key = [0u8; 16];
    for i in 0..1_000_000u64 {
        key[..8].copy_from_slice(&i.to_le_bytes());
        // Every key is new: admitted (its first request), and its state kept.
        assert!(limit.check(&key).is_ok(), "key {i}");
        if i % 100_000 == 0 {
            assert!(limit.keys() <= MAX_KEYS);
        }
    }
    let (a2, b2) = counts();
    assert_eq!(a2 - a1, 0, "{} bytes allocated by requests", b2 - b1);
    assert_eq!(limit.keys(), MAX_KEYS);
    // The last key is still known: its second request within the minute is refused.
    key[..8].copy_from_slice(&999_999u64.to_le_bytes());
    assert!(limit.check(&key).is_err());
    assert_eq!(limit.limited(), 1);
}
