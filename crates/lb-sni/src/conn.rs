//! One client connection: (PROXY header) → peek → route → pick and connect → replay → splice.
//!
//! 1. With `accept_proxy_protocol`, a PROXY v1/v2 header is read first (only from a peer in
//!    `trusted_proxies`, when that list is set); its source address becomes the client.
//! 2. The ClientHello (TLS listeners) or request head (HTTP listeners) is read, without
//!    answering anything, until it parses, within `header_timeout` and a byte cap
//!    ([`MAX_HELLO_BYTES`] / `max_header_bytes`).
//! 3. The name (SNI or `Host`) is normalised and the first matching route taken.
//! 4. A pool route walks the strategy's preference order (key `sni` or `client-ip`); a
//!    directory route asks the cached directory and tries its endpoints in an order fixed
//!    by the client IP. A connect failure moves to the next candidate (`retry_on` has
//!    `connect`, up to `retries` more); so does a backend that closes or resets before
//!    sending a byte, while the client has sent nothing beyond what was buffered
//!    (`retry_on` has `reset`): the buffered bytes are replayed to the next one.
//! 5. The PROXY header towards the backend (the pool's `proxy_protocol`) and every byte
//!    read so far are written in one go, then both directions are spliced
//!    ([`splice_tcp`](lb_core::server::tunnel::splice_tcp): bulk data through pipes with
//!    splice(2)).
//!
//! Refusals: TLS listeners answer a fatal `unrecognized_name` alert for an unknown or
//! invalid name and `internal_error` when no backend can take the connection, then close;
//! garbage, a timeout or an oversized hello just closes. HTTP listeners answer `404`,
//! `400`, `408`, `431`, `502` or `503` (with `Retry-After`) as plain text, then close.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lb_core::config::{any_contains, KeySpec, ListenerConfig, ListenerProtocol, ProxyProtocol};
use lb_core::forward::{Attempts, Failure, Verdict};
use lb_core::metrics::Reason;
use lb_core::name::{normalize_name, IpText};
use lb_core::proxy_protocol::{self, Header, Version};
use lb_core::resolve::Routing;
use lb_core::select::PickInput;
use lb_core::server::RunningPool;
use lb_core::Lease;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::connect;
use crate::head::{parse_head, HeadError};
use crate::hello::{parse_client_hello, HelloError, MAX_HELLO_BYTES};
use crate::metrics::SniMetrics;
use crate::state::{DirectoryTarget, Runtime, Target};
use crate::{internal_error_alert, unrecognized_name_alert};
use lb_core::server::tunnel::{self, End};
use lb_core::server::AccessLog;

/// Bytes read per call while peeking.
const READ_CHUNK: usize = 4096;

/// What a connection needs besides its socket.
pub struct Ctx {
    /// The listener's settings when the connection was accepted.
    pub listener: Arc<ListenerConfig>,
    /// The config generation when the connection was accepted.
    pub runtime: Arc<Runtime>,
    /// Shared counters.
    pub metrics: Arc<SniMetrics>,
}

/// The access-log line of one connection.
struct Log {
    started: Instant,
    client: SocketAddr,
    local: SocketAddr,
    name: Option<String>,
    alpn: String,
    /// The route's pool or directory (a reference count, not a copy of its name).
    target: Option<Target>,
    backend: Option<SocketAddr>,
    tries: u32,
    moved: tunnel::Moved,
    reason: Option<Reason>,
    end: &'static str,
}

impl Log {
    /// Writes the line: `sni` on TLS listeners, `host` on HTTP ones.
    fn emit(&self, protocol: ListenerProtocol, log: &AccessLog) {
        let name = match protocol {
            ListenerProtocol::Http => "host",
            _ => "sni",
        };
        let mut l = log.line();
        l.addr("client", Some(self.client))
            .str(name, self.name.as_deref().unwrap_or(""))
            .str("alpn", &self.alpn)
            .str("pool", self.target.as_ref().map_or("", Target::name))
            .addr("backend", self.backend)
            .num("bytes_in", self.moved.up)
            .num("bytes_out", self.moved.down)
            .num("duration_ms", self.started.elapsed().as_millis() as u64)
            .str("error", self.reason.map_or("", Reason::as_str));
        log.send(l);
    }
}

