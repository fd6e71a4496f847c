//! PROXY protocol towards backends (`proxy_protocol = "v1" | "v2"` on a pool): every
//! upstream connection starts with a header naming the client connection it serves, is
//! reused only by that client connection, and is closed when the client connection ends.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lb_core::proxy_protocol::{parse, Parsed, Version};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(10);

/// A backend that reads a PROXY header first, then serves HTTP/1.1 answering the number
/// of the connection the request came on.
struct PpBackend {
    addr: SocketAddr,
    /// The header of each accepted connection, by connection number.
    headers: Arc<Mutex<Vec<Parsed>>>,
    /// Connection numbers that have closed.
    closed: Arc<Mutex<Vec<usize>>>,
    accepts: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for PpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads exactly one PROXY header, a byte at a time so nothing after it is consumed.
async fn read_header(s: &mut TcpStream) -> Option<Parsed> {
    let mut buf = Vec::new();
    loop {
        let mut b = [0u8; 1];
        match tokio::time::timeout(T, s.read(&mut b)).await {
            Ok(Ok(1)) => buf.push(b[0]),
            _ => return None,
        }
        match parse(&buf) {
            Ok(p) => return Some(p),
            Err(e) if e.is_incomplete() => continue,
            Err(_) => return None,
        }
    }
}

async fn pp_backend() -> PpBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let headers = Arc::new(Mutex::new(Vec::new()));
    let closed = Arc::new(Mutex::new(Vec::new()));
    let accepts = Arc::new(AtomicUsize::new(0));
    let (h, c, a) = (headers.clone(), closed.clone(), accepts.clone());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let (h, c) = (h.clone(), c.clone());
            // Numbered in accept order; the header is recorded under the same number.
            let id = a.fetch_add(1, Ordering::SeqCst);
            conns.spawn(async move {
                let Some(parsed) = read_header(&mut stream).await else {
                    c.lock().expect("lock").push(id);
                    return;
                };
                {
                    let mut h = h.lock().expect("lock");
                    while h.len() <= id {
                        h.push(parsed);
                    }
                    h[id] = parsed;
                }
                let svc = service_fn(move |_req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(Response::new(full(id.to_string())))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                c.lock().expect("lock").push(id);
            });
        }
    });
    PpBackend {
        addr,
        headers,
        closed,
        accepts,
        task,
    }
}

/// A keep-alive client connection to the proxy.
struct Client {
    local: SocketAddr,
    tx: hyper::client::conn::http1::SendRequest<TestBody>,
    conn: JoinHandle<()>,
}

impl Client {
    async fn connect(proxy: SocketAddr) -> Client {
        let stream = TcpStream::connect(proxy).await.expect("connect");
        let local = stream.local_addr().expect("local");
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Client { local, tx, conn }
    }

    /// GET / and the number of the upstream connection that served it.
    async fn upstream_conn(&mut self) -> usize {
        let fut = async {
            self.tx.ready().await.expect("ready");
            let resp = self
                .tx
                .send_request(req("GET", "pp.test", "/", &[]))
                .await
                .expect("response");
            assert_eq!(
                resp.status(),
                200,
                "x-lb-error: {:?}",
                resp.headers().get("x-lb-error")
            );
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            String::from_utf8_lossy(&body)
                .parse::<usize>()
                .expect("a connection number")
        };
        tokio::time::timeout(T, fut).await.expect("in time")
    }

    fn close(self) {
        self.conn.abort();
    }
}

