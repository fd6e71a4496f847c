//! The simple loopback backends tests route to: an HTTP/1.1 backend that answers its
//! identity, and a TCP echo.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a backend waits for a request head before giving up on the connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain TCP HTTP/1.1 backend: `GET /health` answers its `health` status with body
/// `health`; anything else `200` with its tag as body (counted). Every answer closes the
/// connection. Stops listening when dropped or [`killed`](HttpBackend::kill).
#[derive(Debug)]
pub struct HttpBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its tag (the body it answers).
    pub tag: String,
    /// The status `/health` answers (200 by default).
    pub health: Arc<AtomicU16>,
    served: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpBackend {
    /// Starts a backend answering `tag` on a free loopback port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(tag: &str) -> HttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = Arc::new(AtomicU16::new(200));
        let served = Arc::new(AtomicUsize::new(0));
        let (h, s, t) = (health.clone(), served.clone(), tag.to_owned());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (h, s, t) = (h.clone(), s.clone(), t.clone());
                tokio::spawn(async move {
                    let head = read_head(&mut stream).await;
                    let health = head.starts_with("GET /health ");
                    let (status, body) = if health {
                        (h.load(Ordering::SeqCst), "health".to_owned())
                    } else {
                        s.fetch_add(1, Ordering::SeqCst);
                        (200, t)
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(resp.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        HttpBackend {
            addr,
            tag: tag.to_owned(),
            health,
            served,
            task,
        }
    }

    /// Requests served (health checks excluded).
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops listening: connects are refused from now on.
    pub fn kill(&self) {
        self.task.abort();
    }
}

/// Reads up to the end of a request head (at most 64 KiB; each read waits at most 10 s),
/// as text; at EOF, an error or the timeout, what arrived.
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match tokio::time::timeout(HEAD_TIMEOUT, s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&b[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A TCP backend that echoes every byte of every connection until EOF, then shuts its
/// side down (so half-close is visible). Stops accepting when the handle is aborted.
///
/// # Panics
/// If no loopback port can be bound.
pub async fn tcp_echo() -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let t = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, t)
}
