//! Listeners: accept with a connection limit, serve HTTP/1.1 and h2c, drain on shutdown.
//!
//! Each client stream is wrapped in a [`ClientIo`](crate::conn::ClientIo) that owns the
//! header and idle timeouts and the head checks (408, 431, smuggling 400); each response
//! body carries an [`InFlight`](crate::conn::InFlight) guard so that layer knows when a
//! request is in flight.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use lb_core::config::ListenerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::conn::{ClientIo, Limits, Shared, Tracked};
use crate::forward::{self, ConnInfo};
use crate::state::Runtime;

/// Serves one listener, counting open client connections in `active`, until `shutdown` resolves, then waits for in-flight connections
/// (the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    cfg: ListenerConfig,
    runtime: Arc<ArcSwap<Runtime>>,
    active: Arc<AtomicU64>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limit = Arc::new(Semaphore::new(cfg.max_connections.get()));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let limits = Limits {
        header_timeout: cfg.header_timeout,
        idle_timeout: cfg.idle_timeout,
        max_header_bytes: cfg.max_header_bytes.get(),
    };
    // ClientIo answers heads over max_header_bytes itself; hyper's buffer must hold one
    // byte more so its own 431 (without x-lb-error) never comes first. hyper's header
    // timer is only a backstop (see crate::conn).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.hyper_backstop())
        .max_buf_size(limits.max_header_bytes.saturating_add(1).max(8192))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let max_body = cfg.max_body_bytes.map_or(0, |n| n.get());
    let trusted: Option<Arc<[lb_core::config::Cidr]>> =
        (!cfg.trusted_proxies.is_empty()).then(|| cfg.trusted_proxies.clone().into());
    // The PROXY header's destination: the listener's address, or, when it is bound to
    // an unspecified address, each connection's own.
    let listen_addr = listener
        .local_addr()
        .ok()
        .filter(|a| !a.ip().is_unspecified());
    tokio::pin!(shutdown);
    loop {
        // At the limit, stop accepting until a connection ends.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, client) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let now = runtime.load();
        let local = match listen_addr {
            Some(a) => a,
            None => stream.local_addr().unwrap_or(client),
        };
        let info = ConnInfo {
            client,
            local,
            slot: now.proxy_protocol.then(Arc::default),
            trusted: trusted.clone(),
            tls: false,
            max_body,
            max_header: cfg.max_header_bytes.get() as u64,
        };
        let rt = runtime.clone();
        let shared = Arc::new(Shared::default());
        let io = ClientIo::new(stream, client, limits, shared.clone(), now.errors.clone());
        drop(now);
        let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let guard = shared.enter();
            let connect = req.method() == hyper::Method::CONNECT;
            let rt = rt.load_full();
            // A copy and, only behind trusted proxies, one reference count.
            let info = info.clone();
            async move {
                let resp = forward::handle(rt, info, req).await;
                let status = resp.status();
                if status == hyper::StatusCode::SWITCHING_PROTOCOLS
                    || (connect && status.is_success())
                {
                    guard.upgraded();
                }
                Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked::new(b, guard)))
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        let active = active.clone();
        active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(client = %client, error = %e, "client connection ended");
            }
            active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    graceful.shutdown().await;
}
