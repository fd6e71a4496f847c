//! `lb ring serve` as a binary: identical answers to the admin API's `/route` and to
//! `lb route`, a pool from a config file, health checks, and interop with the real
//! `redis-cli` and with the `redis` crate.

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{admin, lb, pool, ring_binary, text, Reap, Resp};
use lb_cli::admin::AdminClient;
use lb_core::resp::Frame;
use lb_core::StrategyKind;

const NODES: &[&str] = &["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003=2"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn ring_answers(addr: SocketAddr, keys: &[String]) -> Vec<Option<String>> {
    let mut c = Resp::connect(addr).await;
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(keys.iter().map(|k| k.as_bytes()));
    c.send(&args).await;
    match c.read().await {
        Some(Frame::Array(Some(items))) => items.iter().map(text).collect(),
        other => panic!("MGET answered {other:?}"),
    }
}

async fn admin_answers(client: &AdminClient, pool: &str, keys: &[String]) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let v = client.route(pool, k).await.expect("admin /route");
        out.push(v["backend"].as_str().map(str::to_owned));
    }
    out
}

#[test]
fn ring_equals_admin_route_and_lb_route_through_membership_changes() {
    let rt = runtime();
    for (kind, name) in [
        (StrategyKind::Consistent, "consistent"),
        (StrategyKind::Maglev, "maglev"),
        (StrategyKind::Rendezvous, "rendezvous"),
        (StrategyKind::ConsistentNginx, "consistent-nginx"),
    ] {
        let web = pool("web", kind, NODES);
        let a = rt.block_on(admin(vec![web], None));
        let (child, ring) = ring_binary(&["--strategy", name, "--backends", &NODES.join(",")]);
        let _reap = Reap(child);
        let client = AdminClient::new(&a.url(), None).unwrap();
        let keys: Vec<String> = (0..1500).map(|i| format!("tenant-{i}")).collect();
        let url = a.url();
        rt.block_on(async {
            let check = |stage: &'static str| {
                let (client, keys, url) = (&client, &keys, &url);
                async move {
                    let r = ring_answers(ring, keys).await;
                    let h = admin_answers(client, "web", keys).await;
                    assert_eq!(r, h, "{name} {stage}: ring and /api/v1/route differ");
                    assert!(r.iter().all(Option::is_some));
                    for k in &keys[..3] {
                        let out = lb(&["route", "web", k, "--admin", url], &[]).await;
                        assert_eq!(out.code, 0, "{out:?}");
                        assert_eq!(
                            Some(out.out.trim().to_owned()),
                            ring_answers(ring, std::slice::from_ref(k)).await[0],
                            "{name} {stage} lb route {k}"
                        );
                    }
                }
            };
            check("initial").await;
            let mut c = Resp::connect(ring).await;
            assert_eq!(
                c.cmd(&["RING.ADD", "127.0.0.1:7004", "3"]).await,
                Frame::Simple("OK".into())
            );
            let out = lb(
                &[
                    "backend",
                    "--admin",
                    &url,
                    "add",
                    "web",
                    "127.0.0.1:7004",
                    "--weight",
                    "3",
                ],
                &[],
            )
            .await;
            assert_eq!(out.code, 0, "{out:?}");
            check("after add").await;
            assert_eq!(
                c.cmd(&["RING.DEL", "127.0.0.1:7001"]).await,
                Frame::Simple("OK".into())
            );
            let out = lb(
                &[
                    "backend",
                    "--admin",
                    &url,
                    "remove",
                    "web",
                    "127.0.0.1:7001",
                ],
                &[],
            )
            .await;
            assert_eq!(out.code, 0, "{out:?}");
            check("after remove").await;
        });
    }
}

