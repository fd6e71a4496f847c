//! TLS termination on loopback: certificates chosen by SNI (exact and wildcard, default
//! for an unknown name), ALPN h2 and http/1.1, `min_version`, certificates re-read on
//! reload, `--check` errors for bad files, and curl as a second client.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lb_core::config::{Binary, Config};
use lb_test_support::{self_signed, temp_dir, write_self_signed, Cert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const T: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client trusting exactly `cert`, offering `alpn`, with the given versions.
fn client(
    cert: &Path,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).unwrap())
        .unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(c)
}

fn client_h1(cert: &Path) -> Arc<rustls::ClientConfig> {
    client(cert, &[b"http/1.1"], rustls::ALL_VERSIONS)
}

async fn handshake(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    tokio::time::timeout(
        T,
        tokio_rustls::TlsConnector::from(config).connect(server, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| format!("{e:?}"))
}

/// One HTTP/1.1 GET over TLS: (status line, the response head and body as text).
async fn tls_get(
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let mut tls = handshake(addr, name, config).await?;
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn tls_section(pairs: &[&Cert]) -> String {
    let list: Vec<String> = pairs
        .iter()
        .map(|c| format!("{{ cert = {:?}, key = {:?} }}", c.cert, c.key))
        .collect();
    format!("tls = {{ certs = [{}] }}\n", list.join(", "))
}

fn config_text(tls: &str, a: &Backend, b: &Backend) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{tls}\n\
         [pool.a]\nbackends = [\"{}\"]\n[pool.b]\nbackends = [\"{}\"]\n\
         [[route]]\nhost = \"a.test\"\npool = \"a\"\n[[route]]\nhost = \"*.b.test\"\npool = \"b\"\n\
         [[route]]\nhost = \"*\"\npool = \"a\"\n",
        a.addr, b.addr
    )
}

#[tokio::test]
async fn certificates_are_chosen_by_sni_with_a_default_and_requests_reach_their_route() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (ca, cb) = (self_signed(&["a.test"]), self_signed(&["*.b.test"]));
    let p = proxy_text(&config_text(&tls_section(&[&ca, &cb]), &a, &b)).await;

    // Each client trusts one certificate only: a finished handshake proves which was sent.
    let text = tls_get(p.addr, "a.test", client_h1(&ca.cert))
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("a"), "{text}");
    let text = tls_get(p.addr, "x.b.test", client_h1(&cb.cert))
        .await
        .unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("b"),
        "{text}"
    );
    // Upper case in the SNI chooses the same certificate.
    let text = tls_get(p.addr, "X.B.Test", client_h1(&cb.cert))
        .await
        .unwrap();
    assert!(text.ends_with("b"), "{text}");
    // The wildcard covers one label only: a.x.b.test gets the default (a.test's), which
    // a client trusting the wildcard certificate refuses as unknown.
    let err = tls_get(p.addr, "a.x.b.test", client_h1(&cb.cert))
        .await
        .unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("BadSignature"),
        "{err}"
    );
    // An unknown name gets the first certificate: trusted, but not valid for that name.
    let err = tls_get(p.addr, "other.test", client_h1(&ca.cert))
        .await
        .unwrap_err();
    assert!(err.contains("NotValidForName"), "{err}");

    // The backend learns the request came over TLS.
    let head = a.last_head();
    assert_eq!(head.get("x-forwarded-proto").unwrap(), "https");
}