/// Serves one accepted connection to its end.
pub async fn handle(mut client: TcpStream, peer: SocketAddr, ctx: Ctx) {
    if !lb_core::server::ACCEPTED_NODELAY {
        let _ = client.set_nodelay(true);
    }
    let mut log = Log {
        started: Instant::now(),
        client: peer,
        local: local_addr(&client, ctx.listener.listen),
        name: None,
        alpn: String::new(),
        target: None,
        backend: None,
        tries: 0,
        moved: tunnel::Moved::default(),
        reason: None,
        end: "closed",
    };
    let protocol = ctx.listener.protocol;
    // Boxed: the task's future stays small, and tokio moves a task's whole future several
    // times while it spawns and ends it (about 750 bytes nine times a connection, a
    // fifth of lb-sni's instructions per new connection, before this box).
    if let Err(reason) = Box::pin(serve(&mut client, &ctx, &mut log)).await {
        ctx.metrics.errors.inc(reason);
        log.reason = Some(reason);
        refuse(&mut client, protocol, reason).await;
    }
    if let Some(access) = &ctx.runtime.access {
        log.emit(protocol, access);
    }
}

/// The address a connection came in on: the listener's own when it names one IP and port
/// (no `getsockname` per connection), else the socket's.
fn local_addr(client: &TcpStream, listen: SocketAddr) -> SocketAddr {
    if listen.port() != 0 && !listen.ip().is_unspecified() {
        return listen;
    }
    client.local_addr().unwrap_or(listen)
}

/// What was peeked: where it goes, and what to hash.
struct Routed {
    target: Target,
    /// `sni` key bytes when the pool hashes the name; else the client IP is used.
    name_key: bool,
}

async fn serve(client: &mut TcpStream, ctx: &Ctx, log: &mut Log) -> Result<(), Reason> {
    let l = &*ctx.listener;
    let deadline = log.started + l.header_timeout;
    let mut buf: Vec<u8> = Vec::new();

    if l.accept_proxy_protocol {
        if !l.trusted_proxies.is_empty() && !any_contains(&l.trusted_proxies, log.client.ip()) {
            tracing::debug!(peer = %log.client, "PROXY header expected from an untrusted peer: closed");
            return Err(Reason::BadRequest);
        }
        let parsed = loop {
            match proxy_protocol::parse(&buf) {
                Ok(p) => break p,
                Err(e) if e.is_incomplete() => {
                    read_more(client, &mut buf, proxy_protocol::V2_MAX, deadline).await?
                }
                Err(e) => {
                    tracing::debug!(peer = %log.client, error = %e, "bad PROXY header");
                    return Err(Reason::BadRequest);
                }
            }
        };
        if let Some(src) = parsed.src {
            log.client = src;
        }
        buf.drain(..parsed.consumed);
    }

    let routed = match l.protocol {
        ListenerProtocol::Tls => peek_hello(client, &mut buf, deadline, ctx, log).await?,
        ListenerProtocol::Http => {
            peek_head(
                client,
                &mut buf,
                deadline,
                l.max_header_bytes.get(),
                ctx,
                log,
            )
            .await?
        }
    };
    ctx.metrics.peek.observe(log.started.elapsed());
    log.target = Some(routed.target.clone());

    let local = log.local;
    let resolved = match &routed.target {
        Target::Pool(p) => Resolved::Pool(p),
        // A name always exists here: directory routes are never taken without one.
        Target::Directory(d) => resolve(&ctx.runtime, d, log.name.as_deref().unwrap_or("")).await?,
    };
    match resolved {
        Resolved::Pool(p) => {
            let cfg = &p.config;
            let ip = IpText::new(log.client.ip());
            let key = match (&cfg.key, routed.name_key, log.name.as_deref()) {
                (KeySpec::Sni, true, Some(n)) => n.as_bytes(),
                _ => ip.as_bytes(),
            };
            let preamble = Preamble::new(cfg.proxy_protocol, log.client, local, &buf);
            let pool = p.pool();
            let snap = pool.snapshot();
            let attempts = Attempts::new(pool, &snap, pick(key), &p.retry);
            let timeouts = (cfg.connect_timeout, l.idle_timeout);
            try_candidates(client, ctx, log, attempts, &preamble, timeouts).await
        }
        Resolved::Endpoints(d, pool) => {
            // A directory's endpoints are picked by client IP, in both binaries.
            let ip = IpText::new(log.client.ip());
            let preamble = Preamble::new(None, log.client, local, &buf);
            let snap = pool.snapshot();
            let attempts = Attempts::new(&pool, &snap, pick(ip.as_bytes()), &d.retry);
            let timeouts = (d.connect_timeout, l.idle_timeout);
            try_candidates(client, ctx, log, attempts, &preamble, timeouts).await
        }
    }
}

