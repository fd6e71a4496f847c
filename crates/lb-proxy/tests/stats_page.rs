//! The stats page of a running lb-proxy, read as an operator reads it, in headless
//! Chromium (Debian's `chromium`; `.ci/run` installs it): under real load through the
//! proxy, a backend failing its health checks shows as down with the checker's reason,
//! the request figures move between two loads of the page, the charts are drawn from
//! `/api/v1/stats`, and routes and resolvers are listed. Also writes a screenshot
//! (`LB_STATS_SCREENSHOT=docs/stats-page.png` keeps it; `LB_STATS_SCREENSHOT_PHONE` the
//! phone-sized one).

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use lb_test_support::browser::{self, chromium, headless, row};
use tokio::net::TcpStream;

fn scratch(name: &str) -> PathBuf {
    browser::scratch("lb-proxy-stats", name)
}

/// The text of the `n`th cell (0-based) of a row.
fn cell(row: &str, n: usize) -> String {
    let mut rest = row;
    for _ in 0..n {
        let i = rest
            .find("</td>")
            .unwrap_or_else(|| panic!("cell {n} of {row}"));
        rest = &rest[i + 5..];
    }
    let open = rest
        .find("<td")
        .unwrap_or_else(|| panic!("cell {n} of {row}"));
    let rest = &rest[open..];
    let start = rest.find('>').map_or(0, |i| i + 1);
    let end = rest.find("</td>").unwrap_or(rest.len());
    let inner = &rest[start..end];
    // Strip inner tags.
    let mut out = String::new();
    let mut tag = false;
    for c in inner.chars() {
        match c {
            '<' => tag = true,
            '>' => tag = false,
            c if !tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// GETs through the proxy on one keep-alive connection until `stop`, at most 120 s and
/// 100000 requests; a request in 20 asks for a 404 and one in 20 for a 503.
async fn load(
    addr: std::net::SocketAddr,
    host: &'static str,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let Ok(stream) = TcpStream::connect(addr).await else {
        return;
    };
    let Ok((mut tx, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return;
    };
    tokio::spawn(conn);
    for i in 0..100_000u64 {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        let path = match i % 20 {
            0 => "/status/404",
            1 => "/status/503",
            2 => "/download/20000",
            _ => "/",
        };
        let Ok(resp) = tx.send_request(req("GET", host, path, &[])).await else {
            break;
        };
        let _ = resp.into_body().collect().await;
        sent.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one browser session: load, fail a backend, read the page twice
fn under_load_a_failing_backend_shows_down_with_its_reason_and_numbers_move() {
    chromium();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (p, live, other, dead) = rt.block_on(async {
        let live = Backend::start("live").await;
        let other = Backend::start("other").await;
        let dead = closed_port().await;
        let text = format!(
            "{}\n\
             [pool.web]\nbackends = [\"{}\", {{ addr = \"{dead}\", weight = 2 }}]\n\
             [pool.web.health]\nkind = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 2\n\
             [pool.api]\nstrategy = \"least-conn\"\nbackends = [\"{}\"]\n\
             [resolver.tenants]\nkind = \"static\"\nmap = {{ \"a.tenants.test\" = \"{}\" }}\n\
             [[route]]\nhost = \"web.test\"\npool = \"web\"\n\
             [[route]]\nhost = \"api.test\"\npath_prefix = \"/\"\npool = \"api\"\nrate_limit = {{ rate = \"40/s\", burst = 5 }}\n\
             [[route]]\nhost = \"*.tenants.test\"\nresolver = \"tenants\"\n",
            prologue(None),
            live.addr,
            other.addr,
            live.addr
        );
        (proxy_text(&text).await, live, other, dead)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    for host in ["web.test", "web.test", "api.test", "a.tenants.test"] {
        rt.spawn(load(p.addr, host, stop.clone(), sent.clone()));
    }
    // The health checker takes the dead backend down.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pool = rt.block_on(admin(p.admin, "GET", "/api/v1/pools/web", None, None));
        if pool.text().contains("\"state\":\"down\"") {
            break;
        }
        assert!(Instant::now() < deadline, "never down: {}", pool.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Rates need two samples of the sampler (one a second). LB_STATS_WARMUP=SECS runs the
    // load longer first, for a screenshot with more of the charts drawn.
    let warmup = std::env::var("LB_STATS_WARMUP")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        .min(55);
    std::thread::sleep(Duration::from_millis(2500 + warmup * 1000));
    let stats: serde_json::Value = serde_json::from_slice(
        &rt.block_on(admin(p.admin, "GET", "/api/v1/stats", None, None))
            .body,
    )
    .expect("stats JSON");
    let web = &stats["pools"].as_array().expect("pools")[1];
    assert_eq!(web["name"], "web");
    assert!(web["rates"]["requests"].as_f64() > Some(0.0), "{web}");
    assert!(!web["history"]["requests"]
        .as_array()
        .expect("history")
        .is_empty());

    let url = format!("http://{}/", p.admin);
    let dir = scratch("page");
    let dump = |n: &str| {
        headless(
            &url,
            &["--dump-dom".into(), "--virtual-time-budget=2500".into()],
            &dir.join(format!("profile-{n}")),
        )
    };
    let first = dump("1");
    let down = row(&first, "data-backend", &dead.to_string());
    assert!(down.contains("data-state=\"down\""), "not down: {down}");
    assert!(
        down.contains("data-check=\"failed\""),
        "no failed check: {down}"
    );
    assert!(
        down.to_ascii_lowercase().contains("refused"),
        "the checker's reason is shown: {down}"
    );
    assert!(cell(down, 2).contains("for "), "since when: {down}");
    let up = row(&first, "data-backend", &live.addr.to_string());
    assert!(
        up.contains("data-state=\"up\"") && up.contains("data-check=\"ok\""),
        "{up}"
    );
    let rps: f64 = cell(up, 6)
        .parse()
        .unwrap_or_else(|_| panic!("req/s of {up}"));
    assert!(rps > 0.0, "requests per second under load: {up}");
    let total_1: u64 = cell(up, 14)
        .parse()
        .unwrap_or_else(|_| panic!("requests of {up}"));
    assert!(
        first.contains("<svg") && first.contains("<path d=\"M"),
        "charts drawn"
    );
    assert!(first.contains("refreshes every second"), "{first}");
    let route = row(&first, "data-route", "api.test/");
    assert!(
        route.contains("pool:api") && route.contains("rate limited"),
        "{route}"
    );
    let api = row(&first, "data-backend", &other.addr.to_string());
    // Its errors are the 503s it answers (nothing refused): err/s = 5xx/s.
    assert_eq!(
        cell(api, 9),
        cell(api, 8),
        "errors of the live api backend: {api}"
    );
    let resolver = row(&first, "data-resolver", "tenants");
    assert_eq!(cell(resolver, 1), "1", "one entry: {resolver}");
    assert!(cell(resolver, 2).ends_with('%'), "hit ratio: {resolver}");

    std::thread::sleep(Duration::from_millis(1500));
    let second = dump("2");
    let up = row(&second, "data-backend", &live.addr.to_string());
    let total_2: u64 = cell(up, 14)
        .parse()
        .unwrap_or_else(|_| panic!("requests of {up}"));
    assert!(
        total_2 > total_1,
        "the numbers move: {total_1} then {total_2}"
    );
    let out_bytes = cell(up, 13);
    assert!(
        out_bytes.ends_with("KB") || out_bytes.ends_with("MB"),
        "bytes out: {up}"
    );

    // Screenshots a person can look at (docs/stats-page.png is one of these).
    for (name, size, keep) in [
        ("wide", "1280,1000", "LB_STATS_SCREENSHOT"),
        ("phone", "412,1400", "LB_STATS_SCREENSHOT_PHONE"),
    ] {
        let shot = dir.join(format!("{name}.png"));
        headless(
            &url,
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={size}"),
                "--virtual-time-budget=2500".into(),
            ],
            &dir.join(format!("profile-{name}")),
        );
        let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{} bytes",
            png.len()
        );
        if let Ok(path) = std::env::var(keep) {
            std::fs::copy(&shot, path).expect("copy the screenshot");
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(sent.load(Ordering::Relaxed) > 0);
    let _ = std::fs::remove_dir_all(&dir);
    drop((p, live, other));
    rt.shutdown_timeout(Duration::from_secs(5));
}
