//! `accept_proxy_protocol` on lb-proxy's listeners: a PROXY v1/v2 header from a trusted
//! balancer in front names the client (X-Forwarded-For, `client-ip` keys); from anyone
//! else, or missing or malformed, the connection is closed before any HTTP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use lb_core::proxy_protocol::{Header, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

async fn start(trusted: &str, backend: &Backend) -> Proxy {
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         accept_proxy_protocol = true\ntrusted_proxies = [{trusted}]\nheader_timeout = \"500ms\"\n\n\
         [pool.a]\nbackends = [\"{}\"]\n[[route]]\npool = \"a\"\n",
        backend.addr
    );
    proxy_text(&text).await
}

/// Writes `chunks` one at a time (with a pause between), then reads the answer to EOF.
async fn exchange(addr: SocketAddr, chunks: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        if s.write_all(c).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";

fn header(version: Version, src: &str) -> Vec<u8> {
    let src: SocketAddr = src.parse().unwrap();
    let dst: SocketAddr = if src.is_ipv4() {
        "198.51.100.2:443"
    } else {
        "[2001:db8::2]:443"
    }
    .parse()
    .unwrap();
    Header { version, src, dst }.encode().as_bytes().to_vec()
}

#[tokio::test]
async fn v1_and_v2_headers_from_a_trusted_peer_name_the_client() {
    let b = Backend::start("b").await;
    let p = start("\"127.0.0.0/8\"", &b).await;
    for (version, src, want) in [
        (Version::V1, "203.0.113.7:51000", "203.0.113.7"),
        (Version::V2, "203.0.113.8:51000", "203.0.113.8"),
        (Version::V2, "[2001:db8::7]:51000", "2001:db8::7"),
    ] {
        let mut wire = header(version, src);
        wire.extend_from_slice(GET);
        let text = exchange(p.addr, &[&wire]).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{version:?}: {text}");
        let head = b.last_head();
        assert_eq!(head.get("x-forwarded-for").unwrap(), want, "{version:?}");
    }
    // The header and the request split over several writes.
    let wire = header(Version::V1, "203.0.113.9:1");
    let text = exchange(p.addr, &[&wire[..5], &wire[5..20], &wire[20..], GET]).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(b.last_head().get("x-forwarded-for").unwrap(), "203.0.113.9");
    // v1 UNKNOWN (the balancer's own health check): the peer address stands.
    let mut wire = b"PROXY UNKNOWN\r\n".to_vec();
    wire.extend_from_slice(GET);
    let text = exchange(p.addr, &[&wire]).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(b.last_head().get("x-forwarded-for").unwrap(), "127.0.0.1");
    // Keep-alive after the header: two requests on one connection, one header.
    let mut wire = header(Version::V2, "203.0.113.10:1");
    wire.extend_from_slice(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
    wire.extend_from_slice(GET);
    let text = exchange(p.addr, &[&wire]).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
}

#[tokio::test]
async fn untrusted_missing_or_malformed_headers_close_the_connection() {
    let b = Backend::start("b").await;
    // Trusting another network: loopback peers may not send a header.
    let p = start("\"10.0.0.0/8\"", &b).await;
    let mut wire = header(Version::V1, "203.0.113.7:51000");
    wire.extend_from_slice(GET);
    assert_eq!(exchange(p.addr, &[&wire]).await, "");

    let p = start("\"127.0.0.1/32\"", &b).await;
    // No header at all: a plain request is not taken as one.
    assert_eq!(exchange(p.addr, &[GET]).await, "");
    // Malformed headers.
    for bad in [
        &b"PROXY TCP4 1.2.3.4\r\n"[..],
        b"PROXY TCP4 999.2.3.4 1.2.3.4 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ] {
        let mut wire = bad.to_vec();
        wire.extend_from_slice(GET);
        assert_eq!(exchange(p.addr, &[&wire]).await, "", "{bad:?}");
    }
    // Half a header, then silence: closed at header_timeout.
    let started = std::time::Instant::now();
    assert_eq!(exchange(p.addr, &[b"PROXY TCP4 1.2."]).await, "");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(b.count(), 0, "nothing reached the backend");
    // The listener still serves a good one.
    let mut wire = header(Version::V1, "203.0.113.7:51000");
    wire.extend_from_slice(GET);
    assert!(exchange(p.addr, &[&wire]).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn the_proxy_address_feeds_client_ip_keys() {
    let backends = [
        Backend::start("b0").await,
        Backend::start("b1").await,
        Backend::start("b2").await,
    ];
    let list: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         accept_proxy_protocol = true\n\n\
         [pool.a]\nstrategy = \"maglev\"\nbackends = [{}]\n[[route]]\npool = \"a\"\n",
        list.join(", ")
    );
    let p = proxy_text(&text).await;
    // Many client addresses behind the one balancer spread over the backends, and each
    // one stays on its backend.
    let mut seen = std::collections::HashMap::new();
    for i in 0..30u8 {
        for _ in 0..2 {
            let mut wire = header(Version::V2, &format!("203.0.113.{i}:4000"));
            wire.extend_from_slice(GET);
            let text = exchange(p.addr, &[&wire]).await;
            let name = text.rsplit("\r\n").next().unwrap_or("").to_owned();
            assert!(name.starts_with('b'), "{text}");
            let first = seen.entry(i).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "client {i} moved");
        }
    }
    let distinct: std::collections::HashSet<_> = seen.values().collect();
    assert!(distinct.len() >= 2, "{seen:?}");
}