/// The pick input for `key`.
fn pick(key: &[u8]) -> PickInput {
    PickInput {
        key_hash: lb_core::hash::hash_key(key),
        random: lb_core::hash::thread_random(),
    }
}

/// Where a connection goes once its route is known: a pool (the route's, or the one a
/// directory named), or the endpoints a directory answered, as their pool.
enum Resolved<'a> {
    Pool(&'a Arc<RunningPool>),
    Endpoints(&'a DirectoryTarget, Arc<lb_core::Pool>),
}

/// Asks a route's directory about `name`. A pool name the config does not have is a bad
/// answer (alert 80 / `502`), logged by lb-core's cache when it arrives.
async fn resolve<'a>(
    rt: &'a Runtime,
    d: &'a DirectoryTarget,
    name: &str,
) -> Result<Resolved<'a>, Reason> {
    match d.cache.route(name, |p| rt.pools.get(p)).await {
        Ok(Routing::Pool(p)) => Ok(Resolved::Pool(p)),
        Ok(Routing::Endpoints(pool)) => Ok(Resolved::Endpoints(d, pool)),
        Err(e) => Err(e.reason()),
    }
}

/// Connects to the candidates in turn until one takes the connection, then splices.
/// A failure is retried while nothing from the backend has reached the client (the
/// preamble is replayed to the next one); lb-core's [`Attempts`] applies `retries`,
/// `retry_on`, the budget and passive health.
async fn try_candidates(
    client: &mut TcpStream,
    ctx: &Ctx,
    log: &mut Log,
    mut attempts: Attempts<'_>,
    preamble: &Preamble<'_>,
    (connect_timeout, idle): (Duration, Duration),
) -> Result<(), Reason> {
    let mut lease = attempts.first().ok_or(Reason::NoHealthyBackend)?;
    loop {
        log.tries = attempts.tries();
        log.backend = Some(lease.addr());
        // Waiting for the backend's first bytes is worth it only if a reset may be retried.
        let retry_reset = attempts.may_retry(Failure::Reset);
        match attempt(
            client,
            lease.addr(),
            connect_timeout,
            preamble,
            retry_reset,
            idle,
        )
        .await
        {
            Attempt::Ready(mut up, first) => {
                attempts.report(&lease, Verdict::Served);
                drop(attempts);
                let replayed = preamble.read.len();
                return splice(client, &mut up, ctx, log, replayed, first, Some(lease)).await;
            }
            Attempt::Failed(reason) => {
                let failure = match reason {
                    Reason::UpstreamConnect => Failure::Connect,
                    _ => Failure::Reset,
                };
                // Nothing from this backend has reached the client: replayable.
                let failed = Verdict::Backend {
                    failure,
                    replayable: true,
                };
                match attempts.report(&lease, failed) {
                    Some(next) => lease = next,
                    None => return Err(reason),
                }
            }
        }
    }
}

