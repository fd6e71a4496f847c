//! WebSocket (HTTP/1.1 Upgrade) through the proxy, on raw loopback sockets: a backend doing
//! a real RFC 6455 handshake and echoing frames, closes passed on both ways, the
//! listener's `idle_timeout` on tunnels, non-101 answers relayed, no retry once sent.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// ---- SHA-1 (FIPS 180-4) and base64, just enough for Sec-WebSocket-Accept ----

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
                20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn accept_key(key: &str) -> String {
    base64(&sha1(
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    ))
}

#[test]
fn sha1_and_accept_key_match_the_rfc() {
    assert_eq!(
        sha1(b"abc"),
        [
            0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
            0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d
        ]
    );
    // RFC 6455 §1.3's example.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(base64(b"ab"), "YWI=");
}

// ---- frames ----

const TEXT: u8 = 1;
const BINARY: u8 = 2;
const CLOSE: u8 = 8;

fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// Reads one frame: (opcode, unmasked payload, was masked); `None` on EOF.
async fn decode(s: &mut TcpStream) -> Option<(u8, Vec<u8>, bool)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.ok()?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut key = [0u8; 4];
    if masked {
        s.read_exact(&mut key).await.ok()?;
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).await.ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Some((opcode, payload, masked))
}

/// Reads a head up to CRLFCRLF, byte by byte (nothing after it is consumed).
async fn read_head(s: &mut TcpStream) -> String {
    String::from_utf8_lossy(&read_head_bytewise(s).await).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---- the backend ----

/// What the WebSocket backend saw.
#[derive(Default)]
struct Seen {
    handshakes: AtomicUsize,
    /// Tunnels whose client side reached EOF at the backend.
    eofs: AtomicUsize,
}

/// A WebSocket echo backend. Paths: `/ws` echoes every masked frame unmasked (a close
/// frame is echoed, then the backend waits for EOF); `/ws/bye` echoes one message, then
/// closes the TCP connection itself; `/refuse` answers `403` with body `nope`.
async fn ws_backend() -> (SocketAddr, Arc<Seen>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let seen = s2.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                if path == "/refuse" {
                    let _ = s
                        .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 4\r\n\r\nnope")
                        .await;
                    // Keep reading: a pooled connection would see the next request here.
                    let head = read_head(&mut s).await;
                    if !head.is_empty() {
                        let _ = s
                            .write_all(b"HTTP/1.1 500 Reused\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                    return;
                }
                let upgrade = header(&head, "upgrade").unwrap_or("");
                let connection = header(&head, "connection").unwrap_or("");
                let Some(key) = header(&head, "sec-websocket-key") else {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 No Key\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                if !upgrade.eq_ignore_ascii_case("websocket")
                    || !connection.to_ascii_lowercase().contains("upgrade")
                {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Not An Upgrade\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                seen.handshakes.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept_key(key)
                );
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let mut echoed = 0;
                loop {
                    let Some((op, payload, masked)) = decode(&mut s).await else {
                        seen.eofs.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    // Clients must mask (RFC 6455 §5.1): the proxy passes frames untouched.
                    assert!(masked, "client frames arrive masked");
                    if s.write_all(&encode(op, &payload, None)).await.is_err() {
                        return;
                    }
                    echoed += 1;
                    if path == "/ws/bye" && echoed == 1 {
                        return; // drops the socket: the backend closes first
                    }
                }
            });
        }
    });
    (addr, seen, task)
}

// ---- the client ----

async fn start_proxy(backends: &[SocketAddr], listener_keys: &str, pool_keys: &str) -> Proxy {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    proxy_text(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{listener_keys}\n\
         [pool.ws]\nstrategy = \"round-robin\"\nbackends = [{}]\n{pool_keys}\n\
         [[route]]\nhost = \"ws.test\"\npool = \"ws\"\n",
        list.join(", ")
    ))
    .await
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Opens a connection to the proxy and sends an upgrade request for `path`; returns the
/// stream (positioned after the response head) and the head.
async fn upgrade(proxy: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: ws.test\r\nConnection: keep-alive, Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut s))
        .await
        .expect("response head in time");
    (s, head)
}