#[test]
fn ring_from_a_proxy_config_pool() {
    let dir = std::env::temp_dir().join(format!("lb-ring-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lb.toml");
    let text_cfg = "[[listener]]\nlisten = \"127.0.0.1:8080\"\n\n[pool.web]\nstrategy = \"maglev\"\nbackends = [\"127.0.0.1:7001\", { addr = \"127.0.0.1:7002\", weight = 3 }, { addr = \"127.0.0.1:7003\", id = \"cache-c\" }]\n\n[pool.api]\nbackends = [\"127.0.0.1:7010\"]\n";
    std::fs::write(&path, text_cfg).unwrap();
    let config = lb_core::config::Config::load(&path, lb_core::config::Binary::Proxy).unwrap();
    let pc = config.pool("web").unwrap();
    let model = lb_core::Pool::new("web", pc.pool_settings(), pc.backends()).unwrap();
    let model = std::sync::Arc::new(model);
    // Also the multi-threaded runtime.
    let (child, ring) = ring_binary(&[
        "--config",
        path.to_str().unwrap(),
        "--pool",
        "web",
        "--threads",
        "2",
    ]);
    let _reap = Reap(child);
    let keys: Vec<String> = (0..500).map(|i| format!("doc-{i}")).collect();
    let rt = runtime();
    let got = rt.block_on(ring_answers(ring, &keys));
    let snap = model.snapshot();
    let want: Vec<_> = keys
        .iter()
        .map(|k| {
            snap.preferred(k.as_bytes())
                .map(|m| m.backend().addr().to_string())
        })
        .collect();
    assert_eq!(got, want);
    // Several pools and no --pool: a clear error naming them.
    let out = Command::new(env!("CARGO_BIN_EXE_lb"))
        .args([
            "ring",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pool NAME ([api, web])"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_lb"))
        .args([
            "ring",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--strategy",
            "least-conn",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not hash keys"));
}

fn nodes_state(rt: &tokio::runtime::Runtime, ring: SocketAddr) -> Vec<(String, String)> {
    rt.block_on(async {
        let mut c = Resp::connect(ring).await;
        let Frame::Array(Some(nodes)) = c.cmd(&["RING.NODES"]).await else {
            panic!("RING.NODES answers an array")
        };
        nodes
            .iter()
            .map(|n| match n {
                Frame::Array(Some(f)) => (text(&f[0]).unwrap(), text(&f[2]).unwrap()),
                other => panic!("{other:?}"),
            })
            .collect()
    })
}

fn wait_for(rt: &tokio::runtime::Runtime, ring: SocketAddr, addr: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = nodes_state(rt, ring);
        if nodes.iter().any(|(a, s)| a == addr && s == state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} never became {state}: {nodes:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_checks_move_only_a_dead_nodes_keys_and_bring_them_back() {
    // Two live nodes (listening sockets accept the TCP probe) and one with nothing there.
    let live1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let live2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let list = format!(
        "{},{},{}",
        live1.local_addr().unwrap(),
        live2.local_addr().unwrap(),
        dead_addr
    );
    let (child, ring) = ring_binary(&[
        "--strategy",
        "consistent",
        "--backends",
        &list,
        "--health",
        "tcp",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "200ms",
        "--rise",
        "1",
        "--fall",
        "1",
    ]);
    let _reap = Reap(child);
    let rt = runtime();
    let dead_s = dead_addr.to_string();
    wait_for(&rt, ring, &dead_s, "down");
    let keys: Vec<String> = (0..600).map(|i| format!("k{i}")).collect();
    // The placement with every node up, from a model pool with the same membership.
    let model = pool(
        "ring",
        StrategyKind::Consistent,
        &list.split(',').collect::<Vec<_>>(),
    );
    let all_up: Vec<_> = {
        let s = model.snapshot();
        keys.iter()
            .map(|k| {
                s.preferred(k.as_bytes())
                    .map(|m| m.backend().addr().to_string())
            })
            .collect()
    };
    let with_dead_down = rt.block_on(ring_answers(ring, &keys));
    let mut moved = 0;
    for ((k, up), now) in keys.iter().zip(&all_up).zip(&with_dead_down) {
        if up.as_deref() == Some(dead_s.as_str()) {
            assert_ne!(now, up, "{k}: a down node's key moves");
            moved += 1;
        } else {
            assert_eq!(now, up, "{k}: keys of live nodes stay");
        }
    }
    assert!(moved > 50, "the dead node owned keys: {moved}");
    // It comes back: its keys return.
    let _back = std::net::TcpListener::bind(dead_addr).expect("rebind the dead port");
    wait_for(&rt, ring, &dead_s, "up");
    assert_eq!(rt.block_on(ring_answers(ring, &keys)), all_up);
    drop((live1, live2));
}

fn redis_cli() -> &'static str {
    let ok = Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "redis-cli is not installed: apt-get install -y redis-tools (CI's .ci/run installs it)"
    );
    "redis-cli"
}

fn cli(ring: SocketAddr, args: &[&str]) -> String {
    let out = Command::new(redis_cli())
        .args(["-h", &ring.ip().to_string(), "-p", &ring.port().to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_real_redis_cli() {
    let (child, ring) = ring_binary(&["--strategy", "maglev", "--backends", &NODES.join(",")]);
    let _reap = Reap(child);
    let model = pool("ring", StrategyKind::Maglev, NODES);
    let owner = |k: &str| {
        model
            .snapshot()
            .preferred(k.as_bytes())
            .unwrap()
            .backend()
            .addr()
            .to_string()
    };
    assert_eq!(cli(ring, &["PING"]).trim(), "PONG");
    assert_eq!(cli(ring, &["GET", "user:42"]).trim(), owner("user:42"));
    assert_eq!(
        cli(ring, &["-3", "GET", "user:42"]).trim(),
        owner("user:42")
    );
    assert_eq!(
        cli(ring, &["-n", "2", "GET", "user:42"]).trim(),
        owner("user:42"),
        "SELECT 2 accepted"
    );
    let m = cli(ring, &["MGET", "a", "b", "c"]);
    assert_eq!(
        m.lines().collect::<Vec<_>>(),
        [owner("a"), owner("b"), owner("c")]
    );
    assert!(cli(ring, &["INFO", "ring"]).contains("strategy:maglev"));
    assert_eq!(cli(ring, &["RING.ADD", "127.0.0.1:7009", "2"]).trim(), "OK");
    let nodes = cli(ring, &["RING.NODES"]);
    assert!(nodes.contains("127.0.0.1:7009"), "{nodes}");
    assert!(cli(ring, &["RING.ADD", "127.0.0.1:7009"]).contains("already a node"));
    assert!(cli(ring, &["NOSUCH"]).contains("ERR unknown command 'NOSUCH'"));
    assert!(cli(ring, &["-3", "HELLO", "3"]).contains("lb-ring"));
    // --pipe: pipelined commands from stdin, ended by redis-cli's own ECHO marker.
    let mut input = String::new();
    for i in 0..2000 {
        input.push_str(&format!("GET key-{i}\r\n"));
    }
    let mut child = Command::new(redis_cli())
        .args(["-h", "127.0.0.1", "-p", &ring.port().to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 2000"), "{text}");
}

#[test]
fn the_redis_crate_resp2_resp3_and_pipelines() {
    let (child, ring) = ring_binary(&["--strategy", "rendezvous", "--backends", &NODES.join(",")]);
    let _reap = Reap(child);
    let model = pool("ring", StrategyKind::Rendezvous, NODES);
    let owner = |k: &str| {
        model
            .snapshot()
            .preferred(k.as_bytes())
            .map(|m| m.backend().addr().to_string())
    };
    for url in [
        format!("redis://{ring}/"),
        format!("redis://{ring}/3?protocol=resp3"),
    ] {
        let client = redis::Client::open(url.as_str()).expect("client");
        let mut con = client
            .get_connection()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        assert_eq!(pong, "PONG");
        // HELLO without arguments reports the protocol the client negotiated.
        let hello: redis::Value = redis::cmd("HELLO").query(&mut con).unwrap();
        let resp3 = url.contains("resp3");
        assert_eq!(
            matches!(hello, redis::Value::Map(_)),
            resp3,
            "{url}: {hello:?}"
        );
        assert!(
            format!("{hello:?}").contains(if resp3 { "int(3)" } else { "int(2)" }),
            "{hello:?}"
        );
        let got: Option<String> = redis::cmd("GET").arg("order:7").query(&mut con).unwrap();
        assert_eq!(got, owner("order:7"), "{url}");
        let keys: Vec<String> = (0..200).map(|i| format!("order:{i}")).collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("GET").arg(k);
        }
        let got: Vec<Option<String>> = pipe.query(&mut con).unwrap();
        let want: Vec<_> = keys.iter().map(|k| owner(k)).collect();
        assert_eq!(got, want, "{url}");
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(&keys[..5]).query(&mut con).unwrap();
        assert_eq!(got, want[..5]);
        let err = redis::cmd("RING.DEL")
            .arg("127.0.0.1:1")
            .query::<String>(&mut con)
            .unwrap_err();
        assert!(err.to_string().contains("not a node"), "{err}");
    }
    // An empty ring answers nil, which the client maps to None.
    let (child, ring) = ring_binary(&["--strategy", "consistent"]);
    let _reap2 = Reap(child);
    let client = redis::Client::open(format!("redis://{ring}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let got: Option<String> = redis::cmd("GET").arg("x").query(&mut con).unwrap();
    assert_eq!(got, None);
    let ok: String = redis::cmd("RING.ADD")
        .arg("127.0.0.1:7001")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let got: Option<String> = redis::cmd("GET").arg("x").query(&mut con).unwrap();
    assert_eq!(got.as_deref(), Some("127.0.0.1:7001"));
}

#[test]
fn sigterm_stops_the_ring_with_exit_0() {
    let (mut child, ring) =
        ring_binary(&["--strategy", "consistent", "--backends", "127.0.0.1:7001"]);
    let rt = runtime();
    let mut c = rt.block_on(Resp::connect(ring));
    assert_eq!(rt.block_on(c.cmd(&["PING"])), Frame::Simple("PONG".into()));
    // Our own child, by its PID.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        assert!(
            Instant::now() < deadline,
            "lb ring serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    // The open client sees the connection closed.
    assert_eq!(rt.block_on(c.read()), None);
}
