//! Health checks taking a backend out and back, and zero failed GETs under load
//! while a backend dies and while membership changes through the admin API.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn enc(addr: std::net::SocketAddr) -> String {
    addr.to_string().replace(':', "%3A")
}

async fn state_of(p: &Proxy, addr: std::net::SocketAddr) -> String {
    let r = admin(p.admin, "GET", "/api/v1/pools/web", None, None).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    v["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["addr"] == addr.to_string())
        .map(|b| b["state"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn http_health_check_takes_backend_out_and_back() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let p = proxy(&format!(
        "[pool.web]\nstrategy = \"round-robin\"\nbackends = [\"{}\", \"{}\"]\n\
         [pool.web.health]\nkind = \"http\"\npath = \"/health\"\ninterval = \"100ms\"\n\
         timeout = \"500ms\"\nrise = 2\nfall = 2\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        a.addr, b.addr
    ))
    .await;
    let m = spread(p.addr, "web.test", "/", 4).await;
    assert_eq!(m.len(), 2, "{m:?}");

    b.health.store(503, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || async {
            state_of(&p, b.addr).await == "down"
        })
        .await,
        "b marked down"
    );
    let before = b.count();
    let m = spread(p.addr, "web.test", "/", 10).await;
    assert_eq!(m.get("a"), Some(&10), "{m:?}");
    assert_eq!(b.count(), before);

    b.health.store(200, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || async {
            state_of(&p, b.addr).await == "up"
        })
        .await,
        "b back up"
    );
    let m = spread(p.addr, "web.test", "/", 10).await;
    assert_eq!(m.get("b"), Some(&5), "{m:?}");
}

/// Runs `clients` loops of GETs for `dur`, counting successes and failures.
fn load(
    addr: std::net::SocketAddr,
    clients: usize,
    dur: Duration,
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (ok, failed) = (ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let end = Instant::now() + dur;
            // Bounded: at most 100_000 requests per client, and `dur` of time.
            for _ in 0..100_000 {
                if Instant::now() >= end {
                    break;
                }
                match send(addr, req("GET", "web.test", "/", &[])).await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(r) => {
                        eprintln!("failed: {} {}", r.status, r.header("x-lb-error"));
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    (tasks, ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_failed_gets_while_a_backend_dies_and_membership_changes() {
    let b = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let d = Backend::start("d").await;
    let p = proxy(&format!(
        "[pool.web]\nstrategy = \"round-robin\"\nretries = 2\nbackends = [\"{}\", \"{}\", \"{}\"]\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        b[0].addr, b[1].addr, b[2].addr
    ))
    .await;
    let (tasks, ok, failed) = load(p.addr, 4, Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    b[0].kill();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let body = format!("{{\"addr\":\"{}\"}}", d.addr);
    let r = admin(
        p.admin,
        "POST",
        "/api/v1/pools/web/backends",
        Some(&body),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let path = format!("/api/v1/pools/web/backends/{}", enc(b[1].addr));
    let r = admin(p.admin, "DELETE", &path, None, None).await;
    assert_eq!(r.status, 204);
    let served_b1 = b[1].count();
    for t in tasks {
        t.await.expect("client task");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "failed GETs");
    assert!(ok.load(Ordering::SeqCst) >= 20, "load ran");
    assert!(d.count() > 0, "the added backend got traffic");
    assert!(
        b[1].count() <= served_b1 + 4,
        "the removed backend gets at most the in-flight requests"
    );
    assert!(b[2].count() > 0);
}
