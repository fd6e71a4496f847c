//! lb-sni on TLS listeners, end to end on loopback: real rustls (and curl) clients, TLS
//! backends with their own certificates, raw captured ClientHellos, and bad input.

mod net;

use std::time::Duration;

use net::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn two_pools(a: std::net::SocketAddr, b: std::net::SocketAddr) -> String {
    format!(
        r#"
[[listener]]
listen = "127.0.0.1:0"
header_timeout = "1s"

[pool.a]
backends = ["{a}"]
[pool.b]
backends = ["{b}"]

[[route]]
host = "a.test"
pool = "a"
[[route]]
host = "*.b.test"
pool = "b"
"#
    )
}

#[tokio::test]
async fn tls_client_reaches_the_backend_named_by_its_sni() {
    let (ca, cb) = (self_signed(&["a.test"]), self_signed(&["x.b.test"]));
    let (ba, bb) = (
        tls_backend(&ca, "from-a").await,
        tls_backend(&cb, "from-b").await,
    );
    let r = router(&two_pools(ba.addr, bb.addr)).await;
    // Each client trusts only its name's certificate: the handshake itself proves which
    // backend answered, and the body says it again.
    for _ in 0..3 {
        assert_eq!(
            tls_get(r.addr(), "a.test", client_config(&ca, &[b"h2"]))
                .await
                .unwrap(),
            "from-a"
        );
        assert_eq!(
            tls_get(r.addr(), "x.b.test", client_config(&cb, &[]))
                .await
                .unwrap(),
            "from-b"
        );
    }
    assert_eq!(ba.handshakes.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(bb.handshakes.load(std::sync::atomic::Ordering::Relaxed), 3);
    // The name matched case-insensitively.
    assert_eq!(
        tls_get(r.addr(), "A.TEST", client_config(&ca, &[]))
            .await
            .unwrap(),
        "from-a"
    );
}

#[tokio::test]
async fn unknown_sni_gets_the_unrecognized_name_alert() {
    let ca = self_signed(&["a.test"]);
    let ba = tls_backend(&ca, "from-a").await;
    let r = router(&two_pools(ba.addr, ba.addr)).await;
    let cz = self_signed(&["zzz.test"]);
    let err = tls_get(r.addr(), "zzz.test", client_config(&cz, &[]))
        .await
        .unwrap_err();
    assert!(err.contains("UnrecognisedName"), "{err}");
    // The bare suffix does not match "*.b.test".
    let cbare = self_signed(&["b.test"]);
    let err = tls_get(r.addr(), "b.test", client_config(&cbare, &[]))
        .await
        .unwrap_err();
    assert!(err.contains("UnrecognisedName"), "{err}");
    // An SNI no DNS name can be (a space in it), and one that is not a valid DNS name
    // (a 64-byte label): the same alert.
    let mut bad = vector_bytes("openssl-sni-alpn.bin");
    let at = bad.windows(9).position(|w| w == b"app1.test").unwrap();
    bad[at + 4] = b' ';
    assert_eq!(raw_exchange(r.addr(), &bad).await, [21, 3, 3, 0, 2, 2, 112]);
    assert_eq!(
        raw_exchange(r.addr(), &vector_bytes("openssl-long-sni.bin")).await,
        [21, 3, 3, 0, 2, 2, 112]
    );
    // A hello without SNI and no "*" route: the same alert, byte for byte, then EOF.
    let out = raw_exchange(r.addr(), &vector_bytes("openssl-no-sni.bin")).await;
    assert_eq!(out, [21, 3, 3, 0, 2, 2, 112]);
    assert_eq!(ba.handshakes.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn no_usable_backend_gets_the_internal_error_alert() {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[pool.p]\nbackends = [\"{closed}\"]\nretries = 0\n[[route]]\npool = \"p\"\n"
    ))
    .await;
    let out = raw_exchange(r.addr(), &vector_bytes("curl-sni-alpn.bin")).await;
    assert_eq!(out, [21, 3, 3, 0, 2, 2, 80]);
    let ca = self_signed(&["app1.test"]);
    let err = tls_get(r.addr(), "app1.test", client_config(&ca, &[]))
        .await
        .unwrap_err();
    assert!(err.contains("InternalError"), "{err}");
}

#[tokio::test]
async fn hellos_are_replayed_byte_for_byte_however_they_arrive() {
    for (name, sni) in [
        ("chromium-sni-alpn.bin", "app1.test"),
        ("curl-sni-alpn.bin", "app1.test"),
        ("python-sni.bin", "tenant-42.example.com"),
        ("openssl-sni-alpn-two-records.bin", "app1.test"),
        ("openssl-tls12-sni.bin", "app2.test"),
        ("openssl-idn-upper-sni.bin", "xn--bcher-kva.example.com"),
    ] {
        let hello = vector_bytes(name);
        let be = rec_backend("ok", Some(hello.len())).await;
        let other = rec_backend("wrong", Some(hello.len())).await;
        let r = router(&format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[pool.p]\nbackends = [\"{}\"]\n[pool.q]\nbackends = [\"{}\"]\n[[route]]\nhost = \"{sni}\"\npool = \"p\"\n[[route]]\npool = \"q\"\n",
            be.addr, other.addr
        ))
        .await;
        // One byte at a time, with pauses, for the whole hello.
        let mut s = TcpStream::connect(r.addr()).await.unwrap();
        s.set_nodelay(true).unwrap();
        for (i, b) in hello.iter().enumerate() {
            s.write_all(&[*b]).await.unwrap();
            if i % 64 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut out = Vec::new();
        tokio::time::timeout(T, s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out).ends_with("ok"),
            "{name}: {out:?}"
        );
        assert_eq!(be.last(), hello, "{name}: replayed bytes differ");
        assert_eq!(other.count(), 0, "{name}");
    }
}

#[tokio::test]
async fn no_sni_goes_to_a_star_route_and_alpn_can_pick_the_route() {
    let h2 = rec_backend("h2-pool", Some(333)).await;
    let any = rec_backend("any-pool", None).await;
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[pool.h2]\nbackends = [\"{}\"]\n[pool.any]\nbackends = [\"{}\"]\n\
         [[route]]\nhost = \"app1.test\"\nalpn = [\"h2\"]\npool = \"h2\"\n[[route]]\npool = \"any\"\n",
        h2.addr, any.addr
    ))
    .await;
    // openssl-sni-alpn offers h2: the first route.
    let out = raw_exchange(r.addr(), &vector_bytes("openssl-sni-alpn.bin")).await;
    assert!(String::from_utf8_lossy(&out).ends_with("h2-pool"));
    // python-sni offers no ALPN: the "*" route.
    let hello = vector_bytes("python-sni.bin");
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    s.write_all(&hello).await.unwrap();
    s.write_all(b"\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&out).ends_with("any-pool"));
    // No SNI at all: only "*" takes it.
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    s.write_all(&vector_bytes("openssl-no-sni.bin"))
        .await
        .unwrap();
    s.write_all(b"\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&out).ends_with("any-pool"));
}

#[tokio::test]
async fn bad_hellos_close_cleanly_and_the_router_keeps_serving() {
    let ca = self_signed(&["a.test"]);
    let ba = tls_backend(&ca, "from-a").await;
    let r = router(&two_pools(ba.addr, ba.addr)).await;
    let good = vector_bytes("openssl-sni-alpn.bin");
    let mut oversized = vec![0x16, 0x03, 0x01, 0x40, 0x01]; // record of 16385 bytes
    oversized.extend_from_slice(&[1, 0, 0x40, 0]);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..100].to_vec()),
        (
            "plain http",
            b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec(),
        ),
        (
            "sslv2",
            vec![0x80, 0x2e, 0x01, 0x03, 0x01, 0, 0x15, 0, 0, 0, 0x10],
        ),
        ("oversized", oversized),
    ];
    // Random bytes that start like a handshake record, and some that do not.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in [7usize, 300, 5000] {
        let mut v = vec![0x16, 0x03, 0x01];
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        cases.push(("random after a record header", v.clone()));
        cases.push(("random", v[3..].to_vec()));
    }
    for (what, bytes) in &cases {
        let started = std::time::Instant::now();
        let mut s = TcpStream::connect(r.addr()).await.unwrap();
        let _ = s.write_all(bytes).await;
        let mut out = Vec::new();
        let res = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
        assert!(res.is_ok(), "{what}: not closed");
        // Nothing but (at most) an alert record comes back; never backend bytes.
        assert!(out.len() <= 7, "{what}: {out:?}");
        // Either the parser refuses at once or header_timeout (1 s) closes it.
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        assert_eq!(
            tls_get(r.addr(), "a.test", client_config(&ca, &[]))
                .await
                .unwrap(),
            "from-a",
            "after {what}"
        );
    }
    assert_eq!(
        ba.handshakes.load(std::sync::atomic::Ordering::Relaxed),
        cases.len()
    );
}

