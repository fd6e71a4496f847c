//! Listeners: accept with a connection limit, serve HTTP/1.1 and h2c, drain on shutdown.
//!
//! Each client stream is wrapped in a [`ClientIo`] that owns the
//! header and idle timeouts and the head checks (408, 431, smuggling 400). A connection
//! starts in [`front`], which serves the common HTTP/1.1 request itself;
//! the first request it does not serve hands the connection to hyper-util's server
//! (HTTP/1.1 with bodies and upgrades, h2c) for the rest of its life. Each request holds
//! an [`InFlight`](crate::conn::InFlight) guard until its response is out, so the
//! connection layer knows when a request is in flight.
//!
//! Accepting and draining are lb-core's [`accept_loop`], with lb-proxy's own way to accept
//! ([`FreshListener`]). On the listener's stop signal an idle connection closes at once; a
//! busy one closes after its response (`connection: close`); hyper's connections get its
//! graceful shutdown. The drain ends when every connection and upgraded tunnel has ended.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use lb_core::config::{any_contains, Cidr, ListenerConfig};
use lb_core::metrics::Reason;
use lb_core::proxy_protocol;
use lb_core::server::{accept_loop, Accept, Shutdown};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, Instant};
use tokio_rustls::TlsAcceptor;

use crate::body::InBody;
use crate::conn::{ClientIo, Limits, NeverTimer, Shared, Tracked};
use crate::forward::{self, ConnInfo};
use crate::front::{self, Drain, Ended};
use crate::state::Runtime;
use crate::stream::ClientStream;

/// Serves one listener through lb-core's [`accept_loop`], counting open client
/// connections in `active`, until `shutdown` resolves, then waits for in-flight
/// connections and upgraded tunnels (the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    cfg: ListenerConfig,
    runtime: Arc<ArcSwap<Runtime>>,
    active: Arc<AtomicU64>,
    shutdown: Shutdown,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let limits = Limits {
        header_timeout: cfg.header_timeout,
        idle_timeout: cfg.idle_timeout,
        max_header_bytes: cfg.max_header_bytes.get(),
    };
    // ClientIo answers heads over max_header_bytes itself; hyper's buffer must hold one
    // byte more so its own 431 (without x-lb-error) never comes first. hyper's header
    // timeout never fires (NeverTimer): it only makes hyper read again after each
    // response, when ClientIo arms its idle timer (see crate::conn).
    builder
        .http1()
        .timer(NeverTimer::new())
        .header_read_timeout(limits.hyper_header_timeout())
        .max_buf_size(limits.max_header_bytes.saturating_add(1).max(8192))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let max_body = cfg.max_body_bytes.map_or(0, |n| n.get());
    let trusted: Option<Arc<[Cidr]>> =
        (!cfg.trusted_proxies.is_empty()).then(|| cfg.trusted_proxies.clone().into());
    // The PROXY header's destination: the listener's address, or, when it is bound to
    // an unspecified address, each connection's own.
    let listen_addr = listener
        .local_addr()
        .ok()
        .filter(|a| !a.ip().is_unspecified());
    // Polled as a plain file descriptor, so that accepted sockets start unregistered
    // (see `ClientStream::Fresh`).
    let listener = match listener.into_std().and_then(poll_listener) {
        Ok(l) => FreshListener(l),
        Err(e) => {
            tracing::error!(error = %e, "listener could not be polled: not serving it");
            return;
        }
    };
    let max = cfg.max_connections.get();
    let tunnels = runtime.load().tunnels.clone();
    accept_loop(listener, max, active, shutdown, |stream, client, drain| {
        if !lb_core::server::ACCEPTED_NODELAY {
            let _ = stream.set_nodelay(true);
        }
        let rt = runtime.clone();
        let now = rt.load();
        let acceptor = now.tls.get(&cfg.listen).cloned();
        let local = match listen_addr {
            Some(a) => a,
            None => stream.local_addr().unwrap_or(client),
        };
        let slot = now.proxy_protocol.then(Arc::default);
        drop(now);
        let first = Handshake {
            accept_proxy: cfg.accept_proxy_protocol,
            trusted: trusted.clone(),
            acceptor,
            header_timeout: cfg.header_timeout,
        };
        let base = ConnInfo {
            client,
            local,
            slot,
            trusted: trusted.clone(),
            tls: false,
            idle: cfg.idle_timeout,
            max_body,
            max_header: cfg.max_header_bytes.get() as u64,
        };
        let builder = builder.clone();
        let drain = Drain::new(drain.clone());
        // Boxed: tokio moves a task's future by value several times as it spawns,
        // starts and ends it (2.5 KB here); a box is one allocation and one copy
        // (callgrind counted 1,860 fewer instructions per new connection boxed).
        Box::pin(async move {
            // The handshake's futures (a TLS acceptor holds a whole rustls connection)
            // are boxed, so a plain connection's task is not sized for them.
            let ready = if !first.is_needed() {
                let io = ClientStream::Fresh {
                    sock: Some(stream),
                    read: false,
                };
                Some((io, base))
            } else {
                match TcpStream::from_std(stream) {
                    Ok(stream) => Box::pin(first.run(stream, base, &rt)).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepted socket could not be registered");
                        None
                    }
                }
            };
            if let Some((io, info)) = ready {
                serve_connection(io, info, limits, rt, builder, drain).await;
            }
        })
    })
    .await;
    // Upgraded connections (WebSocket) left hyper's watch when they switched; they get
    // the same grace period (the caller bounds this wait), as nginx's old workers keep
    // them until `worker_shutdown_timeout`.
    tunnels.all_closed().await;
}

/// lb-proxy's way to accept, plugged into lb-core's [`accept_loop`]: non-blocking sockets
/// that are not registered with the poller (see `ClientStream::Fresh`).
pub struct FreshListener(AsyncFd<std::net::TcpListener>);

