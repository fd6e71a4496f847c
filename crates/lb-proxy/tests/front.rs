//! The proxy's own HTTP/1.1 server for the common request (the HTTP/1 engine, `client::h1`), on raw
//! client sockets: keep-alive, pipelining, `Connection: close`, `HEAD`, response framing
//! (lengths, chunked, large bodies, bodies cut short), the `Date` field, heads split into
//! single bytes, the hand-over to hyper when a request has a body, and draining.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy routing `web.test` to `backend`.
async fn start(backend: SocketAddr) -> Proxy {
    proxy(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[pool.web]\nbackends = [\"{backend}\"]\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n"
    ))
    .await
}

/// A backend named `name`, a proxy in front of it and a client connection to the proxy
/// (with its read-ahead buffer).
async fn session(name: &str) -> (Backend, Proxy, TcpStream, Vec<u8>) {
    let b = Backend::start(name).await;
    let p = start(b.addr).await;
    let s = TcpStream::connect(p.addr).await.expect("connect");
    (b, p, s, Vec::new())
}

/// One response read off a keep-alive connection: its head (lower-cased names) and body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Reads exactly one response from `s` (bytes after it stay in `rest`): a
/// `content-length` body, a chunked body (decoded), or none for `HEAD`.
async fn read_answer(s: &mut TcpStream, rest: &mut Vec<u8>, head_request: bool) -> Answer {
    let fut = async {
        let head_end = loop {
            if let Some(i) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            fill(s, rest).await;
        };
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest.drain(..head_end);
        let mut a = Answer {
            status: raw_status(&head),
            head,
            body: Vec::new(),
        };
        if head_request {
            return a;
        }
        if let Some(n) = a.field("content-length") {
            let n: usize = n.parse().expect("content-length");
            while rest.len() < n {
                fill(s, rest).await;
            }
            a.body = rest.drain(..n).collect();
        } else if a.field("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    fill(s, rest).await;
                };
                let size = usize::from_str_radix(
                    std::str::from_utf8(&rest[..line_end]).expect("chunk line"),
                    16,
                )
                .expect("chunk size");
                rest.drain(..line_end + 2);
                while rest.len() < size + 2 {
                    fill(s, rest).await;
                }
                a.body.extend(rest.drain(..size));
                assert_eq!(&rest[..2], b"\r\n", "chunk data ends with CRLF");
                rest.drain(..2);
                if size == 0 {
                    break;
                }
            }
        }
        a
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("a response within 10 s")
}

/// Writes `request` and reads its response (see [`read_answer`]).
async fn ask(s: &mut TcpStream, rest: &mut Vec<u8>, request: &[u8]) -> Answer {
    s.write_all(request).await.expect("write");
    read_answer(s, rest, request.starts_with(b"HEAD ")).await
}

