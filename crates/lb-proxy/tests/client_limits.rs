//! The client connection layer: 408 header-timeout, the keep-alive idle timeout, 431
//! header-too-large and the request-smuggling 400, all on raw loopback sockets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy with `listener_keys` on its listener, in front of backend `b` for `web.test`.
async fn start(listener_keys: &str, b: &Backend) -> Proxy {
    proxy_text(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{listener_keys}\n\
         [pool.web]\nbackends = [\"{}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        b.addr
    ))
    .await
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n";

/// Reads until the peer closes (at most `secs`); returns what came and when the close came.
async fn read_to_close(s: &mut TcpStream, secs: u64) -> (String, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(secs), s.read_to_end(&mut out)).await;
    assert!(
        r.is_ok(),
        "the proxy did not close within {secs} s; got {out:?}"
    );
    (String::from_utf8_lossy(&out).into_owned(), t.elapsed())
}

/// Reads one response with a `content-length` body from a keep-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let fut = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return text;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("a response within 5 s")
}

/// Asserts a canned answer: status, `x-lb-error` and the plain-text body.
fn assert_canned(text: &str, status: u16, reason: &str) {
    assert_eq!(raw_status(text), status, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nx-lb-error: {reason}\r\n")),
        "{text}"
    );
    assert!(lower.contains("\r\ncontent-type: text/plain\r\n"), "{text}");
    assert!(text.ends_with(&format!("\r\n\r\n{reason}\n")), "{text}");
}

async fn error_count(p: &Proxy, reason: &str) -> u64 {
    let m = admin(p.admin, "GET", "/metrics", None, None).await.text();
    let needle = format!("lb_proxy_errors_total{{reason=\"{reason}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in metrics"))
}

#[tokio::test]
async fn partial_head_gets_408_after_header_timeout() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"400ms\"\nidle_timeout = \"10s\"", &b).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n")
        .await
        .expect("write");
    let (text, took) = read_to_close(&mut s, 5).await;
    assert_canned(&text, 408, "header-timeout");
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "408 after {took:?}"
    );
    assert_eq!(b.count(), 0);
    assert_eq!(error_count(&p, "header-timeout").await, 1);
}

#[tokio::test]
async fn silent_new_connection_gets_408() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"300ms\"\nidle_timeout = \"10s\"", &b).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let (text, took) = read_to_close(&mut s, 5).await;
    assert_canned(&text, 408, "header-timeout");
    assert!(took < Duration::from_secs(3), "408 after {took:?}");
}

/// One byte every 100 ms never finishes the head: the timer runs from the first byte and
/// is not pushed back by each read.
#[tokio::test]
async fn slow_trickle_gets_408_from_the_first_byte() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"500ms\"\nidle_timeout = \"10s\"", &b).await;
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: web.test\r\nX-Slow: {}",
        "a".repeat(100)
    );
    let trickle = tokio::spawn(async move {
        for byte in head.as_bytes() {
            if wr.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let t = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut out))
        .await
        .expect("closed within 5 s")
        .expect("read");
    let took = t.elapsed();
    trickle.abort();
    assert_canned(&String::from_utf8_lossy(&out), 408, "header-timeout");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
        "408 after {took:?}, with a byte every 100 ms"
    );
    assert_eq!(b.count(), 0);
}

/// Between requests the wait is `idle_timeout`, not `header_timeout`, and ends silently.
#[tokio::test]
async fn keep_alive_wait_uses_idle_timeout_and_closes_silently() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"300ms\"\nidle_timeout = \"1500ms\"", &b).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(GET).await.expect("write");
    assert_eq!(raw_status(&read_response(&mut s).await), 200);
    // Twice header_timeout with no byte: still open.
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write_all(GET).await.expect("write");
    assert_eq!(raw_status(&read_response(&mut s).await), 200);
    let (text, took) = read_to_close(&mut s, 6).await;
    assert_eq!(text, "", "closed without a word");
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_secs(5),
        "idle close after {took:?}"
    );
    assert_eq!(b.count(), 2);
}

/// After an idle pause the first byte of the next head starts `header_timeout`.
#[tokio::test]
async fn head_after_idle_pause_gets_408_from_its_first_byte() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"400ms\"\nidle_timeout = \"10s\"", &b).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(GET).await.expect("write");
    assert_eq!(raw_status(&read_response(&mut s).await), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.write_all(b"GET / HTTP/1.1\r\nHo").await.expect("write");
    let (text, took) = read_to_close(&mut s, 5).await;
    assert_canned(&text, 408, "header-timeout");
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "408 after {took:?}"
    );
}

