//! A rate limit's memory is bounded: a counting global allocator shows that its table is
//! allocated once, when it is built (about 70 bytes per key of `max_keys`), and that a
//! million requests of distinct keys allocate nothing more, while the table never holds
//! more than `max_keys` keys.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use lb_core::config::{KeySpec, RateLimitConfig};
use lb_proxy::limit::RateLimit;

/// Counts allocations and bytes per thread (the harness allocates on other threads).
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    // `try_with`: the thread-locals may already be gone while a thread shuts down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + size as u64));
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only
// const-initialised thread-local `Cell`s without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counts() -> (u64, u64) {
    (ALLOCS.with(Cell::get), BYTES.with(Cell::get))
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
