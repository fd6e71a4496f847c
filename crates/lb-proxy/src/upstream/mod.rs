//! Connections to backends: pooled HTTP/1.1 or shared HTTP/2, over TCP or TLS, with an
//! optional PROXY protocol header.
//!
//! Connecting is separate from sending, so a connect failure (including a failed TLS
//! handshake) can move any request to the next backend, while a failure after sending is
//! retried only when that is safe.
//!
//! How a connection is kept depends on the pool:
//! - **HTTP/1.1** (`protocol = "http1"`, the default): idle connections wait per backend
//!   address; one goes back to its pool only when its response body has been read to the
//!   end (framed, nothing extra after it, no `Connection: close`), and is dropped
//!   (closed) after `idle_timeout` unused, whenever an exchange failed, or when the
//!   backend closed it or wrote to it while it was idle (seen at checkout and by the
//!   sweep). A client's `Connection: close` never reaches a backend (hop-by-hop headers
//!   are removed), so it never closes a pooled connection.
//! - **HTTP/2** (`protocol = "h2"`): one multiplexed connection per backend carries every
//!   concurrent request (hyper keeps within the streams the backend allows). It is
//!   replaced when it closes (GOAWAY, reset, idle close by the backend); concurrent
//!   requests that find none wait for one connect instead of each opening their own.
//! - **PROXY protocol** (`proxy_protocol = "v1" | "v2"`): every new connection starts with
//!   the header naming the client connection it serves, so it may only ever serve that
//!   one. Its idle connections wait in the client connection's own [`ClientSlot`], not in
//!   the pool, and are closed when the client connection ends.
//!
//! With `tls`, the pool's one [`rustls::ClientConfig`] is built with the runtime generation
//! (the CA file is read then); ALPN offers `h2` or `http/1.1` after `protocol`.
//!
//! Layout: this module keeps connections; `connect` opens one (TCP, PROXY header, TLS,
//! the HTTP/2 handshake); [`h1`] is our HTTP/1.1 client, driven inside the request's task;
//! `client` holds a client connection's own ones ([`ClientSlot`]).

mod body;
mod client;
mod connect;
pub(crate) use connect::body_fault;
pub(crate) mod h1;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::client::conn::http2;
use lb_core::config::{PoolConfig, UpstreamProtocol};
use lb_core::tls::ClientTlsError;
use tokio::time::Instant;

use crate::request::fields::Fields;
use hyper::{Method, Request, Response, Uri, Version};

use crate::error::H1Error;
use crate::request::body::ReqBody;
pub(crate) use body::UpstreamBody;
pub(crate) use client::{ClientSlot, Origin};
use connect::{unreachable_h1, Link};
pub(crate) use connect::{ConnectError, SendFailed, Sender};
use h1::{H1Body, H1Conn};

/// Most idle connections kept per backend, in each shard of the idle lists.
const MAX_IDLE_PER_BACKEND: usize = 256;

/// Most shards of a pool's idle lists (see [`Upstreams::take`]).
const MAX_SHARDS: usize = 16;

/// The idle-list shards a pool keeps: one per worker thread serving connections
/// (`lb_worker_threads`), so each mostly takes and gives back its own connections; one
/// for a single-threaded runtime, which then never looks in another.
fn shard_count() -> usize {
    lb_core::rt::worker_threads().clamp(1, MAX_SHARDS)
}

/// This thread's shard of a pool's idle lists: threads are numbered as they first ask,
/// so the first `shard_count()` threads each have a shard of their own.
fn this_shard(shards: usize) -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let n = SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        s.get()
    });
    n % shards
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Idle {
    sender: Box<H1Conn>,
    since: Instant,
}

/// The shared HTTP/2 connection to one backend, and the gate that lets one request at a
/// time open a new one.
#[derive(Default)]
struct Shared {
    sender: Option<http2::SendRequest<ReqBody>>,
    connecting: Arc<tokio::sync::Mutex<()>>,
    /// When the last connect failed: requests that waited for it fail too, instead of
    /// each trying (and timing out) in turn.
    failed_at: Option<Instant>,
}

/// Idle connections by backend address, for one pool (or one directory).
pub struct Upstreams {
    /// Sharded by thread ([`this_shard`]): a worker thread gives a connection back to its
    /// own shard and looks there first, so the threads do not contend for one lock and a
    /// connection tends to stay on the thread (and under per-thread runtimes, the I/O
    /// driver) that used it last.
    idle: Box<[Mutex<AddrMap<Vec<Idle>>>]>,
    shared: Mutex<AddrMap<Shared>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    link: Link,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("protocol", &self.link.protocol)
            .field("tls", &self.link.tls.is_some())
            .field("proxy_protocol", &self.link.proxy_protocol)
            .finish()
    }
}

