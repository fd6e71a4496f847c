//! Every status the proxy makes itself, each with its `x-lb-error` reason.

mod common;

use std::sync::atomic::Ordering;

use common::*;

fn pool(name: &str, backends: &[std::net::SocketAddr], extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[pool.{name}]\nbackends = [{}]\n{extra}\n[[route]]\nhost = \"{name}.test\"\npool = \"{name}\"\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn unknown_host_is_404() {
    let b = Backend::start("a").await;
    let p = proxy(&pool("web", &[b.addr], "")).await;
    let r = get(p.addr, "other.test", "/").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-lb-error"), "unknown-host");
    assert_eq!(b.count(), 0);
    assert_eq!(get(p.addr, "web.test", "/").await.status, 200);
}

#[tokio::test]
async fn invalid_host_and_smuggling_are_400() {
    let b = Backend::start("a").await;
    let p = proxy(&pool("web", &[b.addr], "")).await;
    let r = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: bad host!\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&r), 400, "{r}");
    assert!(
        r.to_ascii_lowercase().contains("x-lb-error: bad-request"),
        "{r}"
    );
    // Conflicting framings are refused before anything reaches a backend.
    for bad in [
        &b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"[..],
        &b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n"[..],
        &b"POST / HTTP/1.0\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
    ] {
        let r = raw(p.addr, bad).await;
        assert_eq!(raw_status(&r), 400, "{r}");
        assert!(
            r.to_ascii_lowercase().contains("x-lb-error: bad-request"),
            "{r}"
        );
    }
    assert_eq!(b.count(), 0, "nothing reached the backend");
}

#[tokio::test]
async fn body_over_limit_is_413_and_huge_head_is_431() {
    let b = Backend::start("a").await;
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 100\n{}",
        pool("web", &[b.addr], "")
    );
    let p = proxy_text(&text).await;
    let r = send(
        p.addr,
        hyper::Request::post("/upload")
            .header("host", "web.test")
            .body(full(vec![b'y'; 1000]))
            .expect("request"),
    )
    .await
    .expect("answer");
    assert_eq!(r.status, 413);
    assert_eq!(r.header("x-lb-error"), "body-too-large");
    let r = send(
        p.addr,
        hyper::Request::post("/upload")
            .header("host", "web.test")
            .body(full(vec![b'y'; 50]))
            .expect("request"),
    )
    .await
    .expect("answer");
    assert_eq!((r.status, r.text()), (200, "50".to_owned()));
    let big = "v".repeat(100 * 1024);
    let head =
        format!("GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let r = raw(p.addr, head.as_bytes()).await;
    assert_eq!(raw_status(&r), 431, "{}", &r[..r.len().min(200)]);
    assert!(
        r.to_ascii_lowercase()
            .contains("x-lb-error: header-too-large"),
        "{r}"
    );
}

#[tokio::test]
async fn head_over_a_small_limit_is_431_header_too_large() {
    // Below hyper's 8 KiB buffer floor, so only the proxy's own measure can refuse it.
    let b = Backend::start("a").await;
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\nmax_header_bytes = 4096\n{}",
        pool("web", &[b.addr], "")
    );
    let p = proxy_text(&text).await;
    let head = |n: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "v".repeat(n)
        )
    };
    let r = raw(p.addr, head(3000).as_bytes()).await;
    assert_eq!(raw_status(&r), 200, "{r}");
    assert_eq!(b.count(), 1);
    let r = raw(p.addr, head(5000).as_bytes()).await;
    assert_eq!(raw_status(&r), 431, "{}", &r[..r.len().min(200)]);
    assert!(
        r.to_ascii_lowercase()
            .contains("x-lb-error: header-too-large"),
        "{r}"
    );
    assert_eq!(b.count(), 1, "the big head never reached the backend");
}

#[tokio::test]
async fn closed_backend_port_is_502_upstream_connect() {
    let dead = closed_port().await;
    let p = proxy(&pool("web", &[dead], "")).await;
    let r = get(p.addr, "web.test", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-lb-error"), "upstream-connect");
}

#[tokio::test]
async fn reset_on_post_is_502_upstream_reset_without_retry() {
    let (a, hits_a, _ta) = resetting_backend().await;
    let (b, hits_b, _tb) = resetting_backend().await;
    let p = proxy(&pool("web", &[a, b], "retries = 2\n")).await;
    let r = send(
        p.addr,
        hyper::Request::post("/")
            .header("host", "web.test")
            .body(full("payload"))
            .expect("request"),
    )
    .await
    .expect("answer");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-lb-error"), "upstream-reset");
    let total = hits_a.load(Ordering::SeqCst) + hits_b.load(Ordering::SeqCst);
    assert_eq!(total, 1, "a POST is not retried after a reset");
}

#[tokio::test]
async fn all_drained_is_503_with_retry_after() {
    let b = [Backend::start("a").await, Backend::start("b").await];
    let p = proxy(&pool("web", &[b[0].addr, b[1].addr], "")).await;
    assert_eq!(get(p.addr, "web.test", "/").await.status, 200);
    for x in &b {
        let path = format!(
            "/api/v1/pools/web/backends/{}/drain",
            x.addr.to_string().replace(':', "%3A")
        );
        let r = admin(p.admin, "POST", &path, None, None).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let before = b[0].count() + b[1].count();
    let r = get(p.addr, "web.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-lb-error"), "no-healthy-backend");
    assert!(!r.header("retry-after").is_empty());
    assert_eq!(b[0].count() + b[1].count(), before);
}

#[tokio::test]
async fn slow_backend_is_504_upstream_timeout() {
    let b = Backend::start("a").await;
    let p = proxy(&pool("web", &[b.addr], "response_timeout = \"200ms\"\n")).await;
    let t = std::time::Instant::now();
    let r = get(p.addr, "web.test", "/sleep").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.header("x-lb-error"), "upstream-timeout");
    assert!(t.elapsed() < std::time::Duration::from_millis(1900));
}

/// CL+TE together is refused with 400 before hyper parses the head, so a request
/// smuggled behind the chunked body is never served (more in tests/client_limits.rs).
#[tokio::test]
async fn cl_te_request_cannot_smuggle_a_second_request() {
    let b = Backend::start("a").await;
    let p = proxy(&pool("web", &[b.addr], "")).await;
    let r = raw(
        p.addr,
        b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{r}");
    assert_eq!(raw_status(&r), 400, "{r}");
    assert!(
        r.to_ascii_lowercase().contains("x-lb-error: bad-request"),
        "{r}"
    );
    assert_eq!(b.count(), 0, "nothing reached the backend");
}