/// Asserts a 200 with `body`.
fn assert_ok(a: &Answer, body: &[u8]) {
    assert_eq!((a.status, a.body.as_slice()), (200, body), "{}", a.head);
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16384];
    let n = s.read(&mut chunk).await.expect("read");
    assert!(
        n > 0,
        "closed early after {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// True when the peer closes `s` within `secs` with nothing more to read.
async fn closes_within(s: &mut TcpStream, secs: u64) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(secs), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A backend that answers every request on a connection with the same raw bytes and
/// then, when `close` is set, closes.
async fn raw_backend(answer: &'static [u8], close: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut tmp = [0u8; 4096];
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    buf.clear();
                    if s.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_request_with_a_body_moves_the_connection_to_hyper_and_it_keeps_serving() {
    let (b, _p, mut s, mut rest) = session("a").await;

    let a = ask(
        &mut s,
        &mut rest,
        b"GET /first HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_ok(&a, b"a");

    // A body: served by hyper from here on, on the same connection.
    let a = ask(
        &mut s,
        &mut rest,
        b"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_ok(&a, b"5");

    let a = ask(
        &mut s,
        &mut rest,
        b"GET /third HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_ok(&a, b"a");
    assert_eq!(b.count(), 3);
    assert_eq!(b.accepts.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_b, _p, mut s, mut rest) = session("a").await;
    s.write_all(
        b"GET /status/201 HTTP/1.1\r\nHost: web.test\r\n\r\n\
          GET /status/202 HTTP/1.1\r\nHost: web.test\r\n\r\n\
          GET /status/203 HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await
    .expect("write");
    for want in [201, 202, 203] {
        let a = read_answer(&mut s, &mut rest, false).await;
        assert_eq!(a.status, want, "{}", a.head);
        assert_eq!(a.body, b"a");
    }
}

#[tokio::test]
async fn connection_close_is_answered_with_close_and_the_connection_ends() {
    let (b, _p, mut s, mut rest) = session("a").await;
    let a = ask(
        &mut s,
        &mut rest,
        b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.head);
    assert_eq!(
        a.field("connection").as_deref(),
        Some("close"),
        "{}",
        a.head
    );
    assert!(rest.is_empty(), "nothing after the response");
    assert!(
        closes_within(&mut s, 5).await,
        "the proxy closes after the response"
    );
    // The client's close is hop-by-hop: the backend does not see it.
    assert!(
        b.last_head().get("connection").is_none(),
        "{:?}",
        b.last_head()
    );
}

/// The last response of a connection leaves with its FIN (`ClientIo::write_last`): a large
/// one, to a client that waits before reading so that the proxy's writes block, still
/// arrives whole before the close, with a body and without (`HEAD`).
#[tokio::test]
async fn a_last_response_arrives_whole_before_the_close_even_when_writes_block() {
    let b = Backend::start("a").await;
    let p = start(b.addr).await;
    for (request, head_request) in [
        (
            &b"GET /download/3000000 HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"[..],
            false,
        ),
        (
            &b"HEAD / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n"[..],
            true,
        ),
    ] {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        s.write_all(request).await.expect("write");
        // Long enough for the proxy to fill the socket buffers and wait on them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
        assert!(matches!(read, Ok(Ok(_))), "read to the close: {read:?}");
        let end = got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4;
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 "), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        let body = &got[end..];
        if head_request {
            assert!(head.contains("\r\ncontent-length: 1\r\n"), "{head}");
            assert!(
                body.is_empty(),
                "no body after a HEAD: {} bytes",
                body.len()
            );
        } else {
            assert_eq!(body.len(), 3_000_000);
            assert!(body.iter().all(|&c| c == b'x'));
        }
    }
}

#[tokio::test]
async fn head_gets_the_length_and_no_body() {
    let (_b, _p, mut s, mut rest) = session("backend-a").await;
    let a = ask(
        &mut s,
        &mut rest,
        b"HEAD / HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.head);
    assert_eq!(
        a.field("content-length").as_deref(),
        Some("9"),
        "{}",
        a.head
    );
    // No body bytes: the next response on the connection starts right after the head.
    let a = ask(
        &mut s,
        &mut rest,
        b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_ok(&a, b"backend-a");
}

#[tokio::test]
async fn chunked_and_large_bodies_are_relayed_whole() {
    let chunked = raw_backend(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        false,
    )
    .await;
    let p = start(chunked).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let mut rest = Vec::new();
    for _ in 0..2 {
        let a = ask(
            &mut s,
            &mut rest,
            b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.head);
        assert_eq!(a.field("transfer-encoding").as_deref(), Some("chunked"));
        assert_eq!(a.body, b"hello world");
    }

    let (_b, _p, mut s, mut rest) = session("a").await;
    // Larger than one coalesced write, and than the socket buffers.
    for n in [100_000usize, 3_000_000] {
        let a = ask(
            &mut s,
            &mut rest,
            format!("GET /download/{n} HTTP/1.1\r\nHost: web.test\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.head);
        assert_eq!(a.body.len(), n);
        assert!(a.body.iter().all(|&c| c == b'x'));
    }
}

/// A body of many small chunks from a fast backend (on its own thread), to a client that
/// does not read: the proxy stops reading from the backend once the sockets' buffers are
/// full (backpressure), and then relays every byte. (This guards backpressure on the
/// path that gathers small frames into one write; it passed before that gathering was
/// bounded at 16 KiB too, holding 7 to 8 MiB, so it does not show the bound itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_chunks_to_a_client_that_does_not_read_are_held_back_at_the_backend() {
    const CHUNK: usize = 1024;
    const CHUNKS: usize = 256 * 1024; // 256 MiB
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let count = written.clone();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
        chunk.extend(std::iter::repeat_n(b'x', CHUNK));
        chunk.extend_from_slice(b"\r\n");
        // 64 chunks per write: the proxy reads many small chunks at a time.
        let batch = chunk.repeat(64);
        if s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        for _ in 0..CHUNKS / 64 {
            if s.write_all(&batch).await.is_err() {
                return;
            }
            count.fetch_add(64 * CHUNK, std::sync::atomic::Ordering::SeqCst);
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
    });
    let p = start(addr).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = written.load(std::sync::atomic::Ordering::SeqCst);
    // Loopback's socket buffers (backend to proxy, proxy to client) hold a few MiB each;
    // without backpressure the whole 256 MiB is gone in well under a second.
    assert!(
        held < 64 << 20,
        "the backend wrote {held} bytes while the client read nothing"
    );
    let mut got = 0usize;
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let read_all = async {
        loop {
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got += n;
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(16);
            tail.drain(..keep);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the whole body within 60 s");
    assert!(tail.ends_with(b"0\r\n\r\n"), "the last chunk: {tail:?}");
    let framing = format!("{CHUNK:x}\r\n\r\n").len();
    assert!(got > CHUNKS * (CHUNK + framing), "{got} bytes");
    assert_eq!(
        written.load(std::sync::atomic::Ordering::SeqCst),
        CHUNKS * CHUNK
    );
}

#[tokio::test]
async fn a_body_cut_short_ends_the_connection_without_padding() {
    let short = raw_backend(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabcd", true).await;
    let p = start(short).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the proxy closes the connection");
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.contains("content-length: 10"), "{head}");
    assert_eq!(body, "abcd", "the four bytes that came, nothing made up");
}

#[tokio::test]
async fn answers_of_the_proxy_carry_date_and_length() {
    let (_b, _p, mut s, mut rest) = session("a").await;
    let a = ask(
        &mut s,
        &mut rest,
        b"GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.head);
    assert_eq!(a.field("x-lb-error").as_deref(), Some("unknown-host"));
    let date = a.field("date").expect("a date field");
    assert!(
        date.ends_with(" GMT") && date.len() == 29,
        "IMF-fixdate: {date}"
    );
    assert_eq!(
        a.field("content-length"),
        Some(a.body.len().to_string()),
        "{}",
        a.head
    );
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_served() {
    let (b, _p, mut s, mut rest) = session("a").await;
    s.set_nodelay(true).expect("nodelay");
    for &byte in b"GET /slow HTTP/1.1\r\nHost: web.test\r\nX-Extra: 1\r\n\r\n" {
        s.write_all(&[byte]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let a = read_answer(&mut s, &mut rest, false).await;
    assert_ok(&a, b"a");
    assert_eq!(
        b.last_head().get("x-extra").map(|v| v.as_bytes().to_vec()),
        Some(b"1".to_vec())
    );
}

#[tokio::test]
async fn draining_closes_idle_connections_and_finishes_requests_in_flight() {
    let b = Backend::start("a").await;
    let p = start(b.addr).await;
    let addr = p.addr;
    // One idle keep-alive connection, one with a slow request in flight.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let mut rest = Vec::new();
    let a = ask(
        &mut idle,
        &mut rest,
        b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_ok(&a, b"a");
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    busy.write_all(b"GET /sleep HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let drained = tokio::spawn(p.app.shutdown(Duration::from_secs(20)));
    assert!(
        closes_within(&mut idle, 2).await,
        "the idle connection closes at once"
    );
    let mut rest = Vec::new();
    let a = read_answer(&mut busy, &mut rest, false).await;
    assert_eq!(a.status, 200, "the request in flight finishes: {}", a.head);
    assert_eq!(
        a.field("connection").as_deref(),
        Some("close"),
        "{}",
        a.head
    );
    assert!(
        closes_within(&mut busy, 2).await,
        "and its connection closes"
    );
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the drain ends with the last connection")
        .expect("shutdown task");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn http_1_0_requests_are_served_and_closed() {
    let b = Backend::start("a").await;
    let p = start(b.addr).await;
    let text = raw(p.addr, b"GET / HTTP/1.0\r\nHost: web.test\r\n\r\n").await;
    assert_eq!(raw_status(&text), 200, "{text}");
    assert!(text.ends_with("\r\n\r\na"), "{text}");
}

/// The values of `name` in `h`, as text.
fn all(h: &hyper::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("<bytes>").to_owned())
        .collect()
}

#[tokio::test]
async fn fields_kept_as_bytes_reach_the_backend_with_the_forwarding_fields_replaced() {
    let b = Backend::start("a").await;
    // One route without header edits (the fields go upstream as the client's lines) and
    // one with them (the fields become a header map first).
    let p = proxy(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[pool.web]\nbackends = [\"{}\"]\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n\
         [[route]]\nhost = \"edit.test\"\npool = \"web\"\n\
         set_headers = {{ \"x-set\" = \"s1\", \"x-custom\" = \"replaced\" }}\n\
         remove_headers = [\"x-gone\"]\n",
        b.addr
    ))
    .await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let mut rest = Vec::new();
    for host in ["WEB.test", "Edit.Test"] {
        let head = format!(
            "GET /p?q=1 HTTP/1.1\r\nHOST: {host}\r\nX-Forwarded-Proto: https\r\n\
             x-forwarded-host: evil.test\r\nX-Forwarded-For: 203.0.113.7\r\n\
             X-Custom:  spaced value \r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\n\
             X-Gone: 1\r\nCookie: a=1\r\nConnection: keep-alive\r\n\r\n"
        );
        let a = ask(&mut s, &mut rest, head.as_bytes()).await;
        assert_ok(&a, b"a");
        let h = b.last_head();
        let lower = host.to_ascii_lowercase();
        assert_eq!(all(&h, "host"), [host], "{host}");
        assert_eq!(all(&h, "x-forwarded-proto"), ["http"], "{host}");
        assert_eq!(all(&h, "x-forwarded-host"), [lower.as_str()], "{host}");
        assert_eq!(
            all(&h, "x-forwarded-for"),
            ["203.0.113.7, 127.0.0.1"],
            "{host}"
        );
        assert_eq!(all(&h, "cookie"), ["a=1"], "{host}");
        let ids = all(&h, "x-request-id");
        assert!(
            ids.len() == 1 && ids[0].len() == 32 && ids[0].bytes().all(|c| c.is_ascii_hexdigit()),
            "{ids:?}"
        );
        for hop in ["keep-alive", "proxy-connection"] {
            assert!(all(&h, hop).is_empty(), "{host}: {hop} relayed: {h:?}");
        }
        if host == "WEB.test" {
            assert_eq!(all(&h, "x-custom"), ["spaced value"]);
            assert_eq!(all(&h, "x-gone"), ["1"]);
            assert!(all(&h, "x-set").is_empty());
        } else {
            assert_eq!(all(&h, "x-custom"), ["replaced"]);
            assert!(all(&h, "x-gone").is_empty());
            assert_eq!(all(&h, "x-set"), ["s1"]);
        }
    }
    // A request id the client sent is kept, once.
    let a = ask(
        &mut s,
        &mut rest,
        b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Request-Id: mine\r\n\r\n",
    )
    .await;
    assert_ok(&a, b"a");
    assert_eq!(all(&b.last_head(), "x-request-id"), ["mine"]);
    assert_eq!(all(&b.last_head(), "x-forwarded-for"), ["127.0.0.1"]);
}