async fn one_client_one_upstream(version: &str, expected: Version) {
    let b = pp_backend().await;
    let p = proxy(&format!(
        "[pool.pp]\nbackends = [\"{}\"]\nproxy_protocol = \"{version}\"\n\
         [[route]]\nhost = \"pp.test\"\npool = \"pp\"\n",
        b.addr
    ))
    .await;

    let mut a = Client::connect(p.addr).await;
    let first = a.upstream_conn().await;
    let second = a.upstream_conn().await;
    assert_eq!(
        first, second,
        "one client connection reuses its upstream connection"
    );
    assert_eq!(b.accepts.load(Ordering::SeqCst), 1);

    let mut other = Client::connect(p.addr).await;
    let theirs = other.upstream_conn().await;
    assert_ne!(theirs, first, "another client never gets that connection");
    assert_eq!(b.accepts.load(Ordering::SeqCst), 2);
    assert_eq!(
        a.upstream_conn().await,
        first,
        "and the first client keeps its own"
    );
    assert_eq!(other.upstream_conn().await, theirs);
    assert_eq!(b.accepts.load(Ordering::SeqCst), 2);

    let headers = b.headers.lock().expect("lock").clone();
    assert_eq!(headers.len(), 2);
    for (conn, client) in [(first, a.local), (theirs, other.local)] {
        let h = headers[conn];
        assert_eq!(h.version, expected);
        assert_eq!(h.src, Some(client), "the header names the client");
        assert_eq!(h.dst, Some(p.addr), "and the listener it connected to");
    }

    // The client connection ends: its upstream connection is closed with it, the other
    // client's stays.
    a.close();
    let closed = eventually(Duration::from_secs(10), || async {
        b.closed.lock().expect("lock").contains(&first)
    })
    .await;
    assert!(
        closed,
        "the upstream connection of a closed client connection is closed"
    );
    assert!(!b.closed.lock().expect("lock").contains(&theirs));
    assert_eq!(other.upstream_conn().await, theirs);
    other.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_header_names_the_client_and_connections_stay_with_their_client() {
    one_client_one_upstream("v1", Version::V1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_header_names_the_client_and_connections_stay_with_their_client() {
    one_client_one_upstream("v2", Version::V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_without_proxy_protocol_still_share_connections_across_clients() {
    let b = Backend::start("shared").await;
    let p = proxy(&format!(
        "[pool.web]\nbackends = [\"{}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        b.addr
    ))
    .await;
    for _ in 0..3 {
        // A fresh client connection each time.
        assert_eq!(get(p.addr, "web.test", "/").await.status, 200);
    }
    assert_eq!(b.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_header_accepted_in_front_is_repeated_to_the_backends() {
    // A balancer in front sends PROXY v1; lb-proxy sends v2 on: the backend sees the
    // original client and the address it connected to, not lb-proxy's own.
    let b = pp_backend().await;
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         accept_proxy_protocol = true\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n\
         [pool.pp]\nproxy_protocol = \"v2\"\nbackends = [\"{}\"]\n[[route]]\npool = \"pp\"\n",
        b.addr
    );
    let p = proxy_text(&text).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    s.write_all(
        b"PROXY TCP4 198.51.100.9 203.0.113.1 40000 443\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let seen = b.headers.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].version, Version::V2);
    assert_eq!(seen[0].src, Some("198.51.100.9:40000".parse().unwrap()));
    assert_eq!(seen[0].dst, Some("203.0.113.1:443".parse().unwrap()));
}

#[tokio::test]
async fn health_checks_of_a_proxy_protocol_pool_send_the_header_too() {
    // The backend refuses connections without a PROXY header; the pool's backends start
    // down and come up only by passing checks, so requests succeed only if the probes
    // speak the PROXY protocol as well.
    let b = pp_backend().await;
    let p = proxy(&format!(
        "[pool.pp]\nbackends = [\"{}\"]\nproxy_protocol = \"v2\"\n\
         [pool.pp.health]\nkind = \"http\"\npath = \"/health\"\ninterval = \"100ms\"\n\
         timeout = \"500ms\"\nrise = 1\ninitial = \"down\"\n\
         [[route]]\nhost = \"pp.test\"\npool = \"pp\"\n",
        b.addr
    ))
    .await;
    let up = eventually(Duration::from_secs(10), || async {
        get(p.addr, "pp.test", "/").await.status == 200
    })
    .await;
    assert!(
        up,
        "the backend never came up: probes without a PROXY header?"
    );
    // Every connection carried a v2 header: the probes' name their own connection (to the
    // backend), the request's the client and the listener.
    let headers = b.headers.lock().unwrap().clone();
    assert!(
        headers.iter().all(|h| h.version == Version::V2),
        "{headers:?}"
    );
    assert!(headers.iter().any(|h| h.dst == Some(b.addr)), "{headers:?}");
    assert!(headers.iter().any(|h| h.dst == Some(p.addr)), "{headers:?}");
}
