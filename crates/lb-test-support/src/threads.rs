//! Reading a server binary's `lb_worker_threads` gauge, for the threads tests of lb-proxy
//! and lb-sni.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// Kills the binary when the test ends, passed or not.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two distinct ports that were free a moment ago (both held while chosen, so they differ).
pub fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = |l: &TcpListener| l.local_addr().expect("addr").port();
    (port(&a), port(&b))
}

/// `/metrics` from the admin API, retried until the binary answers.
pub fn metrics(admin: u16, p: &mut Proc) -> String {
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

/// The value of the `lb_worker_threads` sample in a `/metrics` text.
pub fn gauge(text: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("lb_worker_threads "))
        .unwrap_or_else(|| panic!("no lb_worker_threads sample in {text}"));
    line["lb_worker_threads ".len()..]
        .trim()
        .parse()
        .expect("a number")
}
