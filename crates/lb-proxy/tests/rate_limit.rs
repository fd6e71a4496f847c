//! `[[route]] rate_limit`: 429 with `x-lb-error: rate-limited` and `Retry-After` for a key
//! over its rate while other keys pass, the rate holding over seconds, and the metrics.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

fn limited(backend: std::net::SocketAddr, limit: &str) -> String {
    format!(
        "[pool.web]\nbackends = [\"{backend}\"]\n\n[[route]]\nhost = \"web.test\"\npool = \"web\"\nrate_limit = {limit}\n\n[[route]]\nhost = \"free.test\"\npool = \"web\"\n"
    )
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_and_others_pass() {
    let b = Backend::start("a").await;
    let p = proxy(&limited(
        b.addr,
        "{ key = \"header:x-user\", rate = \"1/m\", burst = 3 }",
    ))
    .await;
    let alice = [("x-user", "alice")];
    for i in 0..3 {
        let r = get_h(p.addr, "web.test", "/", &alice).await;
        assert_eq!(r.status, 200, "request {i} within the burst");
    }
    for _ in 0..2 {
        let r = get_h(p.addr, "web.test", "/", &alice).await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.header("x-lb-error"), "rate-limited");
        let retry: u64 = r.header("retry-after").parse().expect("whole seconds");
        // One request a minute: the next is about 60 s away.
        assert!((50..=60).contains(&retry), "{retry}");
        assert_eq!(r.text(), "rate-limited\n");
    }
    // Another key, and another route, are not affected.
    let r = get_h(p.addr, "web.test", "/", &[("x-user", "bob")]).await;
    assert_eq!(r.status, 200);
    for _ in 0..5 {
        assert_eq!(get_h(p.addr, "free.test", "/", &alice).await.status, 200);
    }
    assert_eq!(
        b.count(),
        3 + 1 + 5,
        "refused requests never reach a backend"
    );
    let m = admin(p.admin, "GET", "/metrics", None, None).await.text();
    assert!(
        m.contains("lb_rate_limited_total{route=\"web.test\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("lb_proxy_errors_total{reason=\"rate-limited\"} 2\n"),
        "{m}"
    );
}

/// Sends GETs on one keep-alive connection until `deadline`; returns (admitted, refused).
async fn hammer(addr: std::net::SocketAddr, deadline: Instant) -> (u64, u64) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let (mut ok, mut refused) = (0, 0);
    // Bounded in time and in count.
    for _ in 0..200_000 {
        if Instant::now() >= deadline {
            break;
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            tx.send_request(req("GET", "web.test", "/", &[])),
        )
        .await
        .expect("in time")
        .expect("response");
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        match status {
            200 => ok += 1,
            429 => refused += 1,
            s => panic!("status {s}"),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_holds_over_seconds() {
    const RATE: f64 = 100.0;
    const BURST: f64 = 20.0;
    let b = Backend::start("a").await;
    let p = proxy(&limited(b.addr, "{ rate = \"100/s\", burst = 20 }")).await;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3);
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(hammer(p.addr, deadline)))
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for c in clients {
        let (o, r) = c.await.expect("client");
        ok += o;
        refused += r;
    }
    let t = start.elapsed().as_secs_f64();
    let bound = RATE * t + BURST;
    println!("{ok} admitted and {refused} refused in {t:.2} s; rate × t + burst = {bound:.0}");
    assert!(refused > 0, "the clients asked faster than the rate");
    assert!(ok as f64 <= bound * 1.1, "{ok} admitted, bound {bound:.0}");
    // The floor is looser than the ceiling: tokens accrue only up to `burst`, so a
    // stretch in which the clients or the proxy are not scheduled for longer than
    // burst / rate (0.2 s) loses them for good. On a machine loaded by parallel tests
    // (load average 8.7 on 2 cores) 0.86 of the bound was admitted; a limiter that
    // over-refuses (say, counting refused requests too) stays far below 0.75.
    assert!(ok as f64 >= bound * 0.75, "{ok} admitted, bound {bound:.0}");
    assert_eq!(b.count() as u64, ok);
}

#[tokio::test]
async fn a_reload_keeps_the_keys_state_and_the_count() {
    let b = Backend::start("a").await;
    let text = format!(
        "{}\n{}",
        prologue(None),
        limited(b.addr, "{ rate = \"1/m\", burst = 1 }")
    );
    let mut p = proxy_text(&text).await;
    assert_eq!(get(p.addr, "web.test", "/").await.status, 200);
    assert_eq!(get(p.addr, "web.test", "/").await.status, 429);
    p.app.reload(parse(&text)).await.expect("reload");
    // The same route with the same limit: the key is still over it.
    assert_eq!(get(p.addr, "web.test", "/").await.status, 429);
    // A changed limit starts afresh; the route's count goes on.
    p.app
        .reload(parse(&text.replace("burst = 1", "burst = 2")))
        .await
        .expect("reload");
    assert_eq!(get(p.addr, "web.test", "/").await.status, 200);
    let m = admin(p.admin, "GET", "/metrics", None, None).await.text();
    assert!(
        m.contains("lb_rate_limited_total{route=\"web.test\"} 2\n"),
        "{m}"
    );
}
