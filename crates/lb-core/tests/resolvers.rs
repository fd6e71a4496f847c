//! Resolvers against real directories on loopback: a tiny hyper HTTP directory inside
//! the test, and a real `redis-server` spawned on a free port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lb_core::resolve::{
    Answered, CacheSettings, Cached, HttpResolver, Resolution, ResolveError, Resolver, RespResolver,
};
use lb_core::resp::Frame;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

// ---------------------------------------------------------------- HTTP directory

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

/// A directory at `/backend/{name}` answering from a table (unknown names: `fallback`),
/// counting calls and connections and recording the raw paths it saw.
struct Directory {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    conns: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<HashMap<String, Reply>>>,
    fallback: Arc<Mutex<Reply>>,
    server: tokio::task::JoinHandle<()>,
}

impl Directory {
    async fn start() -> Directory {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(HashMap::new()));
        let fallback = Arc::new(Mutex::new(reply(404, "")));
        let (c, n, p, a, f) = (
            calls.clone(),
            conns.clone(),
            paths.clone(),
            answers.clone(),
            fallback.clone(),
        );
        let server = tokio::spawn(async move {
            // Dropping this set (when the server task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                n.fetch_add(1, Ordering::SeqCst);
                let (c, p, a, f) = (c.clone(), p.clone(), a.clone(), f.clone());
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (c, p, a, f) = (c.clone(), p.clone(), a.clone(), f.clone());
                    async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        let path = req.uri().path().to_string();
                        p.lock().unwrap().push(path.clone());
                        let name = path.strip_prefix("/backend/").unwrap_or("");
                        let r = a
                            .lock()
                            .unwrap()
                            .get(name)
                            .cloned()
                            .unwrap_or_else(|| f.lock().unwrap().clone());
                        if !r.delay.is_zero() {
                            tokio::time::sleep(r.delay).await;
                        }
                        let mut resp = Response::new(Full::new(Bytes::from(r.body)));
                        *resp.status_mut() = StatusCode::from_u16(r.status).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                connections.spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Directory {
            addr,
            calls,
            conns,
            paths,
            answers,
            fallback,
            server,
        }
    }

    fn set(&self, name: &str, r: Reply) {
        self.answers.lock().unwrap().insert(name.to_string(), r);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn resolver(&self, timeout: Duration) -> HttpResolver {
        HttpResolver::new(&format!("http://{}/backend/{{name}}", self.addr), timeout).unwrap()
    }

    /// Stops listening and closes every connection.
    async fn stop(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

fn eps(list: &[&str]) -> Resolution {
    Resolution::Found(
        list.iter()
            .map(|s| s.parse().unwrap())
            .collect::<Vec<SocketAddr>>()
            .into(),
    )
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn http_found_single_and_multi() {
    let dir = Directory::start().await;
    dir.set("one", reply(200, r#"{"endpoint":"127.0.0.1:9001"}"#));
    dir.set(
        "many",
        reply(200, r#"{"endpoints":["127.0.0.1:9001","[::1]:9002"]}"#),
    );
    let r = dir.resolver(T);
    assert_eq!(r.resolve("one").await, Ok(eps(&["127.0.0.1:9001"])));
    assert_eq!(
        r.resolve("many").await,
        Ok(eps(&["127.0.0.1:9001", "[::1]:9002"]))
    );
    assert_eq!(dir.calls(), 2);
    // Keep-alive: both lookups (and more) share one connection.
    for _ in 0..5 {
        r.resolve("one").await.unwrap();
    }
    assert_eq!(dir.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_status_and_body_errors() {
    let dir = Directory::start().await;
    dir.set("boom", reply(500, "oops"));
    dir.set("garbage", reply(200, "{not json"));
    dir.set("empty", reply(200, r#"{"endpoints":[]}"#));
    dir.set("badep", reply(200, r#"{"endpoint":"localhost"}"#));
    dir.set(
        "huge",
        reply(
            200,
            &format!(
                r#"{{"endpoint":"127.0.0.1:1","pad":"{}"}}"#,
                "x".repeat(100_000)
            ),
        ),
    );
    let r = dir.resolver(T);
    assert_eq!(r.resolve("missing").await, Ok(Resolution::NotFound));
    match r.resolve("boom").await {
        Err(ResolveError::Unavailable(msg)) => assert!(msg.contains("500"), "{msg}"),
        other => panic!("500 gave {other:?}"),
    }
    for name in ["garbage", "empty", "badep", "huge"] {
        assert!(
            matches!(r.resolve(name).await, Err(ResolveError::BadAnswer(_))),
            "{name}"
        );
    }
    assert_eq!(dir.calls(), 6);
}

#[tokio::test]
async fn http_slow_directory_times_out() {
    let dir = Directory::start().await;
    dir.set(
        "slow",
        Reply {
            delay: Duration::from_secs(3),
            ..reply(200, r#"{"endpoint":"127.0.0.1:1"}"#)
        },
    );
    let r = dir.resolver(Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert_eq!(
        r.resolve("slow").await,
        Err(ResolveError::Timeout(Duration::from_millis(200)))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn http_name_is_percent_encoded() {
    let dir = Directory::start().await;
    let r = dir.resolver(T);
    assert_eq!(r.resolve("a b/c?é").await, Ok(Resolution::NotFound));
    assert_eq!(
        r.resolve("tenant-1.example.com").await,
        Ok(Resolution::NotFound)
    );
    assert_eq!(
        *dir.paths.lock().unwrap(),
        [
            "/backend/a%20b%2Fc%3F%C3%A9",
            "/backend/tenant-1.example.com"
        ]
    );
}

#[tokio::test]
async fn http_unreachable_directory_is_unavailable() {
    let mut dir = Directory::start().await;
    let r = dir.resolver(T);
    dir.stop().await;
    assert!(matches!(
        r.resolve("x").await,
        Err(ResolveError::Unavailable(_))
    ));
}

// ---------------------------------------------------------------- Cached over HTTP

fn cache_settings() -> CacheSettings {
    {
        let mut s = CacheSettings::default();
        s.name = "dir".into();
        s.ttl = Duration::from_millis(300);
        s.negative_ttl = Duration::from_millis(150);
        s.stale_ttl = Duration::from_millis(600);
        s.max_entries = 1000;
        s.error_backoff = Duration::ZERO;
        s
    }
}

#[tokio::test]
async fn cached_ttl_expiry_asks_again() {
    let dir = Directory::start().await;
    dir.set("a", reply(200, r#"{"endpoint":"127.0.0.1:1"}"#));
    let cache = Cached::new(dir.resolver(T), {
        let mut s = cache_settings();
        s.ttl = Duration::from_secs(1);
        s
    });
    assert_eq!(cache.lookup("a").await.answered, Answered::Miss);
    for _ in 0..10 {
        assert_eq!(cache.lookup("a").await.answered, Answered::Hit);
    }
    assert_eq!(dir.calls(), 1);
    dir.set("a", reply(200, r#"{"endpoint":"127.0.0.1:2"}"#));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = cache.lookup("a").await;
    assert_eq!(
        (again.result, again.answered),
        (Ok(eps(&["127.0.0.1:2"])), Answered::Miss)
    );
    assert_eq!(dir.calls(), 2);
    assert_eq!(cache.stats().get(Answered::Hit), 10);
}

#[tokio::test]
async fn cached_negative_ttl_is_separate() {
    let dir = Directory::start().await;
    let cache = Cached::new(dir.resolver(T), {
        let mut s = cache_settings();
        s.ttl = Duration::from_secs(60);
        s
    });
    assert_eq!(cache.lookup("nx").await.result, Ok(Resolution::NotFound));
    assert_eq!(cache.lookup("nx").await.answered, Answered::Negative);
    assert_eq!(dir.calls(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await; // > negative_ttl, far below ttl
    dir.set("nx", reply(200, r#"{"endpoint":"127.0.0.1:3"}"#));
    assert_eq!(cache.lookup("nx").await.result, Ok(eps(&["127.0.0.1:3"])));
    assert_eq!(dir.calls(), 2);
}

#[tokio::test]
async fn cached_stale_if_error_then_error() {
    let mut dir = Directory::start().await;
    dir.set("a", reply(200, r#"{"endpoint":"127.0.0.1:4"}"#));
    let cache = Cached::new(dir.resolver(Duration::from_millis(300)), cache_settings());
    assert_eq!(cache.lookup("a").await.answered, Answered::Miss);
    dir.stop().await;
    tokio::time::sleep(Duration::from_millis(400)).await; // past ttl (300 ms), within ttl + stale_ttl (900 ms)
    let stale = cache.lookup("a").await;
    assert_eq!(
        (stale.result, stale.answered),
        (Ok(eps(&["127.0.0.1:4"])), Answered::Stale)
    );
    tokio::time::sleep(Duration::from_millis(700)).await; // past 900 ms
    let failed = cache.lookup("a").await;
    assert_eq!(failed.answered, Answered::Error);
    assert!(failed.result.is_err());
    let stats = cache.stats();
    assert_eq!(
        (stats.get(Answered::Stale), stats.get(Answered::Error)),
        (1, 1)
    );
}

#[tokio::test]
async fn cached_size_bound_holds_under_10x_inserts() {
    let dir = Directory::start().await;
    *dir.fallback.lock().unwrap() = reply(200, r#"{"endpoint":"127.0.0.1:5"}"#);
    let cache = Cached::new(dir.resolver(T), {
        let mut s = cache_settings();
        s.max_entries = 50;
        s.ttl = Duration::from_secs(60);
        s
    });
    for i in 0..500 {
        assert!(cache.lookup(&format!("n{i}")).await.result.is_ok());
        assert!(cache.len() <= 50, "{} entries after {i}", cache.len());
    }
    assert_eq!(cache.stats().entries, 50);
    assert_eq!(dir.calls(), 500);
}

async fn single_flight(n: usize) {
    let dir = Directory::start().await;
    dir.set(
        "cold",
        Reply {
            delay: Duration::from_millis(300),
            ..reply(200, r#"{"endpoint":"127.0.0.1:6"}"#)
        },
    );
    let cache = Arc::new(Cached::new(dir.resolver(T), cache_settings()));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let cache = cache.clone();
        tasks.spawn(async move { cache.lookup("cold").await });
    }
    let mut kinds = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let lookup = done.unwrap();
        assert_eq!(lookup.result, Ok(eps(&["127.0.0.1:6"])));
        *kinds.entry(lookup.answered).or_insert(0usize) += 1;
    }
    assert_eq!(
        dir.calls(),
        1,
        "{n} concurrent lookups made one directory call"
    );
    assert_eq!(kinds.get(&Answered::Miss), Some(&1));
    assert_eq!(kinds.get(&Answered::Coalesced), Some(&(n - 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_single_flight_50() {
    single_flight(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_single_flight_1000() {
    single_flight(1000).await;
}

// ---------------------------------------------------------------- RESP against redis-server

/// A `redis-server` on a free loopback port, killed (by its PID) when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    async fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed at /usr/bin/redis-server");
        let redis = Redis { child, port };
        redis.wait_ready().await;
        redis
    }

    async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port).await
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn wait_ready(&self) {
        let probe = RespResolver::new(self.addr(), "", Duration::from_millis(200));
        for _ in 0..100 {
            if probe.command(&[b"PING"]).await == Ok(Frame::Simple("PONG".into())) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} never answered PING", self.port);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn set(r: &RespResolver, key: &str, value: &str) {
    assert_eq!(
        r.command(&[b"SET", key.as_bytes(), value.as_bytes()]).await,
        Ok(Frame::Simple("OK".into()))
    );
}

#[tokio::test]
async fn resp_found_not_found_and_errors() {
    let redis = Redis::start().await;
    let r = RespResolver::from_url(&format!("redis://127.0.0.1:{}", redis.port), "backend:", T)
        .unwrap();
    set(&r, "backend:a.example", "127.0.0.1:7001").await;
    set(&r, "backend:b.example", "127.0.0.1:7001, [::1]:7002").await;
    set(&r, "backend:bad.example", "nonsense").await;
    assert_eq!(
        r.command(&[b"LPUSH", b"backend:list.example", b"x"]).await,
        Ok(Frame::Integer(1))
    );
    assert_eq!(r.resolve("a.example").await, Ok(eps(&["127.0.0.1:7001"])));
    assert_eq!(
        r.resolve("b.example").await,
        Ok(eps(&["127.0.0.1:7001", "[::1]:7002"]))
    );
    assert_eq!(r.resolve("missing.example").await, Ok(Resolution::NotFound));
    assert!(matches!(
        r.resolve("bad.example").await,
        Err(ResolveError::BadAnswer(_))
    ));
    match r.resolve("list.example").await {
        Err(ResolveError::Unavailable(msg)) => assert!(msg.starts_with("WRONGTYPE"), "{msg}"),
        other => panic!("WRONGTYPE gave {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_200_concurrent_lookups_pipelined_on_one_connection() {
    let redis = Redis::start().await;
    let r = Arc::new(RespResolver::new(redis.addr(), "", T));
    for i in 0..200u16 {
        if i % 3 != 0 {
            set(&r, &format!("n{i}"), &format!("127.0.0.1:{}", 10_000 + i)).await;
        }
    }
    let mut tasks = JoinSet::new();
    for i in 0..200u16 {
        let r = r.clone();
        tasks.spawn(async move { (i, r.resolve(&format!("n{i}")).await) });
    }
    let mut seen = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, got) = done.unwrap();
        let want = if i % 3 == 0 {
            Resolution::NotFound
        } else {
            eps(&[&format!("127.0.0.1:{}", 10_000 + i)])
        };
        assert_eq!(got, Ok(want), "n{i}");
        seen += 1;
    }
    assert_eq!(seen, 200);
    // Every command went over the resolver's single connection.
    let info = match r.command(&[b"INFO", b"clients"]).await {
        Ok(Frame::Bulk(Some(b))) => String::from_utf8(b).unwrap(),
        other => panic!("INFO gave {other:?}"),
    };
    assert!(info.contains("connected_clients:1\r\n"), "{info}");
}

#[tokio::test]
async fn resp_reconnects_after_redis_restarts() {
    let mut redis = Redis::start().await;
    let port = redis.port;
    let r = RespResolver::new(redis.addr(), "", Duration::from_millis(500));
    set(&r, "a", "127.0.0.1:7001").await;
    assert_eq!(r.resolve("a").await, Ok(eps(&["127.0.0.1:7001"])));
    redis.kill();
    // The dead connection (and the refused reconnect) are errors, not hangs.
    assert!(matches!(
        r.resolve("a").await,
        Err(ResolveError::Unavailable(_))
    ));
    assert!(matches!(
        r.resolve("a").await,
        Err(ResolveError::Unavailable(_))
    ));
    let _redis = Redis::start_on(port).await;
    set(&r, "a", "127.0.0.1:7002").await;
    assert_eq!(r.resolve("a").await, Ok(eps(&["127.0.0.1:7002"])));
}

#[tokio::test]
async fn resp_cached_over_redis() {
    let redis = Redis::start().await;
    let r = RespResolver::new(redis.addr(), "", T);
    set(&r, "a", "127.0.0.1:7003").await;
    let cache = Cached::new(r, cache_settings());
    assert_eq!(cache.lookup("a").await.answered, Answered::Miss);
    assert_eq!(cache.lookup("a").await.answered, Answered::Hit);
    assert_eq!(cache.lookup("nx").await.result, Ok(Resolution::NotFound));
    assert_eq!(cache.lookup("nx").await.answered, Answered::Negative);
}
