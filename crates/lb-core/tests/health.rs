//! Health checking against real sockets on loopback: checkers, the monitor's rise/fall
//! transitions, timeouts, membership changes, HTTPS verification and detection timing.

#![cfg(all(feature = "runtime", feature = "http", feature = "tls"))]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lb_core::health::{
    checker_for, CheckError, CheckKind, Checker, CheckerError, HealthEvent, HealthMonitor,
    HealthSettings, HttpChecker, HttpsChecker, TcpChecker,
};
use lb_core::{Backend, Change, Pool, PoolSettings};
use lb_test_support::{self_signed, until, Cert};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server whose status the test controls.

#[derive(Default)]
struct Behaviour {
    status: AtomicU16,
    ok: AtomicU32,
    failed: AtomicU32,
    requests: Mutex<Vec<String>>,
}

impl Behaviour {
    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
    fn served(&self) -> u32 {
        self.ok.load(Ordering::SeqCst) + self.failed.load(Ordering::SeqCst)
    }
}

struct Server {
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting and closes the listener: later connects are refused.
    fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

async fn answer<S>(mut stream: S, behaviour: Arc<Behaviour>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(Some(head)) = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream)).await
    else {
        return;
    };
    let status = behaviour.status.load(Ordering::SeqCst);
    behaviour.requests.lock().unwrap().push(head);
    let resp =
        format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
    // Counted before the write, so a probe never sees its answer before the count does.
    let counter = if status == 200 {
        &behaviour.ok
    } else {
        &behaviour.failed
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if stream.write_all(resp.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

async fn http_server(status: u16) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let behaviour = Arc::new(Behaviour::default());
    behaviour.set(status);
    let b = behaviour.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, b.clone()));
        }
    });
    Server {
        addr,
        behaviour,
        task,
    }
}

/// A listener that never accepts: connects succeed (kernel backlog), nothing is answered.
async fn silent_listener() -> (SocketAddr, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (listener.local_addr().unwrap(), listener)
}

/// An address nothing listens on (bound, then closed).
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------
// Helpers for the monitor.

fn fast(kind: CheckKind) -> HealthSettings {
    {
        let mut s = HealthSettings::default();
        s.kind = kind;
        s.interval = Duration::from_millis(50);
        s.timeout = Duration::from_millis(500);
        s.rise = 2;
        s.fall = 3;
        s
    }
}

fn pool_of(addrs: &[SocketAddr], initial_up: bool) -> Arc<Pool> {
    let settings = {
        let mut s = PoolSettings::default();
        s.initial_up = initial_up;
        s
    };
    let backends = addrs.iter().map(|&a| Backend::new(a)).collect();
    Arc::new(Pool::new("web", settings, backends).unwrap())
}

fn healthy(pool: &Pool, addr: SocketAddr) -> bool {
    pool.snapshot().member(addr).unwrap().state().is_healthy()
}

fn spawn(pool: &Arc<Pool>, settings: HealthSettings) -> HealthMonitor {
    let checker = checker_for(&settings).unwrap().unwrap();
    HealthMonitor::spawn(
        pool.clone(),
        settings,
        checker,
        std::future::pending::<()>(),
    )
}

/// The next event for `addr`, or a panic after `within`.
async fn event_for(
    rx: &mut broadcast::Receiver<HealthEvent>,
    addr: SocketAddr,
    within: Duration,
) -> HealthEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if ev.addr == addr => return ev,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("event channel: {e}"),
            Err(_) => panic!("no health event for {addr} within {within:?}"),
        }
    }
}

/// Fails if any event for `addr` arrives within `within`.
async fn no_event_for(
    rx: &mut broadcast::Receiver<HealthEvent>,
    addr: SocketAddr,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if ev.addr == addr => panic!("unexpected event {ev:?}"),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("event channel: {e}"),
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checkers.

#[tokio::test]
async fn tcp_checker_up_then_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let checker = TcpChecker::new(Duration::from_secs(1));
    checker.check(addr).await.unwrap();
    drop(listener);
    let err = checker.check(addr).await.unwrap_err();
    assert!(matches!(err, CheckError::Connect(_)), "{err:?}");
    assert_eq!(err.kind(), "connect");
}