#[tokio::test]
async fn alpn_h2_serves_http2_streams_and_http1_still_works() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let ca = self_signed(&["a.test"]);
    let p = proxy_text(&config_text(&tls_section(&[&ca]), &a, &b)).await;

    let tls = handshake(
        p.addr,
        "a.test",
        client(&ca.cert, &[b"h2", b"http/1.1"], rustls::ALL_VERSIONS),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    // Several streams at once on the one connection.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let req = hyper::Request::get(format!("https://a.test/item/{i}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = tx.send_request(req).await.unwrap();
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap().to_bytes()
        }));
    }
    for t in tasks {
        assert_eq!(&t.await.unwrap()[..], b"a");
    }
    assert!(a.count() >= 8);
    let head = a.last_head();
    assert_eq!(head.get("x-forwarded-proto").unwrap(), "https");
    assert_eq!(head.get("x-forwarded-host").unwrap(), "a.test");

    // A client offering only http/1.1 gets it.
    let tls = handshake(p.addr, "a.test", client_h1(&ca.cert))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // And one offering no ALPN at all speaks HTTP/1.1.
    let text = tls_get(
        p.addr,
        "a.test",
        client(&ca.cert, &[], rustls::ALL_VERSIONS),
    )
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_client() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let ca = self_signed(&["a.test"]);
    let tls = format!(
        "tls = {{ cert = {:?}, key = {:?}, min_version = \"1.3\" }}\n",
        ca.cert, ca.key
    );
    let p = proxy_text(&config_text(&tls, &a, &b)).await;
    let only12 = client(&ca.cert, &[b"http/1.1"], &[&rustls::version::TLS12]);
    let err = tls_get(p.addr, "a.test", only12).await.unwrap_err();
    assert!(
        err.contains("ProtocolVersion") || err.contains("alert"),
        "{err}"
    );
    let only13 = client(&ca.cert, &[b"http/1.1"], &[&rustls::version::TLS13]);
    let text = tls_get(p.addr, "a.test", only13).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Without min_version, 1.2 is accepted.
    let p = proxy_text(&config_text(&tls_section(&[&ca]), &a, &b)).await;
    let only12 = client(&ca.cert, &[b"http/1.1"], &[&rustls::version::TLS12]);
    let text = tls_get(p.addr, "a.test", only12).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn reload_rereads_certificates_and_a_bad_file_keeps_the_old_ones() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let dir = temp_dir("reload");
    let (cert, key) = write_self_signed(&dir, &["a.test"]);
    let old = dir.join("old.pem");
    std::fs::copy(&cert, &old).unwrap();
    let tls = format!("tls = {{ cert = {cert:?}, key = {key:?} }}\n");
    let text = config_text(&tls, &a, &b);
    let mut p = proxy_text(&text).await;
    assert!(tls_get(p.addr, "a.test", client_h1(&old))
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));

    // Renewed in place (a new key too), then reloaded: new handshakes get the new one.
    write_self_signed(&dir, &["a.test"]);
    let renewed = dir.join("renewed.pem");
    std::fs::copy(&cert, &renewed).unwrap();
    p.app.reload(parse(&text)).await.unwrap();
    let got = tls_get(p.addr, "a.test", client_h1(&renewed))
        .await
        .unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let err = tls_get(p.addr, "a.test", client_h1(&old))
        .await
        .unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("BadSignature"),
        "{err}"
    );

    // A broken key file: the reload is refused and the running certificate stays.
    std::fs::write(&key, "not a key\n").unwrap();
    let err = Config::parse(&text, Path::new("test.toml"), Binary::Proxy).unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");
    let got = tls_get(p.addr, "a.test", client_h1(&renewed))
        .await
        .unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_names_the_file_and_key_of_bad_certificates() {
    let good = self_signed(&["a.test"]);
    let other = self_signed(&["b.test"]);
    let dir = temp_dir("bad");
    let garbage = dir.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.join("missing.pem");
    let check = |tls: String| -> String {
        let text = format!("[[listener]]\nlisten = \"127.0.0.1:0\"\n{tls}\n[pool.a]\nbackends = [\"127.0.0.1:1\"]\n[[route]]\npool = \"a\"\n");
        match Config::parse(&text, Path::new("test.toml"), Binary::Proxy) {
            Ok(_) => panic!("accepted: {tls}"),
            Err(e) => e.to_string(),
        }
    };
    let e = check(format!(
        "tls = {{ cert = {:?}, key = {:?} }}",
        good.cert, other.key
    ));
    assert!(
        e.contains("listener[0].tls") && e.contains("is not the private key"),
        "{e}"
    );
    let e = check(format!(
        "tls = {{ cert = {garbage:?}, key = {:?} }}",
        good.key
    ));
    assert!(
        e.contains("garbage.pem") && e.contains("certificate"),
        "{e}"
    );
    let e = check(format!(
        "tls = {{ cert = {empty:?}, key = {:?} }}",
        good.key
    ));
    assert!(
        e.contains("empty.pem") && e.contains("no certificate"),
        "{e}"
    );
    let e = check(format!(
        "tls = {{ cert = {:?}, key = {:?} }}",
        good.cert, good.cert
    ));
    assert!(e.contains("private key"), "{e}");
    let e = check(format!(
        "tls = {{ cert = {missing:?}, key = {:?} }}",
        good.key
    ));
    assert!(
        e.contains("listener[0].tls.cert") && e.contains("missing.pem"),
        "{e}"
    );
    let e = check(format!(
        "tls = {{ certs = [{{ cert = {:?}, key = {:?} }}, {{ cert = {:?}, key = {:?} }}] }}",
        good.cert, good.key, other.cert, good.key
    ));
    assert!(e.contains("listener[0].tls.certs[1]"), "{e}");
    let e = check(format!(
        "tls = {{ cert = {:?}, key = {:?}, min_version = \"1.1\" }}",
        good.cert, good.key
    ));
    assert!(e.contains("min_version"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn curl_gets_http2_and_http1_through_tls_termination() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl must be installed (.ci/run installs it)");
    }
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let ca = self_signed(&["a.test"]);
    let p = proxy_text(&config_text(&tls_section(&[&ca]), &a, &b)).await;
    let port = p.addr.port();
    for (flag, want) in [("--http2", "HTTP/2 200"), ("--http1.1", "HTTP/1.1 200")] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-i", flag, "--max-time", "10", "--cacert"])
            .arg(&ca.cert)
            .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
            .arg(format!("https://a.test:{port}/"))
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with(want), "{flag}: {text}");
        assert!(text.ends_with("a"), "{flag}: {text}");
    }
}

