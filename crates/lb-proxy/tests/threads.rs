//! `threads = 0` runs one worker per core, `threads = 2` two and `1` one: the binary's
//! `lb_worker_threads` gauge in `/metrics` says so.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the binary when the test ends, passed or not.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two distinct ports that were free a moment ago (both held while chosen, so they differ).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = |l: &TcpListener| l.local_addr().expect("addr").port();
    (port(&a), port(&b))
}

/// `/metrics` from the admin API, retried until the binary answers.
fn metrics(admin: u16, p: &mut Proc) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = p.0.try_wait().expect("wait") {
            panic!("the binary exited: {status}");
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", admin)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
            let mut body = String::new();
            if s.write_all(req.as_bytes()).is_ok() && s.read_to_string(&mut body).is_ok() {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "no answer from the admin API");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn gauge(text: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("lb_worker_threads "))
        .unwrap_or_else(|| panic!("no lb_worker_threads sample in {text}"));
    line["lb_worker_threads ".len()..]
        .trim()
        .parse()
        .expect("a number")
}

fn workers_with(threads: usize) -> f64 {
    // One binary at a time: two tests choosing ports at once could choose the same ones.
    static ONE: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut runs = ONE.lock().unwrap_or_else(|p| p.into_inner());
    *runs += 1;
    let dir =
        std::env::temp_dir().join(format!("lb-proxy-threads-{}-{}", std::process::id(), *runs));
    std::fs::create_dir_all(&dir).expect("dir");
    let (admin, listen) = free_ports();
    let config = format!(
        "threads = {threads}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[[listener]]\nlisten = \"127.0.0.1:{listen}\"\n[pool.p]\nbackends = [\"127.0.0.1:1\"]\n[[route]]\nhost = \"x.test\"\npool = \"p\"\n"
    );
    let path = dir.join("proxy.toml");
    std::fs::write(&path, config).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_lb-proxy"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start lb-proxy");
    let mut p = Proc(child);
    let n = gauge(&metrics(admin, &mut p));
    drop(p);
    let _ = std::fs::remove_dir_all(dir);
    n
}

#[test]
fn threads_zero_runs_one_worker_per_core_two_two_and_one_one() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(workers_with(0), cores as f64);
    assert_eq!(workers_with(2), 2.0);
    assert_eq!(workers_with(1), 1.0);
}
