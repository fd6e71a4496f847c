//! The proxy's own HTTP/1.1 client towards backends, against raw TCP backends that send
//! exact bytes: response framing (chunked with trailers and extensions, close-delimited,
//! HEAD, 204/304, 1xx), heads split into single bytes, truncated and malformed answers,
//! the 64 KiB head limit, and when an upstream connection is (not) reused.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Handler = Arc<dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A raw backend: every accepted connection is given to `handler`; accepts are counted.
async fn raw_backend(handler: Handler) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let n = accepts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_nodelay(true);
            tokio::spawn(handler(s));
        }
    });
    (addr, accepts)
}

/// Reads one request head (through the blank line) into text, keeping what follows in
/// `buf`; `None` at EOF.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..i + 4).collect();
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        let mut tmp = [0u8; 8192];
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// A backend answering every request on a connection with `answer(i)` (i counts the
/// connection's requests); after the answer, the connection closes when `close(i)`.
fn scripted(
    answer: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
    close: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> Handler {
    scripted_after(|_| Duration::ZERO, answer, close)
}

/// Like [`scripted`], with request i answered `delay(i)` after its head arrived.
fn scripted_after(
    delay: impl Fn(usize) -> Duration + Send + Sync + 'static,
    answer: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
    close: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> Handler {
    let delay = Arc::new(delay);
    let answer = Arc::new(answer);
    let close = Arc::new(close);
    Arc::new(move |mut s| {
        let delay = delay.clone();
        let answer = answer.clone();
        let close = close.clone();
        Box::pin(async move {
            let mut buf = Vec::new();
            let mut i = 0;
            while read_head(&mut s, &mut buf).await.is_some() {
                let wait = delay(i);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if s.write_all(&answer(i)).await.is_err() {
                    return;
                }
                if close(i) {
                    return;
                }
                i += 1;
            }
        })
    })
}

fn pool(backend: SocketAddr, extra: &str) -> String {
    format!(
        "[pool.web]\nbackends = [\"{backend}\"]\n{extra}\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n"
    )
}

/// A keep-alive HTTP/1.1 client connection to the proxy.
async fn client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    tx
}

/// Sends `req` on `tx` and reads the whole answer: status, headers, body, trailers.
async fn exchange(
    tx: &mut hyper::client::conn::http1::SendRequest<TestBody>,
    req: Request<TestBody>,
) -> Result<(u16, hyper::HeaderMap, Bytes, Option<hyper::HeaderMap>), String> {
    let fut = async {
        tx.ready().await.map_err(|e| e.to_string())?;
        let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.map_err(|e| e.to_string())?;
        let trailers = collected.trailers().cloned();
        Ok((
            parts.status.as_u16(),
            parts.headers,
            collected.to_bytes(),
            trailers,
        ))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "client timeout".to_owned())?
}

fn get_req(path: &str) -> Request<TestBody> {
    req("GET", "web.test", path, &[])
}

/// Three GETs over one client connection, each answered `ok` on an upstream connection of
/// its own (the backend's accept count rises by one each time), `pause` after each.
async fn three_gets_on_new_upstreams(proxy: SocketAddr, accepts: &AtomicUsize, pause: Duration) {
    let mut tx = client(proxy).await;
    for n in 1..=3 {
        let (status, _, body, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        assert_eq!(accepts.load(Ordering::SeqCst), n);
        tokio::time::sleep(pause).await;
    }
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n\
5\r\nhello\r\n6;name=value;other\r\n world\r\n0\r\nx-sum: 42\r\nx-more: yes\r\n\r\n";

#[tokio::test]
async fn chunked_with_extensions_and_trailers_reaches_clients() {
    let (b, accepts) = raw_backend(scripted(|_| CHUNKED.to_vec(), |_| false)).await;
    let p = proxy(&pool(b, "")).await;
    // HTTP/1.1 client: the whole body, re-chunked by the proxy; the connection is reused.
    let mut tx = client(p.addr).await;
    for _ in 0..3 {
        let ask = req("GET", "web.test", "/", &[("te", "trailers")]);
        let (status, headers, body, trailers) = exchange(&mut tx, ask).await.expect("answer");
        assert_eq!(status, 200);
        assert_eq!(body, "hello world");
        assert!(headers.get("content-length").is_none());
        // The trailer the backend declared in `Trailer` reaches an HTTP/1.1 client that
        // accepts trailers (`TE: trailers`); hyper's server sends only declared ones.
        assert_eq!(
            headers.get("trailer").map(|v| v.as_bytes()),
            Some(&b"x-sum"[..])
        );
        let trailers = trailers.expect("trailers reach the HTTP/1.1 client");
        assert_eq!(trailers["x-sum"], "42");
        assert!(trailers.get("x-more").is_none());
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        1,
        "chunked bodies end cleanly"
    );
    // HTTP/2 (h2c) client: the trailers arrive as a trailers frame.
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let r = Request::get("http://web.test/")
        .body(full(Bytes::new()))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), h2.send_request(r))
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reach the h2 client");
    assert_eq!(trailers["x-sum"], "42");
    assert_eq!(trailers["x-more"], "yes");
    assert_eq!(collected.to_bytes(), "hello world");
}

#[tokio::test]
async fn close_delimited_body_arrives_whole_and_connection_is_not_reused() {
    let body = "x".repeat(100_000);
    let answer = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}");
    let (b, accepts) = raw_backend(scripted(move |_| answer.clone().into_bytes(), |_| true)).await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    for n in 1..=2 {
        let (status, _, got, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
        assert_eq!(status, 200);
        assert_eq!(got.len(), body.len());
        assert!(got.iter().all(|&c| c == b'x'));
        assert_eq!(
            accepts.load(Ordering::SeqCst),
            n,
            "a new connection per request"
        );
    }
}

#[tokio::test]
async fn head_204_304_have_no_body_and_keep_the_connection() {
    // One connection answers, in turn: HEAD (length 1000, no body), 204, 304, then a
    // normal 200. Were any body read after the first three, the 200 would be lost.
    let answers = [
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_owned(),
        "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
        "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 55\r\n\r\n".to_owned(),
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone".to_owned(),
    ];
    let (b, accepts) = raw_backend(scripted(
        move |i| answers[i.min(3)].clone().into_bytes(),
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    let (status, headers, body, _) = exchange(&mut tx, req("HEAD", "web.test", "/", &[]))
        .await
        .expect("HEAD");
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "1000");
    assert!(body.is_empty());
    let (status, _, body, _) = exchange(&mut tx, get_req("/a")).await.expect("204");
    assert_eq!((status, body.len()), (204, 0));
    let (status, headers, body, _) = exchange(&mut tx, get_req("/b")).await.expect("304");
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(headers["etag"], "\"v1\"");
    let (status, _, body, _) = exchange(&mut tx, get_req("/c")).await.expect("200");
    assert_eq!((status, &body[..]), (200, &b"done"[..]));
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn interim_100_continue_is_skipped() {
    let (b, accepts) = raw_backend(scripted(
        |_| {
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-final: 1\r\n\r\nok"
                .to_vec()
        },
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    for _ in 0..2 {
        let (status, headers, body, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
        assert_eq!(status, 200);
        assert_eq!(headers["x-final"], "1");
        assert_eq!(body, "ok");
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn head_written_one_byte_at_a_time() {
    let handler: Handler = Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let mut buf = Vec::new();
            while read_head(&mut s, &mut buf).await.is_some() {
                let answer = b"HTTP/1.1 200 OK\r\nx-split: yes\r\nContent-Length: 5\r\n\r\nsplit";
                for byte in answer {
                    if s.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    });
    let (b, accepts) = raw_backend(handler).await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    for _ in 0..2 {
        let (status, headers, body, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
        assert_eq!(status, 200);
        assert_eq!(headers["x-split"], "yes");
        assert_eq!(headers["content-length"], "5");
        assert_eq!(body, "split");
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn body_cut_short_is_an_error_not_a_hang() {
    let (b, _) = raw_backend(scripted(
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
        |_| true,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    match exchange(&mut tx, get_req("/")).await {
        Err(e) => assert!(!e.contains("client timeout"), "hung: {e}"),
        Ok((status, _, body, _)) => panic!("complete answer {status} {body:?} from a cut body"),
    }
    // Chunked, cut inside a chunk: the same.
    let (b, _) = raw_backend(scripted(
        |_| b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc".to_vec(),
        |_| true,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    match exchange(&mut tx, get_req("/")).await {
        Err(e) => assert!(!e.contains("client timeout"), "hung: {e}"),
        Ok((status, _, body, _)) => panic!("complete answer {status} {body:?} from a cut body"),
    }
}

async fn bad_answer_is_502(answer: Vec<u8>) {
    let (b, _) = raw_backend(scripted(move |_| answer.clone(), |_| true)).await;
    let p = proxy(&pool(b, "")).await;
    let r = get(p.addr, "web.test", "/").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-lb-error"), "upstream-reset");
}

#[tokio::test]
async fn malformed_heads_are_502() {
    bad_answer_is_502(b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
    bad_answer_is_502(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n".to_vec()).await;
    bad_answer_is_502(b"SMTP ready\r\n\r\n".to_vec()).await;
    bad_answer_is_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            .to_vec(),
    )
    .await;
    bad_answer_is_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
    )
    .await;
}

#[tokio::test]
async fn head_over_64_kib_is_502() {
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..90 {
        answer.extend_from_slice(format!("x-big-{i}: {}\r\n", "v".repeat(800)).as_bytes());
    }
    answer.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    assert!(answer.len() > 64 * 1024);
    bad_answer_is_502(answer).await;
    // Over 100 fields (though small) is refused as well.
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..120 {
        answer.extend_from_slice(format!("x-f{i}: 1\r\n").as_bytes());
    }
    answer.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    bad_answer_is_502(answer).await;
    // Just under the limit passes.
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..70 {
        answer.extend_from_slice(format!("x-big-{i}: {}\r\n", "v".repeat(800)).as_bytes());
    }
    answer.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
    let (b, _) = raw_backend(scripted(move |_| answer.clone(), |_| false)).await;
    let p = proxy(&pool(b, "")).await;
    let r = get(p.addr, "web.test", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
}

#[tokio::test]
async fn connection_close_and_http10_answers_are_not_reused() {
    let (b, accepts) = raw_backend(scripted(
        |_| b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        // The backend keeps its end open: only the header tells the proxy.
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    three_gets_on_new_upstreams(p.addr, &accepts, Duration::ZERO).await;
    let (b, accepts) = raw_backend(scripted(
        |_| b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    for n in 1..=2 {
        // (An HTTP/1.0 answer also ends the client's connection, as with hyper's client.)
        let r = get(p.addr, "web.test", "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        assert_eq!(accepts.load(Ordering::SeqCst), n);
    }
}

/// A response's hop-by-hop fields stay on the upstream hop: `Keep-Alive`, `Connection` and
/// the fields `Connection` names never reach the client, and end-to-end fields do; the
/// connection options still decide reuse (`keep-alive`: reused, `close`: not).
#[tokio::test]
async fn response_hop_by_hop_fields_are_not_relayed() {
    let (b, accepts) = raw_backend(scripted(
        |i| {
            let connection = if i == 0 {
                "keep-alive, x-resp-hop"
            } else {
                "close, x-resp-hop"
            };
            format!(
                "HTTP/1.1 200 OK\r\nConnection: {connection}\r\nKeep-Alive: timeout=5\r\n\
                 X-Resp-Hop: 1\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
            )
            .into_bytes()
        },
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    for n in [1, 1, 2] {
        let (status, headers, body, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        assert_eq!(headers["x-kept"], "yes", "{headers:?}");
        for hop in ["keep-alive", "x-resp-hop", "connection"] {
            assert!(!headers.contains_key(hop), "{hop} relayed: {headers:?}");
        }
        // The first answer's connection is reused once; the second says close.
        assert_eq!(accepts.load(Ordering::SeqCst), n);
    }
}

/// The response timeout on a pooled connection, whose one timer is re-armed lazily: a
/// timer left from an earlier exchange (fired while the connection idled, or due in the
/// middle of a later exchange) neither cuts an exchange short nor lets one run past its
/// own deadline.
#[tokio::test]
async fn response_timeout_holds_for_each_exchange_on_a_pooled_connection() {
    const DELAYS_MS: [u64; 4] = [0, 300, 300, 1500];
    let (b, accepts) = raw_backend(scripted_after(
        |i| Duration::from_millis(DELAYS_MS.get(i).copied().unwrap_or(0)),
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "response_timeout = \"400ms\"")).await;
    let mut tx = client(p.addr).await;
    let (status, _, _, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
    assert_eq!(status, 200);
    // The first exchange's timer fires while the connection waits in the pool.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..2 {
        // 300 ms answers within a 400 ms timeout; the second starts while the timer is
        // still set for the first one's deadline, due 100 ms into it.
        let (status, _, body, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    let t = std::time::Instant::now();
    let (status, headers, _, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
    let took = t.elapsed();
    assert_eq!(status, 504);
    assert_eq!(headers["x-lb-error"], "upstream-timeout");
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(1400),
        "504 after {took:?}"
    );
}

#[tokio::test]
async fn hundred_requests_use_one_upstream_connection() {
    let (b, accepts) = raw_backend(scripted(
        |i| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{i}",
                i.to_string().len()
            )
            .into_bytes()
        },
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    for i in 0..100 {
        let (status, headers, body, _) = exchange(&mut tx, get_req("/")).await.expect("answer");
        assert_eq!(status, 200);
        assert_eq!(body, i.to_string());
        assert_eq!(headers["content-length"], i.to_string().len().to_string());
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pooled_connection_closed_while_idle_is_not_used() {
    // Each connection answers one request, then the backend closes it 50 ms later: the
    // proxy has already pooled it by then.
    let handler: Handler = Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let mut buf = Vec::new();
            if read_head(&mut s, &mut buf).await.is_some() {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let (b, accepts) = raw_backend(handler).await;
    let p = proxy(&pool(b, "retries = 0\n")).await;
    for n in 1..=3 {
        // A POST is never retried: it must not meet the closed connection.
        let r = send(
            p.addr,
            Request::post("/")
                .header("host", "web.test")
                .body(full("payload"))
                .expect("request"),
        )
        .await
        .expect("answer");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "ok");
        assert_eq!(accepts.load(Ordering::SeqCst), n);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn extra_bytes_after_an_answer_are_not_reused() {
    let (b, accepts) = raw_backend(scripted(
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\njunk".to_vec(),
        |_| false,
    ))
    .await;
    let p = proxy(&pool(b, "")).await;
    three_gets_on_new_upstreams(p.addr, &accepts, Duration::ZERO).await;
    // Stray bytes arriving later, while the connection is idle in the pool: the same.
    let handler: Handler = Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let mut buf = Vec::new();
            while read_head(&mut s, &mut buf).await.is_some() {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = s.write_all(b"stray").await;
            }
        })
    });
    let (b, accepts) = raw_backend(handler).await;
    let p = proxy(&pool(b, "retries = 0\n")).await;
    three_gets_on_new_upstreams(p.addr, &accepts, Duration::from_millis(200)).await;
}

/// A body of `n` bytes (byte i is `i % 251`) in frames of varying size, with no size
/// hint, so it goes upstream chunked.
fn unsized_body(n: usize) -> TestBody {
    struct Unsized {
        sent: usize,
        n: usize,
        step: usize,
    }
    impl hyper::body::Body for Unsized {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.sent == self.n {
                return std::task::Poll::Ready(None);
            }
            self.step = (self.step * 7 + 13) % 50_000 + 1;
            let k = self.step.min(self.n - self.sent);
            let data: Vec<u8> = (self.sent..self.sent + k)
                .map(|i| (i % 251) as u8)
                .collect();
            self.sent += k;
            std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))))
        }
    }
    Unsized {
        sent: 0,
        n,
        step: 1,
    }
    .boxed()
}

/// Reads a chunked request body after the head, checking each byte; returns its length.
async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut total = 0usize;
    loop {
        let line = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = buf.drain(..i + 2).collect();
                break String::from_utf8_lossy(&line[..i]).into_owned();
            }
            let mut tmp = [0u8; 65536];
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return Err("eof in chunk size".into()),
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let size = usize::from_str_radix(line.trim(), 16).map_err(|_| format!("size {line:?}"))?;
        while buf.len() < size + 2 {
            let mut tmp = [0u8; 65536];
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return Err("eof in chunk".into()),
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        if size == 0 {
            if &buf[..2] != b"\r\n" {
                return Err("trailers not expected".into());
            }
            buf.drain(..2);
            return Ok(total);
        }
        for (k, &c) in buf[..size].iter().enumerate() {
            if c != ((total + k) % 251) as u8 {
                return Err(format!("byte {} differs", total + k));
            }
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err("no CRLF after chunk".into());
        }
        buf.drain(..size + 2);
        total += size;
    }
}

#[tokio::test]
async fn streamed_upload_of_unknown_length_goes_chunked_and_intact() {
    let handler: Handler = Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let mut buf = Vec::new();
            while let Some(head) = read_head(&mut s, &mut buf).await {
                let lower = head.to_ascii_lowercase();
                let answer = if !lower.contains("transfer-encoding: chunked") {
                    format!("not chunked: {head}")
                } else if lower.contains("content-length") {
                    "both lengths".to_owned()
                } else {
                    match read_chunked(&mut s, &mut buf).await {
                        Ok(n) => n.to_string(),
                        Err(e) => e,
                    }
                };
                let out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                if s.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
            }
        })
    });
    let (b, accepts) = raw_backend(handler).await;
    let p = proxy(&pool(b, "")).await;
    let mut tx = client(p.addr).await;
    let n = 8 * 1024 * 1024;
    for _ in 0..2 {
        let r = Request::post("/upload")
            .header("host", "web.test")
            .body(unsized_body(n))
            .expect("request");
        let (status, _, body, _) = exchange(&mut tx, r).await.expect("answer");
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8_lossy(&body), n.to_string());
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        1,
        "a chunked upload keeps the connection"
    );
}

#[tokio::test]
async fn an_answer_before_the_upload_ends_is_relayed_and_not_reused() {
    // The backend refuses the upload after its head, and reads (discards) the rest.
    let handler: Handler = Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let mut buf = Vec::new();
            if read_head(&mut s, &mut buf).await.is_some() {
                let _ = s
                    .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!")
                    .await;
                let mut sink = [0u8; 65536];
                while let Ok(n) = s.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        })
    });
    let (b, accepts) = raw_backend(handler).await;
    let p = proxy(&pool(b, "")).await;
    for n in 1..=2 {
        let r = send(
            p.addr,
            Request::post("/upload")
                .header("host", "web.test")
                .body(unsized_body(4 * 1024 * 1024))
                .expect("request"),
        )
        .await
        .expect("answer");
        assert_eq!((r.status, r.text().as_str()), (413, "big!"));
        assert_eq!(accepts.load(Ordering::SeqCst), n, "not reused mid-upload");
    }
}

#[tokio::test]
async fn bytes_right_after_a_101_reach_the_client() {
    // The backend's first tunnel bytes come in the same write as its 101 head; then it
    // echoes.
    let handler: Handler = Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let mut buf = Vec::new();
            if read_head(&mut s, &mut buf).await.is_none() {
                return;
            }
            let hello = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: upgrade\r\n\r\nHELLO";
            if s.write_all(hello).await.is_err() {
                return;
            }
            let mut tmp = [0u8; 1024];
            while let Ok(n) = s.read(&mut tmp).await {
                if n == 0 || s.write_all(&tmp[..n]).await.is_err() {
                    break;
                }
            }
        })
    });
    let (b, _) = raw_backend(handler).await;
    let p = proxy(&pool(b, "")).await;
    let mut c = TcpStream::connect(p.addr).await.expect("connect");
    c.write_all(
        b"GET /t HTTP/1.1\r\nHost: web.test\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n",
    )
    .await
    .expect("write");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !got.ends_with(b"HELLO") {
        let mut tmp = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline, c.read(&mut tmp))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&tmp[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    c.write_all(b"ping").await.expect("write");
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut echo))
        .await
        .expect("in time")
        .expect("echo");
    assert_eq!(&echo, b"ping");
}