/// Reads at least one more byte into `buf` (never past about `cap` bytes in all: at most
/// the spare capacity reserved for [`READ_CHUNK`] more) before `deadline`. Data already
/// there is read without arming a timer; a short read leaves the socket marked drained
/// (see [`tunnel::try_recv`]), so neither the next peek nor the tunnel's first read costs
/// an `EAGAIN`.
async fn read_more(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    cap: usize,
    deadline: Instant,
) -> Result<(), Reason> {
    let want = cap.saturating_sub(buf.len()).min(READ_CHUNK);
    if want == 0 {
        return Err(Reason::HeaderTooLarge);
    }
    buf.reserve_exact(want);
    loop {
        match tunnel::try_recv(client, buf) {
            Ok(n) if n > 0 => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout_at(deadline, client.readable()).await {
                    Err(_) => return Err(Reason::HeaderTimeout),
                    Ok(Err(_)) => return Err(Reason::BadRequest),
                    Ok(Ok(())) => {}
                }
            }
            // EOF or an error: the client gave up before a full hello/head, nothing to
            // answer.
            _ => return Err(Reason::BadRequest),
        }
    }
}

async fn peek_hello(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    ctx: &Ctx,
    log: &mut Log,
) -> Result<Routed, Reason> {
    loop {
        match parse_client_hello(buf) {
            Ok(hello) => {
                if ctx.runtime.access.is_some() {
                    for (i, p) in hello.alpn().enumerate() {
                        if i > 0 {
                            log.alpn.push(',');
                        }
                        log.alpn.push_str(&String::from_utf8_lossy(p));
                    }
                }
                let name = match hello.sni() {
                    Some(sni) => match normalize_name(sni) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            tracing::debug!(sni, error = %e, "invalid SNI");
                            log.name = Some(sni.to_owned());
                            return Err(Reason::UnknownHost);
                        }
                    },
                    None => None,
                };
                log.name = name.as_deref().map(str::to_owned);
                return route(&ctx.runtime, name.as_deref(), hello.alpn());
            }
            Err(e) if e.is_incomplete() => {
                read_more(client, buf, MAX_HELLO_BYTES, deadline).await?
            }
            Err(HelloError::Oversized { .. }) => return Err(Reason::HeaderTooLarge),
            Err(e @ HelloError::BadServerName { .. }) => {
                tracing::debug!(client = %log.client, error = %e, "invalid SNI");
                return Err(Reason::UnknownHost);
            }
            Err(e) => {
                tracing::debug!(client = %log.client, error = %e, "not a usable ClientHello");
                return Err(Reason::BadRequest);
            }
        }
    }
}

async fn peek_head(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    max: usize,
    ctx: &Ctx,
    log: &mut Log,
) -> Result<Routed, Reason> {
    loop {
        match parse_head(buf, max) {
            Ok(head) => {
                let name = match head.host {
                    Some(h) => match normalize_name(h) {
                        Ok(n) => Some(n),
                        Err(_) => {
                            log.name = Some(h.to_owned());
                            return Err(Reason::BadRequest);
                        }
                    },
                    None => None,
                };
                log.name = name.as_deref().map(str::to_owned);
                return route(&ctx.runtime, name.as_deref(), std::iter::empty());
            }
            Err(HeadError::Incomplete) => read_more(client, buf, max, deadline).await?,
            Err(HeadError::TooLarge) => return Err(Reason::HeaderTooLarge),
            Err(HeadError::Malformed(what)) => {
                tracing::debug!(client = %log.client, what, "malformed request head");
                return Err(Reason::BadRequest);
            }
        }
    }
}

fn route<'a, I>(rt: &Runtime, name: Option<&str>, alpn: I) -> Result<Routed, Reason>
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    let r = rt.route(name, alpn).ok_or(Reason::UnknownHost)?;
    if matches!(r.target, Target::Directory { .. }) && name.is_none() {
        // A directory is asked about names only.
        return Err(Reason::UnknownHost);
    }
    r.connections.fetch_add(1, Ordering::Relaxed);
    Ok(Routed {
        target: r.target.clone(),
        name_key: name.is_some(),
    })
}