#[tokio::test]
async fn a_silent_tls_client_is_cut_at_header_timeout() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let ca = self_signed(&["a.test"]);
    let text = config_text(&tls_section(&[&ca]), &a, &b).replace(
        "[[listener]]\n",
        "[[listener]]\nheader_timeout = \"300ms\"\n",
    );
    let p = proxy_text(&text).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a word");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_proxy_header_comes_before_the_tls_handshake() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let ca = self_signed(&["a.test"]);
    let text = config_text(&tls_section(&[&ca]), &a, &b).replace(
        "[[listener]]\n",
        "[[listener]]\naccept_proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    let p = proxy_text(&text).await;
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    let header = lb_core::proxy_protocol::Header {
        version: lb_core::proxy_protocol::Version::V2,
        src: "192.0.2.44:5000".parse().unwrap(),
        dst: p.addr,
    }
    .encode();
    tcp.write_all(header.as_bytes()).await.unwrap();
    let name = ServerName::try_from("a.test").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client_h1(&ca.cert))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let head = a.last_head();
    assert_eq!(head.get("x-forwarded-for").unwrap(), "192.0.2.44");
    assert_eq!(head.get("x-forwarded-proto").unwrap(), "https");
}

/// Headers of a raw HTTP/1.1 response text, lower-cased names.
fn raw_header<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[tokio::test]
async fn sticky_cookies_are_secure_on_tls_listeners() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let ca = self_signed(&["a.test"]);
    // Listeners are keyed by their configured address: the plain one gets a real port.
    let plain = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{}\n\
         [[listener]]\nlisten = \"{plain}\"\n\n\
         [pool.s]\nsticky = {{ cookie = \"lb_sticky\" }}\nbackends = [\"{}\", \"{}\"]\n\
         [[route]]\npool = \"s\"\n",
        tls_section(&[&ca]),
        a.addr,
        b.addr
    );
    let p = proxy_text(&text).await;
    let tls_addr = p.addr;
    let plain_addr = plain;
    let got = tls_get(tls_addr, "a.test", client_h1(&ca.cert))
        .await
        .unwrap();
    let cookies = raw_header(&got, "set-cookie");
    assert_eq!(cookies.len(), 1, "{got}");
    assert!(
        cookies[0].starts_with("lb_sticky=") && cookies[0].contains("; Secure"),
        "{got}"
    );
    // The same pool behind a plain listener: no Secure flag.
    let r = get(plain_addr, "a.test", "/").await;
    let c = r.header("set-cookie");
    assert!(c.starts_with("lb_sticky=") && !c.contains("Secure"), "{c}");
}

