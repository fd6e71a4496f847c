//! Shared by the tunnel tests: connected loopback pairs, a tunnel task in the middle,
//! deterministic random payloads and an order-sensitive hash.
#![allow(dead_code)]
#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lb_core::server::tunnel::{splice_tcp, End};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Two ends of one loopback TCP connection.
pub async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = TcpStream::connect(l.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (b, _) = l.accept().await.expect("accept");
    (a, b)
}

/// What a tunnel task returns: how it ended and the shared totals (up, down).
pub type Outcome = (End, u64, u64);

/// A client socket and a backend socket joined by `splice_tcp` in a spawned task.
pub async fn tcp_tunnel(idle: Duration) -> (TcpStream, TcpStream, JoinHandle<Outcome>) {
    let (client, client_end) = pair().await;
    let (backend_end, backend) = pair().await;
    let task = tokio::spawn(async move {
        let totals = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let end = splice_tcp(&client_end, &backend_end, idle, &totals.0, &totals.1).await;
        let up = totals.0.load(Ordering::Relaxed);
        let down = totals.1.load(Ordering::Relaxed);
        (end, up, down)
    });
    (client, backend, task)
}

/// A xorshift generator: payloads differ byte by byte and from run to run of `seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Writes `len` random bytes from `seed` in chunks of varying size; returns their hash.
pub async fn send<W: AsyncWrite + Unpin>(w: &mut W, seed: u64, len: usize) -> u64 {
    let mut rng = Rng::new(seed);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 70_000];
    let mut left = len;
    let mut step = 1usize;
    while left > 0 {
        // Sizes from 1 byte to 70,000, so writes cross the buffer and pipe sizes.
        step = (step * 7 + 13) % buf.len() + 1;
        let n = step.min(left);
        rng.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        w.write_all(&buf[..n]).await.expect("send");
        left -= n;
    }
    h.digest()
}

/// Reads to EOF; returns the hash and the count of the bytes read.
pub async fn receive<R: AsyncRead + Unpin>(r: &mut R) -> (u64, u64) {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 50_000];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await.expect("receive");
        if n == 0 {
            return (h.digest(), total);
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
}
