//! The harness of the tests run against both binaries (`tests/`): lb-proxy and lb-sni
//! (on a plain-HTTP listener) started in-process on loopback port 0 from the same config
//! body, real TCP backends, an HTTP directory the test steers, a real `redis-server`,
//! and readers for the admin API and `/metrics`. Every socket is on 127.0.0.1.

#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)] // test support: a panic is a failed test

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lb_core::config::{Binary, Config};
use lb_core::resolve::EndpointPools;
use lb_core::{Backend as CoreBackend, Pool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use lb_test_support::backend::read_head;
pub use lb_test_support::eventually;
/// The plain HTTP/1.1 backend answering its tag (see [`lb_test_support::HttpBackend`]).
pub use lb_test_support::HttpBackend as Backend;

/// Generous bound on any one exchange.
pub const T: Duration = Duration::from_secs(10);

/// The binary under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bin {
    /// lb-proxy.
    Proxy,
    /// lb-sni, on a `protocol = "http"` listener.
    Sni,
}

impl Bin {
    /// Both binaries.
    pub const BOTH: [Bin; 2] = [Bin::Proxy, Bin::Sni];

    /// Starts the binary with `body` (pools, routes, resolvers) after an admin section and
    /// one listener on port 0.
    pub async fn start(self, body: &str) -> Running {
        let listener = match self {
            Bin::Proxy => "[[listener]]\nlisten = \"127.0.0.1:0\"\n",
            Bin::Sni => "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n",
        };
        let text = format!("[admin]\nlisten = \"127.0.0.1:0\"\n\n{listener}\n{body}");
        let binary = match self {
            Bin::Proxy => Binary::Proxy,
            Bin::Sni => Binary::Sni,
        };
        let config = Config::parse(&text, Path::new("scenario.toml"), binary)
            .unwrap_or_else(|e| panic!("{self:?}: config does not parse: {e}\n{text}"));
        let app = match self {
            Bin::Proxy => App::Proxy(lb_proxy::app::start(config).await.expect("lb-proxy starts")),
            Bin::Sni => App::Sni(lb_sni::app::start(config).await.expect("lb-sni starts")),
        };
        let (addr, admin) = match &app {
            App::Proxy(a) => (a.listen_addrs()[0], a.admin_addr()),
            App::Sni(a) => (a.listen_addrs()[0], a.admin_addr()),
        };
        Running {
            bin: self,
            _app: app,
            addr,
            admin,
        }
    }
}

enum App {
    Proxy(lb_proxy::app::App),
    Sni(lb_sni::app::App),
}

/// A binary running in-process.
pub struct Running {
    /// Which one.
    pub bin: Bin,
    _app: App,
    /// Its listener.
    pub addr: SocketAddr,
    /// Its admin API.
    pub admin: SocketAddr,
}

/// What a client saw: the status, `x-lb-error` (empty when none) and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The status code (0: no answer at all).
    pub status: u16,
    /// The `x-lb-error` value, or "".
    pub error: String,
    /// The body.
    pub body: String,
}

impl Running {
    /// `GET /` with `Host: host`, `Connection: close`, read to the end.
    pub async fn get(&self, host: &str) -> Seen {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let text = exchange(self.addr, req.as_bytes()).await;
        parse_answer(&text)
    }

