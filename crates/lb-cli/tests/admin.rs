//! `lb pools|pool|backend|route` against a real admin API (lb-core's, in-process on
//! loopback), run as the `lb` binary.

mod common;

use common::{admin, lb, pool};
use lb_core::StrategyKind;
use serde_json::Value;

const BACKENDS: &[&str] = &["127.0.0.1:19001", "127.0.0.1:19002", "127.0.0.1:19003=2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_and_pool_as_tables_and_json() {
    let web = pool("web", StrategyKind::Maglev, BACKENDS);
    let api = pool("api", StrategyKind::RoundRobin, &["127.0.0.1:19010"]);
    web.snapshot().members()[1].state().set_healthy(false);
    let a = admin(vec![web, api], None).await;
    let url = a.url();

    let r = lb(&["pools", "--admin", &url], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<Vec<&str>> = r
        .out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["POOL", "STRATEGY", "SOURCE", "BACKENDS", "UP", "DOWN", "DRAINING", "EJECTED"]
    );
    assert_eq!(
        lines[1],
        ["api", "round-robin", "static", "1", "1", "0", "0", "0"]
    );
    assert_eq!(
        lines[2],
        ["web", "maglev", "static", "3", "2", "1", "0", "0"]
    );

    let r = lb(&["pool", "web", "--admin", &url], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out
            .starts_with("pool web  strategy maglev  source static"),
        "{}",
        r.out
    );
    let row = r
        .out
        .lines()
        .find(|l| l.starts_with("127.0.0.1:19002"))
        .unwrap_or_else(|| panic!("{}", r.out));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["127.0.0.1:19002", "127.0.0.1:19002", "1", "down", "0"]
    );
    let row3 = r
        .out
        .lines()
        .find(|l| l.starts_with("127.0.0.1:19003"))
        .unwrap_or_default();
    assert_eq!(row3.split_whitespace().nth(2), Some("2"), "{}", r.out);

    // --json is the server's document, the same as asking the API directly.
    let r = lb(&["pool", "web", "--admin", &url, "--json"], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.out).expect("--json prints JSON");
    assert_eq!(v["name"], "web");
    assert_eq!(v["backends"][1]["state"], "down");
    assert_eq!(v["backends"][2]["weight"], 2);
    let r = lb(&["pools", "--json", "--admin", &url], &[]).await;
    let v: Value = serde_json::from_str(&r.out).expect("--json prints JSON");
    assert_eq!(v["pools"].as_array().map(Vec::len), Some(2));
}

