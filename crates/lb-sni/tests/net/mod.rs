//! Loopback harness for the router tests: lb-sni in-process from a TOML config, TLS
//! backends with self-signed certificates (openssl), recording TCP backends, a rustls client.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lb_core::config::{Binary, Config};
use lb_sni::app::{self, App};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const T: Duration = Duration::from_secs(10);

#[allow(unused_imports)] // each test binary uses a different subset
pub use lb_test_support::{self_signed, temp_dir, Cert, TempDir};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS backend that answers every request head with `200` and the body `tag`, then
/// closes. Counts the handshakes it completed.
pub struct TlsBackend {
    pub addr: SocketAddr,
    pub handshakes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn tls_backend(cert: &Cert, tag: &str) -> TlsBackend {
    let certs = vec![CertificateDer::from_pem_file(&cert.cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let (hs, tag) = (handshakes.clone(), tag.to_owned());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, hs, tag) = (acceptor.clone(), hs.clone(), tag.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                hs.fetch_add(1, Ordering::Relaxed);
                let _ = read_head(&mut tls).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{tag}",
                    tag.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsBackend {
        addr,
        handshakes,
        task,
    }
}

/// Reads until a blank line (or EOF); returns what was read.
pub async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(T, s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&b[..n]),
            _ => break,
        }
    }
    buf
}

/// A plain TCP backend: reads a request head (with whatever precedes it, e.g. a PROXY
/// header, or a raw ClientHello until `expect` bytes), records the bytes, answers `200`
/// with body `tag` and closes.
pub struct RecBackend {
    pub addr: SocketAddr,
    pub tag: String,
    pub seen: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl Drop for RecBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecBackend {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn last(&self) -> Vec<u8> {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

/// `expect = None`: read an HTTP head; `Some(n)`: read exactly `n` bytes.
pub async fn rec_backend(tag: &str, expect: Option<usize>) -> RecBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    rec_backend_on(listener, tag, expect)
}

pub fn rec_backend_on(listener: TcpListener, tag: &str, expect: Option<usize>) -> RecBackend {
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s, tag, tag_out) = (seen.clone(), tag.to_owned(), tag.to_owned());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (s, tag) = (s.clone(), tag.clone());
            tokio::spawn(async move {
                let got = match expect {
                    None => read_head(&mut stream).await,
                    Some(n) => {
                        let mut b = vec![0u8; n];
                        match tokio::time::timeout(T, stream.read_exact(&mut b)).await {
                            Ok(Ok(_)) => b,
                            _ => return,
                        }
                    }
                };
                s.lock().unwrap().push(got);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{tag}",
                    tag.len()
                );
                let _ = stream.write_all(resp.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    RecBackend {
        addr,
        tag: tag_out,
        seen,
        task,
    }
}

/// lb-sni running in-process on port 0 (listeners and admin).
pub struct Router {
    pub app: Option<App>,
    pub addrs: Vec<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: TempDir,
}

impl Router {
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }
}

/// Starts lb-sni from `body` (everything but `[admin]`, which is added on port 0).
pub async fn router(body: &str) -> Router {
    let dir = temp_dir("router");
    let text = format!("[admin]\nlisten = \"127.0.0.1:0\"\n\n{body}");
    let path = dir.join("lb-sni.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text, &path, Binary::Sni).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let app = app::start(config).await.unwrap();
    Router {
        addrs: app.listen_addrs(),
        admin: app.admin_addr(),
        app: Some(app),
        dir,
    }
}

/// A rustls client trusting exactly `cert`, offering `alpn`.
pub fn client_config(cert: &Cert, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert.cert).unwrap())
        .unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(c)
}

/// A TLS request for `name` through `addr`: the body, or the TLS error.
pub async fn tls_get(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let server = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = tokio::time::timeout(T, connector.connect(server, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok(text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

/// Writes `bytes` and reads until EOF (or `T`): what the router sent back.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    out
}

/// A plain-HTTP request with `Host: host` through `addr`: status line and body.
pub async fn http_get(addr: SocketAddr, host: &str) -> (String, String) {
    let out = raw_exchange(
        addr,
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or("").to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// A bare HTTP/1.1 request to the admin API: (status, body).
pub async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let b = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

/// Path of a vector file in `tests/data/client-hello`.
pub fn vector_bytes(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/client-hello")
            .join(name),
    )
    .unwrap()
}