#[tokio::test]
async fn a_slow_or_silent_client_is_cut_off_by_header_timeout() {
    let be = rec_backend("ok", None).await;
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"400ms\"\n[pool.p]\nbackends = [\"{}\"]\n[[route]]\npool = \"p\"\n",
        be.addr
    ))
    .await;
    // Silent.
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(T, s.read(&mut b))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let silent = started.elapsed();
    assert!(
        silent >= Duration::from_millis(350) && silent < Duration::from_secs(4),
        "{silent:?}"
    );
    // One byte every 100 ms: the whole hello must arrive within the timeout, so this fails.
    let hello = vector_bytes("openssl-sni-alpn.bin");
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    let mut closed = false;
    for byte in &hello {
        if s.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
        // Closed by the router: a read returns EOF at once.
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "slow client was not cut off");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(be.count(), 0);
}

#[tokio::test]
async fn curl_sees_the_right_certificate_and_the_alert() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl not installed; skipped (the rustls tests cover the same paths)");
        return;
    }
    let ca = self_signed(&["a.test"]);
    let ba = tls_backend(&ca, "from-a").await;
    let r = router(&two_pools(ba.addr, ba.addr)).await;
    let port = r.addr().port();
    let curl = |name: &'static str| {
        let cert = ca.cert.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--max-time", "5", "--http1.1", "--resolve"])
                .arg(format!("{name}:{port}:127.0.0.1"))
                .arg("--cacert")
                .arg(cert)
                .arg(format!("https://{name}:{port}/"))
                .output()
                .unwrap()
        })
    };
    let ok = curl("a.test").await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "from-a");
    let bad = curl("nope.test").await.unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr).to_lowercase();
    assert!(
        err.contains("unrecognized name") || err.contains("unrecognized_name"),
        "{err}"
    );
}

#[tokio::test]
async fn openssl_s_client_prints_both_alerts() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[pool.p]\nbackends = [\"{closed}\"]\nretries = 0\n[[route]]\nhost = \"known.test\"\npool = \"p\"\n"
    ))
    .await;
    let addr = r.addr();
    for (name, want) in [
        ("nope.test", "alert number 112"),
        ("known.test", "alert number 80"),
    ] {
        let out = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = std::process::Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &addr.to_string(),
                    "-servername",
                    name,
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("openssl must be installed (.ci/run installs it)");
            let _ = child.stdin.take().unwrap().write_all(b"");
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(want), "{name}: {text}");
    }
}
