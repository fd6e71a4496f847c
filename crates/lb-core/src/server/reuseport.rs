//! Per-worker listeners, for benchmarks: with `LB_REUSEPORT=1` in the environment (see
//! [`crate::rt::reuse_port_workers`]), each listener is bound once per worker with
//! `SO_REUSEPORT`, and each socket is served by its own thread running a single-threaded
//! tokio runtime, as nginx's worker processes each accept on their own socket. The kernel
//! spreads new connections over the sockets; a connection stays on the thread that
//! accepted it. Background work (health checks, discovery, the admin API) stays on the
//! process's main runtime.
//!
//! Only for measuring this model against the shared listener of a multi-threaded runtime:
//! it is not a config setting, and a binary upgrade does not hand these sockets over.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::listeners::{LiveListenerConfig, ServeFn, Shutdown};

/// Binds `listen` `workers` times (a port 0 becomes the first socket's port for the
/// others) and serves each socket with `serve` on a thread of its own. Returns the bound
/// address and a task that ends once every worker has returned (after `shutdown`).
pub(super) fn spawn(
    listen: SocketAddr,
    workers: usize,
    serve: &ServeFn,
    config: &LiveListenerConfig,
    active: &Arc<AtomicU64>,
    shutdown: &Shutdown,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let mut addr = listen;
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let s = bind(addr)?;
        addr = s.local_addr()?;
        sockets.push(s);
    }
    let mut done = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (serve, config) = (serve.clone(), config.clone());
        let (active, shutdown) = (active.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name(format!("lb-worker-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a listener worker's runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    match TcpListener::from_std(socket) {
                        Ok(l) => serve(l, config, active, shutdown).await,
                        Err(e) => tracing::error!(error = %e, "cannot register a listener"),
                    }
                });
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    let task = tokio::spawn(async move {
        for rx in done {
            // An error means the worker ended without saying so: it has ended all the same.
            let _ = rx.await;
        }
    });
    Ok((addr, task))
}

/// A non-blocking listening socket on `addr` with `SO_REUSEPORT` and `TCP_NODELAY` (which
/// accepted sockets inherit).
fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    rustix::net::sockopt::set_socket_reuseport(&s, true)?;
    s.set_tcp_nodelay(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}