/// Where a connection goes when its exchange is over.
enum Home {
    /// The pool's idle list (HTTP/1.1).
    Pool(Weak<Upstreams>),
    /// The client connection's slot (PROXY protocol pools).
    Client(Arc<ClientSlot>, Weak<Upstreams>),
    /// Nowhere: shared HTTP/2 handles and single-use connections are just dropped.
    Drop,
}

/// The head of a request to a backend, borrowed from the exchange: an HTTP/1.1 request is
/// encoded from it directly, so a request that may be retried needs no copy of its header
/// map (HTTP/2 builds its request from a copy).
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target: origin-form, or absolute for HTTP/2.
    pub uri: &'a Uri,
    /// HTTP/1.1, or HTTP/2 for h2 pools.
    pub version: Version,
    /// The header fields as sent (hop-by-hop removed, forwarding headers added).
    pub fields: &'a Fields<'a>,
    /// The request asks for an HTTP/1.1 upgrade: only then is a `101` an answer, and the
    /// backend saw `Connection: upgrade`, so its connection is not pooled again.
    pub upgrade: bool,
    /// The `Content-Length` among `fields` (the client's, as its body's exact size), so
    /// the HTTP/1.1 client frames the body without looking it up again.
    pub length: Option<u64>,
}

/// A connection checked out for one exchange.
pub struct Conn {
    sender: Sender,
    addr: SocketAddr,
    home: Home,
}

/// Gives an HTTP/1.1 connection back once its response has been read to the end.
pub struct Returner {
    addr: SocketAddr,
    home: Home,
}

impl Returner {
    /// Returns `conn` to where it is kept (if that still exists).
    pub fn give_back(self, conn: Box<H1Conn>) {
        match self.home {
            Home::Pool(home) => {
                if let Some(home) = home.upgrade() {
                    home.put(self.addr, conn);
                }
            }
            Home::Client(slot, owner) => slot.put(owner, self.addr, Sender::H1(conn)),
            Home::Drop => {}
        }
    }
}

impl Conn {
    /// Sends a request and returns the response, whose body carries the connection: an
    /// HTTP/1.1 one goes back to where it is kept once its body was read to the end,
    /// unless the request asked for an upgrade. If the request never left, the error gives
    /// its body back.
    ///
    /// The response head must arrive within `timeout` ([`SendFailed::timed_out`]
    /// otherwise); the body is not bounded by it.
    #[allow(clippy::manual_async_fn)] // not an `async fn`: see `forward::handle_request`
    pub fn send<'a>(
        self,
        head: Head<'a>,
        body: ReqBody,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, SendFailed>> + Send + 'a {
        async move {
            let Conn { sender, addr, home } = self;
            match sender {
                Sender::H1(mut c) => match c.send(head, body, timeout).await {
                    Ok(resp) => {
                        let home = (!head.upgrade).then_some(Returner { addr, home });
                        Ok(resp.map(|reading| UpstreamBody::H1(H1Body::new(c, reading, home))))
                    }
                    Err(e) => Err(SendFailed {
                        timed_out: matches!(e.error, H1Error::Timeout),
                        error: Box::new(e.error),
                        body: e.body,
                    }),
                },
                Sender::H2(mut s) => {
                    let mut req = Request::new(body);
                    *req.method_mut() = head.method.clone();
                    *req.uri_mut() = head.uri.clone();
                    *req.version_mut() = head.version;
                    *req.headers_mut() = head.fields.to_map();
                    match tokio::time::timeout(timeout, s.try_send_request(req)).await {
                        Ok(Ok(resp)) => Ok(resp.map(UpstreamBody::H2)),
                        Ok(Err(mut e)) => {
                            let body = e.take_message().map(Request::into_body);
                            Err(SendFailed {
                                error: Box::new(e.into_error()),
                                body,
                                timed_out: false,
                            })
                        }
                        Err(elapsed) => Err(SendFailed {
                            error: Box::new(elapsed),
                            body: None,
                            timed_out: true,
                        }),
                    }
                }
            }
        }
    }
}

/// Why a pool's upstream connections could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("pool.{pool}.tls: {source}")]
pub struct UpstreamsError {
    /// The pool.
    pub pool: String,
    /// What was wrong with its TLS settings.
    pub source: ClientTlsError,
}

impl Upstreams {
    /// Plain HTTP/1.1 connections (directories).
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Upstreams> {
        Upstreams::with_link(connect_timeout, idle_timeout, Link::plain())
    }