/// A request in flight is not cut by the client idle or header timeouts.
#[tokio::test]
async fn slow_response_outlives_idle_and_header_timeouts() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"300ms\"\nidle_timeout = \"500ms\"", &b).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(b"GET /sleep HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    let text = read_response(&mut s).await;
    assert_eq!(raw_status(&text), 200, "{text}");
    // The connection is still usable afterwards.
    s.write_all(GET).await.expect("write");
    assert_eq!(raw_status(&read_response(&mut s).await), 200);
}

fn head_of(size: usize) -> Vec<u8> {
    let fixed = "GET / HTTP/1.1\r\nHost: web.test\r\nX-Pad: \r\n\r\n".len();
    let pad = "p".repeat(size - fixed);
    format!("GET / HTTP/1.1\r\nHost: web.test\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn head_over_max_header_bytes_is_431_with_x_lb_error() {
    let b = Backend::start("a").await;
    let p = start("max_header_bytes = 1024", &b).await;
    // Exactly at the limit: served.
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(&head_of(1024)).await.expect("write");
    assert_eq!(raw_status(&read_response(&mut s).await), 200);
    // One byte over, on the same keep-alive connection: 431, closed.
    s.write_all(&head_of(1025)).await.expect("write");
    let (text, _) = read_to_close(&mut s, 5).await;
    assert_canned(&text, 431, "header-too-large");
    // Far over (100 KiB; the client is still writing when the answer comes).
    let r = raw(p.addr, &head_of(100 * 1024)).await;
    assert_canned(&r, 431, "header-too-large");
    assert_eq!(b.count(), 1);
    assert_eq!(error_count(&p, "header-too-large").await, 2);
}

/// A backend that reads a head of any size and answers 200 `ok`, closing.
async fn lenient_backend() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 8192];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn more_than_100_header_lines_is_431_with_x_lb_error() {
    let backend = lenient_backend().await;
    let p = proxy_text(&format!(
        "{}[pool.web]\nbackends = [\"{backend}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        prologue(None)
    ))
    .await;
    let head = |n: usize| {
        let mut h = String::from("GET / HTTP/1.1\r\nHost: web.test\r\n");
        for i in 1..n {
            h.push_str(&format!("X-H{i}: v\r\n"));
        }
        h.push_str("Connection: close\r\n\r\n");
        h
    };
    // Host + 98 + Connection = 100 headers: hyper's limit, forwarded.
    let r = raw(p.addr, head(99).as_bytes()).await;
    assert_eq!(raw_status(&r), 200, "{r}");
    assert!(r.ends_with("ok"), "{r}");
    // 101 headers: refused by the proxy with its own answer.
    let r = raw(p.addr, head(100).as_bytes()).await;
    assert_canned(&r, 431, "header-too-large");
}

const SMUGGLE: &[u8] = b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: web.test\r\n\r\n";

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400_and_never_forwarded() {
    let b = Backend::start("a").await;
    let p = start("", &b).await;
    for bad in [
        SMUGGLE,
        b"POST / HTTP/1.1\r\nhost: web.test\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: web.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
    ] {
        let r = raw(p.addr, bad).await;
        assert_canned(&r, 400, "bad-request");
        assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{r}");
    }
    assert_eq!(b.count(), 0, "nothing reached the backend");
    assert_eq!(error_count(&p, "bad-request").await, 4);
}