fn assert_switched(head: &str) {
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(
        header(head, "sec-websocket-accept"),
        Some(&*accept_key(KEY)),
        "{head}"
    );
    assert!(
        header(head, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")),
        "{head}"
    );
    assert!(
        header(head, "connection").is_some_and(|c| c.eq_ignore_ascii_case("upgrade")),
        "{head}"
    );
}

async fn echo(s: &mut TcpStream, opcode: u8, payload: &[u8]) {
    s.write_all(&encode(opcode, payload, Some([0x12, 0x34, 0x56, 0x78])))
        .await
        .expect("send frame");
    let got = tokio::time::timeout(Duration::from_secs(5), decode(s))
        .await
        .expect("echo in time")
        .expect("a frame");
    assert_eq!((got.0, got.1.as_slice(), got.2), (opcode, payload, false));
}

/// Reads until EOF (at most `secs`); true when the peer closed.
async fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(secs), s.read_to_end(&mut rest)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn messages_echo_both_ways_and_a_client_close_reaches_the_backend() {
    let (b, seen, _task) = ws_backend().await;
    let p = start_proxy(&[b], "", "").await;
    let (mut s, head) = upgrade(p.addr, "/ws").await;
    assert_switched(&head);
    echo(&mut s, TEXT, b"hello").await;
    echo(&mut s, BINARY, &[0u8, 1, 2, 255]).await;
    echo(&mut s, TEXT, &[b'm'; 300]).await;
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    echo(&mut s, BINARY, &big).await;
    echo(&mut s, TEXT, b"").await;
    // The closing handshake passes through like any frame.
    echo(&mut s, CLOSE, &1000u16.to_be_bytes()).await;
    // The client closes its side: the backend sees EOF, closes too, and so does the proxy.
    s.shutdown().await.expect("shutdown");
    assert!(
        eventually(Duration::from_secs(5), || async {
            seen.eofs.load(Ordering::SeqCst) == 1
        })
        .await,
        "the backend saw the client's close"
    );
    assert!(closed_within(&mut s, 5).await, "the client side closed too");
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 1);
    // The tunnel counted while open, and its bytes, are on /metrics.
    let m = admin(p.admin, "GET", "/metrics", None, None).await.text();
    assert!(
        eventually(Duration::from_secs(5), || async {
            admin(p.admin, "GET", "/metrics", None, None)
                .await
                .text()
                .contains("lb_tunnels_active 0")
        })
        .await,
        "{m}"
    );
    assert!(m.contains("lb_tunnel_bytes_total{direction=\"in\"}"), "{m}");
}

#[tokio::test]
async fn a_backend_close_reaches_the_client() {
    let (b, seen, _task) = ws_backend().await;
    let p = start_proxy(&[b], "", "").await;
    let (mut s, head) = upgrade(p.addr, "/ws/bye").await;
    assert_switched(&head);
    echo(&mut s, TEXT, b"last words").await;
    assert!(
        closed_within(&mut s, 5).await,
        "the backend's close reached the client"
    );
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn idle_tunnels_close_after_idle_timeout_and_active_ones_stay() {
    let (b, seen, _task) = ws_backend().await;
    let p = start_proxy(&[b], "idle_timeout = \"300ms\"", "").await;
    let (mut idle, head) = upgrade(p.addr, "/ws").await;
    assert_switched(&head);
    let (mut busy, head) = upgrade(p.addr, "/ws").await;
    assert_switched(&head);
    let t = Instant::now();
    let idle_check = tokio::spawn(async move {
        let closed = closed_within(&mut idle, 5).await;
        (closed, t.elapsed())
    });
    // The busy tunnel talks every 100 ms for well past the idle timeout.
    while t.elapsed() < Duration::from_millis(1200) {
        echo(&mut busy, TEXT, b"ping").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    echo(&mut busy, TEXT, b"still here").await;
    let (closed, after) = idle_check.await.expect("join");
    assert!(closed, "the idle tunnel was closed");
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_millis(2500),
        "closed after {after:?}, want ~300 ms"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            seen.eofs.load(Ordering::SeqCst) >= 1
        })
        .await,
        "the backend side of the idle tunnel was closed too"
    );
    assert_eq!(seen.eofs.load(Ordering::SeqCst), 1, "only the idle one");
}

