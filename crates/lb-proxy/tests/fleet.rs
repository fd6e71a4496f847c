//! A fleet of lb-proxy instances sharing one Redis membership: they agree on every key,
//! follow a removal made through any one of them, ride out a Redis restart, and resync.
//! Also: file discovery through the proxy, and the reload rule for discovered pools.

mod common;

#[path = "../../lb-core/tests/support/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use redis_server::RedisServer;
use tokio::net::TcpStream;

const KEYS: usize = 10_000;
/// The stated bound: a change made through one instance reaches the others within this.
/// In practice pub/sub delivers in milliseconds; the `resync = "1s"` re-read is the
/// fallback when an event is lost, so 1 s plus scheduling slack.
const CONVERGENCE: Duration = Duration::from_secs(2);

/// One keep-alive HTTP/1.1 connection to an admin API.
struct AdminClient {
    tx: SendRequest<TestBody>,
}

impl AdminClient {
    async fn connect(addr: SocketAddr) -> AdminClient {
        let stream = TcpStream::connect(addr).await.expect("connect admin");
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        AdminClient { tx }
    }

    async fn get(&mut self, path: &str) -> (u16, Bytes) {
        self.tx.ready().await.expect("admin connection");
        let req = Request::get(path)
            .header("host", "admin")
            .body(full(Bytes::new()))
            .expect("request");
        let resp = self.tx.send_request(req).await.expect("admin answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    }

    /// Where each of `keys` goes, by the instance's placement (`/api/v1/route`).
    async fn routes(&mut self, keys: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let (status, body) = self.get(&format!("/api/v1/route?pool=web&key={k}")).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            out.push(v["backend"].as_str().expect("backend").to_owned());
        }
        out
    }

    /// The pool's backend addresses as the instance's admin API shows them.
    async fn members(&mut self) -> Vec<String> {
        let (status, body) = self.get("/api/v1/pools/web").await;
        assert_eq!(status, 200);
        lb_test_support::shell::pool_members(&body)
    }

    async fn pool(&mut self) -> serde_json::Value {
        let (_, body) = self.get("/api/v1/pools/web").await;
        serde_json::from_slice(&body).expect("json")
    }
}

fn fleet_config(redis: &RedisServer) -> String {
    format!(
        "{}[pool.web]\nstrategy = \"consistent\"\nkey = \"header:x-key\"\n\
         discovery = {{ kind = \"redis\", url = \"{}\", key = \"lb:pool:web\", resync = \"1s\" }}\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        prologue(None),
        redis.url()
    )
}

fn enc(addr: SocketAddr) -> String {
    addr.to_string().replace(':', "%3A")
}

/// Waits until every client shows `want`; returns how long it took.
async fn converge(clients: &mut [AdminClient], want: &[String], within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let mut all = true;
        for c in clients.iter_mut() {
            if c.members().await != want {
                all = false;
            }
        }
        if all {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "instances did not converge on {want:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every instance's routes for `keys`, asserted identical; returns them.
async fn agreed_routes(clients: &mut [AdminClient], keys: &[String]) -> Vec<String> {
    let first = clients[0].routes(keys).await;
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        let other = c.routes(keys).await;
        let differ = first.iter().zip(&other).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ, 0,
            "instance {i} disagrees with instance 0 on {differ} keys"
        );
    }
    first
}

/// Sends `n` real requests per instance (keys from `keys`) and checks each reached the
/// backend the placement names.
async fn traffic_matches(
    proxies: &[Proxy],
    keys: &[String],
    routes: &[String],
    names: &HashMap<String, String>,
    n: usize,
) {
    for p in proxies {
        for i in (0..keys.len()).step_by(keys.len() / n) {
            let r = get_h(p.addr, "web.test", "/", &[("x-key", &keys[i])]).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.text(), names[&routes[i]], "key {} on {}", keys[i], p.addr);
        }
    }
}

