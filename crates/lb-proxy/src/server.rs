//! Listeners: accept with a connection limit, serve HTTP/1.1 and h2c, drain on shutdown.

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

use crate::forward::{self, ConnInfo};
use crate::sniff::Sniffed;
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
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .max_buf_size(cfg.max_header_bytes.get().max(8192))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let max_body = cfg.max_body_bytes.map_or(0, |n| n.get());
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
        let info = ConnInfo {
            client,
            tls: false,
            max_body,
            max_header: cfg.max_header_bytes.get() as u64,
        };
        let rt = runtime.clone();
        let svc = service_fn(move |req| {
            let rt = rt.load_full();
            async move { Ok::<_, std::convert::Infallible>(forward::handle(rt, info, req).await) }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(Sniffed::new(stream)), svc)
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
