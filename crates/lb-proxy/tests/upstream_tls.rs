//! Upstream TLS per pool (`tls = { sni, verify, ca }`): verification against a CA file,
//! failure without it (502 upstream-connect, retried on the next backend), `verify = false`,
//! the name the backend sees, ALPN after `protocol`, and `https` health checks with the
//! pool's TLS settings.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lb_test_support::{self_signed, Cert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a TLS backend saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    version: hyper::Version,
    path: String,
}

/// A TLS backend (HTTP/1.1 and HTTP/2 by ALPN) that records what it saw. `/health`
/// answers `health`'s status; anything else 200 with body `name`.
struct TlsBackend {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    health: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsBackend {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn tls_backend(cert: &Cert, name: &'static str) -> TlsBackend {
    let certs = vec![CertificateDer::from_pem_file(&cert.cert).expect("cert")];
    let key = PrivateKeyDer::from_pem_file(&cert.key).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let health = Arc::new(AtomicU16::new(200));
    let (a, s, h) = (accepts.clone(), seen.clone(), health.clone());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let (acceptor, s, h) = (acceptor.clone(), s.clone(), h.clone());
            conns.spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let sni = session.server_name().map(str::to_owned);
                let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
                let svc = service_fn(move |req: Request<Incoming>| {
                    let seen = Seen {
                        sni: sni.clone(),
                        alpn: alpn.clone(),
                        version: req.version(),
                        path: req.uri().path().to_owned(),
                    };
                    s.lock().expect("lock").push(seen);
                    let status = if req.uri().path() == "/health" {
                        h.load(Ordering::SeqCst)
                    } else {
                        200
                    };
                    async move {
                        let mut r = Response::new(full(name));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    TlsBackend {
        addr,
        accepts,
        seen,
        health,
        task,
    }
}

fn pool(backends: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
    format!(
        "[pool.web]\nbackends = [{}]\n{extra}\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        list.join(", ")
    )
}

fn ca(cert: &Cert) -> String {
    cert.cert.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_with_the_ca_file_and_the_backend_sees_the_sni() {
    let cert = self_signed(&["backend.test", "127.0.0.1"]);
    let b = tls_backend(&cert, "secure").await;
    let p = proxy(&pool(
        &[b.addr],
        &format!("tls = {{ sni = \"backend.test\", ca = {:?} }}", ca(&cert)),
    ))
    .await;
    for _ in 0..3 {
        let r = get(p.addr, "web.test", "/x").await;
        assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
        assert_eq!(r.text(), "secure");
    }
    let seen = b.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.sni.as_deref(), Some("backend.test"));
        assert_eq!(
            s.alpn.as_deref(),
            Some(&b"http/1.1"[..]),
            "http1 pools offer http/1.1"
        );
        assert_eq!(s.version, hyper::Version::HTTP_11);
    }
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        1,
        "the TLS connection is pooled and reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_without_a_ca_is_502_upstream_connect() {
    let cert = self_signed(&["backend.test", "127.0.0.1"]);
    let b = tls_backend(&cert, "secure").await;
    let p = proxy(&pool(
        &[b.addr],
        "tls = { sni = \"backend.test\" }\nretries = 0",
    ))
    .await;
    let r = get(p.addr, "web.test", "/x").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-lb-error"), "upstream-connect");
    assert!(
        b.accepts.load(Ordering::SeqCst) >= 1,
        "a handshake was tried"
    );
    assert!(b.seen().is_empty(), "no request got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_handshake_moves_to_the_next_backend() {
    let good_cert = self_signed(&["backend.test", "127.0.0.1"]);
    let other_cert = self_signed(&["backend.test", "127.0.0.1"]);
    let good = tls_backend(&good_cert, "good").await;
    // Same names, another key: not signed by the configured CA.
    let bad = tls_backend(&other_cert, "bad").await;
    let p = proxy(&pool(
        &[bad.addr, good.addr],
        &format!(
            "tls = {{ sni = \"backend.test\", ca = {:?} }}\nretries = 1",
            ca(&good_cert)
        ),
    ))
    .await;
    for _ in 0..4 {
        let r = get(p.addr, "web.test", "/x").await;
        assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
        assert_eq!(r.text(), "good");
    }
    assert!(
        bad.accepts.load(Ordering::SeqCst) >= 1,
        "the bad backend was tried"
    );
    assert!(bad.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_false_accepts_any_certificate_and_names_the_ip() {
    let cert = self_signed(&["backend.test", "127.0.0.1"]);
    let b = tls_backend(&cert, "whoever").await;
    let p = proxy(&pool(&[b.addr], "tls = { verify = false }")).await;
    let r = get(p.addr, "web.test", "/x").await;
    assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
    assert_eq!(r.text(), "whoever");
    // The name is the backend's IP address: no SNI extension is sent for an IP.
    assert_eq!(b.seen()[0].sni, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_by_ip_without_sni() {
    let cert = self_signed(&["backend.test", "127.0.0.1"]);
    let b = tls_backend(&cert, "by-ip").await;
    let p = proxy(&pool(
        &[b.addr],
        &format!("tls = {{ ca = {:?} }}", ca(&cert)),
    ))
    .await;
    let r = get(p.addr, "web.test", "/x").await;
    assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
    assert_eq!(b.seen()[0].sni, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_is_negotiated_by_alpn() {
    let cert = self_signed(&["backend.test", "127.0.0.1"]);
    let b = tls_backend(&cert, "h2tls").await;
    let p = proxy(&pool(
        &[b.addr],
        &format!(
            "protocol = \"h2\"\ntls = {{ sni = \"backend.test\", ca = {:?} }}",
            ca(&cert)
        ),
    ))
    .await;
    for _ in 0..3 {
        let r = get(p.addr, "web.test", "/x").await;
        assert_eq!(r.status, 200, "{} {}", r.text(), r.header("x-lb-error"));
        assert_eq!(r.text(), "h2tls");
    }
    let seen = b.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(s.version, hyper::Version::HTTP_2);
    }
    assert_eq!(
        b.accepts.load(Ordering::SeqCst),
        1,
        "one shared h2 connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_health_checks_use_the_pools_tls_settings() {
    let cert = self_signed(&["backend.test", "127.0.0.1"]);
    let b = tls_backend(&cert, "checked").await;
    let p = proxy(&pool(
        &[b.addr],
        &format!(
            "tls = {{ sni = \"backend.test\", ca = {:?} }}\n\
             [pool.web.health]\nkind = \"https\"\npath = \"/health\"\ninterval = \"100ms\"\n\
             timeout = \"1s\"\nrise = 1\nfall = 1\njitter = \"0%\"",
            ca(&cert)
        ),
    ))
    .await;
    let probed = eventually(Duration::from_secs(10), || async {
        b.seen()
            .iter()
            .any(|s| s.path == "/health" && s.sni.as_deref() == Some("backend.test"))
    })
    .await;
    assert!(probed, "the probe went over TLS with the pool's sni");
    assert_eq!(get(p.addr, "web.test", "/x").await.status, 200);

    b.health.store(500, Ordering::SeqCst);
    let down = eventually(Duration::from_secs(10), || async {
        let r = get(p.addr, "web.test", "/x").await;
        r.status == 503 && r.header("x-lb-error") == "no-healthy-backend"
    })
    .await;
    assert!(down, "a failing https probe takes the backend out");

    b.health.store(200, Ordering::SeqCst);
    let up = eventually(Duration::from_secs(10), || async {
        get(p.addr, "web.test", "/x").await.status == 200
    })
    .await;
    assert!(up, "a passing https probe brings it back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_ca_file_is_named_when_the_config_loads() {
    let dir = std::env::temp_dir().join(format!("lb-proxy-badca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("ca.pem");
    std::fs::write(&bad, "not a certificate\n").expect("write");
    let text = format!(
        "{}\n{}",
        prologue(None),
        pool(
            &["127.0.0.1:1".parse().expect("addr")],
            &format!("tls = {{ ca = {:?} }}", bad.display().to_string())
        )
    );
    let err = lb_core::config::Config::parse(
        &text,
        std::path::Path::new("lb.toml"),
        lb_core::config::Binary::Proxy,
    )
    .expect_err("a CA file without a certificate is refused");
    let _ = std::fs::remove_dir_all(&dir);
    let msg = err.to_string();
    assert!(msg.starts_with("lb.toml:"), "{msg}");
    assert!(msg.contains("pool.web.tls.ca"), "{msg}");
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
}
