//! Reload through `App::reload`, and the `lb-proxy` binary: `--check`, SIGHUP with a
//! broken file, SIGTERM.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use lb_core::config::{Binary, Config};
use lb_test_support::shell::output_lines;

fn web(b: SocketAddr) -> String {
    format!(
        "{}[pool.web]\nbackends = [\"{b}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        prologue(None)
    )
}

#[tokio::test]
async fn reload_adds_a_route_and_pool() {
    let a = Backend::start("a").await;
    let n = Backend::start("n").await;
    let mut p = proxy_text(&web(a.addr)).await;
    assert_eq!(get(p.addr, "new.test", "/").await.status, 404);
    let text = format!(
        "{}[pool.new]\nbackends = [\"{}\"]\n[[route]]\nhost = \"new.test\"\npool = \"new\"\n",
        web(a.addr),
        n.addr
    );
    p.app.reload(parse(&text)).await.expect("reload");
    let r = get(p.addr, "new.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "n".to_owned()));
    assert_eq!(get(p.addr, "web.test", "/").await.text(), "a");
    let r = admin(p.admin, "GET", "/api/v1/pools/new", None, None).await;
    assert_eq!(r.status, 200, "the admin API sees the new pool");

    // A broken text never becomes a Config; the running one keeps serving.
    let broken = format!("{}[pool.web]\nstrategy = \"nope\"\n", web(a.addr));
    let e = Config::parse(&broken, Path::new("test.toml"), Binary::Proxy)
        .expect_err("broken config")
        .to_string();
    assert!(e.contains("test.toml"), "{e}");
    assert_eq!(get(p.addr, "new.test", "/").await.status, 200);
}

/// A config file in a temp dir of its own, removed with it (also when a test fails).
struct TempConfig(PathBuf);

impl TempConfig {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn write_config(dir: &str, text: &str) -> TempConfig {
    let d = std::env::temp_dir().join(format!("lb-proxy-test-{}-{dir}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    let p = d.join("proxy.toml");
    std::fs::write(&p, text).expect("write config");
    TempConfig(p)
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lb-proxy"))
}

#[test]
fn check_accepts_good_and_names_file_and_key_of_bad() {
    let good = write_config("check-good", &web("127.0.0.1:9".parse().expect("addr")));
    let out = bin()
        .arg("--config")
        .arg(good.path())
        .arg("--check")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let bad = write_config(
        "check-bad",
        &format!(
            "{}[pool.web]\nstrategy = \"fastest\"\nbackends = [\"127.0.0.1:9\"]\n\
             [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
            prologue(None)
        ),
    );
    let out = bin()
        .arg("--config")
        .arg(bad.path())
        .arg("--check")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&bad.path().display().to_string()), "{err}");
    assert!(err.contains("pool.web.strategy"), "{err}");
}

/// A running `lb-proxy --config FILE` whose log lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(config: &Path) -> Running {
        let mut child = bin()
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lb-proxy");
        let lines = output_lines(&mut child);
        Running { child, lines }
    }

    /// Waits (at most 10 s) for a log line containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line with {needle:?}");
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(st.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("lb-proxy did not exit within 10 s");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The listener address from the "listening" log line.
fn listen_addr(line: &str) -> SocketAddr {
    let i = line.find("127.0.0.1:").expect("address in line");
    let rest = &line[i..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().expect("socket address")
}

#[tokio::test]
async fn sighup_with_broken_file_keeps_serving_and_sigterm_exits_0() {
    let a = Backend::start("a").await;
    let path = write_config("signals", &web(a.addr));
    let mut run = Running::start(path.path());
    let addr = listen_addr(&run.wait_for("listening"));
    let r = get(addr, "web.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "a".to_owned()));

    std::fs::write(path.path(), "[pool.web\nthis is not toml").expect("break config");
    run.signal("HUP");
    run.wait_for("reload rejected");
    let r = get(addr, "web.test", "/").await;
    assert_eq!((r.status, r.text()), (200, "a".to_owned()));

    run.signal("TERM");
    let st = run.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// Signals are handled from the process's first log line on: a SIGHUP (whose default
/// action ends a process) while it starts (here: up to 2 s waiting for a Redis discovery
/// source that cannot connect, which logs why) is a reload once the server runs, and
/// SIGTERM then drains and exits 0.
#[test]
fn a_sighup_while_starting_is_a_reload_not_the_end() {
    let text = format!(
        "{}[pool.web]\ndiscovery = {{ kind = \"redis\", url = \"redis://127.0.0.1:1\", key = \"k\" }}\n\
         [[route]]\nhost = \"web.test\"\npool = \"web\"\n",
        prologue(None)
    );
    let path = write_config("early-hup", &text);
    let mut run = Running::start(path.path());
    let first = run
        .lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a first log line");
    run.signal("HUP");
    run.wait_for("listening");
    run.wait_for("config reloaded");
    assert!(
        run.child.try_wait().expect("try_wait").is_none(),
        "lb-proxy ended on a SIGHUP sent at its first line: {first}"
    );
    run.signal("TERM");
    let st = run.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}");
}

/// Writes `msg` and reads the same bytes back within 5 s.
async fn echo(s: &mut tokio::net::TcpStream, msg: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(msg).await.expect("write through the tunnel");
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("echo");
    got
}

// Multi-threaded: `wait_exit` blocks its thread while the echo backend must still see
// the close and answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_open_websocket_tunnels_then_exits_0() {
    let backend = upgrade_echo_backend().await;
    let path = write_config("tunnel-drain", &web(backend));
    let mut run = Running::start(path.path());
    let addr = listen_addr(&run.wait_for("listening"));

    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut s,
        b"GET /chat HTTP/1.1\r\nHost: web.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .expect("upgrade request");
    let head = tokio::time::timeout(Duration::from_secs(5), read_head_bytewise(&mut s))
        .await
        .expect("101 in time");
    assert!(
        head.ends_with(b"\r\n\r\n"),
        "closed before the 101: {head:?}"
    );
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    assert_eq!(echo(&mut s, b"before").await, b"before");

    // Draining: the listener closes, the open tunnel keeps working.
    run.signal("TERM");
    run.wait_for("draining");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        run.child.try_wait().expect("try_wait").is_none(),
        "lb-proxy exited with a tunnel open"
    );
    assert_eq!(echo(&mut s, b"during drain").await, b"during drain");

    // The client closes: the tunnel ends, and with it the drain.
    drop(s);
    let st = run.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}");
}