#[tokio::test]
async fn http_checker_sends_a_proper_request_and_checks_the_status() {
    let server = http_server(200).await;
    let checker = HttpChecker::new("health", 200, Duration::from_secs(2));
    checker.check(server.addr).await.unwrap();
    {
        let reqs = server.behaviour.requests.lock().unwrap();
        assert_eq!(reqs.len(), 1);
        let head = reqs[0].to_ascii_lowercase();
        assert!(head.starts_with("get /health http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("host: {}\r\n", server.addr)),
            "{head}"
        );
        assert!(head.contains("connection: close\r\n"), "{head}");
    }
    server.behaviour.set(503);
    match checker.check(server.addr).await {
        Err(CheckError::Status {
            got: 503,
            expected: 200,
        }) => {}
        other => panic!("expected a status error, got {other:?}"),
    }
}

#[tokio::test]
async fn http_checker_expected_status_mismatch() {
    let server = http_server(200).await;
    let checker = HttpChecker::new("/", 204, Duration::from_secs(2));
    match checker.check(server.addr).await {
        Err(
            e @ CheckError::Status {
                got: 200,
                expected: 204,
            },
        ) => {
            assert_eq!(e.to_string(), "status 200, expected 204");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    server.behaviour.set(204);
    checker.check(server.addr).await.unwrap();
}

#[tokio::test]
async fn http_checker_times_out_on_a_silent_backend() {
    let (addr, _listener) = silent_listener().await;
    let timeout = Duration::from_millis(200);
    let checker = HttpChecker::new("/", 200, timeout);
    let start = Instant::now();
    let err = checker.check(addr).await.unwrap_err();
    assert!(
        matches!(err, CheckError::Timeout(t) if t == timeout),
        "{err:?}"
    );
    assert!(start.elapsed() >= timeout);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn http_checker_reports_garbage_as_a_protocol_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = read_head(&mut s).await;
        s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await.unwrap();
    });
    let err = HttpChecker::new("/", 200, Duration::from_secs(2))
        .check(addr)
        .await
        .unwrap_err();
    assert!(matches!(err, CheckError::Protocol(_)), "{err:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn checker_for_follows_the_kind() {
    assert!(checker_for(&HealthSettings::default()).unwrap().is_none());
    let server = http_server(200).await;
    for kind in [CheckKind::Tcp, CheckKind::http()] {
        let checker = checker_for(&HealthSettings::new(kind)).unwrap().unwrap();
        checker.check(server.addr).await.unwrap();
    }
    let missing = CheckKind::Https {
        path: "/".into(),
        expect: 200,
        sni: None,
        verify: true,
        ca: Some(std::env::temp_dir().join("lb-health-no-such-ca.pem")),
    };
    let err = checker_for(&HealthSettings::new(missing)).err().unwrap();
    assert!(matches!(err, CheckerError::Ca { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// HTTPS.

async fn https_server(cert: &Cert, status: u16) -> Server {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let behaviour = Arc::new(Behaviour::default());
    behaviour.set(status);
    let b = behaviour.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, b) = (acceptor.clone(), b.clone());
            tokio::spawn(async move {
                let hs = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream));
                if let Ok(Ok(tls)) = hs.await {
                    answer(tls, b).await;
                }
            });
        }
    });
    Server {
        addr,
        behaviour,
        task,
    }
}

fn https(
    sni: Option<&str>,
    verify: bool,
    ca: Option<&PathBuf>,
) -> Result<HttpsChecker, CheckerError> {
    HttpsChecker::new(
        "/health",
        200,
        sni.map(str::to_owned),
        verify,
        ca.map(|p| p.as_path()),
        Duration::from_secs(2),
    )
}

