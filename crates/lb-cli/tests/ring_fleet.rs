//! A fleet on one Redis pool: two `lb ring serve --config FILE --pool web` processes and
//! one lb-proxy (in-process) follow the same Redis membership and health checks. They
//! agree on 10,000 keys; a `RING.DEL` on one ring server reaches the other and the proxy
//! within 2 s and moves only the removed backend's keys; they keep answering while Redis
//! is down and resync when it is back; a backend failing its health checks leaves every
//! ring server's answers. Also: a ring over a `file` pool follows the file and refuses
//! `RING.ADD`/`RING.DEL`.

mod common;

#[path = "../../lb-core/tests/support/redis_server.rs"]
mod redis_server;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ring_binary, text, Reap, Resp};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use lb_core::config::{Binary, Config};
use lb_core::resp::Frame;
use redis_server::RedisServer;

use lb_test_support::{temp_dir, HttpBackend};
use tokio::net::TcpStream;

const KEYS: usize = 10_000;
/// A change made through one member reaches the others within this (pub/sub delivers in
/// milliseconds; `resync = "1s"` is the fallback).
const CONVERGENCE: Duration = Duration::from_secs(2);
/// Generous bound for things with backoff in them (reconnect after a Redis restart,
/// health checks going down).
const SLOW: Duration = Duration::from_secs(20);

/// One keep-alive HTTP/1.1 connection.
struct Http {
    tx: SendRequest<Full<Bytes>>,
}

impl Http {
    async fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Http { tx }
    }

    async fn get(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Bytes) {
        self.tx.ready().await.expect("connection open");
        let mut req = Request::get(path).header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::new())).expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(10), self.tx.send_request(req))
            .await
            .expect("answer within 10 s")
            .expect("answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    }

    /// The proxy's placement of each key (`/api/v1/route`).
    async fn routes(&mut self, keys: &[String]) -> Vec<Option<String>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let (status, body) = self
                .get("admin", &format!("/api/v1/route?pool=web&key={k}"), &[])
                .await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            out.push(v["backend"].as_str().map(str::to_owned));
        }
        out
    }

    /// The proxy's members of pool `web`, sorted.
    async fn members(&mut self) -> Vec<String> {
        let (status, body) = self.get("admin", "/api/v1/pools/web", &[]).await;
        assert_eq!(status, 200);
        lb_test_support::shell::pool_members(&body)
    }
}

/// Each key's owner by a ring server (`MGET` in batches of 1,000).
async fn ring_answers(c: &mut Resp, keys: &[String]) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(1000) {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(batch.iter().map(|k| k.as_bytes()));
        c.send(&args).await;
        let Some(Frame::Array(Some(items))) = c.read().await else {
            panic!("MGET answers an array")
        };
        out.extend(items.iter().map(text));
    }
    out
}

/// The ring server's nodes, sorted.
async fn ring_nodes(c: &mut Resp) -> Vec<String> {
    let Frame::Array(Some(nodes)) = c.cmd(&["RING.NODES"]).await else {
        panic!("RING.NODES answers an array")
    };
    let mut v: Vec<String> = nodes
        .iter()
        .map(|n| match n {
            Frame::Array(Some(f)) => text(&f[0]).expect("an address"),
            other => panic!("{other:?}"),
        })
        .collect();
    v.sort();
    v
}

async fn info_ring(c: &mut Resp) -> String {
    let r = c.cmd(&["INFO", "ring"]).await;
    text(&r).expect("INFO text")
}

fn config_text(redis: &RedisServer) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\n\
         [pool.web]\nstrategy = \"consistent\"\nkey = \"header:x-key\"\n\
         discovery = {{ kind = \"redis\", url = \"{}\", key = \"lb:pool:web\", resync = \"1s\" }}\n\
         [pool.web.health]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 2\n\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        redis.url()
    )
}

