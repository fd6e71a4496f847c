//! A backend that records every byte it receives and answers what it could frame.
//!
//! Deliberately independent of the proxy's codec: it reads a head up to its blank line,
//! then a `Content-Length` body or a chunked one (sizes, data, CRLFs, trailers), and
//! answers each request `200` with `content-length`, `x-seen: METHOD TARGET` and the body
//! `METHOD TARGET LEN:BODY` (no body for `HEAD`). Anything it cannot frame ends the
//! connection. Tests read what reached it with [`Recorder::bytes`], and how many
//! requests it framed and answered with [`Recorder::requests`].

#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The recording backend (see the module docs).
pub struct Recorder {
    pub addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// Connections accepted, and connections that ended.
    pub accepted: Arc<AtomicUsize>,
    pub ended: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let (b, r, a, e) = (
            bytes.clone(),
            requests.clone(),
            accepted.clone(),
            ended.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let (b, r, e) = (b.clone(), r.clone(), e.clone());
                tokio::spawn(async move {
                    serve(s, &b, &r).await;
                    e.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Recorder {
            addr,
            bytes,
            requests,
            accepted,
            ended,
            task,
        }
    }

    /// Every byte received so far, all connections in arrival order.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().expect("lock").clone()
    }

    /// The requests framed and answered so far: `METHOD TARGET LEN:BODY`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Reads from `s` into `buf` until `buf` holds at least `n` bytes; false at EOF.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize, log: &Mutex<Vec<u8>>) -> bool {
    while buf.len() < n {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(k) => {
                log.lock().expect("lock").extend_from_slice(&chunk[..k]);
                buf.extend_from_slice(&chunk[..k]);
            }
        }
    }
    true
}

/// Reads until `buf` holds `needle`; its end, or `None` at EOF.
async fn until(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    needle: &[u8],
    log: &Mutex<Vec<u8>>,
) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(needle.len()).position(|w| w == needle) {
            return Some(i + needle.len());
        }
        let want = buf.len() + 1;
        if !fill(s, buf, want, log).await {
            return None;
        }
    }
}

async fn serve(mut s: TcpStream, log: &Mutex<Vec<u8>>, requests: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = until(&mut s, &mut buf, b"\r\n\r\n", log).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or("");
        let mut parts = start.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let field = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let body = if field("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            let mut body = Vec::new();
            loop {
                let Some(line_end) = until(&mut s, &mut buf, b"\r\n", log).await else {
                    return;
                };
                let line = String::from_utf8_lossy(&buf[..line_end - 2]).into_owned();
                buf.drain(..line_end);
                let size = line.split(';').next().unwrap_or("").trim();
                let Ok(size) = usize::from_str_radix(size, 16) else {
                    return;
                };
                if size == 0 {
                    // Trailers, then the blank line.
                    loop {
                        let Some(e) = until(&mut s, &mut buf, b"\r\n", log).await else {
                            return;
                        };
                        let blank = e == 2;
                        buf.drain(..e);
                        if blank {
                            break;
                        }
                    }
                    break;
                }
                if !fill(&mut s, &mut buf, size + 2, log).await || &buf[size..size + 2] != b"\r\n" {
                    return;
                }
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
            }
            body
        } else {
            let n: usize = match field("content-length").map(|v| v.parse()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => return,
            };
            if !fill(&mut s, &mut buf, n, log).await {
                return;
            }
            buf.drain(..n).collect()
        };
        let seen = format!(
            "{method} {target} {}:{}",
            body.len(),
            String::from_utf8_lossy(&body)
        );
        requests.lock().expect("lock").push(seen.clone());
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-seen: {method} {target}\r\n\r\n",
            seen.len()
        )
        .into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(seen.as_bytes());
        }
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}
