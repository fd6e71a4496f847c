//! Faults are attributed: clients that give up (close or half-close right after their
//! request head, or before it is complete) never count against a backend, however many.

mod net;

use std::time::Duration;

use lb_test_support::until;
use net::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn states(r: &Router, pool: &str) -> Vec<String> {
    let (status, body) = admin(r.admin, "GET", &format!("/api/v1/pools/{pool}"), None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["state"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn clients_that_give_up_eject_no_backend() {
    let (a, b) = (rec_backend("a", None).await, rec_backend("b", None).await);
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         [pool.web]\nbackends = [\"{}\", \"{}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        a.addr, b.addr
    ))
    .await;
    let head = b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n";
    for _ in 0..30 {
        // The whole head, then gone at once.
        let mut s = TcpStream::connect(r.addr()).await.expect("connect");
        s.write_all(head).await.expect("write");
        drop(s);
        // The whole head, then a half-close.
        let mut s = TcpStream::connect(r.addr()).await.expect("connect");
        s.write_all(head).await.expect("write");
        let _ = s.shutdown().await;
        drop(s);
        // Half a head, then gone.
        let mut s = TcpStream::connect(r.addr()).await.expect("connect");
        s.write_all(&head[..10]).await.expect("write");
        drop(s);
    }
    // The heads did reach the backends before their clients were gone.
    assert!(
        until(Duration::from_secs(3), || a.count() + b.count() > 0).await,
        "nothing was forwarded"
    );
    // Default outlier settings eject after five failures in a row; 90 give-ups later:
    assert_eq!(states(&r, "web").await, ["up", "up"]);
    for _ in 0..4 {
        let (status, _) = http_get(r.addr(), "web.test").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
    }
    assert!(a.count() > 0 && b.count() > 0, "both still serve");
}