    /// A sample of `/metrics` (`name{labels}` exactly as written, e.g.
    /// `lb_retries_total{pool="dir"}`); 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.admin_get("/metrics").await.body;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Every backend's `(addr, state)` of `pool`, from the admin API.
    pub async fn states(&self, pool: &str) -> Vec<(String, String)> {
        let r = self.admin_get(&format!("/api/v1/pools/{pool}")).await;
        assert_eq!(r.status, 200, "{:?}: pool {pool}: {}", self.bin, r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("pool JSON");
        v["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .map(|b| {
                (
                    b["addr"].as_str().unwrap_or("").to_owned(),
                    b["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    async fn admin_get(&self, path: &str) -> Seen {
        let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        parse_answer(&exchange(self.admin, req.as_bytes()).await)
    }
}

/// Writes `bytes` and reads until EOF (or [`T`]).
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status, `x-lb-error` and body of a raw HTTP/1.1 answer.
pub fn parse_answer(text: &str) -> Seen {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let error = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("x-lb-error")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Seen {
        status,
        error,
        body: body.to_owned(),
    }
}

/// A loopback port nothing listens on: connecting is refused.
pub fn refusing() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A listener that never accepts and whose queue is full: connecting hangs until the
/// connect timeout. Keep it alive while it is used.
pub struct Blackhole {
    /// Its address.
    pub addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl Blackhole {
    /// Opens one.
    pub async fn open() -> Blackhole {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let listener = socket.listen(0).expect("listen");
        let addr = listener.local_addr().expect("addr");
        // Fill the accept queue (a backlog of 0 still queues one): later SYNs are dropped.
        let mut queued = Vec::new();
        for _ in 0..3 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
            {
                queued.push(s);
            }
        }
        Blackhole {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}

/// An HTTP directory the test steers: `GET /dir/{name}` answers what [`Directory::set`]
/// put there (404 for unknown names), or `503` for everything while it is down. Counts
/// the lookups it answered.
pub struct Directory {
    /// Where it listens.
    pub addr: SocketAddr,
    answers: Arc<Mutex<HashMap<String, (&'static str, String)>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    asked: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Directory {
    /// Starts one.
    pub async fn start() -> Directory {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let answers: Arc<Mutex<HashMap<String, (&'static str, String)>>> = Arc::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asked = Arc::new(AtomicUsize::new(0));
        let (a, d, n) = (answers.clone(), down.clone(), asked.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (a, d, n) = (a.clone(), d.clone(), n.clone());
                tokio::spawn(async move {
                    let head = read_head(&mut stream).await;
                    let name = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.strip_prefix("/dir/"))
                        .unwrap_or("")
                        .to_owned();
                    n.fetch_add(1, Ordering::SeqCst);
                    let found = a.lock().expect("answers").get(&name).cloned();
                    let (status, ctype, body) = match (d.load(Ordering::SeqCst), found) {
                        (true, _) => (503, "text/plain", "down".to_owned()),
                        (false, Some((ctype, body))) => (200, ctype, body),
                        (false, None) => (404, "text/plain", "no such name".to_owned()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(resp.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Directory {
            addr,
            answers,
            down,
            asked,
            task,
        }
    }

    /// `[resolver.NAME]` asking this directory, with `extra` keys.
    pub fn resolver(&self, name: &str, extra: &str) -> String {
        format!(
            "[resolver.{name}]\nkind = \"http\"\nurl = \"http://{}/dir/{{name}}\"\n{extra}\n",
            self.addr
        )
    }

    /// Answers `name` with a JSON body.
    pub fn set_json(&self, name: &str, json: &str) {
        self.set(name, "application/json", json);
    }

    /// Answers `name` with `body` of `content_type`.
    pub fn set(&self, name: &str, content_type: &'static str, body: &str) {
        self.answers
            .lock()
            .expect("answers")
            .insert(name.to_owned(), (content_type, body.to_owned()));
    }

    /// While `down`, every lookup gets `503`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Lookups answered so far.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

/// Where a client at 127.0.0.1 goes first among `addrs` in a directory answer (and in a
/// `strategy = "rendezvous"` pool of them keyed by `client-ip`): both binaries key
/// directory endpoints by the client IP, so this is what both pick.
pub fn first_for_local_client(addrs: &[SocketAddr]) -> SocketAddr {
    let backends = addrs.iter().map(|a| CoreBackend::new(*a)).collect();
    let pool = Pool::new("order", EndpointPools::settings(0), backends).expect("distinct");
    pool.snapshot()
        .route(b"127.0.0.1")
        .map(|m| m.backend().addr())
        .expect("a member")
}

/// A refusing port that a client at 127.0.0.1 is sent to before `other`.
pub fn refusing_before(other: SocketAddr) -> SocketAddr {
    loop {
        let r = refusing();
        if first_for_local_client(&[r, other]) == r {
            return r;
        }
    }
}

/// A `redis-server` on a free loopback port, killed (by its PID) when dropped.
pub struct Redis {
    child: tokio::process::Child,
    /// Its address.
    pub addr: SocketAddr,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Redis {
    /// Starts one and waits until it answers.
    pub async fn start() -> Redis {
        let port = refusing().port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let redis = Redis { child, addr };
        assert!(
            eventually(Duration::from_secs(10), || async {
                redis.command(&["PING"]).await.contains("PONG")
            })
            .await,
            "redis-server answers PING"
        );
        redis
    }

    /// Sends one command (inline) and returns the raw reply.
    pub async fn command(&self, args: &[&str]) -> String {
        let Ok(mut s) = TcpStream::connect(self.addr).await else {
            return String::new();
        };
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let _ = s.write_all(cmd.as_bytes()).await;
        let mut b = [0u8; 512];
        match tokio::time::timeout(T, s.read(&mut b)).await {
            Ok(Ok(n)) => String::from_utf8_lossy(&b[..n]).into_owned(),
            _ => String::new(),
        }
    }
}