#[tokio::test]
async fn websocket_upgrades_work_over_tls_listeners() {
    let backend = upgrade_echo_backend().await;
    let ca = self_signed(&["a.test"]);
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{}\n\
         [pool.ws]\nbackends = [\"{backend}\"]\n[[route]]\npool = \"ws\"\n",
        tls_section(&[&ca])
    );
    let p = proxy_text(&text).await;
    let mut tls = handshake(p.addr, "a.test", client_h1(&ca.cert))
        .await
        .unwrap();
    tls.write_all(
        b"GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let head = tokio::time::timeout(T, read_head_bytewise(&mut tls))
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in [
        &b"hello"[..],
        &[0u8, 1, 2, 255][..],
        &vec![b'z'; 40_000][..],
    ] {
        tls.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(T, tls.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
}

/// One gRPC-style answer: the request's bytes echoed in two DATA frames, then trailers.
struct Frames(std::collections::VecDeque<hyper::body::Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

#[tokio::test]
async fn grpc_over_alpn_h2_reaches_an_h2_backend_with_trailers() {
    // The backend: HTTP/2 with prior knowledge, checks what gRPC needs to arrive.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let ok = req.version() == hyper::Version::HTTP_2
                            && req.headers().get("te").is_some_and(|v| v == "trailers")
                            && req
                                .headers()
                                .get("content-type")
                                .is_some_and(|v| v == "application/grpc");
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let mut trailers = hyper::HeaderMap::new();
                        trailers.insert("grpc-status", if ok { "0" } else { "3" }.parse().unwrap());
                        trailers.insert("grpc-message", "echoed".parse().unwrap());
                        let half = body.len() / 2;
                        let frames = [
                            hyper::body::Frame::data(body.slice(..half)),
                            hyper::body::Frame::data(body.slice(half..)),
                            hyper::body::Frame::trailers(trailers),
                        ];
                        let mut resp = hyper::Response::new(Frames(frames.into_iter().collect()));
                        resp.headers_mut()
                            .insert("content-type", "application/grpc".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let ca = self_signed(&["grpc.test"]);
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{}\n\
         [pool.g]\nprotocol = \"h2\"\nbackends = [\"{backend}\"]\n[[route]]\npool = \"g\"\n",
        tls_section(&[&ca])
    );
    let p = proxy_text(&text).await;
    let tls = handshake(
        p.addr,
        "grpc.test",
        client(&ca.cert, &[b"h2"], rustls::ALL_VERSIONS),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    // A length-prefixed gRPC message.
    let mut msg = vec![0u8, 0, 0, 0, 11];
    msg.extend_from_slice(b"hello grpc!");
    let req = hyper::Request::post("https://grpc.test/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(Bytes::from(msg.clone())))
        .unwrap();
    let resp = tokio::time::timeout(T, tx.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let collected = tokio::time::timeout(T, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reach the client");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("grpc-message").unwrap(), "echoed");
    assert_eq!(&collected.to_bytes()[..], &msg[..]);
}