    /// Connections as a pool's config says: timeouts, `protocol`, `tls` (reads the CA file
    /// now) and `proxy_protocol`.
    pub fn for_pool(cfg: &PoolConfig) -> Result<Arc<Upstreams>, UpstreamsError> {
        let link = Link::for_pool(cfg).map_err(|source| UpstreamsError {
            pool: cfg.name.clone(),
            source,
        })?;
        Ok(Upstreams::with_link(
            cfg.connect_timeout,
            cfg.idle_timeout,
            link,
        ))
    }

    fn with_link(connect_timeout: Duration, idle_timeout: Duration, link: Link) -> Arc<Upstreams> {
        Arc::new(Upstreams {
            idle: (0..shard_count())
                .map(|_| Mutex::new(AddrMap::default()))
                .collect(),
            shared: Mutex::new(AddrMap::default()),
            connect_timeout,
            idle_timeout,
            link,
        })
    }

    /// The HTTP version spoken to the backends.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.link.protocol
    }

    /// True with upstream TLS.
    pub fn tls(&self) -> bool {
        self.link.tls.is_some()
    }

    /// True when connections start with a PROXY header (and serve one client each).
    pub fn proxy_protocol(&self) -> bool {
        self.link.proxy_protocol.is_some()
    }

    /// A ready connection to `addr` for a request from `origin`: a kept one if any, else a
    /// new one.
    pub async fn checkout(
        self: &Arc<Self>,
        addr: SocketAddr,
        origin: &Origin<'_>,
    ) -> Result<Conn, ConnectError> {
        if self.link.proxy_protocol.is_some() {
            return self.checkout_pinned(addr, origin).await;
        }
        if self.link.protocol == UpstreamProtocol::H2 {
            return self.checkout_shared(addr, origin).await;
        }
        while let Some(mut sender) = self.take(addr) {
            // An idle connection the backend closed (or wrote to) is dropped: readiness
            // tells without a syscall when nothing arrived.
            if sender.idle_usable() {
                return Ok(Conn {
                    sender: Sender::H1(sender),
                    addr,
                    home: Home::Pool(Arc::downgrade(self)),
                });
            }
        }
        // Boxed: connecting (TCP, PROXY header, TLS) is rare next to reuse, and inline it
        // would size every exchange's future, and each copy of it, for the worst case.
        let sender = Box::pin(self.link.connect(addr, origin, self.connect_timeout)).await?;
        Ok(Conn {
            sender,
            addr,
            home: Home::Pool(Arc::downgrade(self)),
        })
    }

    /// HTTP/2: the backend's shared connection, opened by one request while the others
    /// that need it wait (the std lock is never held across an await).
    async fn checkout_shared(
        self: &Arc<Self>,
        addr: SocketAddr,
        origin: &Origin<'_>,
    ) -> Result<Conn, ConnectError> {
        let conn = |sender| Conn {
            sender: Sender::H2(sender),
            addr,
            home: Home::Drop,
        };
        let gate = {
            let mut shared = lock(&self.shared);
            let entry = shared.entry(addr).or_default();
            match &entry.sender {
                Some(s) if !s.is_closed() => return Ok(conn(s.clone())),
                _ => entry.sender = None,
            }
            entry.connecting.clone()
        };
        let waited_from = Instant::now();
        let _connecting = gate.lock().await;
        if let Some(e) = lock(&self.shared).get(&addr) {
            if let Some(s) = e.sender.as_ref().filter(|s| !s.is_closed()) {
                return Ok(conn(s.clone()));
            }
            if e.failed_at.is_some_and(|t| t >= waited_from) {
                return Err(ConnectError::Io {
                    addr,
                    source: io::Error::other("connecting failed while this request waited"),
                });
            }
        }
        let sender = match Box::pin(self.link.connect(addr, origin, self.connect_timeout)).await {
            Ok(Sender::H2(s)) => s,
            // `connect` speaks HTTP/2 whenever the pool's protocol is h2.
            Ok(Sender::H1(_)) => unreachable_h1(addr)?,
            Err(e) => {
                lock(&self.shared).entry(addr).or_default().failed_at = Some(Instant::now());
                return Err(e);
            }
        };
        lock(&self.shared).entry(addr).or_default().sender = Some(sender.clone());
        Ok(conn(sender))
    }

    /// PROXY protocol: a connection of this client connection, or a new one kept in its
    /// slot afterwards.
    async fn checkout_pinned(
        self: &Arc<Self>,
        addr: SocketAddr,
        origin: &Origin<'_>,
    ) -> Result<Conn, ConnectError> {
        let owner = Arc::downgrade(self);
        let Some(slot) = origin.slot else {
            let sender = Box::pin(self.link.connect(addr, origin, self.connect_timeout)).await?;
            return Ok(Conn {
                sender,
                addr,
                home: Home::Drop,
            });
        };
        while let Some(mut sender) = slot.take(&owner, addr, self.idle_timeout) {
            if sender.ready().await {
                return Ok(Conn {
                    sender,
                    addr,
                    home: Home::Client(slot.clone(), owner),
                });
            }
        }
        let sender = Box::pin(self.link.connect(addr, origin, self.connect_timeout)).await?;
        if let Some(shared) = sender.share() {
            // HTTP/2: the slot keeps a handle for this client's concurrent requests.
            slot.put(owner.clone(), addr, shared);
        }
        Ok(Conn {
            sender,
            addr,
            home: Home::Client(slot.clone(), owner),
        })
    }

    /// An idle connection to `addr` of this thread's shard, else of another shard (a
    /// connection reused from another thread is still cheaper than a new one).
    fn take(&self, addr: SocketAddr) -> Option<Box<H1Conn>> {
        // In range: `this_shard` is modulo the length, which `shard_count` keeps ≥ 1.
        let mine = this_shard(self.idle.len());
        let now = Instant::now();
        let others = self.idle.iter().skip(mine + 1).chain(&self.idle[..mine]);
        std::iter::once(&self.idle[mine])
            .chain(others)
            .find_map(|shard| {
                let mut idle = lock(shard);
                let list = idle.get_mut(&addr)?;
                while let Some(i) = list.pop() {
                    if now.duration_since(i.since) < self.idle_timeout {
                        return Some(i.sender);
                    }
                }
                None
            })
    }

    /// Keeps an idle connection in this thread's shard.
    fn put(&self, addr: SocketAddr, sender: Box<H1Conn>) {
        self.put_in(this_shard(self.idle.len()), addr, sender);
    }

    fn put_in(&self, shard: usize, addr: SocketAddr, sender: Box<H1Conn>) {
        let mut idle = lock(&self.idle[shard]);
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_BACKEND {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections older than `idle_timeout` and forgets closed HTTP/2 ones
    /// (run periodically).
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.idle {
            lock(shard).retain(|_, list| {
                list.retain_mut(|i| {
                    now.duration_since(i.since) < self.idle_timeout && i.sender.idle_usable()
                });
                !list.is_empty()
            });
        }
        if self.link.protocol == UpstreamProtocol::H2 {
            // An entry whose gate is held (a connect in progress) stays.
            lock(&self.shared).retain(|_, e| {
                e.sender.as_ref().is_some_and(|s| !s.is_closed())
                    || Arc::strong_count(&e.connecting) > 1
            });
        }
    }
}