impl Accept for FreshListener {
    type Conn = std::net::TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(std::net::TcpStream, SocketAddr)>> + Send {
        accept(&self.0)
    }
}

/// The listener registered for readability as a file descriptor.
///
/// tokio deprecates this safe constructor because a type may hand out a descriptor it
/// does not own, or a different one over time; its safety condition (the same open
/// descriptor for the `AsyncFd`'s whole life) holds for `std::net::TcpListener`, which
/// owns its descriptor and closes it only on drop. The replacement, `register_with_interest`,
/// is `unsafe`, which this crate forbids.
#[allow(deprecated)]
fn poll_listener(l: std::net::TcpListener) -> io::Result<AsyncFd<std::net::TcpListener>> {
    AsyncFd::with_interest(l, Interest::READABLE)
}

/// Accepts one connection: non-blocking, and not registered with the poller.
async fn accept(
    l: &AsyncFd<std::net::TcpListener>,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    use rustix::net::SocketFlags;
    loop {
        let mut ready = l.readable().await?;
        let accepted = ready.try_io(|l| {
            let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
            let (fd, peer) = rustix::net::acceptfrom_with(l.get_ref(), flags)?;
            let peer = peer
                .and_then(|a| SocketAddr::try_from(a).ok())
                .ok_or_else(|| io::Error::other("accepted a connection without an IP peer"))?;
            Ok((std::net::TcpStream::from(fd), peer))
        });
        // Err: it would block, and readiness is cleared; wait for the next.
        if let Ok(r) = accepted {
            return r;
        }
    }
}

/// What happens on a new connection before HTTP: the PROXY header, then the TLS
/// handshake, each within the listener's `header_timeout`.
struct Handshake {
    accept_proxy: bool,
    trusted: Option<Arc<[Cidr]>>,
    acceptor: Option<TlsAcceptor>,
    header_timeout: Duration,
}

impl Handshake {
    /// True when there is anything to do before HTTP.
    fn is_needed(&self) -> bool {
        self.accept_proxy || self.acceptor.is_some()
    }

    /// The client stream ready for HTTP and the facts about it; `None` when the
    /// connection was refused (closed without a word: nothing HTTP can be said yet).
    async fn run(
        self,
        mut stream: TcpStream,
        mut info: ConnInfo,
        rt: &ArcSwap<Runtime>,
    ) -> Option<(ClientStream, ConnInfo)> {
        let deadline = Instant::now() + self.header_timeout;
        let peer = info.client;
        if self.accept_proxy {
            if let Some(t) = &self.trusted {
                if !any_contains(t, peer.ip()) {
                    tracing::debug!(peer = %peer, "PROXY header expected from an untrusted peer: closed");
                    rt.load().errors.inc(Reason::BadRequest);
                    return None;
                }
            }
            match tokio::time::timeout_at(deadline, proxy_protocol::read_header(&mut stream)).await
            {
                Ok(Ok(parsed)) => {
                    // Both ends as the balancer in front saw them, as HAProxy does: the
                    // PROXY header towards backends then repeats them.
                    if let (Some(src), Some(dst)) = (parsed.src, parsed.dst) {
                        info.client = src;
                        info.local = dst;
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "no PROXY header: closed");
                    rt.load().errors.inc(Reason::BadRequest);
                    return None;
                }
                Err(_) => {
                    rt.load().errors.inc(Reason::HeaderTimeout);
                    return None;
                }
            }
        }
        let Some(acceptor) = self.acceptor else {
            return Some((ClientStream::plain(stream), info));
        };
        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                info.tls = true;
                Some((ClientStream::tls(tls), info))
            }
            Ok(Err(e)) => {
                tracing::debug!(client = %info.client, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(client = %info.client, "TLS handshake timed out");
                rt.load().errors.inc(Reason::HeaderTimeout);
                None
            }
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on one client stream until it closes or the listener drains.
async fn serve_connection(
    io: ClientStream,
    info: ConnInfo,
    limits: Limits,
    rt: Arc<ArcSwap<Runtime>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    drain: Drain,
) {
    let client = info.client;
    let shared = Arc::new(Shared::default());
    let mut io = ClientIo::new(io, client, limits, shared.clone(), rt.load().errors.clone());
    let ctx = front::Ctx {
        info: &info,
        rt: &rt,
        shared: &shared,
    };
    // Boxed only when hyper takes over: a connection served here keeps a small task.
    if front::serve(&mut io, &ctx, &drain).await == Ended::Closed {
        return;
    }
    Box::pin(serve_with_hyper(io, info, rt, builder, shared, drain)).await;
}

/// hyper-util's server for the rest of a connection [`front`] handed over.
async fn serve_with_hyper(
    io: ClientIo,
    info: ConnInfo,
    rt: Arc<ArcSwap<Runtime>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    mut drain: Drain,
) {
    let client = info.client;
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = shared.enter();
        let connect = req.method() == hyper::Method::CONNECT;
        let rt = rt.load_full();
        // A copy and, only behind trusted proxies, one reference count.
        let info = info.clone();
        async move {
            let resp = forward::handle(rt, info, req.map(|b| Some(InBody::H2(b))), None).await;
            // hyper encodes from the header map: the fields kept as bytes go into it.
            let (mut parts, body) = resp.into_parts();
            if let Some(raw) = body.raw_fields() {
                raw.append_to(&mut parts.headers);
            }
            let resp = hyper::Response::from_parts(parts, body);
            let status = resp.status();
            if status == hyper::StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success())
            {
                guard.upgraded();
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked::new(b, guard)))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.wait() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(client = %client, error = %e, "client connection ended");
    }
}
