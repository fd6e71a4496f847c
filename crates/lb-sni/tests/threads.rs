//! `threads = 0` runs one worker per core, `threads = 2` two and `1` one: the binary's
//! `lb_worker_threads` gauge in `/metrics` says so.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lb_test_support::threads::{free_ports, gauge, metrics, Proc};

fn workers_with(threads: usize) -> f64 {
    run_with(threads, None).0
}

/// Starts the binary with `threads` (and `LB_REUSEPORT` when given), reads the gauge, and
/// sends one HTTP request to its listener: the gauge and the status line of the answer.
fn run_with(threads: usize, reuse_port: Option<&str>) -> (f64, String) {
    // One binary at a time: two tests choosing ports at once could choose the same ones.
    static ONE: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut runs = ONE.lock().unwrap_or_else(|p| p.into_inner());
    *runs += 1;
    let dir = std::env::temp_dir().join(format!("lb-sni-threads-{}-{}", std::process::id(), *runs));
    std::fs::create_dir_all(&dir).expect("dir");
    let (admin, listen) = free_ports();
    let config = format!(
        "threads = {threads}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[[listener]]\nlisten = \"127.0.0.1:{listen}\"\nprotocol = \"http\"\n[pool.p]\nbackends = [\"127.0.0.1:1\"]\n[[route]]\nhost = \"x.test\"\npool = \"p\"\n"
    );
    let path = dir.join("sni.toml");
    std::fs::write(&path, config).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lb-sni"));
    cmd.arg("--config")
        .arg(&path)
        .env_remove("LB_REUSEPORT")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(v) = reuse_port {
        cmd.env("LB_REUSEPORT", v);
    }
    let mut p = Proc(cmd.spawn().expect("start lb-sni"));
    let n = gauge(&metrics(admin, &mut p));
    let status = http_status(listen);
    drop(p);
    let _ = std::fs::remove_dir_all(dir);
    (n, status)
}

/// The status line of the answer to a request for x.test on `port`.
fn http_status(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "listener not up: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nhost: x.test\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn threads_zero_runs_one_worker_per_core_two_two_and_one_one() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(workers_with(0), cores as f64);
    assert_eq!(workers_with(2), 2.0);
    assert_eq!(workers_with(1), 1.0);
}

/// The benchmarks' per-worker listeners (`LB_REUSEPORT=1`): `threads` workers, each with
/// its own `SO_REUSEPORT` socket, and connections are served (here: the pool's only
/// backend refuses, so every one is answered 502, from whichever worker took it).
#[test]
fn reuse_port_listeners_run_one_worker_each_and_serve() {
    for _ in 0..3 {
        let (n, status) = run_with(2, Some("1"));
        assert_eq!(n, 2.0);
        assert!(status.starts_with("HTTP/1.1 502 "), "{status:?}");
    }
}