/// The bytes sent to a backend before splicing: a PROXY header, then everything read.
struct Preamble<'a> {
    header: Option<proxy_protocol::Encoded>,
    read: &'a [u8],
}

impl<'a> Preamble<'a> {
    fn new(
        pp: Option<ProxyProtocol>,
        client: SocketAddr,
        local: SocketAddr,
        read: &'a [u8],
    ) -> Preamble<'a> {
        let header = pp.map(|v| {
            let version = match v {
                ProxyProtocol::V1 => Version::V1,
                ProxyProtocol::V2 => Version::V2,
            };
            Header {
                version,
                src: client,
                dst: local,
            }
            .encode()
        });
        Preamble { header, read }
    }

    /// Writes header and bytes, in one `writev` when both fit the socket buffer.
    async fn write_to(&self, up: &mut TcpStream) -> io::Result<()> {
        use bytes::Buf;
        let header = self.header.as_ref().map_or(&[][..], |h| h.as_bytes());
        let mut both = Buf::chain(header, self.read);
        up.write_all_buf(&mut both).await
    }
}

enum Attempt {
    /// Connected and the preamble sent; the backend's first bytes, when they were read
    /// while waiting for them, are to go to the client first.
    Ready(TcpStream, Option<Vec<u8>>),
    Failed(Reason),
}

/// Connects and writes the preamble. When a reset may still be retried, it then waits for
/// whichever comes first: the backend's first bytes (ready, with those bytes), the backend
/// closing or resetting (failed: the next candidate gets the same preamble), or the client
/// having more to send (ready: once that is forwarded no retry is safe), bounded by `idle`.
async fn attempt(
    client: &TcpStream,
    addr: SocketAddr,
    connect_timeout: Duration,
    preamble: &Preamble<'_>,
    retry_reset: bool,
    idle: Duration,
) -> Attempt {
    let connected = async {
        let up = connect::start(addr)?;
        up.writable().await?;
        Ok::<_, io::Error>(up)
    };
    let mut up = match tokio::time::timeout(connect_timeout, connected).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(backend = %addr, error = %e, "connect failed");
            return Attempt::Failed(Reason::UpstreamConnect);
        }
        Err(_) => {
            tracing::debug!(backend = %addr, "connect timed out");
            return Attempt::Failed(Reason::UpstreamConnect);
        }
    };
    // The first write says whether the connect succeeded (see `connect`).
    if let Err(e) = preamble.write_to(&mut up).await {
        if connect::is_connect_error(&e) {
            tracing::debug!(backend = %addr, error = %e, "connect failed");
            return Attempt::Failed(Reason::UpstreamConnect);
        }
        tracing::debug!(backend = %addr, error = %e, "backend closed before the replay");
        return Attempt::Failed(Reason::UpstreamReset);
    }
    if !retry_reset {
        return Attempt::Ready(up, None);
    }
    let mut first = Vec::with_capacity(tunnel::BUFFER);
    tokio::select! {
        r = first_bytes(&up, &mut first) => match r {
            Ok(n) if n > 0 => Attempt::Ready(up, Some(first)),
            _ => {
                tracing::debug!(backend = %addr, "backend closed before answering");
                Attempt::Failed(Reason::UpstreamReset)
            }
        },
        _ = client.readable() => Attempt::Ready(up, None),
        // Silent both ways for the whole idle timeout: splice, which ends it the same way.
        _ = tokio::time::sleep(idle) => Attempt::Ready(up, None),
    }
}

/// Waits for the backend's first bytes and reads them (a short read marks the socket
/// drained: the tunnel's first read waits instead of failing with `EAGAIN`).
async fn first_bytes(up: &TcpStream, first: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        up.readable().await?;
        match tunnel::try_recv(up, first) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
}

