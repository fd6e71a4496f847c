//! A response body that stalls longer than the pool's `idle_timeout` is cut; one that keeps
//! moving, however slowly overall, is relayed whole.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that answers `Content-Length: len`, then writes the body one byte every `gap`,
/// stopping after `sent` bytes and holding the connection open.
async fn dribbling_backend(len: usize, sent: usize, gap: Duration) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..sent {
                    tokio::time::sleep(gap).await;
                    if s.write_all(b"x").await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(20)).await;
            });
        }
    });
    addr
}

fn config(backend: SocketAddr) -> String {
    format!("[pool.web]\nbackends = [\"{backend}\"]\nidle_timeout = \"400ms\"\n\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n")
}

/// Sends a GET and reads the answer to EOF, at most `limit`; returns the bytes and when it ended.
async fn fetch(proxy: SocketAddr, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while start.elapsed() < limit {
        match tokio::time::timeout(limit - start.elapsed(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if out.ends_with(b"xxxxxxxxxx") && out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    (out, start.elapsed())
}

fn body_len(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| raw.len() - i - 4)
}

#[tokio::test]
async fn a_stalled_body_is_cut_after_idle_timeout() {
    let backend = dribbling_backend(100, 3, Duration::from_millis(50)).await;
    let p = proxy(&config(backend)).await;
    let (raw, took) = fetch(p.addr, Duration::from_secs(5)).await;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(
        body_len(&raw),
        3,
        "truncated, never completed with made-up bytes"
    );
    assert!(
        took < Duration::from_secs(4),
        "the stall was cut by idle_timeout, took {took:?}"
    );
}

#[tokio::test]
async fn a_slow_but_moving_body_is_relayed_whole() {
    // 10 bytes, one every 200 ms: 2 s in all, five times idle_timeout, never idle for it.
    let backend = dribbling_backend(10, 10, Duration::from_millis(200)).await;
    let p = proxy(&config(backend)).await;
    let (raw, _) = fetch(p.addr, Duration::from_secs(8)).await;
    assert_eq!(body_len(&raw), 10, "{}", String::from_utf8_lossy(&raw));
}
