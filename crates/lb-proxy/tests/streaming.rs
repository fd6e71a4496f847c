//! Large bodies stream through the proxy both ways without being held in memory.

mod common;

use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

const BIG: usize = 64 * 1024 * 1024;

async fn start() -> (Backend, Proxy) {
    let b = Backend::start("a").await;
    let p = proxy(&format!(
        "[pool.web]\nbackends = [\"{}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        b.addr
    ))
    .await;
    (b, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_streams_through() {
    let (_b, p) = start().await;
    let r = send(
        p.addr,
        hyper::Request::post("/upload")
            .header("host", "web.test")
            .body(generated(BIG))
            .expect("request"),
    )
    .await
    .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), BIG.to_string(), "the backend received every byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_streams_through() {
    let (_b, p) = start().await;
    let stream = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let fut = async {
        let resp = tx
            .send_request(req("GET", "web.test", &format!("/download/{BIG}"), &[]))
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut n = 0usize;
        let mut frames = 0usize;
        // Bounded: at most one frame per byte.
        while let Some(f) = body.frame().await {
            let f = f.expect("frame");
            if let Some(d) = f.data_ref() {
                n += d.len();
                assert!(d.iter().all(|&c| c == b'x'));
            }
            frames += 1;
            assert!(frames <= BIG);
        }
        (n, frames)
    };
    let (n, frames) = tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("download finished");
    assert_eq!(n, BIG);
    assert!(frames > 1, "the body arrived in pieces, not as one buffer");
}
