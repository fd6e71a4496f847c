//! Request framing on the wire (the rules listed in `src/http1/mod.rs`): raw bytes to the real proxy,
//! a backend that records every byte it receives, and for each rule the answer, that the
//! connection closes, and that nothing of the refused request reached the backend. Also
//! absolute-form targets, path routes by whole segments, and a keep-alive connection
//! that mixes methods and bodies.

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::time::Duration;

use common::*;
use recorder::Recorder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy routing `app.test` (and `other.test`) to the recorder.
async fn start(rec: &Recorder) -> Proxy {
    proxy(&format!(
        "[pool.app]\nbackends = [\"{}\"]\n\
         [[route]]\nhost = \"app.test\"\npool = \"app\"\n\
         [[route]]\nhost = \"other.test\"\npool = \"app\"\n",
        rec.addr
    ))
    .await
}

/// Writes `bytes` and reads until the proxy closes (at most 5 s; panics otherwise).
async fn send_to_close(s: &mut TcpStream, bytes: &[u8]) -> String {
    // The proxy may answer and close before it read everything: a failed write is fine.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) => return true,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                // A reset after the answer still closes the connection.
                Err(_) => return !out.is_empty(),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(
        r,
        Ok(true),
        "the proxy did not close within 5 s; got {text:?}"
    );
    text
}

/// A `400 bad-request` answer, the only response on the connection.
fn assert_bad_request(text: &str, what: &str) {
    assert_eq!(raw_status(text), 400, "{what}: {text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nx-lb-error: bad-request\r\n"),
        "{what}: {text}"
    );
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "{what}: one answer: {text}"
    );
}

