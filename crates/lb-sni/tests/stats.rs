//! lb-sni's figures on the stats page (`GET /api/v1/stats`): per route its connections
//! (total and per second) with its target, per backend the connections, the bytes both ways
//! and how long connections held it.

mod net;

use std::time::Duration;

use net::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_backends_are_counted_per_connection() {
    let a = rec_backend("app-a", None).await;
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         [pool.a]\nbackends = [\"{}\"]\n\
         [[route]]\nhost = \"a.test\"\npool = \"a\"\n[[route]]\nhost = \"*.b.test\"\npool = \"a\"\n",
        a.addr
    ))
    .await;
    // After the sampler's first tick, so the connections fall inside its rate window.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..3 {
        assert_eq!(http_get(r.addr(), "a.test").await.1, "app-a");
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = admin(r.admin, "GET", "/api/v1/stats", None).await;
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let routes = stats["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 2, "{stats}");
    assert_eq!(routes[0]["route"], "a.test");
    assert_eq!(routes[0]["target"], "pool:a");
    assert_eq!(routes[0]["counters"]["connections"]["total"], 3, "{stats}");
    assert!(
        routes[0]["counters"]["connections"]["per_s"].as_f64() > Some(0.0),
        "{stats}"
    );
    assert_eq!(routes[1]["counters"]["connections"]["total"], 0);
    let b = &stats["pools"][0]["backends"][0];
    assert_eq!(b["requests"], 3, "{b}");
    // "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n" in, the backend's answer out.
    assert!(b["bytes_in"].as_u64() >= Some(3 * 30), "{b}");
    assert!(b["bytes_out"].as_u64() >= Some(3 * 5), "{b}");
    assert!(b["rates"]["p50_ms"].is_number(), "{b}");
    assert_eq!(b["state"], "up");
}