async fn splice(
    client: &mut TcpStream,
    up: &mut TcpStream,
    ctx: &Ctx,
    log: &mut Log,
    replayed: usize,
    first: Option<Vec<u8>>,
    lease: Option<Lease>,
) -> Result<(), Reason> {
    let m = &ctx.metrics;
    // The client's bytes read while peeking went out in the preamble.
    m.bytes_in.fetch_add(replayed as u64, Ordering::Relaxed);
    log.moved.up = replayed as u64;
    // The backend's first bytes, read while waiting for them.
    if let Some(first) = first {
        if let Err(e) = client.write_all(&first).await {
            log.end = if e.kind() == io::ErrorKind::ConnectionReset {
                "reset"
            } else {
                "error"
            };
            return Ok(());
        }
        m.bytes_out.fetch_add(first.len() as u64, Ordering::Relaxed);
        log.moved.down = first.len() as u64;
    }
    let end = tunnel::splice_tcp(
        client,
        up,
        ctx.listener.idle_timeout,
        &m.bytes_in,
        &m.bytes_out,
    )
    .await;
    let (moved, end) = match end {
        End::Closed(moved) => (moved, "closed"),
        End::Idle(moved) => (moved, "idle-timeout"),
        End::Error(moved, e) if e.kind() == io::ErrorKind::ConnectionReset => (moved, "reset"),
        End::Error(moved, _) => (moved, "error"),
    };
    log.moved.up += moved.up;
    log.moved.down += moved.down;
    log.end = end;
    // For the stats page: everything this connection moved through the backend.
    if let Some(l) = &lease {
        l.member()
            .state()
            .watch()
            .add_bytes(log.moved.up, log.moved.down);
    }
    // The backend counts as active until the tunnel ends.
    drop(lease);
    Ok(())
}

/// Tells the client why, as well as its protocol allows, before the connection closes.
async fn refuse(client: &mut TcpStream, protocol: ListenerProtocol, reason: Reason) {
    let reply: Vec<u8> = match protocol {
        ListenerProtocol::Tls => match reason {
            Reason::UnknownHost => unrecognized_name_alert().to_vec(),
            Reason::NoHealthyBackend
            | Reason::UpstreamConnect
            | Reason::UpstreamReset
            | Reason::DirectoryUnavailable => internal_error_alert().to_vec(),
            // Garbage, timeouts, oversized hellos: nothing a TLS client would read.
            _ => Vec::new(),
        },
        ListenerProtocol::Http => http_error(reason),
    };
    if !reply.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(1), client.write_all(&reply)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
}

/// A complete `Connection: close` response for a refusal on an HTTP listener.
pub fn http_error(reason: Reason) -> Vec<u8> {
    let (status, text, body) = match reason {
        Reason::UnknownHost => (404, "Not Found", "app not found\n"),
        Reason::BadRequest => (400, "Bad Request", "bad request\n"),
        Reason::HeaderTimeout => (
            408,
            "Request Timeout",
            "request head not received in time\n",
        ),
        Reason::HeaderTooLarge => (
            431,
            "Request Header Fields Too Large",
            "request head too large\n",
        ),
        Reason::NoHealthyBackend => (503, "Service Unavailable", "no healthy backend\n"),
        Reason::DirectoryUnavailable => (502, "Bad Gateway", "directory unavailable\n"),
        Reason::UpstreamConnect | Reason::UpstreamReset => {
            (502, "Bad Gateway", "backend unavailable\n")
        }
        Reason::UpstreamTimeout => (504, "Gateway Timeout", "backend timed out\n"),
        Reason::BodyTooLarge => (413, "Payload Too Large", "body too large\n"),
        Reason::RateLimited => (429, "Too Many Requests", "rate limited\n"),
    };
    let retry = if status == 503 {
        "retry-after: 1\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status} {text}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-lb-error: {}\r\n{retry}connection: close\r\n\r\n{body}",
        body.len(),
        reason.as_str()
    )
    .into_bytes()
}
