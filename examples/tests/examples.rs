//! Runs every example binary and checks what it prints, so the examples never rot.
//! Placements are recomputed here with lb-core (pools with the same ids), not copied.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lb_core::{Backend, Pool, PoolSettings, StrategyKind};

/// Runs an example to completion (at most 60 s) and returns its stdout lines.
fn run(exe: &str) -> Vec<String> {
    let mut child = Command::new(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{exe} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{exe} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// A pool of backends with these ids (addresses are placeholders: placement follows ids).
fn pool_of(strategy: StrategyKind, ids: &[&str]) -> Pool {
    let backends = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            Backend::new(format!("127.0.0.1:{}", 10_000 + i).parse().unwrap()).with_id(*id)
        })
        .collect();
    Pool::new("t", PoolSettings::with_strategy(strategy), backends).unwrap()
}

fn placed(pool: &Pool, key: &str) -> String {
    pool.snapshot()
        .route(key.as_bytes())
        .unwrap()
        .backend()
        .id()
        .to_owned()
}

/// `word k=v k=v` → the map of `k=v` pairs.
fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split(' ').filter_map(|w| w.split_once('=')).collect()
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {lines:#?}"))
}

#[test]
fn embed_picks_the_same_backend_as_the_ring() {
    let lines = run(env!("CARGO_BIN_EXE_embed"));
    let backends = vec![
        Backend::new("127.0.0.1:7001".parse().unwrap()),
        Backend::new("127.0.0.1:7002".parse().unwrap())
            .with_weight(2)
            .unwrap(),
    ];
    let pool = Pool::new(
        "cache",
        PoolSettings::with_strategy(StrategyKind::Consistent),
        backends,
    )
    .unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let (key, addr) = l.split_once(" -> ").unwrap();
        let want = pool
            .snapshot()
            .route(key.as_bytes())
            .unwrap()
            .backend()
            .addr();
        assert_eq!(addr, want.to_string(), "{l}");
    }
}

#[test]
fn shard_router_routes_moves_minimally_and_falls_back() {
    let lines = run(env!("CARGO_BIN_EXE_shard_router"));
    let first = pool_of(StrategyKind::Consistent, &["shard-a", "shard-b", "shard-c"]);
    let routes: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("route user:"))
        .collect();
    assert_eq!(routes.len(), 6, "{lines:#?}");
    for l in &routes[..5] {
        let w: Vec<&str> = l.split(' ').collect();
        assert_eq!(w[2], placed(&first, w[1]), "{l}");
    }
    let add = fields(line(&lines, "add shard-d "));
    assert_eq!(
        (add["status"], add["all_to_new"]),
        ("200", "true"),
        "{add:?}"
    );
    let moved: usize = add["moved"].split('/').next().unwrap().parse().unwrap();
    assert!(moved > 0 && moved < 200, "{add:?}");
    let remove = fields(line(&lines, "remove shard-b "));
    assert_eq!(
        (remove["status"], remove["only_from_removed"]),
        ("200", "true"),
        "{remove:?}"
    );
    assert!(lines.iter().any(|l| l == "down shard-a"), "{lines:#?}");

    // The key on the downed shard is served by its next choice on the ring.
    let w: Vec<&str> = routes[5].split(' ').collect();
    let last = pool_of(StrategyKind::Consistent, &["shard-a", "shard-c", "shard-d"]);
    assert_eq!(placed(&last, w[1]), "shard-a", "{}", routes[5]);
    let snap = last.snapshot();
    snap.members()[0].state().set_healthy(false);
    let next = snap
        .preferred(w[1].as_bytes())
        .unwrap()
        .backend()
        .id()
        .to_owned();
    assert_eq!(w[2], next, "{}", routes[5]);
    assert_eq!(fields(routes[5])["fallback"], "true");
    assert_eq!(line(&lines, "members "), "members shard-a,shard-c,shard-d");
}

#[test]
fn custom_resolver_answers_through_the_cache() {
    let lines = run(env!("CARGO_BIN_EXE_custom_resolver"));
    assert_eq!(
        lines,
        [
            "route tenant-1.example.com backend-1",
            "route tenant-2.example.com backend-2",
            "route tenant-9.example.com not-found",
            "moved tenant-1.example.com backend-2",
            // Within the TTL: the cached answer, without asking the directory.
            "route tenant-1.example.com backend-1 (cached)",
            "route tenant-1.example.com backend-2 (after ttl)",
            // tenant-1, tenant-2, tenant-9, tenant-1 after the TTL.
            "directory calls 4",
        ]
    );
}

#[test]
fn custom_health_check_takes_a_redis_down_and_up_with_rise_and_fall() {
    let lines = run(env!("CARGO_BIN_EXE_custom_health_check"));
    let down = lines
        .iter()
        .position(|l| l.starts_with("event redis-b down"))
        .expect("down event");
    let up = lines
        .iter()
        .position(|l| l == "event redis-b up")
        .expect("up event");
    assert!(down < up, "{lines:#?}");
    assert!(
        lines[down].contains("kind=redis") && lines[down].contains("NOAUTH"),
        "{}",
        lines[down]
    );
    assert!(
        lines.iter().any(|l| l == "picks while down: redis-b=0/50"),
        "{lines:#?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("redis-b status up"));
    assert!(
        !lines.iter().any(|l| l.starts_with("event redis-a")),
        "{lines:#?}"
    );
}

#[test]
fn custom_discovery_feeds_the_pool_and_keeps_it_when_the_registry_fails() {
    let lines = run(env!("CARGO_BIN_EXE_custom_discovery"));
    let first = pool_of(StrategyKind::Consistent, &["backend-a", "backend-b"]);
    let chosen = placed(&first, "order:17");
    let zone = if chosen == "backend-a" { "eu" } else { "us" };
    assert_eq!(
        lines,
        [
            "ready=true source=registry".to_owned(),
            "members backend-a@eu,backend-b@us".to_owned(),
            format!("pick order:17 {chosen} zone={zone}"),
            "members backend-b@us,backend-c@eu".to_owned(),
            "admin write: pool membership comes from the registry; change it there".to_owned(),
            "registry down, members backend-b@us,backend-c@eu".to_owned(),
        ]
    );
}

#[test]
fn embedded_proxy_routes_by_the_custom_resolver() {
    let lines = run(env!("CARGO_BIN_EXE_embedded_proxy"));
    assert_eq!(lines[0], "proxy listening");
    assert_eq!(
        lines[1],
        "tenant-1.example.com status=200 body=backend-1 /hello"
    );
    assert_eq!(
        lines[2],
        "tenant-2.example.com status=200 body=backend-2 /hello"
    );
    assert!(
        lines[3].starts_with("tenant-9.example.com status=404"),
        "{}",
        lines[3]
    );
    assert_eq!(
        lines[4],
        "admin /metrics status=200 tenants lookup series=1"
    );
    assert_eq!(lines[5], "proxy stopped");
}

#[test]
fn tower_client_sends_each_user_to_its_backend() {
    let lines = run(env!("CARGO_BIN_EXE_tower_client"));
    let pool = pool_of(StrategyKind::Rendezvous, &["api-1", "api-2", "api-3"]);
    let users = ["alice", "bob", "carol", "alice"];
    assert_eq!(lines.len(), users.len() + 1, "{lines:#?}");
    for (l, user) in lines.iter().zip(users) {
        assert_eq!(
            *l,
            format!("{user} {} /profile/{user}", placed(&pool, user))
        );
    }
    assert_eq!(lines[4], "requests=4 active=0");
}
