//! Pooled HTTP/1.1 connections to backends.
//!
//! Connecting is separate from sending, so a connect failure can move any request to the
//! next backend, while a failure after sending is retried only when that is safe. Idle
//! connections wait per backend address; one goes back to its pool only when its response
//! body has been read to the end, and is dropped (closed) after `idle_timeout` unused or
//! whenever an exchange failed. A client's `Connection: close` never reaches a backend
//! (hop-by-hop headers are removed), so it never closes a pooled connection.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::ReqBody;

/// Most idle connections kept per backend.
const MAX_IDLE_PER_BACKEND: usize = 256;

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed.
    #[error("connect to {addr}: {source}")]
    Io {
        /// The backend.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// TCP connect did not finish in time.
    #[error("connect to {addr} timed out after {after:?}")]
    Timeout {
        /// The backend.
        addr: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("handshake with {addr}: {source}")]
    Handshake {
        /// The backend.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// A small multiplicative hash for the idle map's `SocketAddr` keys: SipHash, the std
/// default, costs a few hundred instructions per lookup on every exchange, and these keys
/// come from the pool's own backend list, not from clients, so flooding is not a concern.
#[derive(Default, Clone, Copy)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type AddrMap<V> = HashMap<SocketAddr, V, std::hash::BuildHasherDefault<AddrHasher>>;

struct Idle {
    sender: SendRequest<ReqBody>,
    since: Instant,
}

/// Idle connections by backend address, for one pool (or one directory).
pub struct Upstreams {
    idle: Mutex<AddrMap<Vec<Idle>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// A connection checked out for one exchange.
pub struct Conn {
    /// The request sender.
    pub sender: SendRequest<ReqBody>,
    /// True when the connection was reused from the pool (it may have gone stale).
    pub reused: bool,
    addr: SocketAddr,
    home: Weak<Upstreams>,
}

/// Gives a connection back to its pool once its response has been read to the end.
pub struct Returner {
    sender: SendRequest<ReqBody>,
    addr: SocketAddr,
    home: Weak<Upstreams>,
}

impl Returner {
    /// Returns the connection to the idle pool (if the pool still exists and it is open).
    pub fn give_back(self) {
        if let Some(home) = self.home.upgrade() {
            home.put(self.addr, self.sender);
        }
    }
}

impl Conn {
    /// Splits off the way back to the pool, for the response body to carry.
    pub fn into_returner(self) -> Returner {
        Returner {
            sender: self.sender,
            addr: self.addr,
            home: self.home,
        }
    }
}

impl Upstreams {
    /// An empty set of pooled connections.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Upstreams> {
        Arc::new(Upstreams {
            idle: Mutex::new(AddrMap::default()),
            connect_timeout,
            idle_timeout,
        })
    }

    /// A ready connection to `addr`: an idle one if any, else a new one.
    pub async fn checkout(self: &Arc<Self>, addr: SocketAddr) -> Result<Conn, ConnectError> {
        while let Some(mut sender) = self.take(addr) {
            // Usually ready at once; a connection still finishing its last exchange
            // becomes ready in a moment, a dead one errors.
            if sender.is_closed() {
                continue;
            }
            if sender.ready().await.is_ok() {
                return Ok(Conn {
                    sender,
                    reused: true,
                    addr,
                    home: Arc::downgrade(self),
                });
            }
        }
        // Boxed: connecting (TCP, then hyper's handshake, which builds the connection's
        // whole state) is rare next to reuse, and inline it would size every exchange's
        // future, and each copy of it, for the worst case.
        let sender = Box::pin(self.connect(addr)).await?;
        Ok(Conn {
            sender,
            reused: false,
            addr,
            home: Arc::downgrade(self),
        })
    }

    fn take(&self, addr: SocketAddr) -> Option<SendRequest<ReqBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some(i) = list.pop() {
            if now.duration_since(i.since) < self.idle_timeout && !i.sender.is_closed() {
                return Some(i.sender);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, sender: SendRequest<ReqBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_BACKEND {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections older than `idle_timeout` (run periodically).
    pub fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        idle.retain(|_, list| {
            list.retain(|i| {
                now.duration_since(i.since) < self.idle_timeout && !i.sender.is_closed()
            });
            !list.is_empty()
        });
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<ReqBody>, ConnectError> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
                Err(_) => {
                    return Err(ConnectError::Timeout {
                        addr,
                        after: self.connect_timeout,
                    })
                }
            };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(backend = %addr, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// Starts a task that sweeps stale idle connections until `upstreams` is dropped.
pub fn spawn_sweeper(upstreams: &Arc<Upstreams>) {
    let weak = Arc::downgrade(upstreams);
    let every =
        (upstreams.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match weak.upgrade() {
                Some(u) => u.sweep(),
                None => return,
            }
        }
    });
}
