//! `[admin] tls = { cert, key }` in lb-proxy's config: the admin API answers over HTTPS
//! only (plain HTTP gets no answer), offers `http/1.1` by ALPN, and a reload re-reads the
//! certificate files so a renewed certificate serves new connections.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lb_test_support::cert::write_pem;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("lb-proxy-admin-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn trusting(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).expect("pem"))
        .expect("root");
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    // A browser offers both: the admin API must pick HTTP/1.1.
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}

/// GET `path` over TLS with `Connection: close`; the whole answer as text.
async fn https_get(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(String, Option<Vec<u8>>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .map_err(|_| "read timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok((String::from_utf8_lossy(&out).into_owned(), alpn))
}

#[tokio::test]
async fn admin_over_https_and_renewed_on_reload() {
    let dir = scratch();
    let (cert, key) = (dir.join("admin.pem"), dir.join("admin-key.pem"));
    write_pem(&cert, &key, &["127.0.0.1"]);
    let first = dir.join("first.pem");
    std::fs::copy(&cert, &first).expect("copy");
    let b = Backend::start("a").await;
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\n[pool.web]\nbackends = [\"{}\"]\n\n[[route]]\npool = \"web\"\n",
        cert.display(),
        key.display(),
        b.addr
    );
    let mut p = proxy_text(&text).await;

    let (answer, alpn) = https_get(p.admin, trusting(&first), "/healthz")
        .await
        .expect("https");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("ok") || answer.ends_with("ok\n"),
        "{answer}"
    );
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (answer, _) = https_get(p.admin, trusting(&first), "/api/v1/pools")
        .await
        .expect("https");
    assert!(answer.contains("\"name\":\"web\""), "{answer}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = raw(p.admin, b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n").await;
    assert!(!plain.starts_with("HTTP/"), "{plain:?}");

    // A renewed certificate (a new key): new connections get it after a reload.
    write_pem(&cert, &key, &["127.0.0.1"]);
    p.app.reload(parse(&text)).await.expect("reload");
    let renewed = https_get(p.admin, trusting(&cert), "/healthz")
        .await
        .expect("the renewed certificate");
    assert!(renewed.0.starts_with("HTTP/1.1 200"), "{}", renewed.0);
    let old = https_get(p.admin, trusting(&first), "/healthz").await;
    assert!(old.is_err(), "the old certificate is no longer served");
    let _ = std::fs::remove_dir_all(&dir);
}
