//! Health checks, reset retries, reload, and the `lb-sni` binary: `--check`, SIGHUP good and
//! bad, SIGTERM drain.

mod net;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lb_test_support::{eventually, tcp_echo};
use net::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn health_checks_take_a_dead_backend_out_and_bring_it_back() {
    let a = rec_backend("a", None).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = listener.local_addr().unwrap();
    let b = rec_backend_on(listener, "b", None);
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         [pool.p]\nbackends = [\"{}\", \"{b_addr}\"]\nretries = 0\n\
         [pool.p.health]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfall = 2\nrise = 2\njitter = \"0%\"\n\
         [[route]]\npool = \"p\"\n",
        a.addr
    ))
    .await;
    let state = |admin_addr: SocketAddr| async move {
        let (_, body) = admin(admin_addr, "GET", "/api/v1/pools/p", None).await;
        body
    };
    drop(b); // stops accepting: its port refuses connections
    assert!(
        eventually(Duration::from_secs(5), || async {
            let s = state(r.admin).await;
            s.contains("\"down\"")
        })
        .await,
        "timed out waiting for b marked down"
    );
    // With retries = 0 a pick of the dead backend would fail: none fails now.
    for _ in 0..20 {
        assert_eq!(http_get(r.addr(), "x.test").await.1, "a");
    }
    // Back on the same port: up again after `rise` probes.
    let listener = TcpListener::bind(b_addr).await.unwrap();
    let b = rec_backend_on(listener, "b", None);
    assert!(
        eventually(Duration::from_secs(5), || async {
            !state(r.admin).await.contains("\"down\"")
        })
        .await,
        "timed out waiting for b up again"
    );
    let mut seen_b = false;
    for _ in 0..20 {
        seen_b |= http_get(r.addr(), "x.test").await.1 == "b";
    }
    assert!(seen_b && b.count() > 0);
}

#[tokio::test]
async fn a_backend_that_closes_before_answering_is_retried_on_the_next() {
    // Accepts, reads a little, closes without a byte back.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = l.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let _t = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut b = [0u8; 16];
            let _ = s.read(&mut b).await;
            drop(s);
        }
    });
    let good = rec_backend("good", None).await;
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n[pool.p]\nbackends = [\"{bad}\", \"{}\"]\nretries = 1\n\
         outlier = {{ consecutive_errors = 0 }}\n[[route]]\npool = \"p\"\n",
        good.addr
    ))
    .await;
    for _ in 0..10 {
        assert_eq!(
            http_get(r.addr(), "x.test").await,
            ("HTTP/1.1 200 OK".into(), "good".into())
        );
    }
    assert!(
        hits.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "round-robin sent some to the bad one first"
    );
    // Without "reset" in retry_on the same backend fails the connection.
    let r = router(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n[pool.p]\nbackends = [\"{bad}\"]\nretry_on = [\"connect\"]\n[[route]]\npool = \"p\"\n"
    ))
    .await;
    let (status, body) = http_get(r.addr(), "x.test").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("", ""),
        "closed without a response"
    );
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lb-sni"))
}

#[test]
fn check_names_the_file_key_and_problem() {
    let dir = temp_dir("check");
    let path = dir.join("sni.toml");
    std::fs::write(
        &path,
        "[[listener]]\nlisten = \"127.0.0.1:1\"\n[pool.p]\nkey = \"path\"\n[[route]]\npool = \"p\"\npath_prefix = \"/x\"\n",
    )
    .unwrap();
    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sni.toml:4:") && err.contains("pool.p.key"),
        "{err}"
    );
    assert!(
        err.contains("route[0].path_prefix") && err.contains("not supported by lb-sni"),
        "{err}"
    );
    std::fs::write(&path, "[[listener]]\nlisten = \"127.0.0.1:1\"\n[pool.p]\nkey = \"sni\"\n[[route]]\npool = \"p\"\n").unwrap();
    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

