//! The admin API of a running proxy: token, backend writes, metrics.

mod common;

use common::*;

const TOKEN: &str = "s3cret";

fn enc(addr: std::net::SocketAddr) -> String {
    addr.to_string().replace(':', "%3A")
}

async fn start(b: &[&Backend]) -> Proxy {
    let list: Vec<String> = b.iter().map(|x| format!("\"{}\"", x.addr)).collect();
    proxy_text(&format!(
        "{}[pool.web]\nstrategy = \"round-robin\"\nbackends = [{}]\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        prologue(Some(TOKEN)),
        list.join(", ")
    ))
    .await
}

fn backend_json(r: &Resp, addr: std::net::SocketAddr) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    v["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["addr"] == addr.to_string())
        .cloned()
}

#[tokio::test]
async fn token_is_required() {
    let a = Backend::start("a").await;
    let p = start(&[&a]).await;
    let r = admin(p.admin, "GET", "/api/v1/pools", None, None).await;
    assert_eq!(r.status, 401);
    let r = admin(p.admin, "GET", "/api/v1/pools", None, Some("wrong")).await;
    assert_eq!(r.status, 401);
    let r = admin(p.admin, "GET", "/api/v1/pools", None, Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["pools"][0]["name"], "web");
    let r = admin(p.admin, "GET", "/healthz", None, None).await;
    assert_eq!((r.status, r.text()), (200, "ok".to_owned()));
}

#[tokio::test]
async fn backend_writes_change_traffic() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = start(&[&a]).await;
    let t = Some(TOKEN);
    let body = format!("{{\"addr\":\"{}\",\"weight\":1}}", b.addr);
    let r = admin(
        p.admin,
        "POST",
        "/api/v1/pools/web/backends",
        Some(&body),
        t,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin(
        p.admin,
        "POST",
        "/api/v1/pools/web/backends",
        Some(&body),
        t,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    for bad in [
        "{\"addr\":\"not an address\"}",
        "{\"weight\":1}",
        "not json",
        "{\"addr\":\"127.0.0.1:1\",\"weight\":999}",
    ] {
        let r = admin(p.admin, "POST", "/api/v1/pools/web/backends", Some(bad), t).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("error"), "{}", r.text());
    }
    let r = admin(
        p.admin,
        "POST",
        "/api/v1/pools/nope/backends",
        Some(&body),
        t,
    )
    .await;
    assert_eq!(r.status, 404);
    // Both backends now get traffic.
    let m = spread(p.addr, "web.test", "/", 10).await;
    assert_eq!((m.get("a"), m.get("b")), (Some(&5), Some(&5)), "{m:?}");

    let path = format!("/api/v1/pools/web/backends/{}", enc(b.addr));
    let r = admin(p.admin, "PATCH", &path, Some("{\"weight\":3}"), t).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin(p.admin, "GET", "/api/v1/pools/web", None, t).await;
    assert_eq!(backend_json(&r, b.addr).expect("b listed")["weight"], 3);
    let m = spread(p.addr, "web.test", "/", 40).await;
    assert_eq!((m.get("a"), m.get("b")), (Some(&10), Some(&30)), "{m:?}");

    let drain = format!("/api/v1/pools/web/backends/{}/drain", enc(a.addr));
    let r = admin(p.admin, "POST", &drain, None, t).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = admin(p.admin, "GET", "/api/v1/pools/web", None, t).await;
    assert_eq!(
        backend_json(&r, a.addr).expect("a listed")["state"],
        "draining"
    );
    let m = spread(p.addr, "web.test", "/", 6).await;
    assert_eq!(m.get("b"), Some(&6), "{m:?}");

    let r = admin(p.admin, "DELETE", &path, None, t).await;
    assert_eq!(r.status, 204);
    let r = admin(p.admin, "DELETE", &path, None, t).await;
    assert_eq!(r.status, 404);
    let r = admin(p.admin, "GET", "/api/v1/pools/web", None, t).await;
    assert!(backend_json(&r, b.addr).is_none());
    let r = admin(p.admin, "GET", "/api/v1/pools/nope", None, t).await;
    assert_eq!(r.status, 404);
    // Only the draining backend is left: 503.
    assert_eq!(get(p.addr, "web.test", "/").await.status, 503);
}

#[tokio::test]
async fn metrics_count_requests_and_errors() {
    let a = Backend::start("a").await;
    let p = start(&[&a]).await;
    for _ in 0..3 {
        assert_eq!(get(p.addr, "web.test", "/").await.status, 200);
    }
    assert_eq!(get(p.addr, "nobody.test", "/").await.status, 404);
    // Two idle client connections held open while metrics are read.
    let _held = (
        tokio::net::TcpStream::connect(p.addr)
            .await
            .expect("connect"),
        tokio::net::TcpStream::connect(p.addr)
            .await
            .expect("connect"),
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = admin(p.admin, "GET", "/metrics", None, Some(TOKEN)).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let line = text
        .lines()
        .find(|l| l.starts_with("lb_requests_total{") && l.contains("2xx"))
        .unwrap_or_else(|| panic!("no lb_requests_total 2xx line:\n{text}"));
    let n: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert_eq!(n, 3.0, "{line}");
    let line = text
        .lines()
        .find(|l| l.starts_with("lb_proxy_errors_total{") && l.contains("unknown-host"))
        .unwrap_or_else(|| panic!("no unknown-host error line:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("lb_connections_active{{listener=\"{}\"}}", p.addr)))
        .unwrap_or_else(|| panic!("no lb_connections_active line:\n{text}"));
    let open: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(open >= 2.0, "two held connections: {line}");
}
