//! 1 GiB through the `lb-proxy` binary each way, checking every byte and the proxy's
//! memory: its VmRSS (from /proc/PID/status, sampled every 50 ms during the transfer) may
//! grow by at most [`RSS_BOUND`] over its level after a warm-up exchange.
//!
//! `LB_STREAM_MIB` sets the size per direction (default 1024).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lb_test_support::shell::output_lines;
use tokio::net::{TcpListener, TcpStream};

/// The bound on the proxy's RSS growth while 1 GiB streams through it ("a few MB"; the
/// growth measured on this machine is about 1.5 MiB).
const RSS_BOUND: u64 = 8 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Pseudo-random bytes (xorshift); chunk `k` of a stream is this with `k` (LE) in its
/// first 8 bytes, so a lost, repeated or reordered chunk is caught.
fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..CHUNK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

fn chunk(k: u64, len: usize) -> Bytes {
    let mut c = base()[..len].to_vec();
    let stamp = k.to_le_bytes();
    let n = len.min(8);
    c[..n].copy_from_slice(&stamp[..n]);
    Bytes::from(c)
}

/// Checks received bytes against the pattern, in whatever pieces they arrive.
#[derive(Default)]
struct Verifier {
    off: u64,
    bad: bool,
}

impl Verifier {
    fn update(&mut self, mut d: &[u8]) {
        while !d.is_empty() {
            let k = self.off / CHUNK as u64;
            let pos = (self.off % CHUNK as u64) as usize;
            let seg = d.len().min(CHUNK - pos);
            let stamp = k.to_le_bytes();
            for (i, b) in d[..seg].iter().enumerate().take(8usize.saturating_sub(pos)) {
                self.bad |= *b != stamp[pos + i];
            }
            let from = 8usize.saturating_sub(pos).min(seg);
            self.bad |= d[from..seg] != base()[pos + from..pos + seg];
            self.off += seg as u64;
            d = &d[seg..];
        }
    }
}

/// A body of `n` pattern bytes, generated chunk by chunk.
struct Pattern {
    sent: u64,
    n: u64,
}

impl hyper::body::Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.n {
            return std::task::Poll::Ready(None);
        }
        let len = (self.n - self.sent).min(CHUNK as u64) as usize;
        let c = chunk(self.sent / CHUNK as u64, len);
        self.sent += len as u64;
        std::task::Poll::Ready(Some(Ok(Frame::data(c))))
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.n - self.sent)
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// `/download/N` streams N pattern bytes; `/upload` verifies the body and answers
/// `<count> ok` or `<count> bad`; `/upload-slow` does too, pausing 10 ms per MiB.
async fn backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let body: Body = if let Some(n) = path.strip_prefix("/download/") {
                        Pattern {
                            sent: 0,
                            n: n.parse().unwrap_or(0),
                        }
                        .boxed()
                    } else {
                        let slow = path == "/upload-slow";
                        let mut v = Verifier::default();
                        let mut b = req.into_body();
                        while let Some(Ok(f)) = b.frame().await {
                            if let Some(d) = f.data_ref() {
                                let mib = v.off >> 20;
                                v.update(d);
                                if slow && v.off >> 20 != mib {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                            }
                        }
                        let verdict = if v.bad { "bad" } else { "ok" };
                        http_body_util::Full::new(Bytes::from(format!("{} {verdict}", v.off)))
                            .boxed()
                    };
                    Ok::<_, Infallible>(Response::new(body))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// The `lb-proxy` binary, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(backend: SocketAddr) -> (Running, SocketAddr) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lb-proxy-memory-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("proxy.toml");
    std::fs::write(
        &path,
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = \"off\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
             [pool.web]\nbackends = [\"{backend}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n"
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb-proxy"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info,lb::access=off")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lb-proxy");
    let rx = output_lines(&mut child);
    let run = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        if line.contains("listening") && !line.contains("admin") {
            let i = line.find("127.0.0.1:").expect("address in line");
            let rest = &line[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            let _ = std::fs::remove_dir_all(&dir);
            return (run, rest[..end].parse().expect("socket address"));
        }
    }
    panic!("lb-proxy did not log its listener within 10 s");
}

fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Samples the RSS of `pid` every 50 ms until stopped; returns the maximum.
struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Sampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

async fn client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Body> {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    tx
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "web.test")
        .body(http_body_util::Empty::new().boxed())
        .expect("request")
}

/// Downloads `n` bytes through `addr`; returns (bytes, intact).
async fn download(addr: SocketAddr, n: u64) -> (u64, bool) {
    download_paced(addr, n, false).await
}

