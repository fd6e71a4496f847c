//! HTTP/2 to upstreams (`protocol = "h2"`, prior knowledge on cleartext): requests arrive
//! as HTTP/2, concurrent requests share one multiplexed connection, a closed connection
//! is replaced, and gRPC-style streaming (h2c client → proxy → h2 backend) passes
//! `te: trailers`, DATA frames in order and the `grpc-status` trailers; an HTTP/2 request
//! body's bytes count as the backend's bytes in (`/api/v1/stats`).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Barrier, Notify};
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(10);

/// A body fed frame by frame through a channel; it ends when the sender is dropped.
struct ChanBody(mpsc::Receiver<Frame<Bytes>>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What the backend saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    conn: usize,
    version: hyper::Version,
    authority: Option<String>,
    headers: HeaderMap,
}

/// An HTTP/2-only (prior knowledge) backend.
///
/// Paths: `/together` waits until `together` requests are in flight at once; `/bye`
/// answers, then closes its connection gracefully (GOAWAY); `/grpc.Echo/Stream` echoes
/// each request DATA frame as `echo:<data>` after 150 ms and ends with trailers
/// `grpc-status: 0`, `grpc-message: done`; anything else answers `h2`.
struct H2Backend {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for H2Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Backend {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn h2_backend(together: usize) -> H2Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(together.max(1)));
    let (a, c, s) = (accepts.clone(), closed.clone(), seen.clone());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let id = a.fetch_add(1, Ordering::SeqCst);
            let (c, s, barrier) = (c.clone(), s.clone(), barrier.clone());
            let bye = Arc::new(Notify::new());
            let bye_svc = bye.clone();
            conns.spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (s, barrier, bye) = (s.clone(), barrier.clone(), bye_svc.clone());
                    async move {
                        s.lock().expect("lock").push(Seen {
                            conn: id,
                            version: req.version(),
                            authority: req.uri().authority().map(|a| a.to_string()),
                            headers: req.headers().clone(),
                        });
                        Ok::<_, Infallible>(answer(req, &barrier, &bye).await)
                    }
                });
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = bye.notified() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    H2Backend {
        addr,
        accepts,
        closed,
        seen,
        task,
    }
}

async fn answer(req: Request<Incoming>, barrier: &Barrier, bye: &Notify) -> Response<BoxBody> {
    match req.uri().path() {
        "/together" => {
            barrier.wait().await;
            Response::new(full("together"))
        }
        "/bye" => {
            bye.notify_one();
            Response::new(full("bye"))
        }
        "/grpc.Echo/Stream" => {
            let (tx, rx) = mpsc::channel(4);
            let mut body = req.into_body();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = body.frame().await {
                    // The client may end its stream with an empty DATA frame.
                    if let Some(d) = frame.data_ref().filter(|d| !d.is_empty()) {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        let mut echo = b"echo:".to_vec();
                        echo.extend_from_slice(d);
                        if tx.send(Frame::data(Bytes::from(echo))).await.is_err() {
                            return;
                        }
                    }
                }
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                trailers.insert("grpc-message", HeaderValue::from_static("done"));
                let _ = tx.send(Frame::trailers(trailers)).await;
            });
            let mut r = Response::new(ChanBody(rx).boxed());
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            r
        }
        _ => Response::new(full("h2")),
    }
}