/// The head arrives a byte per write, so the two header names are seen in different reads.
#[tokio::test]
async fn smuggling_split_across_reads_is_400() {
    let b = Backend::start("a").await;
    let p = start("", &b).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let head_end = SMUGGLE
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    for byte in &SMUGGLE[..head_end] {
        if s.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (text, _) = read_to_close(&mut s, 5).await;
    assert_canned(&text, 400, "bad-request");
    assert_eq!(b.count(), 0);
}

/// Requests pipelined before a smuggling attempt are served in order, then 400 and close:
/// after a bodiless GET, a `Content-Length` body and a chunked body with a trailer.
#[tokio::test]
async fn smuggling_after_pipelined_requests_is_400_after_their_answers() {
    let b = Backend::start("a").await;
    let p = start("", &b).await;
    let before: [&[u8]; 3] = [
        GET,
        b"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n",
    ];
    for (i, first) in before.iter().enumerate() {
        let served = b.count();
        let r = raw(p.addr, &[*first, SMUGGLE].concat()).await;
        let answers: Vec<&str> = r.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(answers.len(), 2, "case {i}: {r}");
        assert!(answers[0].starts_with("200 "), "case {i}: {r}");
        if i > 0 {
            assert!(
                answers[0].ends_with("\r\n\r\n5"),
                "case {i}: body of 5 bytes: {r}"
            );
        }
        assert_canned(&format!("HTTP/1.1 {}", answers[1]), 400, "bad-request");
        assert_eq!(
            b.count(),
            served + 1,
            "case {i}: only the first request was forwarded"
        );
    }
    let heads = b.heads.lock().expect("lock").clone();
    assert!(heads
        .iter()
        .all(|h| !h.contains_key("transfer-encoding") || !h.contains_key("content-length")));
}

/// The names must start a header line: the same words inside a value are not a header.
#[tokio::test]
async fn header_names_inside_values_are_not_smuggling() {
    let b = Backend::start("a").await;
    let p = start("", &b).await;
    let r = raw(
        p.addr,
        b"POST /upload HTTP/1.1\r\nHost: web.test\r\nX-Note: content-length: 5\r\nX-Content-Length: 9\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&r), 200, "{r}");
    assert!(r.ends_with("\r\n\r\n5"), "{r}");
    assert_eq!(b.count(), 1);
}

/// h2c with prior knowledge is not HTTP/1 framing: no 408 for its binary frames, and an
/// idle HTTP/2 connection outlives `header_timeout`.
#[tokio::test]
async fn h2c_prior_knowledge_is_left_alone() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"300ms\"\nidle_timeout = \"10s\"", &b).await;
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    for pause in [0, 700] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let req = hyper::Request::get("http://web.test/")
            .body(full(bytes::Bytes::new()))
            .expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(5), tx.send_request(req))
            .await
            .expect("answer within 5 s")
            .expect("h2 response");
        assert_eq!(resp.status(), 200, "after {pause} ms idle");
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
    }
    assert_eq!(b.count(), 2);
}

/// Heads hyper's parser refuses get our 400 with `x-lb-error` in place of hyper's, also
/// after a served request on the same connection.
#[tokio::test]
async fn malformed_heads_get_400_with_x_lb_error() {
    let b = Backend::start("a").await;
    let p = start("", &b).await;
    for bad in [
        &b"BLAH\r\n\r\n"[..],
        b"GET /\x01 HTTP/1.1\r\nHost: web.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web.test\r\nBad Header: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: five\r\n\r\nhello",
    ] {
        let r = raw(p.addr, bad).await;
        assert_canned(&r, 400, "bad-request");
        // The same after a good request on the connection.
        let r = raw(p.addr, &[GET, bad].concat()).await;
        let answers: Vec<&str> = r.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(answers.len(), 2, "{r}");
        assert!(answers[0].starts_with("200 "), "{r}");
        assert_canned(&format!("HTTP/1.1 {}", answers[1]), 400, "bad-request");
    }
    assert_eq!(b.count(), 5, "only the good requests were forwarded");
}

/// A backend's own 400 or 431 is relayed as it is, never taken for hyper's.
#[tokio::test]
async fn backend_400_and_431_are_relayed_unchanged() {
    let b = Backend::start("a").await;
    let p = start("", &b).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    for path in ["/status/400", "/status/431", "/status/400"] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: web.test\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let text = read_response(&mut s).await;
        assert_eq!(raw_status(&text), path[8..].parse::<u16>().expect("status"));
        assert!(!text.to_ascii_lowercase().contains("x-lb-error"), "{text}");
        assert!(text.ends_with("\r\n\r\na"), "the backend's body: {text}");
    }
    // Pipelined, three at once.
    let many = b"GET /status/400 HTTP/1.1\r\nHost: web.test\r\n\r\nGET /status/431 HTTP/1.1\r\nHost: web.test\r\n\r\nGET /status/400 HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n";
    let r = raw(p.addr, many).await;
    assert_eq!(r.matches("HTTP/1.1 ").count(), 3, "{r}");
    assert!(!r.to_ascii_lowercase().contains("x-lb-error"), "{r}");
    assert_eq!(b.count(), 6);
}

/// An HTTP/2 connection with no stream open is closed after `idle_timeout`; a stream
/// that takes longer than that is not cut.
#[tokio::test]
async fn h2c_idle_connection_closes_after_idle_timeout() {
    let b = Backend::start("a").await;
    let p = start("header_timeout = \"300ms\"\nidle_timeout = \"1s\"", &b).await;
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    // /sleep answers after 2 s: twice idle_timeout, with the stream open.
    let req = hyper::Request::get("http://web.test/sleep")
        .body(full(bytes::Bytes::new()))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(5), tx.send_request(req))
        .await
        .expect("answer within 5 s")
        .expect("h2 response");
    assert_eq!(resp.status(), 200);
    drop(resp);
    let t = Instant::now();
    // The client's connection task ends (cleanly or with an error) once the proxy closed.
    let _ended = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the proxy closed the idle h2 connection within 5 s")
        .expect("connection task");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "closed {took:?} after the last stream"
    );
}