#[allow(clippy::too_many_lines)] // one scenario, step by step: split, its steps would lose their order
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_agrees_converges_and_survives_redis_restart() {
    let mut redis = RedisServer::start().await;
    let mut backends = Vec::new();
    for i in 1..=5 {
        backends.push(Backend::start(&format!("b{i}")).await);
    }
    for b in &backends {
        redis
            .cmd(&["HSET", "lb:pool:web", &b.addr.to_string(), "1"])
            .await;
    }
    let names: HashMap<String, String> = backends
        .iter()
        .map(|b| (b.addr.to_string(), b.name.clone()))
        .collect();
    let mut all: Vec<String> = names.keys().cloned().collect();
    all.sort();

    let text = fleet_config(&redis);
    let proxies = vec![
        proxy_text(&text).await,
        proxy_text(&text).await,
        proxy_text(&text).await,
    ];
    let mut clients = Vec::new();
    for p in &proxies {
        clients.push(AdminClient::connect(p.admin).await);
    }
    // Start waits for the first sync: each instance serves the whole pool at once.
    for c in clients.iter_mut() {
        assert_eq!(c.members().await, all);
    }
    for c in clients.iter_mut() {
        let v = c.pool().await;
        assert_eq!(v["source"], "redis");
        assert!(v["last_sync"].is_string(), "last_sync shown: {v}");
    }

    // 1. Same membership → the same backend for every one of 10k keys.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user-{i}")).collect();
    let before = agreed_routes(&mut clients, &keys).await;
    for a in &all {
        assert!(before.contains(a), "{a} got no keys");
    }
    traffic_matches(&proxies, &keys, &before, &names, 100).await;

    // 2. Remove one backend through instance 0's admin API; all converge within the bound.
    let gone = backends[2].addr;
    let r = admin(
        proxies[0].admin,
        "DELETE",
        &format!("/api/v1/pools/web/backends/{}", enc(gone)),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let rest: Vec<String> = all
        .iter()
        .filter(|a| **a != gone.to_string())
        .cloned()
        .collect();
    assert_eq!(
        clients[0].members().await,
        rest,
        "the instance that took the write shows it at once"
    );
    let took = converge(&mut clients, &rest, CONVERGENCE).await;
    eprintln!("fleet convergence after a removal: {took:?}");
    let after = agreed_routes(&mut clients, &keys).await;
    // Only the removed backend's keys moved.
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if *b == gone.to_string() {
            assert_ne!(a, b);
            moved += 1;
        } else {
            assert_eq!(a, b, "a key of a remaining backend moved");
        }
    }
    assert!(moved > 0);
    assert_eq!(
        moved,
        before.iter().filter(|b| **b == gone.to_string()).count()
    );

    // 3. Redis goes away: every instance keeps serving on the last membership.
    redis.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    traffic_matches(&proxies, &keys, &after, &names, 100).await;
    let r = admin(
        proxies[1].admin,
        "DELETE",
        &format!("/api/v1/pools/web/backends/{}", enc(backends[0].addr)),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 503, "writes need Redis: {}", r.text());
    for c in clients.iter_mut() {
        assert_eq!(c.members().await, rest);
    }

    // 4. Redis comes back (its data kept); a change made there directly, without PUBLISH,
    // reaches every instance through reconnect + resync.
    redis.resume().await;
    let extra = Backend::start("b6").await;
    redis
        .cmd(&["HSET", "lb:pool:web", &extra.addr.to_string(), "1"])
        .await;
    let mut names = names;
    names.insert(extra.addr.to_string(), "b6".into());
    let mut grown = rest.clone();
    grown.push(extra.addr.to_string());
    grown.sort();
    // Reconnect backoff (at most 5 s) + one resync (1 s) + slack.
    let took = converge(&mut clients, &grown, Duration::from_secs(10)).await;
    eprintln!("fleet resync after a Redis restart: {took:?}");
    let last = agreed_routes(&mut clients, &keys).await;
    for (a, l) in after.iter().zip(&last) {
        assert!(
            a == l || *l == extra.addr.to_string(),
            "an added backend only takes keys"
        );
    }
    traffic_matches(&proxies, &keys, &last, &names, 100).await;
}

#[tokio::test]
async fn file_discovery_through_the_proxy_and_reload() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dir = std::env::temp_dir().join(format!("lb-proxy-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let one = dir.join("one.json");
    let two = dir.join("two.json");
    std::fs::write(&one, format!("[\"{}\"]", a.addr)).expect("write");
    std::fs::write(&two, format!("[\"{}\"]", b.addr)).expect("write");
    let cfg = |path: &std::path::Path, strategy: &str| {
        format!(
            "{}[pool.web]\nstrategy = \"{strategy}\"\ndiscovery = {{ kind = \"file\", path = \"{}\" }}\n\
             [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
            prologue(None),
            path.display()
        )
    };
    let mut p = proxy_text(&cfg(&one, "round-robin")).await;
    let r = get(p.addr, "web.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "a".to_owned()));
    let mut c = AdminClient::connect(p.admin).await;
    let v = c.pool().await;
    assert_eq!(v["source"], "file");
    assert!(v["last_sync"].is_string());
    // The file owns membership: admin writes get 409.
    let body = format!("{{\"addr\":\"{}\"}}", b.addr);
    let r = admin(
        p.admin,
        "POST",
        "/api/v1/pools/web/backends",
        Some(&body),
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // A reload with the same discovery keeps following the file (no reset to the empty
    // `backends`), even when the pool is rebuilt for new settings.
    p.app
        .reload(parse(&cfg(&one, "round-robin")))
        .await
        .expect("reload");
    assert_eq!(get(p.addr, "web.test", "/").await.text(), "a");
    p.app
        .reload(parse(&cfg(&one, "least-conn")))
        .await
        .expect("reload");
    assert_eq!(get(p.addr, "web.test", "/").await.text(), "a");
    let mut c = AdminClient::connect(p.admin).await;
    assert_eq!(c.members().await, vec![a.addr.to_string()]);

    // A reload that points at another file restarts the source.
    p.app
        .reload(parse(&cfg(&two, "least-conn")))
        .await
        .expect("reload");
    let r = get(p.addr, "web.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "b".to_owned()));
    // The replaced source stopped: changing the old file no longer matters.
    std::fs::write(&one, format!("[\"{}\", \"{}\"]", a.addr, b.addr)).expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut c = AdminClient::connect(p.admin).await;
    assert_eq!(c.members().await, vec![b.addr.to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn start_with_redis_unreachable_is_bounded_and_answers_503() {
    let dead = closed_port().await;
    let text = format!(
        "{}[pool.web]\ndiscovery = {{ kind = \"redis\", url = \"redis://{dead}\", key = \"k\" }}\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        prologue(None)
    );
    let t0 = Instant::now();
    let p = proxy_text(&text).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "start waited {took:?}");
    assert_eq!(get(p.addr, "web.test", "/").await.status, 503);
    let mut c = AdminClient::connect(p.admin).await;
    let v = c.pool().await;
    assert_eq!(
        (v["source"].as_str(), v["last_sync"].is_null()),
        (Some("redis"), true)
    );
    let body = r#"{"addr":"127.0.0.1:9"}"#;
    let r = admin(
        p.admin,
        "POST",
        "/api/v1/pools/web/backends",
        Some(body),
        None,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
}