/// Downloads `n` bytes, pausing 10 ms per MiB when `slow` (a client slower than the backend).
async fn download_paced(addr: SocketAddr, n: u64, slow: bool) -> (u64, bool) {
    let mut tx = client(addr).await;
    let resp = tx
        .send_request(get(&format!("/download/{n}")))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut v = Verifier::default();
    while let Some(f) = body.frame().await {
        if let Some(d) = f.expect("frame").data_ref() {
            let mib = v.off >> 20;
            v.update(d);
            if slow && v.off >> 20 != mib {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (v.off, !v.bad)
}

/// Uploads `n` bytes through `addr`; returns the backend's verdict.
async fn upload(addr: SocketAddr, n: u64) -> String {
    upload_to(addr, "/upload", n).await
}

async fn upload_to(addr: SocketAddr, path: &str, n: u64) -> String {
    let mut tx = client(addr).await;
    let req = Request::post(path)
        .header("host", "web.test")
        .body(Pattern { sent: 0, n }.boxed())
        .expect("request");
    let resp = tx.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let b = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

/// The verifier itself catches a flipped byte, a repeated chunk and a short stream.
#[test]
fn verifier_catches_damage() {
    let stream: Vec<u8> = (0..4).flat_map(|k| chunk(k, CHUNK).to_vec()).collect();
    let mut v = Verifier::default();
    for piece in stream.chunks(1000) {
        v.update(piece);
    }
    assert!(!v.bad && v.off == stream.len() as u64);
    let mut flipped = stream.clone();
    flipped[3 * CHUNK + 77] ^= 1;
    let mut v = Verifier::default();
    v.update(&flipped);
    assert!(v.bad, "flipped byte");
    let repeated: Vec<u8> = [0, 1, 1, 3]
        .iter()
        .flat_map(|&k| chunk(k, CHUNK).to_vec())
        .collect();
    let mut v = Verifier::default();
    v.update(&repeated);
    assert!(v.bad, "repeated chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_with_bounded_proxy_memory() {
    let mib: u64 = std::env::var("LB_STREAM_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let n = mib * 1024 * 1024;
    let b = backend().await;
    let (run, addr) = start_binary(b);
    let pid = run.0.id();

    // Warm-up: buffers, pools and the allocator reach their working size.
    assert_eq!(download(addr, 8 << 20).await, (8 << 20, true));
    assert_eq!(upload(addr, 8 << 20).await, format!("{} ok", 8 << 20));
    let baseline = rss(pid);

    let t = Instant::now();
    let sampler = Sampler::start(pid);
    let (got, intact) = tokio::time::timeout(Duration::from_secs(240), download(addr, n))
        .await
        .expect("download within 240 s");
    let down = t.elapsed();
    let verdict = tokio::time::timeout(Duration::from_secs(240), upload(addr, n))
        .await
        .expect("upload within 240 s");
    let total = t.elapsed();
    let max = sampler.finish();

    let growth = max.saturating_sub(baseline);
    eprintln!(
        "streamed {mib} MiB down in {down:?} and up in {:?}; proxy VmRSS baseline {} KiB, max {} KiB, growth {} KiB",
        total - down,
        baseline / 1024,
        max / 1024,
        growth / 1024
    );
    assert_eq!(got, n, "every byte of the download arrived");
    assert!(intact, "the download arrived unchanged, in order");
    assert_eq!(
        verdict,
        format!("{n} ok"),
        "the backend got the upload intact"
    );
    assert!(
        growth < RSS_BOUND,
        "proxy RSS grew by {} KiB (bound {} KiB)",
        growth / 1024,
        RSS_BOUND / 1024
    );
}

/// The slow side sets the pace: a client reading 10 ms per MiB, then a backend reading
/// 10 ms per MiB. The proxy holds back instead of buffering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_either_side_keeps_proxy_memory_bounded() {
    let n: u64 = 128 * 1024 * 1024;
    let b = backend().await;
    let (run, addr) = start_binary(b);
    let pid = run.0.id();
    assert_eq!(download(addr, 8 << 20).await, (8 << 20, true));
    assert_eq!(upload(addr, 8 << 20).await, format!("{} ok", 8 << 20));
    let baseline = rss(pid);
    let sampler = Sampler::start(pid);
    let t = Instant::now();
    let down = tokio::time::timeout(Duration::from_secs(60), download_paced(addr, n, true))
        .await
        .expect("download within 60 s");
    let up = tokio::time::timeout(Duration::from_secs(60), upload_to(addr, "/upload-slow", n))
        .await
        .expect("upload within 60 s");
    let took = t.elapsed();
    let growth = sampler.finish().saturating_sub(baseline);
    eprintln!(
        "128 MiB each way at 100 MiB/s in {took:?}; proxy VmRSS growth {} KiB",
        growth / 1024
    );
    assert_eq!(down, (n, true));
    assert_eq!(up, format!("{n} ok"));
    assert!(
        took >= Duration::from_millis(2 * 128 * 10),
        "the slow side set the pace ({took:?})"
    );
    assert!(
        growth < RSS_BOUND,
        "proxy RSS grew by {} KiB (bound {} KiB)",
        growth / 1024,
        RSS_BOUND / 1024
    );
}