/// The binary's process-log lines (stderr), as they come.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn start(config: &std::path::Path) -> Proc {
        let mut child = bin()
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Process logs are on stderr.
        let out = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + T;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line with {needle:?} in {:#?}", self.seen),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr_in(line: &str) -> SocketAddr {
    let at = line.find("listen=").unwrap() + "listen=".len();
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_binary_reloads_on_sighup_keeps_serving_a_bad_file_and_drains_on_sigterm() {
    let a = rec_backend("a", None).await;
    let b = rec_backend("b", None).await;
    let dir = temp_dir("bin");
    let path = dir.join("sni.toml");
    let config = |backend: SocketAddr| {
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n[pool.p]\nbackends = [\"{backend}\"]\n[[route]]\nhost = \"x.test\"\npool = \"p\"\n"
        )
    };
    std::fs::write(&path, config(a.addr)).unwrap();
    let mut p = Proc::start(&path);
    let listen = addr_in(&p.wait_for("protocol="));
    assert_eq!(http_get(listen, "x.test").await.1, "a");

    // A good file: the next connection follows it.
    std::fs::write(&path, config(b.addr)).unwrap();
    p.signal("HUP");
    p.wait_for("config reloaded");
    assert_eq!(http_get(listen, "x.test").await.1, "b");

    // A broken file: rejected, the old config keeps serving.
    std::fs::write(&path, "[pool.p]\nstrategy = \"nope\"\n").unwrap();
    p.signal("HUP");
    p.wait_for("reload rejected");
    assert_eq!(http_get(listen, "x.test").await.1, "b");

    // SIGTERM with a tunnel open: new connections are refused, the open one finishes,
    // then the process exits 0.
    let (echo, _t) = tcp_echo().await;
    std::fs::write(&path, config(echo)).unwrap();
    let reloads = p
        .seen
        .iter()
        .filter(|l| l.contains("config reloaded"))
        .count();
    p.signal("HUP");
    let started = Instant::now();
    while p
        .seen
        .iter()
        .filter(|l| l.contains("config reloaded"))
        .count()
        == reloads
    {
        assert!(started.elapsed() < T, "no reload: {:#?}", p.seen);
        if let Ok(l) = p.lines.recv_timeout(Duration::from_millis(100)) {
            p.seen.push(l);
        }
    }
    let mut tunnel = TcpStream::connect(listen).await.unwrap();
    tunnel
        .write_all(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = vec![0u8; 32];
    let echoed = tokio::time::timeout(T, tunnel.read_exact(&mut got)).await;
    assert!(
        matches!(echoed, Ok(Ok(_))),
        "{echoed:?} {got:?} {:#?}",
        p.seen
    );
    p.signal("TERM");
    p.wait_for("shutting down");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(listen).await.is_err(),
        "listener still open after SIGTERM"
    );
    tunnel.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    tokio::time::timeout(T, tunnel.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"still here");
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "exited before the tunnel ended"
    );
    drop(tunnel);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < T,
            "did not exit after the last tunnel closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_discovered_pool_follows_its_file_through_a_reload() {
    let a = rec_backend("a", None).await;
    let b = rec_backend("b", None).await;
    let dir = temp_dir("discovery");
    let members = dir.join("web.json");
    std::fs::write(&members, format!("[\"{}\"]", a.addr)).unwrap();
    let body = |strategy: &str| {
        format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
             [pool.web]\nstrategy = \"{strategy}\"\ndiscovery = {{ kind = \"file\", path = \"{}\" }}\n\
             [[route]]\npool = \"web\"\n",
            members.display()
        )
    };
    let mut r = router(&body("round-robin")).await;
    // Read before the first connection: the file is synced before lb-sni serves.
    assert_eq!(http_get(r.addr(), "x.test").await.1, "a");
    let (_, pool) = admin(r.admin, "GET", "/api/v1/pools/web", None).await;
    assert!(
        pool.contains("\"source\":\"file\"") && pool.contains("\"last_sync\":\"20"),
        "{pool}"
    );
    // The file owns membership: admin writes are refused.
    let (code, _) = admin(
        r.admin,
        "POST",
        "/api/v1/pools/web/backends",
        Some(&format!("{{\"addr\":\"{}\"}}", b.addr)),
    )
    .await;
    assert_eq!(code, 409);
    // An atomic rename to a new list is followed.
    let tmp = dir.join("web.json.tmp");
    std::fs::write(&tmp, format!("[\"{}\"]", b.addr)).unwrap();
    std::fs::rename(&tmp, &members).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            http_get(r.addr(), "x.test").await.1 == "b"
        })
        .await,
        "timed out waiting for the file's new member"
    );
    // A reload that rebuilds the pool (new strategy) keeps following the file, never the
    // (empty) `backends` of the config.
    let config = lb_core::config::Config::parse(
        &format!("[admin]\nlisten = \"127.0.0.1:0\"\n{}", body("least-conn")),
        &r.dir.join("lb-sni.toml"),
        lb_core::config::Binary::Sni,
    )
    .unwrap();
    r.app.as_mut().unwrap().reload(config).await.unwrap();
    assert_eq!(http_get(r.addr(), "x.test").await.1, "b");
    let _ = std::fs::remove_dir_all(dir);
}
