//! A 1 GiB transfer through `splice_tcp` completes with bounded memory: a counting global
//! allocator (its own test binary, so no other test allocates beside it) records the peak
//! of live heap bytes while the gibibyte crosses, and it stays within a few buffers.

mod tunnel_support;

use std::time::Duration;

use lb_core::server::tunnel::End;
use lb_test_support::alloc::{peak_bytes, reset_peak, Counting};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunnel_support::tcp_tunnel;

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
    let base = reset_peak();
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
    let peak = peak_bytes() - base;
    assert!(
        peak < 4 << 20,
        "peak heap growth while 1 GiB crossed: {peak} bytes"
    );
}
