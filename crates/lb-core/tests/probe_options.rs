//! Probes that look like the pool's traffic: a PROXY header first (backends behind the
//! PROXY protocol refuse connections without one) and HTTP/2 (backends that speak nothing
//! else), over cleartext and TLS, against real servers on loopback.

#![cfg(all(feature = "runtime", feature = "http", feature = "tls"))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lb_core::health::{
    checker_for, CheckError, CheckKind, Checker, HealthSettings, HttpChecker, HttpsChecker,
    ProbeOptions, TcpChecker,
};
use lb_core::proxy_protocol::{parse, Parsed, Version};
use lb_test_support::self_signed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(2);

/// A backend behind the PROXY protocol: reads one header (a byte at a time, so nothing
/// after it is taken), records it, then answers one HTTP/1.1 request with 200. Without a
/// valid header it answers 400, as nginx's `proxy_protocol` listeners refuse.
async fn pp_backend() -> (SocketAddr, Arc<Mutex<Vec<Parsed>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let parsed = loop {
                    let mut b = [0u8; 1];
                    match s.read(&mut b).await {
                        Ok(1) => buf.push(b[0]),
                        _ => return,
                    }
                    match parse(&buf) {
                        Ok(p) => break Some(p),
                        Err(e) if e.is_incomplete() => continue,
                        Err(_) => break None,
                    }
                };
                let Some(parsed) = parsed else {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                log.lock().unwrap().push(parsed);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    head.push(b[0]);
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, seen)
}

fn probe(proxy_protocol: Option<Version>, http2: bool) -> ProbeOptions {
    {
        let mut s = ProbeOptions::default();
        s.proxy_protocol = proxy_protocol;
        s.http2 = http2;
        s
    }
}

#[tokio::test]
async fn probes_send_the_pools_proxy_header_first() {
    let (addr, seen) = pp_backend().await;
    for version in [Version::V1, Version::V2] {
        let http = HttpChecker::new("/health", 200, T).with_options(probe(Some(version), false));
        http.check(addr).await.unwrap();
        let tcp = TcpChecker::new(T).with_proxy_protocol(Some(version));
        tcp.check(addr).await.unwrap();
    }
    // Without the header the backend refuses: the probe sees its 400.
    let plain = HttpChecker::new("/health", 200, T);
    match plain.check(addr).await {
        Err(CheckError::Status { got: 400, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Wait for the TCP probes' headers (their connections close right after the write).
    let mut headers = Vec::new();
    for _ in 0..100 {
        headers = seen.lock().unwrap().clone();
        if headers.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(headers.len(), 4, "{headers:?}");
    let versions: Vec<Version> = headers.iter().map(|p| p.version).collect();
    assert_eq!(versions.iter().filter(|v| **v == Version::V1).count(), 2);
    for p in &headers {
        // The header names the probe's own connection: to the backend, from loopback.
        assert_eq!(p.dst, Some(addr));
        assert!(
            p.src.is_some_and(|s| s.ip().is_loopback() && s.port() != 0),
            "{p:?}"
        );
    }
}

/// A backend that speaks HTTP/2 only (prior knowledge), answering 200 to `GET /health`
/// with the right `:authority` and 404 to anything else.
async fn h2_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve_h2(s, addr.to_string()));
        }
    });
    addr
}

async fn serve_h2<IO>(io: IO, authority: String)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let ok = req.uri().path() == "/health"
            && req
                .uri()
                .authority()
                .is_some_and(|a| a.as_str() == authority);
        async move {
            let mut r = Response::new(Empty::<Bytes>::new());
            if !ok {
                *r.status_mut() = StatusCode::NOT_FOUND;
            }
            Ok::<_, Infallible>(r)
        }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

#[tokio::test]
async fn http2_probes_reach_backends_that_speak_only_http2() {
    let addr = h2_backend().await;
    HttpChecker::new("/health", 200, T)
        .with_options(probe(None, true))
        .check(addr)
        .await
        .unwrap();
    // An HTTP/1.1 probe gets no HTTP/1 answer from it.
    let err = HttpChecker::new("/health", 200, T)
        .check(addr)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CheckError::Protocol(_) | CheckError::Timeout(_)),
        "{err:?}"
    );
    // The settings a pool with protocol = "h2" produces pick the same probe.
    let settings = {
        let mut s = HealthSettings::new(CheckKind::Http {
            path: "/health".to_owned(),
            expect: 200,
        });
        s.probe = probe(None, true);
        s
    };
    let checker = checker_for(&settings).unwrap().unwrap();
    checker.check(addr).await.unwrap();
}

#[tokio::test]
async fn https_probes_offer_h2_by_alpn_and_send_the_proxy_header_before_the_handshake() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert = self_signed(&["localhost", "127.0.0.1"]);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(lb_core::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    // This backend speaks HTTP/2 only: a client offering only http/1.1 fails the handshake.
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let headers = Arc::new(Mutex::new(Vec::new()));
    let log = headers.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                // A PROXY header may come first (v2 here: 16 bytes + 12 of IPv4 addresses).
                let mut first = [0u8; 28];
                if s.peek(&mut first).await.is_ok_and(|n| n == 28) {
                    if let Ok(p) = parse(&first) {
                        let mut skip = vec![0u8; p.consumed];
                        let _ = s.read_exact(&mut skip).await;
                        log.lock().unwrap().push(p);
                    }
                }
                if let Ok(tls) = acceptor.accept(s).await {
                    serve_h2(tls, "localhost".to_owned()).await;
                }
            });
        }
    });
    let https = |options| {
        HttpsChecker::with_options(
            "/health",
            200,
            Some("localhost".to_owned()),
            true,
            Some(cert.cert.as_path()),
            T,
            options,
        )
        .unwrap()
    };
    https(probe(None, true)).check(addr).await.unwrap();
    https(probe(Some(Version::V2), true))
        .check(addr)
        .await
        .unwrap();
    let err = https(probe(None, false)).check(addr).await.unwrap_err();
    assert!(matches!(err, CheckError::Tls(_)), "{err:?}");
    let seen = headers.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].dst, Some(addr));
}
