//! An idle keep-alive connection's heap: a counting global allocator measures what 500
//! connections, each after one request, keep while they wait for their next one: a
//! small bound in all, and almost nothing left behind by the request (its state is
//! freed with its answer). Debug-build sizes; `benches/load.sh` measures RSS in release.

mod common;

use common::proxy;

use std::time::Duration;

use lb_test_support::alloc::{live_bytes, Counting};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONNS: usize = 500;

/// Sends one GET on `s` and reads its answer (`Content-Length` framed).
async fn one_request(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if body.len() >= len {
                return;
            }
        }
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_keeps_little_heap() {
    // A backend that keeps nothing per request (a recording one would be counted too).
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let backend = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut at = 0;
                loop {
                    let Ok(n) = s.read(&mut buf[at..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    at += n;
                    while let Some(end) = buf[..at].windows(4).position(|w| w == b"\r\n\r\n") {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        buf.copy_within(end + 4..at, 0);
                        at -= end + 4;
                    }
                }
            });
        }
    });
    let p = proxy(&format!(
        "idle_timeout = \"60s\"\n[pool.web]\nbackends = [\"{backend}\"]\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n"
    ))
    .await;
    // Warm-up on one connection: one-time allocations (pools, buffers) are not counted.
    let mut w = TcpStream::connect(p.addr).await.expect("connect");
    for _ in 0..20 {
        one_request(&mut w).await;
    }
    drop(w);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = live_bytes();
    let mut conns = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let s = TcpStream::connect(p.addr).await.expect("connect");
        conns.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connected = live_bytes();
    for s in conns.iter_mut() {
        one_request(s).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = live_bytes();
    // The test's own streams are in the count too (tokio's registration of each, about
    // 260 B): the proxy's share is this less them.
    let per = after.saturating_sub(before) / CONNS;
    let accepted = connected.saturating_sub(before) / CONNS;
    println!(
        "heap per idle keep-alive connection (proxy and test client): {per} B \
         ({accepted} B before its first request)"
    );
    // 1,247 B in a debug build (1,839 before the connection future went from 920 to
    // 312 B): the future, tokio's task and socket registration (256 B each), the idle
    // timer (112 B), the drain list's slot, and the test client's own socket.
    assert!(per <= 1300, "an idle connection keeps {per} B of heap");
    // 15 B: the connection's slot in its listener's drain list, taken at its first wait
    // between requests.
    assert!(
        per <= accepted + 64,
        "a request leaves {} B behind on its idle connection",
        per - accepted
    );
    drop(conns);
}
