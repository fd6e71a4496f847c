//! Listeners: accept with a connection limit, serve HTTP/1.x and HTTP/2, drain on shutdown.
//!
//! Each client stream is wrapped in a [`ClientIo`] that owns the header and idle
//! timeouts and the canned answers (400, 408, 431). A connection is served by [`client`](crate::client),
//! lb-proxy's own HTTP/1 engine, unless its first bytes are the HTTP/2 preface (h2c prior
//! knowledge, or a client that chose h2 by ALPN): then hyper's HTTP/2 server takes it.
//! Each HTTP/2 request holds an [`InFlight`](crate::client::h2::InFlight) guard until its
//! response is out, so the connection layer knows when the connection is idle.
//!
//! Accepting and draining are lb-core's [`accept_loop`], with lb-proxy's own way to accept
//! ([`FreshListener`]). On the listener's stop signal an idle connection closes at once; a
//! busy one closes after its response (`connection: close`); HTTP/2 connections get
//! hyper's graceful shutdown. The drain ends when every connection and tunnel has ended.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use lb_core::config::{any_contains, Cidr, ListenerConfig};
use lb_core::metrics::Reason;
use lb_core::proxy_protocol;
use lb_core::server::{accept_loop, Accept, Shutdown};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, Instant};
use tokio_rustls::TlsAcceptor;

use crate::client::ctx::{Drain, Listener};
use crate::client::io::ClientIo;
use crate::client::serve_connection;
use crate::proxy::conn::ConnInfo;
use crate::state::Runtime;
use crate::stream::ClientStream;

/// Serves one listener through lb-core's [`accept_loop`], counting open client
/// connections in `active`, until `shutdown` resolves, then waits for in-flight
/// connections and upgraded tunnels (the caller bounds the wait).
///
/// Long (about 100 lines) because it is one sequence read top to bottom: the listener's
/// settings taken once, then the closure each accepted connection runs.
pub(crate) async fn serve(
    listener: TcpListener,
    cfg: ListenerConfig,
    runtime: Arc<ArcSwap<Runtime>>,
    active: Arc<AtomicU64>,
    shutdown: Shutdown,
) {
    let header_timeout = cfg.header_timeout;
    // hyper serves HTTP/2 only (h2c prior knowledge, ALPN h2); HTTP/1 is the client side's own.
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
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
    let shared = Listener::new(runtime.clone(), builder, shutdown.clone());
    let accepting = accept_loop(listener, max, active, shutdown, |stream, client, _| {
        if !lb_core::server::ACCEPTED_NODELAY {
            let _ = stream.set_nodelay(true);
        }
        let now = runtime.load();
        let acceptor = now.tls.get(&cfg.listen).cloned();
        let local = match listen_addr {
            Some(a) => a,
            None => stream.local_addr().unwrap_or(client),
        };
        let slot = now.proxy_protocol.then(Arc::default);
        let errors = now.errors.clone();
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
        let drain = Drain::new(shared.clone());
        // Boxed: tokio moves a task's future by value several times as it spawns,
        // starts and ends it; a box is one allocation and one copy (callgrind counted
        // 1,860 fewer instructions per new connection boxed).
        let conn: Pin<Box<dyn Future<Output = ()> + Send>> = if !first.is_needed() {
            // A plain connection's state is made here, so its future holds it once
            // (an async block keeps what it captures beside what it makes of it).
            let io = ClientStream::Fresh {
                sock: Some(stream),
                read: false,
            };
            let io = ClientIo::new(io, base, header_timeout, errors);
            Box::pin(serve_connection(io, drain))
        } else {
            // The handshake's futures (a TLS acceptor holds a whole rustls connection)
            // are boxed, so a plain connection's task is not sized for them.
            Box::pin(async move {
                let stream = match TcpStream::from_std(stream) {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepted socket could not be registered");
                        return;
                    }
                };
                let rt = &drain.listener().rt;
                let Some((io, info)) = Box::pin(first.run(stream, base, rt)).await else {
                    return;
                };
                let io = ClientIo::new(io, info, header_timeout, errors);
                serve_connection(io, drain).await;
            })
        };
        conn
    });
    // Beside the accept loop, which returns once every connection has ended: the drain
    // wakes the connections waiting between requests.
    tokio::join!(accepting, shared.wake_on_stop());
    // Upgraded connections (WebSocket) left hyper's watch when they switched; they get
    // the same grace period (the caller bounds this wait), as nginx's old workers keep
    // them until `worker_shutdown_timeout`.
    tunnels.all_closed().await;
}

/// lb-proxy's way to accept, plugged into lb-core's [`accept_loop`]: non-blocking sockets
/// that are not registered with the poller (see `ClientStream::Fresh`).
pub(crate) struct FreshListener(AsyncFd<std::net::TcpListener>);

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