#[tokio::test]
async fn https_checker_verifies_as_configured() {
    let cert = self_signed(&["localhost", "127.0.0.1"]);
    let server = https_server(&cert, 200).await;
    let addr = server.addr;

    // verify = false: any certificate.
    https(None, false, None).unwrap().check(addr).await.unwrap();
    // verify = true with the certificate as root, by name and by IP SAN.
    https(Some("localhost"), true, Some(&cert.cert))
        .unwrap()
        .check(addr)
        .await
        .unwrap();
    https(None, true, Some(&cert.cert))
        .unwrap()
        .check(addr)
        .await
        .unwrap();
    assert_eq!(server.behaviour.ok.load(Ordering::SeqCst), 3);
    {
        let reqs = server.behaviour.requests.lock().unwrap();
        let head = reqs
            .iter()
            .map(|r| r.to_ascii_lowercase())
            .collect::<Vec<_>>();
        assert!(
            head.iter()
                .all(|h| h.starts_with("get /health http/1.1\r\n")),
            "{head:?}"
        );
        assert!(
            head.iter().any(|h| h.contains("host: localhost\r\n")),
            "{head:?}"
        );
    }

    // A name the certificate does not cover fails.
    let err = https(Some("other.test"), true, Some(&cert.cert))
        .unwrap()
        .check(addr)
        .await
        .unwrap_err();
    assert!(matches!(err, CheckError::Tls(_)), "{err:?}");
    // verify = true without `ca`: the system roots do not trust a self-signed certificate
    // (or there are none on this machine, which fails at setup).
    match https(Some("localhost"), true, None) {
        Ok(checker) => {
            let err = checker.check(addr).await.unwrap_err();
            assert!(matches!(err, CheckError::Tls(_)), "{err:?}");
        }
        Err(e) => assert!(matches!(e, CheckerError::NoRoots(_)), "{e:?}"),
    }
    // The status still matters over TLS.
    server.behaviour.set(500);
    let err = https(None, false, None)
        .unwrap()
        .check(addr)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CheckError::Status {
                got: 500,
                expected: 200
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn https_checker_rejects_plain_http_and_bad_settings() {
    // A plain-HTTP backend that answers the ClientHello with an HTTP error.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let err = https(None, false, None)
        .unwrap()
        .check(addr)
        .await
        .unwrap_err();
    assert!(matches!(err, CheckError::Tls(_)), "{err:?}");
    plain.await.unwrap();

    let cert = self_signed(&["localhost", "127.0.0.1"]);
    let bad = https(Some("not a name"), true, Some(&cert.cert)).unwrap_err();
    assert!(matches!(bad, CheckerError::BadSni(_)), "{bad:?}");
    // A CA file without certificates (here: the key) has no roots.
    let empty = https(None, true, Some(&cert.key)).unwrap_err();
    assert!(matches!(empty, CheckerError::NoRoots(_)), "{empty:?}");
}

// ---------------------------------------------------------------------------------------
// The monitor.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_takes_a_failing_backend_down_after_fall_and_up_after_rise() {
    let server = http_server(200).await;
    let other = http_server(200).await;
    let pool = pool_of(&[server.addr, other.addr], true);
    let settings = fast(CheckKind::http());
    let monitor = spawn(&pool, settings.clone());
    let mut rx = monitor.subscribe();

    // Both are probed promptly; a healthy backend produces no event.
    assert!(until(Duration::from_secs(2), || server.behaviour.served() >= 2).await);
    assert!(healthy(&pool, server.addr));

    server.behaviour.set(503);
    let ev = event_for(&mut rx, server.addr, Duration::from_secs(3)).await;
    assert!(!ev.up);
    assert_eq!(&*ev.pool, "web");
    assert!(
        matches!(
            ev.reason,
            Some(CheckError::Status {
                got: 503,
                expected: 200
            })
        ),
        "{ev:?}"
    );
    assert!(!healthy(&pool, server.addr));
    assert!(server.behaviour.failed.load(Ordering::SeqCst) >= settings.fall);
    // The request path sees it: every pick goes to the other backend.
    let snap = pool.snapshot();
    for _ in 0..10 {
        assert_eq!(snap.select(b"k").next().unwrap().addr(), other.addr);
    }

    let ok_before = server.behaviour.ok.load(Ordering::SeqCst);
    server.behaviour.set(200);
    let ev = event_for(&mut rx, server.addr, Duration::from_secs(3)).await;
    assert!(ev.up && ev.reason.is_none(), "{ev:?}");
    assert!(healthy(&pool, server.addr));
    assert!(server.behaviour.ok.load(Ordering::SeqCst) - ok_before >= settings.rise);
    assert!(healthy(&pool, other.addr));
    monitor.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hiccup_never_flaps() {
    let server = http_server(200).await;
    let pool = pool_of(&[server.addr], true);
    let monitor = spawn(&pool, fast(CheckKind::http()));
    let mut rx = monitor.subscribe();
    for _ in 0..3 {
        let failed = server.behaviour.failed.load(Ordering::SeqCst);
        server.behaviour.set(503);
        assert!(
            until(Duration::from_secs(2), || server
                .behaviour
                .failed
                .load(Ordering::SeqCst)
                > failed)
            .await
        );
        server.behaviour.set(200);
        let ok = server.behaviour.ok.load(Ordering::SeqCst);
        assert!(
            until(Duration::from_secs(2), || server
                .behaviour
                .ok
                .load(Ordering::SeqCst)
                > ok)
            .await
        );
    }
    no_event_for(&mut rx, server.addr, Duration::from_millis(100)).await;
    assert!(healthy(&pool, server.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_backend_times_out_without_delaying_another() {
    let (silent, _listener) = silent_listener().await;
    let failing = http_server(503).await;
    let pool = pool_of(&[silent, failing.addr], true);
    let settings = {
        let mut s = fast(CheckKind::http());
        s.timeout = Duration::from_millis(1000);
        s.fall = 2;
        s
    };
    let monitor = spawn(&pool, settings);
    let mut rx = monitor.subscribe();
    let start = Instant::now();

    // The failing backend needs about fall × interval; the silent one fall × timeout. Had
    // the probes been serialised, the failing backend would wait behind the silent one's
    // timeouts, so it must go down first.
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.addr, failing.addr, "{first:?}");
    assert!(!first.up);
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );

    let ev = event_for(&mut rx, silent, Duration::from_secs(5)).await;
    assert!(!ev.up);
    assert!(matches!(ev.reason, Some(CheckError::Timeout(t)) if t == Duration::from_millis(1000)));
    // Two probes, each timing out after 1 s.
    assert!(start.elapsed() >= Duration::from_millis(1900));
    assert!(!healthy(&pool, silent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_follows_membership() {
    let a = http_server(200).await;
    let b = http_server(503).await;
    let pool = pool_of(&[a.addr], true);
    let monitor = spawn(&pool, fast(CheckKind::http()));
    let mut rx = monitor.subscribe();
    assert!(until(Duration::from_secs(2), || a.behaviour.served() >= 1).await);

    // Added after the monitor started: checked, and taken down.
    pool.apply(Change::Add(Backend::new(b.addr))).unwrap();
    let ev = event_for(&mut rx, b.addr, Duration::from_secs(3)).await;
    assert!(!ev.up);
    assert!(!healthy(&pool, b.addr));

    // Removed: its task stops probing.
    pool.apply(Change::Remove(b.addr)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = b.behaviour.served();
    let a_served = a.behaviour.served();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.behaviour.served(), served);
    assert!(
        a.behaviour.served() > a_served,
        "the remaining backend is still probed"
    );

    // Re-added later (a new state): probed again from scratch.
    b.behaviour.set(200);
    pool.apply(Change::Add(Backend::new(b.addr))).unwrap();
    assert!(until(Duration::from_secs(2), || b.behaviour.served() > served).await);
    no_event_for(&mut rx, b.addr, Duration::from_millis(300)).await;
    assert!(healthy(&pool, b.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_down_needs_rise_successes() {
    let a = http_server(200).await;
    let b = http_server(200).await;
    let pool = pool_of(&[a.addr], false);
    let settings = {
        let mut s = fast(CheckKind::http());
        s.initial_up = false;
        s
    };
    assert!(pool.snapshot().select(b"k").next().is_none(), "starts down");
    let monitor = spawn(&pool, settings.clone());
    let mut rx = monitor.subscribe();
    let ev = event_for(&mut rx, a.addr, Duration::from_secs(3)).await;
    assert!(ev.up);
    assert!(a.behaviour.ok.load(Ordering::SeqCst) >= settings.rise);
    assert_eq!(pool.snapshot().select(b"k").next().unwrap().addr(), a.addr);

    // A backend added later also starts down and comes up through `rise` successes.
    pool.apply(Change::Add(Backend::new(b.addr))).unwrap();
    let ev = event_for(&mut rx, b.addr, Duration::from_secs(3)).await;
    assert!(ev.up);
    assert!(b.behaviour.ok.load(Ordering::SeqCst) >= settings.rise);
}

/// Waits (bounded) for the next probe to reach the server.
async fn probed(b: &Behaviour) -> bool {
    let from = b.served();
    until(Duration::from_secs(2), || b.served() > from).await
}

/// Asserts probing has stopped: the count is stable once in-flight probes have finished.
async fn quiet(b: &Behaviour) {
    tokio::time::sleep(Duration::from_millis(150)).await;
    let served = b.served();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.served(), served, "probes continue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_stops_on_shutdown_stop_drop_and_pool_drop() {
    let server = http_server(200).await;
    let pool = pool_of(&[server.addr], true);
    let settings = fast(CheckKind::http());
    let checker = checker_for(&settings).unwrap().unwrap();
    let b = &*server.behaviour;

    // The shutdown future.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let monitor = HealthMonitor::spawn(pool.clone(), settings.clone(), checker.clone(), rx);
    assert!(probed(b).await);
    assert!(!monitor.is_finished());
    tx.send(()).unwrap();
    assert!(until(Duration::from_secs(2), || monitor.is_finished()).await);
    quiet(b).await;

    // `stop`.
    let never = std::future::pending::<()>;
    let monitor = HealthMonitor::spawn(pool.clone(), settings.clone(), checker.clone(), never());
    assert!(probed(b).await);
    monitor.stop();
    assert!(until(Duration::from_secs(2), || monitor.is_finished()).await);
    quiet(b).await;

    // Dropping the monitor.
    let monitor = HealthMonitor::spawn(pool.clone(), settings.clone(), checker.clone(), never());
    assert!(probed(b).await);
    drop(monitor);
    quiet(b).await;

    // Dropping the pool.
    let monitor = HealthMonitor::spawn(pool.clone(), settings, checker, never());
    assert!(probed(b).await);
    assert!(!monitor.is_finished());
    drop(pool);
    assert!(until(Duration::from_secs(2), || monitor.is_finished()).await);
    quiet(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_backend_is_down_within_the_spec_bound() {
    let server = http_server(200).await;
    let pool = pool_of(&[server.addr], true);
    let settings = {
        let mut s = fast(CheckKind::http());
        s.interval = Duration::from_millis(100);
        s.timeout = Duration::from_millis(200);
        s.fall = 3;
        s
    };
    let monitor = spawn(&pool, settings.clone());
    let mut rx = monitor.subscribe();
    assert!(
        until(Duration::from_secs(2), || server
            .behaviour
            .ok
            .load(Ordering::SeqCst)
            >= 2)
        .await
    );

    server.kill();
    let killed = Instant::now();
    let ev = event_for(&mut rx, server.addr, Duration::from_secs(5)).await;
    let took = killed.elapsed();
    assert!(!ev.up);
    assert!(matches!(ev.reason, Some(CheckError::Connect(_))), "{ev:?}");
    // fall × interval + interval + timeout (+ jitter), plus generous slack.
    let bound = settings.detection_bound() + Duration::from_millis(1000);
    assert!(took <= bound, "down after {took:?}, bound {bound:?}");
    // And not before `fall` failures: at least fall - 1 intervals (minus jitter).
    assert!(
        took >= Duration::from_millis(150),
        "down after only {took:?}"
    );
    assert!(!healthy(&pool, server.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_override_probes_another_port() {
    let health = http_server(200).await;
    let dead = dead_addr().await;
    // Traffic would go to `dead`, but probes go to the health port.
    let pool = pool_of(&[dead], false);
    let settings = {
        let mut s = fast(CheckKind::http());
        s.port = Some(health.addr.port());
        s
    };
    let monitor = spawn(&pool, settings);
    let mut rx = monitor.subscribe();
    let ev = event_for(&mut rx, dead, Duration::from_secs(3)).await;
    assert!(ev.up);
    assert!(health.behaviour.ok.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn dyn_checkers_compose() {
    // A user checker: healthy when the TCP probe succeeds on an odd port.
    struct OddPorts(TcpChecker);
    impl Checker for OddPorts {
        fn check<'a>(
            &'a self,
            addr: SocketAddr,
        ) -> lb_core::health::BoxFuture<'a, Result<(), CheckError>> {
            Box::pin(async move {
                self.0.check(addr).await?;
                if addr.port() % 2 == 1 {
                    Ok(())
                } else {
                    Err(CheckError::Status {
                        got: addr.port(),
                        expected: 1,
                    })
                }
            })
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let checker: Arc<dyn Checker> = Arc::new(OddPorts(TcpChecker::new(Duration::from_secs(1))));
    let result = checker.check(addr).await;
    assert_eq!(result.is_ok(), addr.port() % 2 == 1);
    drop(listener);
    assert!(matches!(
        checker.check(addr).await,
        Err(CheckError::Connect(_))
    ));
}
