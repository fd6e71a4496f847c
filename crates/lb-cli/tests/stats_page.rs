//! The admin API's stats page (`GET /`) in a real browser: headless Chromium (Debian's
//! `chromium`) loads it from a running admin API whose pool has a backend taken down by
//! failed health checks, and the rendered page must show that backend as down.
//!
//! Chromium is required: without it these tests fail and say how to install it (CI's
//! `.ci/run` does).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_core::health::{CheckKind, HealthMonitor, HealthSettings, TcpChecker};
use lb_core::StrategyKind;
use lb_test_support::browser::{self, chromium, headless};

fn scratch(name: &str) -> PathBuf {
    browser::scratch("lb-stats-page", name)
}

/// The `<tr data-backend="ADDR">` row of the dumped DOM.
fn row<'a>(dom: &'a str, addr: &str) -> &'a str {
    browser::row(dom, "data-backend", addr)
}

#[test]
fn a_backend_failing_health_checks_shows_as_down() {
    let browser = chromium();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // One backend that accepts connections, one with nothing listening.
    let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (live_addr, dead_addr) = (live.local_addr().unwrap(), dead.local_addr().unwrap());
    drop(dead);
    let web = common::pool(
        "web",
        StrategyKind::Maglev,
        &[&live_addr.to_string(), &format!("{dead_addr}=2")],
    );
    let api = common::pool("api", StrategyKind::RoundRobin, &["127.0.0.1:19020"]);
    api.snapshot().members()[0].state().set_draining(true);
    let (admin, _monitor) = rt.block_on(async {
        let settings = {
            let mut s = HealthSettings::new(CheckKind::Tcp);
            s.interval = Duration::from_millis(100);
            s.timeout = Duration::from_millis(200);
            s.rise = 1;
            s.fall = 2;
            s
        };
        let monitor = HealthMonitor::spawn(
            web.clone(),
            settings,
            Arc::new(TcpChecker::new(Duration::from_millis(200))),
            std::future::pending::<()>(),
        );
        (common::admin(vec![web.clone(), api], None).await, monitor)
    });
    // The health checker (not the test) takes it down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while web
        .snapshot()
        .member(dead_addr)
        .is_some_and(|m| m.state().is_healthy())
    {
        assert!(
            Instant::now() < deadline,
            "the health checker never marked {dead_addr} down"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("{}/", admin.url());
    let dir = scratch("down");
    let dom = headless(
        &url,
        &["--dump-dom".into(), "--virtual-time-budget=3000".into()],
        &dir.join("profile"),
    );
    let down = row(&dom, &dead_addr.to_string());
    assert!(
        down.contains("data-state=\"down\""),
        "{browser}: the failing backend is not shown down: {down}"
    );
    assert!(down.contains("<td>2</td>"), "its weight is shown: {down}");
    let up = row(&dom, &live_addr.to_string());
    assert!(up.contains("data-state=\"up\""), "{up}");
    assert!(row(&dom, "127.0.0.1:19020").contains("data-state=\"draining\""));
    assert!(
        dom.contains("refreshes every second"),
        "the page loaded its data: {dom}"
    );

    // A screenshot a person can look at (docs/stats-page.png is one of these).
    let shot = dir.join("stats-page.png");
    headless(
        &url,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1100,520".into(),
            "--virtual-time-budget=3000".into(),
        ],
        &dir.join("profile2"),
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("LB_STATS_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("copy the screenshot");
    }
    drop(live);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_page_asks_for_a_token_when_the_api_needs_one() {
    chromium();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let web = common::pool("web", StrategyKind::Maglev, &["127.0.0.1:19030"]);
    let admin = rt.block_on(common::admin(vec![web], Some("s3cret")));
    let dir = scratch("token");
    let dom = headless(
        &format!("{}/", admin.url()),
        &["--dump-dom".into(), "--virtual-time-budget=2000".into()],
        &dir.join("profile"),
    );
    assert!(dom.contains("the admin API needs a token"), "{dom}");
    assert!(
        dom.contains("id=\"token-form\" style=\"display: block;\""),
        "the token form is shown: {dom}"
    );
    assert!(!dom.contains("data-backend="), "no data without the token");
    let _ = std::fs::remove_dir_all(&dir);
}
