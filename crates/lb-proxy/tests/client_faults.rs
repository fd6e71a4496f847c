//! Faults are attributed: a request body the client breaks (malformed chunks, a body
//! shorter than its `Content-Length`) is the client's `400`, and never counts against the
//! backend it was being sent to, however many such requests come.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every backend's state in `pool`, from the admin API.
async fn states(p: &Proxy, pool: &str) -> Vec<String> {
    let r = admin(p.admin, "GET", &format!("/api/v1/pools/{pool}"), None, None).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    v["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["state"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Writes `bytes`, half-closes, and reads the answer until EOF (or 5 s).
async fn send_and_shut(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn broken_request_bodies_are_the_clients_fault_and_eject_no_backend() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = proxy(&format!(
        "[pool.web]\nbackends = [\"{}\", \"{}\"]\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        a.addr, b.addr
    ))
    .await;
    // Default outlier settings: five failures in a row eject; 30 of each kind is far more.
    let malformed = b"POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz-not-a-size\r\n\r\n";
    let short = b"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100\r\n\r\nonly ten b";
    for i in 0..30 {
        for req in [&malformed[..], &short[..]] {
            let answer = send_and_shut(p.addr, req).await;
            let status = raw_status(&answer);
            assert!(
                status == 400 || status == 0,
                "request {i}: a broken body is the client's fault, got: {answer}"
            );
            if status == 400 {
                assert!(answer.contains("x-lb-error: bad-request"), "{answer}");
            }
        }
    }
    // The requests did reach the backends (their heads went out before the body broke).
    let accepts = a.accepts.load(std::sync::atomic::Ordering::SeqCst)
        + b.accepts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(accepts > 0, "no request was forwarded");
    assert_eq!(states(&p, "web").await, ["up", "up"]);
    // And both still serve.
    let m = spread(p.addr, "web.test", "/", 4).await;
    assert_eq!(m.len(), 2, "{m:?}");
}

/// A client that stops sending its body is the client's timeout: `408` after the
/// listener's `idle_timeout` without a body byte, however short the pool's
/// `response_timeout` (the backend waits on the client, so its timer waits too), and no
/// backend is marked down for it.
#[tokio::test]
async fn stalled_request_bodies_time_out_as_the_clients_and_eject_no_backend() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = proxy(&format!(
        "idle_timeout = \"1s\"\n\
         [pool.web]\nbackends = [\"{}\", \"{}\"]\nresponse_timeout = \"200ms\"\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        a.addr, b.addr
    ))
    .await;
    let stalled =
        b"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100\r\n\r\nonly ten b";
    let started = std::time::Instant::now();
    // Eight at once: more than the five failures in a row that would eject a backend.
    let addr = p.addr;
    let clients = (0..8).map(|_| async move {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(stalled).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    let tasks: Vec<_> = clients.map(tokio::spawn).collect();
    for t in tasks {
        let answer = t.await.expect("client task");
        assert_eq!(raw_status(&answer), 408, "{answer}");
        assert!(answer.contains("x-lb-error: header-timeout"), "{answer}");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "answered before idle_timeout: {took:?}"
    );
    assert_eq!(states(&p, "web").await, ["up", "up"]);
    let m = admin(p.admin, "GET", "/metrics", None, None).await.text();
    assert!(
        m.contains("lb_proxy_errors_total{reason=\"upstream-timeout\"} 0"),
        "{m}"
    );
}
