//! What the backend sees (forwarded headers, hop-by-hop removal), upstream
//! connection reuse, and retries across backends.

mod common;

use std::sync::atomic::Ordering;

use common::*;

fn one_pool(backends: &[std::net::SocketAddr], extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[pool.web]\nbackends = [{}]\n{extra}\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn forwarded_headers_are_added_and_appended() {
    let b = Backend::start("a").await;
    let p = proxy(&one_pool(&[b.addr], "")).await;
    let r = get(p.addr, "web.test", "/x").await;
    assert_eq!(r.status, 200);
    let h = b.last_head();
    let s = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(s("x-forwarded-for"), "127.0.0.1");
    assert_eq!(s("x-forwarded-proto"), "http");
    assert_eq!(s("x-forwarded-host"), "web.test");
    assert_eq!(s("host"), "web.test");
    let id = s("x-request-id");
    assert!(id.len() >= 16, "request id {id:?}");

    let r = get_h(
        p.addr,
        "web.test",
        "/y",
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-request-id", "my-id-1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = b.last_head();
    let s = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(s("x-forwarded-for"), "203.0.113.7, 127.0.0.1");
    assert_eq!(s("x-request-id"), "my-id-1");
    // Another request gets another generated id.
    get(p.addr, "web.test", "/z").await;
    let other = b.last_head();
    assert_ne!(
        other.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed() {
    let b = Backend::start("a").await;
    let p = proxy(&one_pool(&[b.addr], "")).await;
    let r = get_h(
        p.addr,
        "web.test",
        "/",
        &[
            ("connection", "close, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = b.last_head();
    assert!(!h.contains_key("keep-alive"), "{h:?}");
    assert!(!h.contains_key("x-secret-hop"), "{h:?}");
    assert!(!h.contains_key("proxy-connection"), "{h:?}");
    let conn = h
        .get("connection")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        !conn.contains("close") && !conn.contains("x-secret-hop"),
        "{h:?}"
    );
    assert_eq!(
        h.get("x-end-to-end").and_then(|v| v.to_str().ok()),
        Some("kept")
    );
}

#[tokio::test]
async fn client_connection_close_keeps_the_upstream_connection() {
    let b = Backend::start("a").await;
    let p = proxy(&one_pool(&[b.addr], "")).await;
    for i in 0..5 {
        let r = get_h(p.addr, "web.test", "/", &[("connection", "close")]).await;
        assert_eq!(r.status, 200, "request {i}");
        // Let the proxy return the upstream connection to its pool.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    assert_eq!(b.count(), 5);
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        1,
        "one pooled upstream connection"
    );
}

#[tokio::test]
async fn get_is_retried_on_next_backend_after_refuse_or_reset() {
    let good = Backend::start("good").await;
    let refused = closed_port().await;
    let (reset, reset_hits, _t) = resetting_backend().await;
    // Round-robin puts the bad backends first on many requests; none may fail.
    let p = proxy(&one_pool(
        &[refused, reset, good.addr],
        "strategy = \"round-robin\"\nretries = 2\n",
    ))
    .await;
    for i in 0..12 {
        let r = get(p.addr, "web.test", "/").await;
        assert_eq!(
            (r.status, r.text()),
            (200, "good".to_owned()),
            "request {i}"
        );
    }
    assert_eq!(good.count(), 12);
    assert!(
        reset_hits.load(Ordering::SeqCst) >= 1,
        "the resetting backend was tried"
    );
}

#[tokio::test]
async fn post_is_not_retried_after_reset_but_is_after_refuse() {
    let good = Backend::start("good").await;
    let (reset, reset_hits, _t) = resetting_backend().await;
    let p = proxy(&one_pool(
        &[reset, good.addr],
        "strategy = \"round-robin\"\nretries = 2\n",
    ))
    .await;
    let mut failed = 0;
    for _ in 0..4 {
        let r = send(
            p.addr,
            hyper::Request::post("/")
                .header("host", "web.test")
                .body(full("data"))
                .expect("request"),
        )
        .await
        .expect("answer");
        if r.status == 502 {
            assert_eq!(r.header("x-lb-error"), "upstream-reset");
            failed += 1;
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert_eq!(failed, reset_hits.load(Ordering::SeqCst));
    assert!(
        failed >= 1,
        "round-robin sent some POSTs to the resetting backend"
    );

    let refused = closed_port().await;
    let p = proxy(&one_pool(
        &[refused, good.addr],
        "strategy = \"round-robin\"\nretries = 2\n",
    ))
    .await;
    for _ in 0..4 {
        let r = send(
            p.addr,
            hyper::Request::post("/")
                .header("host", "web.test")
                .body(full("data"))
                .expect("request"),
        )
        .await
        .expect("answer");
        assert_eq!(r.status, 200, "a connect failure is retried for any method");
        // The retried request is whole: its headers came back from the failed attempt.
        let h = good.last_head();
        let s = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(s("host").as_deref(), Some("web.test"));
        assert_eq!(s("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(s("content-length").as_deref(), Some("4"));
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_and_methods_starting_with_p_are_served() {
    // The listener tells HTTP/1 from the h2c preface on its first read (client::sniff): both
    // must still work, including methods whose first letter is the preface's.
    let b = Backend::start("a").await;
    let p = proxy(&one_pool(&[b.addr], "")).await;
    let stream = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let (mut tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    for _ in 0..2 {
        let req = hyper::Request::get("http://web.test/h2")
            .body(full(Vec::new()))
            .expect("request");
        let resp = tx.send_request(req).await.expect("h2c answer");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
    }
    let host = b.last_head().get("host").cloned();
    assert_eq!(
        host.as_ref().and_then(|h| h.to_str().ok()),
        Some("web.test")
    );
    for m in ["PUT", "PATCH", "POST", "PRI"] {
        let r = send(p.addr, req(m, "web.test", "/p", &[])).await;
        let status = r.map(|r| r.status).unwrap_or(0);
        if m == "PRI" {
            // Not a method any backend serves, but it is proxied as HTTP/1.
            assert_ne!(status, 0, "PRI over HTTP/1 got no answer");
        } else {
            assert_eq!(status, 200, "{m}");
        }
    }
    // Two h2c requests and all four HTTP/1 ones reached the backend.
    assert_eq!(b.count(), 6);
}