/// Polls until both ring servers and the proxy show `want` as the members.
async fn converge(rings: &mut [Resp], proxy: &mut Http, want: &[String], within: Duration) {
    let t0 = Instant::now();
    loop {
        let mut all = proxy.members().await == want;
        for r in rings.iter_mut() {
            all &= ring_nodes(r).await == want;
        }
        if all {
            return;
        }
        assert!(
            t0.elapsed() < within,
            "ring servers and proxy did not converge on {want:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both ring servers' answers and the proxy's placement for `keys`, asserted identical.
async fn agreed(rings: &mut [Resp], proxy: &mut Http, keys: &[String]) -> Vec<Option<String>> {
    let by_proxy = proxy.routes(keys).await;
    for (i, r) in rings.iter_mut().enumerate() {
        let got = ring_answers(r, keys).await;
        let differ = got.iter().zip(&by_proxy).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ, 0,
            "ring server {i} disagrees with the proxy on {differ} keys"
        );
    }
    by_proxy
}

#[test]
fn rings_and_proxy_on_one_redis_pool() {
    // The scenario with the in-process proxy polls deeper than the test thread's 2 MiB
    // stack allows in a debug build: run it on a thread of its own with room to spare.
    let scenario = std::thread::Builder::new()
        .name("fleet".into())
        .stack_size(32 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(fleet())
        })
        .expect("spawn the scenario thread");
    if let Err(panic) = scenario.join() {
        std::panic::resume_unwind(panic);
    }
}

#[allow(clippy::too_many_lines)] // one scenario, step by step: split, its steps would lose their order
async fn fleet() {
    let mut redis = RedisServer::start().await;
    let mut backends = Vec::new();
    for i in 1..=5 {
        backends.push(HttpBackend::start(&format!("b{i}")).await);
    }
    for (i, b) in backends.iter().enumerate() {
        let w = if i == 4 { "2" } else { "1" };
        redis
            .cmd(&["HSET", "lb:pool:web", &b.addr.to_string(), w])
            .await;
    }
    let names: HashMap<String, String> = backends
        .iter()
        .map(|b| (b.addr.to_string(), b.tag.clone()))
        .collect();
    let mut all: Vec<String> = names.keys().cloned().collect();
    all.sort();

    let dir = temp_dir("redis");
    let path = dir.join("lb.toml");
    let text_cfg = config_text(&redis);
    std::fs::write(&path, &text_cfg).expect("write config");
    let p = path.to_str().expect("utf-8 path");
    let (a, ring_a) = ring_binary(&["--config", p, "--pool", "web"]);
    let _a = Reap(a);
    let (b, ring_b) = ring_binary(&["--config", p, "--pool", "web", "--threads", "2"]);
    let _b = Reap(b);
    let config = Config::parse(&text_cfg, &path, Binary::Proxy).expect("valid config");
    let app = lb_proxy::app::start(config).await.expect("proxy starts");
    let mut proxy = Http::connect(app.admin_addr()).await;
    let mut rings = vec![Resp::connect(ring_a).await, Resp::connect(ring_b).await];

    // Every member starts from the synced hash, and says where it comes from.
    converge(&mut rings, &mut proxy, &all, CONVERGENCE).await;
    for r in rings.iter_mut() {
        let info = info_ring(r).await;
        assert!(info.contains("source:redis\r\n"), "{info}");
        assert!(
            info.contains("last_sync:20"),
            "an RFC 3339 last sync: {info}"
        );
    }

    // 1. 10,000 keys: the same owner from both ring servers and the proxy.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user-{i}")).collect();
    let before = agreed(&mut rings, &mut proxy, &keys).await;
    for a in &all {
        assert!(before.contains(&Some(a.clone())), "{a} got no keys");
    }
    // Real requests through the proxy reach the backend the rings name.
    let mut client = Http::connect(app.listen_addrs()[0]).await;
    for i in (0..KEYS).step_by(KEYS / 200) {
        let (status, body) = client.get("web.test", "/", &[("x-key", &keys[i])]).await;
        assert_eq!(status, 200);
        let owner = before[i].as_ref().expect("an owner");
        assert_eq!(body, names[owner].as_bytes(), "key {}", keys[i]);
    }

    // 2. RING.DEL on ring server A: written to Redis, so B and the proxy follow within
    // 2 s, and only the removed backend's keys move.
    let gone = backends[2].addr.to_string();
    assert_eq!(
        rings[0].cmd(&["RING.DEL", &gone]).await,
        Frame::Simple("OK".into())
    );
    let rest: Vec<String> = all.iter().filter(|a| **a != gone).cloned().collect();
    converge(&mut rings, &mut proxy, &rest, CONVERGENCE).await;
    let hash = redis.cmd(&["HEXISTS", "lb:pool:web", &gone]).await;
    assert_eq!(
        hash,
        Frame::Integer(0),
        "RING.DEL removed the field in Redis"
    );
    let after_del = agreed(&mut rings, &mut proxy, &keys).await;
    for (k, (b, a)) in keys.iter().zip(before.iter().zip(&after_del)) {
        if b.as_deref() == Some(gone.as_str()) {
            assert_ne!(a, b, "key {k} still on the removed backend");
        } else {
            assert_eq!(a, b, "key {k} moved though its backend stayed");
        }
    }
    // Errors name the node.
    let r = rings[1].cmd(&["RING.DEL", &gone]).await;
    assert!(
        matches!(&r, Frame::Error(e) if e.contains("is not a node")),
        "{r:?}"
    );
    let r = rings[1].cmd(&["RING.ADD", &rest[0]]).await;
    assert!(
        matches!(&r, Frame::Error(e) if e.contains("already a node")),
        "{r:?}"
    );

    // 3. Redis goes away: everyone keeps answering from the last membership, and writes
    // fail cleanly.
    redis.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = agreed(&mut rings, &mut proxy, &keys[..2000]).await;
    assert_eq!(during, after_del[..2000]);
    let r = rings[0].cmd(&["RING.ADD", &gone]).await;
    assert!(
        matches!(&r, Frame::Error(e) if e.contains("unavailable")),
        "{r:?}"
    );
    // Back, with a change made behind everyone's back (no PUBLISH): the resync after the
    // reconnect finds it.
    redis.resume().await;
    redis.cmd(&["HSET", "lb:pool:web", &gone, "1"]).await;
    converge(&mut rings, &mut proxy, &all, SLOW).await;
    let resynced = agreed(&mut rings, &mut proxy, &keys).await;
    assert_eq!(
        resynced, before,
        "the same membership places keys as before"
    );
    for r in rings.iter_mut() {
        let info = info_ring(r).await;
        let age: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("last_sync_age_seconds:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("last_sync_age_seconds in {info}"));
        assert!(age <= 5, "synced recently: {info}");
    }

    // 4. A backend fails its health checks: no ring server answers it any more, and no
    // other key moves.
    let sick = backends[0].addr.to_string();
    backends[0].kill();
    let t0 = Instant::now();
    let mut answers: Vec<Vec<Option<String>>>;
    loop {
        answers = Vec::new();
        for r in rings.iter_mut() {
            answers.push(ring_answers(r, &keys).await);
        }
        if answers.iter().all(|a| !a.contains(&Some(sick.clone()))) {
            break;
        }
        assert!(t0.elapsed() < SLOW, "{sick} still answered after {SLOW:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for a in &answers {
        for (k, (was, now)) in keys.iter().zip(before.iter().zip(a)) {
            if was.as_deref() != Some(sick.as_str()) {
                assert_eq!(now, was, "key {k} moved though its backend is healthy");
            }
        }
        assert!(
            a.iter().all(Option::is_some),
            "every key has a healthy owner"
        );
    }
    assert_eq!(answers[0], answers[1], "both ring servers agree");
    let Frame::Array(Some(nodes)) = rings[0].cmd(&["RING.NODES"]).await else {
        panic!("RING.NODES answers an array")
    };
    let states: Vec<(String, String)> = nodes
        .iter()
        .map(|n| match n {
            Frame::Array(Some(f)) => (
                text(&f[0]).unwrap_or_default(),
                text(&f[2]).unwrap_or_default(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    for (addr, state) in &states {
        let want = if *addr == sick { "down" } else { "up" };
        assert_eq!(state, want, "{addr}: {states:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_over_a_file_pool_follows_the_file_and_refuses_writes() {
    let dir = temp_dir("file");
    let list = dir.join("backends.json");
    std::fs::write(
        &list,
        r#"["127.0.0.1:7101", {"addr": "127.0.0.1:7102", "weight": 2}]"#,
    )
    .expect("write list");
    let path = dir.join("lb.toml");
    std::fs::write(
        &path,
        format!(
            "[[listener]]\nlisten = \"127.0.0.1:8080\"\n\n[pool.files]\nstrategy = \"consistent-nginx\"\n\
             discovery = {{ kind = \"file\", path = \"{}\" }}\n",
            list.display()
        ),
    )
    .expect("write config");
    let (child, ring) = ring_binary(&["--config", path.to_str().expect("utf-8")]);
    let _reap = Reap(child);
    let mut c = Resp::connect(ring).await;
    assert_eq!(
        ring_nodes(&mut c).await,
        vec!["127.0.0.1:7101".to_owned(), "127.0.0.1:7102".to_owned()]
    );
    let info = info_ring(&mut c).await;
    assert!(info.contains("source:file\r\n"), "{info}");
    assert!(info.contains("strategy:consistent-nginx\r\n"), "{info}");
    assert!(info.contains("last_sync:20"), "{info}");
    for cmd in [
        vec!["RING.ADD", "127.0.0.1:7103"],
        vec!["RING.DEL", "127.0.0.1:7101"],
    ] {
        let r = c.cmd(&cmd).await;
        assert!(
            matches!(&r, Frame::Error(e) if e.starts_with("ERR pool files takes its membership from file discovery")),
            "{cmd:?}: {r:?}"
        );
    }
    // Still two nodes, and the connection still works.
    assert_eq!(ring_nodes(&mut c).await.len(), 2);
    // The file is the owner: a new list is followed (polled every second).
    std::fs::write(&list, r#"["127.0.0.1:7103"]"#).expect("rewrite list");
    let t0 = Instant::now();
    while ring_nodes(&mut c).await != vec!["127.0.0.1:7103".to_owned()] {
        assert!(t0.elapsed() < SLOW, "the ring did not follow the file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owners: BTreeSet<Option<String>> = ring_answers(&mut c, &["a".into(), "b".into()])
        .await
        .into_iter()
        .collect();
    assert_eq!(owners, BTreeSet::from([Some("127.0.0.1:7103".to_owned())]));
    let _ = std::fs::remove_dir_all(&dir);
}
