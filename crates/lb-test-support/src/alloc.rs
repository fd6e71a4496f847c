//! A counting global allocator around [`System`], for tests that prove a path allocates
//! nothing or stays within a memory bound. Install it in its own test binary (no other test
//! allocating beside it):
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: lb_test_support::alloc::Counting = lb_test_support::alloc::Counting;
//! ```
//!
//! It keeps three counts: allocations on the current thread ([`thread_allocations`]),
//! allocations on threads that opted in with [`count_this_thread`] ([`tracked_allocations`],
//! for code running on a server thread), and live heap bytes with their peak ([`live_bytes`],
//! [`peak_bytes`], [`reset_peak`]).
// `GlobalAlloc` is an unsafe trait: implementing it is the one unsafe code in the workspace.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The counting allocator (a unit struct: install it with `#[global_allocator]`).
#[derive(Debug)]
pub struct Counting;

static TRACKED: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static HERE: Cell<u64> = const { Cell::new(0) };
    static TRACK_HERE: Cell<bool> = const { Cell::new(false) };
}

fn counted(grew: usize) {
    // `try_with`: the thread-locals may already be gone while a thread shuts down.
    let _ = HERE.try_with(|c| c.set(c.get() + 1));
    if TRACK_HERE.try_with(Cell::get).unwrap_or(false) {
        TRACKED.fetch_add(1, Ordering::Relaxed);
    }
    let now = LIVE.fetch_add(grew, Ordering::Relaxed) + grew;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only
// const-initialised thread-local `Cell`s without destructors and atomics, none of which
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        counted(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations (and reallocations) made so far on the calling thread.
pub fn thread_allocations() -> u64 {
    HERE.with(Cell::get)
}

/// Whether allocations on the calling thread count towards [`tracked_allocations`].
pub fn count_this_thread(on: bool) {
    TRACK_HERE.with(|c| c.set(on));
}

/// Allocations made so far on threads while [`count_this_thread`] was on.
pub fn tracked_allocations() -> u64 {
    TRACKED.load(Ordering::Relaxed)
}

/// Heap bytes allocated and not yet freed.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The most live heap bytes seen since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Restarts the peak from the current live bytes; returns them.
pub fn reset_peak() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}