/// Starts a task that sweeps stale idle connections until `upstreams` is dropped.
pub(crate) fn spawn_sweeper(upstreams: &Arc<Upstreams>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::MaybeTls;

    /// A plain connection to a loopback listener, and the listener's end of it.
    async fn pair() -> (SocketAddr, Box<H1Conn>, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (peer, _) = l.accept().await.expect("accept");
        (addr, Box::new(H1Conn::new(MaybeTls::Plain(c))), peer)
    }

    /// Whichever shard (thread) gave a connection back, a request on any thread finds it;
    /// a sweep reaches every shard.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_are_found_and_swept_in_every_shard() {
        let up = Upstreams::new(Duration::from_secs(1), Duration::from_secs(60));
        let shards = up.idle.len();
        assert_eq!(shards, 2, "one shard per worker thread");
        let mut peers = Vec::new();
        for shard in 0..shards {
            let (addr, conn, _peer) = pair().await;
            up.put_in(shard, addr, conn);
            assert!(up.take(addr).is_some(), "shard {shard} of {shards}");
            assert!(up.take(addr).is_none(), "taken twice from shard {shard}");
            let (addr, conn, peer) = pair().await;
            up.put_in(shard, addr, conn);
            peers.push((addr, peer));
        }
        // The backends close: every shard's connection is swept.
        let addrs: Vec<SocketAddr> = peers.iter().map(|(a, _)| *a).collect();
        drop(peers);
        tokio::time::sleep(Duration::from_millis(50)).await;
        up.sweep();
        for shard in up.idle.iter() {
            assert!(lock(shard).is_empty(), "a closed connection was kept");
        }
        for addr in addrs {
            assert!(up.take(addr).is_none());
        }
    }
}
