//! A 1 GiB transfer through `splice_tcp` completes with bounded memory: a counting global
//! allocator (its own test binary, so no other test allocates beside it) records the peak
//! of live heap bytes while the gibibyte crosses, and it stays within a few buffers.
#![allow(unsafe_code)]

mod tunnel_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lb_core::server::tunnel::End;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunnel_support::tcp_tunnel;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const GIB: u64 = 1 << 30;
const CHUNK: usize = 256 * 1024;

/// The payload is the sequence of little-endian u64 word indexes, so the receiver checks
/// every word without holding the sent bytes: a lost, duplicated or reordered byte shows.
fn fill(chunk: &mut [u8], first_word: u64) {
    for (i, w) in chunk.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(first_word + i as u64).to_le_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_crosses_with_bounded_memory() {
    let (client, backend, task) = tcp_tunnel(Duration::from_secs(60)).await;
    let (_cr, mut cw) = client.into_split();
    let (mut br, _bw) = backend.into_split();
    let mut out = vec![0u8; CHUNK];
    let mut inp = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    // Everything allocated so far stays; the peak is measured from here.
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let sender = tokio::spawn(async move {
        let mut word = 0u64;
        while word * 8 < GIB {
            fill(&mut out, word);
            cw.write_all(&out).await.expect("send");
            word += (CHUNK / 8) as u64;
        }
        cw.shutdown().await.expect("shutdown");
    });
    let mut got = 0u64;
    while got < GIB {
        br.read_exact(&mut inp).await.expect("receive");
        fill(&mut want, got / 8);
        assert!(inp == want, "bytes differ in the chunk at byte {got}");
        got += CHUNK as u64;
    }
    assert_eq!(
        br.read(&mut inp).await.expect("EOF"),
        0,
        "nothing after 1 GiB"
    );
    assert_eq!(got, GIB);
    sender.await.expect("join");
    drop(_bw);
    let (end, up, _down) = task.await.expect("join");
    let m = match end {
        End::Closed(m) | End::Idle(m) | End::Error(m, _) => m,
    };
    assert_eq!((m.up, up), (GIB, GIB), "{end:?}");
    assert!(
        m.spliced > GIB - (1 << 20),
        "the bulk went through splice(2): {m:?}"
    );
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(
        peak < 4 << 20,
        "peak heap growth while 1 GiB crossed: {peak} bytes"
    );
}