/// One request per framing rule of `src/http1/mod.rs`, each with a unique path so the
/// recorder's bytes can be searched for it.
fn refused_requests() -> Vec<(&'static str, Vec<u8>)> {
    let cases: [(&str, &str); 18] = [
        ("CL with TE", "POST /r0 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("TE with CL", "POST /r1 HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"),
        ("differing CLs", "POST /r2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("CL list that differs", "POST /r3 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        ("CL not digits", "POST /r4 HTTP/1.1\r\nHost: app.test\r\nContent-Length: +5\r\n\r\nhello"),
        ("TE last not chunked", "POST /r5 HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello"),
        ("TE other coding", "POST /r6 HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("TE in HTTP/1.0", "POST /r7 HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("space before colon", "GET /r8 HTTP/1.1\r\nHost: app.test\r\nX-A : 1\r\n\r\n"),
        ("CL space before colon", "POST /r9 HTTP/1.1\r\nHost: app.test\r\nContent-Length : 5\r\n\r\nhello"),
        ("obs-fold", "GET /r10 HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n 2\r\n\r\n"),
        ("CR in value", "GET /r11 HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r2\r\n\r\n"),
        ("LF in value", "GET /r12 HTTP/1.1\r\nHost: app.test\r\nX-A: 1\n2\r\n\r\n"),
        ("NUL in value", "GET /r13 HTTP/1.1\r\nHost: app.test\r\nX-A: 1\x002\r\n\r\n"),
        ("no Host", "GET /r14 HTTP/1.1\r\nX-A: 1\r\n\r\n"),
        ("two Hosts", "GET /r15 HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n"),
        ("two equal Hosts", "GET /r16 HTTP/1.1\r\nHost: app.test\r\nHost: app.test\r\n\r\n"),
        ("Host disagrees with target", "GET http://other.test/r17 HTTP/1.1\r\nHost: app.test\r\n\r\n"),
    ];
    cases
        .iter()
        .map(|(n, r)| (*n, r.as_bytes().to_vec()))
        .collect()
}

/// The marker of a refused request in what the backend received: its path.
fn path_of(req: &[u8]) -> String {
    let line = String::from_utf8_lossy(req)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let target = line.split(' ').nth(1).unwrap_or("").to_owned();
    target
        .rsplit('/')
        .next()
        .map(|p| format!("/{p}"))
        .unwrap_or(target)
}

#[tokio::test]
async fn every_framing_rule_is_400_closed_and_never_forwarded() {
    let rec = Recorder::start().await;
    let p = start(&rec).await;
    for (what, req) in refused_requests() {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        let text = send_to_close(&mut s, &req).await;
        assert_bad_request(&text, what);
    }
    // A valid request afterwards is forwarded: the recorder works, and saw none before.
    let ok = raw(
        p.addr,
        b"GET /fine HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&ok), 200, "{ok}");
    assert_eq!(rec.requests(), vec!["GET /fine 0:".to_owned()]);
    let seen = String::from_utf8_lossy(&rec.bytes()).into_owned();
    for (what, req) in refused_requests() {
        let path = path_of(&req);
        assert!(
            !seen.contains(&format!("{path} ")),
            "{what}: {path} reached the backend: {seen}"
        );
    }
}

/// The same rules for a request that follows a POST on a kept-alive connection (the
/// connection is then served by hyper): the POST is answered, the bad request gets 400,
/// the connection closes, and the backend got the POST only.
#[tokio::test]
async fn framing_rules_hold_after_a_body_on_the_same_connection() {
    let rec = Recorder::start().await;
    let p = start(&rec).await;
    let first = b"POST /first HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\n\r\nhi";
    for (i, (what, req)) in refused_requests().into_iter().enumerate() {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        s.write_all(first).await.expect("write");
        let (head, body) = read_response(&mut s, false).await;
        assert_eq!(raw_status(&head), 200, "{what}: {head}");
        assert_eq!(body, b"POST /first 2:hi", "{what}");
        let text = send_to_close(&mut s, &req).await;
        assert_bad_request(&text, what);
        assert_eq!(rec.requests().len(), i + 1, "{what}: {:?}", rec.requests());
    }
    let seen = String::from_utf8_lossy(&rec.bytes()).into_owned();
    for (what, req) in refused_requests() {
        let path = path_of(&req);
        assert!(
            !seen.contains(&format!("{path} ")),
            "{what}: {path} reached the backend: {seen}"
        );
    }
}

/// Chunked bodies whose framing breaks after a good first chunk.
const MALFORMED_CHUNKS: [(&str, &[u8]); 4] = [
    ("bad chunk size", b"5\r\nhello\r\nzz\r\nhello\r\n0\r\n\r\n"),
    (
        "missing CRLF after data",
        b"5\r\nhello\r\n5\r\nworldX\r\n0\r\n\r\n",
    ),
    (
        "data longer than its size",
        b"5\r\nhello\r\n3\r\nworld\r\n0\r\n\r\n",
    ),
    ("bare LF after the size", b"5\nhello\r\n0\r\n\r\n"),
];

/// Malformed chunked bodies that arrive with their head (one write, as an attacker sends
/// them): `400 bad-request`, the connection closed, and not one byte of them at the
/// backend: the framing is checked before the head goes upstream.
#[tokio::test]
async fn malformed_chunked_bodies_sent_whole_never_reach_the_backend() {
    let rec = Recorder::start().await;
    let p = start(&rec).await;
    let overflow: (&str, &[u8]) = (
        "a chunk size that overflows",
        b"5\r\nhello\r\nfffffffffffffffffff\r\n",
    );
    for (what, body) in MALFORMED_CHUNKS.into_iter().chain([overflow]) {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        let mut req =
            b"POST /whole HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        req.extend_from_slice(body);
        let text = send_to_close(&mut s, &req).await;
        assert_bad_request(&text, what);
    }
    // A good one after them: the backend's first bytes are its.
    let ok = raw(p.addr, b"POST /ok HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n").await;
    assert_eq!(raw_status(&ok), 200, "{ok}");
    let seen = String::from_utf8_lossy(&rec.bytes()).into_owned();
    assert!(seen.starts_with("POST /ok "), "{seen}");
    assert!(
        !seen.contains("/whole"),
        "a refused request reached the backend: {seen}"
    );
}

/// Malformed chunked bodies: `400 bad-request` (not `502`), the connection closed; the
/// backend never gets a complete request from them, and each upstream connection that
/// carried part of one is closed, never reused.
#[tokio::test]
async fn malformed_chunked_bodies_are_400_and_the_upstream_connection_is_dropped() {
    let rec = Recorder::start().await;
    let p = start(&rec).await;
    for (what, body) in MALFORMED_CHUNKS {
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        let head = b"POST /chunks HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n";
        s.write_all(head).await.expect("write");
        // Let the head go upstream before the body arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = send_to_close(&mut s, body).await;
        assert_bad_request(&text, what);
        assert!(rec.requests().is_empty(), "{what}: {:?}", rec.requests());
    }
    let (accepted, ended) = (rec.accepted.clone(), rec.ended.clone());
    assert!(
        eventually(Duration::from_secs(5), || {
            let (a, e) = (accepted.clone(), ended.clone());
            async move {
                let a = a.load(std::sync::atomic::Ordering::SeqCst);
                a == e.load(std::sync::atomic::Ordering::SeqCst)
            }
        })
        .await,
        "every upstream connection of a refused body is closed"
    );
    let before = rec.accepted.load(std::sync::atomic::Ordering::SeqCst);
    let ok = raw(p.addr, b"POST /ok HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n").await;
    assert_eq!(raw_status(&ok), 200, "{ok}");
    assert_eq!(rec.requests(), vec!["POST /ok 2:ok".to_owned()]);
    assert_eq!(
        rec.accepted.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "a new connection"
    );
    let m = admin(p.admin, "GET", "/metrics", None, None).await.text();
    assert!(
        m.contains("lb_proxy_errors_total{reason=\"bad-request\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("lb_proxy_errors_total{reason=\"upstream-reset\"} 0"),
        "{m}"
    );
}

/// An absolute-form target names the host: routed by it when `Host` agrees (or is
/// absent in HTTP/1.0), refused when it disagrees.
#[tokio::test]
async fn absolute_form_targets_route_by_their_authority() {
    let rec = Recorder::start().await;
    let other = Recorder::start().await;
    let p = proxy(&format!(
        "[pool.app]\nbackends = [\"{}\"]\n[pool.other]\nbackends = [\"{}\"]\n\
         [[route]]\nhost = \"app.test\"\npool = \"app\"\n\
         [[route]]\nhost = \"other.test\"\npool = \"other\"\n",
        rec.addr, other.addr
    ))
    .await;
    let r = raw(
        p.addr,
        b"GET http://other.test/x?q=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&r), 200, "{r}");
    let r = raw(p.addr, b"GET http://OTHER.test:80/y HTTP/1.0\r\n\r\n").await;
    assert_eq!(raw_status(&r), 200, "{r}");
    assert_eq!(
        other.requests(),
        vec!["GET /x?q=1 0:".to_owned(), "GET /y 0:".to_owned()]
    );
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let text = send_to_close(
        &mut s,
        b"GET http://other.test/z HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
    assert_bad_request(&text, "Host disagrees");
    assert!(rec.bytes().is_empty() && other.requests().len() == 2);
}

/// `path_prefix` matches whole segments; `strip_prefix` forwards the rest from `/`,
/// query kept.
#[tokio::test]
async fn path_routes_match_whole_segments_and_strip_to_a_slash() {
    let api = Recorder::start().await;
    let web = Recorder::start().await;
    let p = proxy(&format!(
        "[pool.api]\nbackends = [\"{}\"]\n[pool.web]\nbackends = [\"{}\"]\n\
         [[route]]\nhost = \"app.test\"\npath_prefix = \"/api\"\nstrip_prefix = true\npool = \"api\"\n\
         [[route]]\nhost = \"app.test\"\npath_prefix = \"/v2/\"\npool = \"api\"\n\
         [[route]]\nhost = \"app.test\"\npool = \"web\"\n",
        api.addr, web.addr
    ))
    .await;
    for path in [
        "/api",
        "/api/",
        "/api/v1?x=1",
        "/api?x=1",
        "/apiary",
        "/ap",
        "/v2",
        "/v2/a",
        "/v2x",
    ] {
        let r = raw(
            p.addr,
            format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(raw_status(&r), 200, "{path}: {r}");
    }
    assert_eq!(
        api.requests(),
        [
            "GET / 0:",
            "GET / 0:",
            "GET /v1?x=1 0:",
            "GET /?x=1 0:",
            "GET /v2 0:",
            "GET /v2/a 0:"
        ]
    );
    assert_eq!(
        web.requests(),
        ["GET /apiary 0:", "GET /ap 0:", "GET /v2x 0:"]
    );
}

/// Reads one response: its head and body (`content-length`; none for `HEAD`). 1xx
/// interim responses are returned as heads with an empty body.
async fn read_response(s: &mut TcpStream, head_request: bool) -> (String, Vec<u8>) {
    let fut = async {
        let head = read_head_bytewise(s).await;
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.ends_with("\r\n\r\n"), "closed early: {head:?}");
        if raw_status(&head) < 200 || head_request {
            return (head, Vec::new());
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("content-length");
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.expect("body");
        (head, body)
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("a response within 5 s")
}

/// One keep-alive connection: GET, POST with a length, POST chunked (with an extension
/// and a trailer), HEAD, a 100-continue upload, an HTTP/1.0 keep-alive GET and a last GET:
/// every answer right and in order, and the backend got each body once.
#[tokio::test]
async fn keep_alive_connection_mixing_methods_and_bodies() {
    let rec = Recorder::start().await;
    let p = start(&rec).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let steps: [(&[u8], bool, &str); 4] = [
        (b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n", false, "GET /a 0:"),
        (b"POST /b HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello", false, "POST /b 5:hello"),
        (
            b"POST /c HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            false,
            "POST /c 5:abcde",
        ),
        (b"HEAD /d HTTP/1.1\r\nHost: app.test\r\n\r\n", true, ""),
    ];
    for (req, head_request, want) in steps {
        s.write_all(req).await.expect("write");
        let (head, body) = read_response(&mut s, head_request).await;
        assert_eq!(raw_status(&head), 200, "{head}");
        assert_eq!(String::from_utf8_lossy(&body), want, "{head}");
        if head_request {
            assert!(
                head.to_ascii_lowercase().contains("x-seen: head /d"),
                "{head}"
            );
        }
    }
    // Expect: 100-continue: the body is sent after the interim answer.
    s.write_all(
        b"PUT /e HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .expect("write");
    let (interim, _) = read_response(&mut s, false).await;
    assert_eq!(raw_status(&interim), 100, "{interim}");
    s.write_all(b"upload").await.expect("write");
    let (head, body) = read_response(&mut s, false).await;
    assert_eq!(
        (raw_status(&head), body.as_slice()),
        (200, &b"PUT /e 6:upload"[..]),
        "{head}"
    );
    // HTTP/1.0 asking for keep-alive stays open; then a last GET on the same connection.
    s.write_all(b"GET /f HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = read_response(&mut s, false).await;
    assert_eq!(
        (raw_status(&head), body.as_slice()),
        (200, &b"GET /f 0:"[..]),
        "{head}"
    );
    let text = send_to_close(
        &mut s,
        b"GET /g HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.ends_with("GET /g 0:"), "{text}");
    assert_eq!(
        rec.requests(),
        [
            "GET /a 0:",
            "POST /b 5:hello",
            "POST /c 5:abcde",
            "HEAD /d 0:",
            "PUT /e 6:upload",
            "GET /f 0:",
            "GET /g 0:"
        ]
    );
}

/// Pipelined: the same mix written at once is answered in order.
#[tokio::test]
async fn pipelined_mix_is_answered_in_order() {
    let rec = Recorder::start().await;
    let p = start(&rec).await;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(
        b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc\
          POST /3 HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n\
          HEAD /4 HTTP/1.1\r\nHost: app.test\r\n\r\n\
          GET /5 HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await
    .expect("write");
    for (head_request, want) in [
        (false, "GET /1 0:"),
        (false, "POST /2 3:abc"),
        (false, "POST /3 1:z"),
        (true, ""),
        (false, "GET /5 0:"),
    ] {
        let (head, body) = read_response(&mut s, head_request).await;
        assert_eq!(raw_status(&head), 200, "{head}");
        assert_eq!(String::from_utf8_lossy(&body), want);
    }
}