#[tokio::test]
async fn a_non_101_answer_passes_through_and_its_connection_is_not_reused() {
    let (b, seen, _task) = ws_backend().await;
    let p = start_proxy(&[b], "", "").await;
    let (mut s, head) = upgrade(p.addr, "/refuse").await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let mut body = [0u8; 4];
    s.read_exact(&mut body).await.expect("body");
    assert_eq!(&body, b"nope");
    // The same client connection goes on as plain HTTP, on a new upstream connection (the
    // one that saw the upgrade request never goes back to the pool).
    s.write_all(b"GET /refuse HTTP/1.1\r\nHost: ws.test\r\n\r\n")
        .await
        .expect("write");
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut s))
        .await
        .expect("in time");
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_upgrade_is_not_retried_once_sent() {
    let (reset, reset_hits, _t1) = resetting_backend().await;
    let (b, seen, _t2) = ws_backend().await;
    let p = start_proxy(&[reset, b], "", "retries = 2").await;
    let (mut switched, mut failed) = (0, 0);
    for _ in 0..6 {
        let (_s, head) = upgrade(p.addr, "/ws").await;
        if head.starts_with("HTTP/1.1 101 ") {
            switched += 1;
        } else {
            assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
            failed += 1;
        }
    }
    assert!(
        failed > 0 && switched > 0,
        "{failed} failed, {switched} switched"
    );
    assert_eq!(reset_hits.load(Ordering::SeqCst), failed, "one try each");
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), switched);
    // A connect failure still moves an upgrade on.
    let gone = closed_port().await;
    let p = start_proxy(&[gone, b], "", "").await;
    for _ in 0..4 {
        let (_s, head) = upgrade(p.addr, "/ws").await;
        assert_switched(&head);
    }
}

/// An upgraded tunnel between plain TCP ends moves its bytes with splice(2): 32 MiB each
/// way arrive intact and in order (an echoing backend), the client's half-close reaches
/// the backend and the backend's close comes back, and the proxy's
/// `lb_tunnel_spliced_bytes_total` counts them.
#[tokio::test]
async fn a_plain_tunnel_is_spliced_intact_with_half_close() {
    const MIB: usize = 1 << 20;
    const TOTAL: usize = 32 * MIB;
    // A backend that answers 101 and echoes every byte until the client's FIN, then
    // closes.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = l.local_addr().expect("addr");
    let echoed = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let _ = read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await
            .expect("101");
        let (mut r, mut w) = s.split();
        let n = tokio::io::copy(&mut r, &mut w).await.expect("echo");
        w.shutdown().await.expect("close");
        n
    });
    let p = start_proxy(&[backend], "", "").await;
    let (s, head) = upgrade(p.addr, "/bulk").await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (mut r, mut w) = s.into_split();
    // A pattern that shows a lost, repeated or reordered byte.
    let byte = |i: usize| (i % 251) as u8;
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..MIB).map(byte).collect();
        for _ in 0..TOTAL / MIB {
            w.write_all(&chunk).await.expect("send");
        }
        // Half-close: the backend sees the end and closes its side.
        w.shutdown().await.expect("half-close");
    });
    let reader = async {
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).await.expect("receive");
            if n == 0 {
                return got;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, byte((got + k) % MIB), "byte {}", got + k);
            }
            got += n;
        }
    };
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the echo and the close in time");
    writer.await.expect("writer");
    assert_eq!(got, TOTAL, "every byte came back, then the backend's close");
    assert_eq!(echoed.await.expect("backend") as usize, TOTAL);
    let m = admin(p.admin, "GET", "/metrics", None, None).await.text();
    let spliced: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("lb_tunnel_spliced_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no spliced counter in:\n{m}"));
    assert!(
        spliced > (TOTAL as f64),
        "most of the {} bytes both ways went through splice(2): {spliced}",
        2 * TOTAL
    );
}
