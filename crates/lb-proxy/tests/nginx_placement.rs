//! `strategy = "consistent-nginx"` against the real nginx: nginx (`hash $arg_k
//! consistent`) and lb-proxy in front of the same loopback backends (weights 1 and 2) send
//! every one of 10,000 keys to the same backend, by real requests through both, and still
//! do after one server is removed from both configs.
//!
//! nginx runs as a non-daemon, single-process child (`master_process off`) with its own
//! prefix, config and logs in a temporary directory, and is killed by PID at the end.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const KEYS: usize = 10_000;

/// A running nginx, killed by PID and its directory removed on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts nginx balancing `servers` (address, weight) with `hash $arg_k consistent`.
async fn nginx(servers: &[(SocketAddr, u32)]) -> Nginx {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("lb-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
    let upstream: String = servers
        .iter()
        .map(|(a, w)| format!("        server {a} weight={w};\n"))
        .collect();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/logs/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
         upstream backends {{\n        hash $arg_k consistent;\n{upstream}        keepalive 8;\n    }}\n\
         server {{\n        listen 127.0.0.1:{port};\n        keepalive_requests 100000;\n\
         location / {{\n            proxy_pass http://backends;\n\
         proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n\
         proxy_next_upstream off;\n        }}\n    }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("logs/error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx (Debian: apt-get install nginx-light)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let n = Nginx { child, dir, addr };
    let t0 = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nginx did not listen on {addr} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

fn nginx_binary() -> &'static str {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("nginx")
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    tx: SendRequest<TestBody>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Client { tx }
    }

    /// `GET path`: the status and body.
    async fn get(&mut self, host: &str, path: &str) -> (u16, Bytes) {
        self.tx.ready().await.expect("connection open");
        let req = Request::get(path)
            .header("host", host)
            .body(full(Bytes::new()))
            .expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(10), self.tx.send_request(req))
            .await
            .expect("answer within 10 s")
            .expect("answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    }

    /// The backend (its name) that answered `GET /?k=KEY` for each key.
    async fn placements(&mut self, host: &str, keys: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let (status, body) = self.get(host, &format!("/?k={k}")).await;
            assert_eq!(status, 200, "key {k}: {}", String::from_utf8_lossy(&body));
            out.push(String::from_utf8_lossy(&body).into_owned());
        }
        out
    }
}

fn lb_config(servers: &[(SocketAddr, u32)]) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|(a, w)| format!("{{ addr = \"{a}\", weight = {w} }}"))
        .collect();
    format!(
        "[pool.web]\nstrategy = \"consistent-nginx\"\nkey = \"query:k\"\nbackends = [{}]\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        list.join(", ")
    )
}

/// Both balancers over `servers`: every key's backend, asserted identical.
async fn agree(servers: &[(SocketAddr, u32)], keys: &[String]) -> Vec<String> {
    let ngx = nginx(servers).await;
    let lb = proxy(&lb_config(servers)).await;
    let by_nginx = Client::connect(ngx.addr)
        .await
        .placements("web.test", keys)
        .await;
    let by_lb = Client::connect(lb.addr)
        .await
        .placements("web.test", keys)
        .await;
    let differ: Vec<(&String, &String, &String)> = keys
        .iter()
        .zip(by_nginx.iter().zip(&by_lb))
        .filter(|(_, (n, l))| n != l)
        .map(|(k, (n, l))| (k, n, l))
        .take(5)
        .collect();
    assert!(
        differ.is_empty(),
        "lb-proxy and nginx disagree, e.g. (key, nginx, lb): {differ:?}"
    );
    by_nginx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_proxy_places_every_key_where_nginx_does() {
    let mut backends = Vec::new();
    for i in 1..=4 {
        backends.push(Backend::start(&format!("b{i}")).await);
    }
    let weights = [1, 2, 1, 2];
    let servers: Vec<(SocketAddr, u32)> = backends.iter().map(|b| b.addr).zip(weights).collect();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user-{i}")).collect();

    let before = agree(&servers, &keys).await;
    // Not a degenerate placement: every backend got keys, the weight-2 ones about twice.
    for b in &backends {
        let n = before.iter().filter(|p| **p == b.name).count();
        assert!(n > KEYS / 20, "{} got only {n} of {KEYS} keys", b.name);
    }

    // b2 (weight 2) leaves both configs: only its keys move, identically in both.
    let after_servers: Vec<(SocketAddr, u32)> = servers
        .iter()
        .copied()
        .filter(|(a, _)| *a != backends[1].addr)
        .collect();
    let after = agree(&after_servers, &keys).await;
    for (k, (b, a)) in keys.iter().zip(before.iter().zip(&after)) {
        if b != "b2" {
            assert_eq!(b, a, "key {k} moved from {b} though b2 left");
        } else {
            assert_ne!(a, "b2", "key {k} still on the removed b2");
        }
    }
}