#[allow(clippy::too_many_lines)] // one scenario, step by step: split, its steps would lose their order
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_add_drain_remove_round_trip_and_server_errors() {
    let web = pool("web", StrategyKind::Consistent, BACKENDS);
    let a = admin(vec![web.clone()], None).await;
    let url = a.url();
    let addr = "127.0.0.1:19004";

    let r = lb(
        &[
            "backend", "--admin", &url, "add", "web", addr, "--weight", "3",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out
            .contains("added 127.0.0.1:19004 to pool web (weight 3)"),
        "{}",
        r.out
    );
    let m = web.snapshot();
    let m = m
        .member(addr.parse().unwrap())
        .expect("added to the live pool");
    assert_eq!(m.backend().weight(), 3);

    // A duplicate: the server's message, exit 1.
    let r = lb(&["backend", "--admin", &url, "add", "web", addr], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err
            .contains("backend 127.0.0.1:19004 is already in the pool")
            && r.err.contains("HTTP 409"),
        "{}",
        r.err
    );

    let r = lb(&["backend", "--admin", &url, "drain", "web", addr], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(web
        .snapshot()
        .member(addr.parse().unwrap())
        .unwrap()
        .state()
        .is_draining());
    let r = lb(&["pool", "web", "--admin", &url], &[]).await;
    assert!(
        r.out
            .lines()
            .any(|l| l.starts_with(addr) && l.contains("draining")),
        "{}",
        r.out
    );

    // drain --weight N: reweight and take traffic again.
    let r = lb(
        &[
            "backend", "--admin", &url, "drain", "web", addr, "--weight", "5",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let snap = web.snapshot();
    let m = snap.member(addr.parse().unwrap()).unwrap();
    assert!(!m.state().is_draining());
    assert_eq!(m.backend().weight(), 5);

    let r = lb(&["backend", "--admin", &url, "remove", "web", addr], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(web.snapshot().member(addr.parse().unwrap()).is_none());
    let r = lb(&["backend", "--admin", &url, "remove", "web", addr], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("is not in the pool") && r.err.contains("HTTP 404"),
        "{}",
        r.err
    );

    // Bad input is the server's 400 message; an unknown pool its 404.
    let r = lb(
        &["backend", "--admin", &url, "add", "web", "not-an-address"],
        &[],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("not an address") && r.err.contains("HTTP 400"),
        "{}",
        r.err
    );
    // Admin options also come after the action.
    let r = lb(
        &[
            "backend",
            "add",
            "web",
            "127.0.0.1:19005",
            "--weight",
            "999",
            "--admin",
            &url,
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("out of range"), "{}", r.err);
    let r = lb(&["pool", "nope", "--admin", &url], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("no pool named \"nope\""), "{}", r.err);
    // IPv6 addresses travel percent-encoded in the path.
    let r = lb(
        &["backend", "--admin", &url, "add", "web", "[::1]:19006"],
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = lb(
        &["backend", "--admin", &url, "remove", "web", "[::1]:19006"],
        &[],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(web.snapshot().members().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_matches_the_pool_for_awkward_keys() {
    let web = pool("web", StrategyKind::Rendezvous, BACKENDS);
    let a = admin(vec![web.clone()], None).await;
    let url = a.url();
    let snap = web.snapshot();
    for key in ["tenant-1", "a b+c&d=e/f%", "ключ", "", "x?y#z"] {
        let r = lb(&["route", "web", key, "--admin", &url], &[]).await;
        assert_eq!(r.code, 0, "{key:?}: {r:?}");
        let want = snap
            .preferred(key.as_bytes())
            .unwrap()
            .backend()
            .addr()
            .to_string();
        assert_eq!(r.out.trim(), want, "key {key:?}");
    }
    let r = lb(
        &["route", "web", "tenant-1", "--admin", &url, "--json"],
        &[],
    )
    .await;
    let v: Value = serde_json::from_str(&r.out).expect("json");
    assert!(
        v["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("127.0.0.1:1900")),
        "{v}"
    );
    let r = lb(&["route", "nope", "k", "--admin", &url], &[]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no pool named"), "{}", r.err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_from_flag_or_environment() {
    let web = pool("web", StrategyKind::Maglev, BACKENDS);
    let a = admin(vec![web], Some("s3cret")).await;
    let url = a.url();
    let r = lb(&["pools", "--admin", &url], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.contains("missing or wrong bearer token")
            && r.err.contains("HTTP 401")
            && r.err.contains("LB_TOKEN"),
        "{}",
        r.err
    );
    let r = lb(&["pools", "--admin", &url, "--token", "wrong"], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let r = lb(&["pools", "--token", "s3cret", "--admin", &url], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = lb(&["pools", "--admin", &url], &[("LB_TOKEN", "s3cret")]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("web"), "{}", r.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_names_the_url() {
    // A port that was just free: nothing listens there now.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let url = format!("http://127.0.0.1:{port}");
    let r = lb(&["pools", "--admin", &url], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err
            .contains(&format!("cannot connect to the admin API at {url}")),
        "{}",
        r.err
    );
    assert!(r.err.to_lowercase().contains("refused"), "{}", r.err);
    // https is spoken now (tests/admin_tls.rs); another scheme is a usage error.
    let r = lb(&["pools", "--admin", "ftp://127.0.0.1:1"], &[]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err
            .contains("expected http://host:port or https://host:port"),
        "{}",
        r.err
    );
    // The default URL is the spec's.
    let r = lb(&["pools", "--help"], &[]).await;
    assert!(r.out.contains("http://127.0.0.1:9091"), "{}", r.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_the_admin_api() {
    // Something answering plain HTML with 404 and no JSON: its text is shown.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = l.accept().await {
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b).await;
            let _ = s
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot here!")
                .await;
        }
    });
    let r = lb(&["pools", "--admin", &format!("http://{addr}")], &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("not here! (HTTP 404)"), "{}", r.err);
}