fn config(backend: SocketAddr, extra: &str) -> String {
    format!(
        "[pool.grpc]\nbackends = [\"{backend}\"]\nprotocol = \"h2\"\n{extra}\n\
         [[route]]\nhost = \"grpc.test\"\npool = \"grpc\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_backend_as_http2() {
    let b = h2_backend(1).await;
    let p = proxy(&config(b.addr, "")).await;
    for path in ["/a", "/b?x=1"] {
        let r = get(p.addr, "grpc.test", path).await;
        assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
        assert_eq!(r.text(), "h2");
    }
    let seen = b.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.version, hyper::Version::HTTP_2);
        assert_eq!(s.authority.as_deref(), Some("grpc.test"));
        assert!(s.headers.contains_key("x-forwarded-for"));
    }
    assert_eq!(b.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_connection() {
    const N: usize = 4;
    let b = h2_backend(N).await;
    let p = proxy(&config(b.addr, "")).await;
    // The backend answers none until all N are in flight at once.
    let mut tasks = Vec::new();
    for _ in 0..N {
        let addr = p.addr;
        tasks.push(tokio::spawn(async move {
            get(addr, "grpc.test", "/together").await
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
        assert_eq!(r.text(), "together");
    }
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        1,
        "{N} concurrent requests were multiplexed on one connection"
    );
    assert!(b.seen().iter().all(|s| s.conn == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_replaced() {
    let b = h2_backend(1).await;
    let p = proxy(&config(b.addr, "")).await;
    let r = get(p.addr, "grpc.test", "/bye").await;
    assert_eq!(r.status, 200);
    let closed = eventually(Duration::from_secs(10), || async {
        b.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(closed, "the backend closed its connection (GOAWAY)");
    // Let the proxy's side of the connection notice the close before the next request.
    let gone = eventually(Duration::from_secs(10), || async {
        let r = get(p.addr, "grpc.test", "/after").await;
        r.status == 200
    })
    .await;
    assert!(gone, "a request after the close is served");
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        2,
        "a new connection was opened"
    );
    let last = b.seen().pop().expect("seen");
    assert_eq!(last.conn, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streaming_with_trailers_through_h2c() {
    let b = h2_backend(1).await;
    // The response head must come within 300 ms; the stream itself lasts longer.
    let p = proxy(&config(b.addr, "response_timeout = \"300ms\"")).await;

    let stream = TcpStream::connect(p.addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http2::handshake::<_, _, ChanBody>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    let (body_tx, body_rx) = mpsc::channel(4);
    let req = Request::post("http://grpc.test/grpc.Echo/Stream")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(ChanBody(body_rx))
        .expect("request");

    let exchange = async move {
        body_tx
            .send(Frame::data(Bytes::from_static(b"m0")))
            .await
            .expect("send m0");
        let resp = tx.send_request(req).await.expect("response head");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        assert!(resp.headers().get("x-lb-error").is_none());
        let mut body = resp.into_body();
        let mut got = Vec::new();
        // Ping-pong: each echo arrives before the next message is sent, so the frames
        // stream both ways instead of being buffered.
        for i in 0..3 {
            if i > 0 {
                body_tx
                    .send(Frame::data(Bytes::from(format!("m{i}"))))
                    .await
                    .expect("send");
            }
            let frame = body.frame().await.expect("a frame").expect("frame ok");
            let data = frame.into_data().expect("a DATA frame");
            got.push(String::from_utf8_lossy(&data).into_owned());
        }
        drop(body_tx);
        let frame = body.frame().await.expect("trailers").expect("frame ok");
        let trailers = match frame.into_trailers() {
            Ok(t) => t,
            Err(f) => panic!("unexpected frame after the echoes: {f:?}"),
        };
        assert!(
            body.frame().await.is_none(),
            "the stream ends after trailers"
        );
        (got, trailers)
    };
    let (got, trailers) = tokio::time::timeout(T, exchange).await.expect("in time");
    assert_eq!(got, ["echo:m0", "echo:m1", "echo:m2"]);
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "done");

    let seen = b.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, hyper::Version::HTTP_2);
    assert_eq!(
        seen[0].headers["te"], "trailers",
        "te: trailers reaches an h2 backend"
    );
    assert_eq!(seen[0].headers["content-type"], "application/grpc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn te_other_than_trailers_is_not_forwarded() {
    let b = h2_backend(1).await;
    let p = proxy(&config(b.addr, "")).await;
    let r = get_h(p.addr, "grpc.test", "/x", &[("te", "gzip")]).await;
    assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
    assert!(!b.seen()[0].headers.contains_key("te"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_of_an_h2_pool_speak_http2() {
    // The backend speaks HTTP/2 only and the pool starts down: it comes up only if the
    // probes speak HTTP/2 too.
    let b = h2_backend(1).await;
    let p = proxy(&config(
        b.addr,
        "[pool.grpc.health]\nkind = \"http\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\n\
         rise = 1\ninitial = \"down\"\n",
    ))
    .await;
    let up = eventually(Duration::from_secs(10), || async {
        get(p.addr, "grpc.test", "/x").await.status == 200
    })
    .await;
    assert!(up, "the h2 backend never came up");
    assert!(b.seen().iter().all(|s| s.version == hyper::Version::HTTP_2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_body_counts_as_the_backends_bytes_in() {
    let b = h2_backend(1).await;
    let p = proxy(&config(b.addr, "")).await;
    let bytes_in = || async {
        let r = admin(p.admin, "GET", "/api/v1/stats", None, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_str(&r.text()).expect("stats JSON");
        let pool = v["pools"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "grpc").cloned())
            .unwrap_or_else(|| panic!("no pool grpc in {v}"));
        pool["backends"][0]["bytes_in"]
            .as_u64()
            .unwrap_or_else(|| panic!("no bytes_in in {pool}"))
    };
    let before = bytes_in().await;

    // h2c client → proxy → h2 backend, a streamed body without a length.
    let stream = TcpStream::connect(p.addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http2::handshake::<_, _, ChanBody>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    let (body_tx, body_rx) = mpsc::channel(4);
    for n in [1000usize, 2345] {
        body_tx
            .send(Frame::data(Bytes::from(vec![b'z'; n])))
            .await
            .expect("send");
    }
    drop(body_tx);
    let req = Request::post("http://grpc.test/grpc.Echo/Stream")
        .body(ChanBody(body_rx))
        .expect("request");
    let exchange = async move {
        let resp = tx.send_request(req).await.expect("response head");
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.expect("the whole answer")
    };
    tokio::time::timeout(T, exchange).await.expect("in time");

    assert_eq!(bytes_in().await - before, 3345, "the body's bytes, once");
}
