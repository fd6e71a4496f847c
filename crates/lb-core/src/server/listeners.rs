//! The listeners of a running binary: opened, reconfigured and closed to match the config
//! on reload, each counting its open connections for `lb_connections_active`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::ServeError;
use crate::config::ListenerConfig;
use crate::discovery::BoxFuture;
use crate::metrics;

/// A listener's settings as its accept loop sees them: replaced in place when a reload
/// changes them for the same address.
pub type LiveListenerConfig = Arc<ArcSwap<ListenerConfig>>;

/// Resolves when the listener is closed (reload or shutdown).
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Waits until the listener is told to stop (or its owner is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// A `Shutdown` and the sender that triggers it (for tests and embedders).
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }
}

/// What a binary runs on each bound listener until its [`Shutdown`] resolves: the
/// listener, its (live) settings, the open-connection gauge to maintain, and the stop
/// signal. The future should return once in-flight connections are done.
pub type ServeFn = Arc<
    dyn Fn(TcpListener, LiveListenerConfig, Arc<AtomicU64>, Shutdown) -> BoxFuture<'static, ()>
        + Send
        + Sync,
>;

struct Open {
    bound: SocketAddr,
    config: LiveListenerConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Open connections per bound listener address.
#[derive(Debug, Default)]
pub struct ConnectionGauges(Mutex<BTreeMap<SocketAddr, Arc<AtomicU64>>>);

impl ConnectionGauges {
    fn set(&self, addr: SocketAddr, gauge: Option<Arc<AtomicU64>>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match gauge {
            Some(g) => m.insert(addr, g),
            None => m.remove(&addr),
        };
    }

    /// Appends `lb_connections_active{listener}` in Prometheus text.
    pub fn render(&self, out: &mut String) {
        metrics::header(
            out,
            "lb_connections_active",
            "gauge",
            "Open client connections per listener.",
        );
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (addr, n) in m.iter() {
            metrics::sample(
                out,
                "lb_connections_active",
                &[("listener", &addr.to_string())],
                n.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

/// The set of open listeners, keyed by their configured address.
pub struct Listeners {
    serve: ServeFn,
    open: BTreeMap<SocketAddr, Open>,
    gauges: Arc<ConnectionGauges>,
}

impl Listeners {
    /// No listeners yet; `serve` runs each one opened later.
    pub fn new(serve: ServeFn) -> Listeners {
        Listeners {
            serve,
            open: BTreeMap::new(),
            gauges: Arc::default(),
        }
    }

    /// The open-connection gauges, for `/metrics`.
    pub fn gauges(&self) -> Arc<ConnectionGauges> {
        self.gauges.clone()
    }

    /// The bound addresses (the real ports when configured with port 0), in config-address order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.open.values().map(|o| o.bound).collect()
    }

    async fn open(&mut self, cfg: &ListenerConfig) -> Result<(), ServeError> {
        let err = |source| ServeError::Bind {
            addr: cfg.listen,
            source,
        };
        let (stop, shutdown) = Shutdown::new();
        let active = Arc::new(AtomicU64::new(0));
        let config = Arc::new(ArcSwap::from_pointee(cfg.clone()));
        let (bound, task) = if let Some(n) = crate::rt::reuse_port_workers() {
            let serve = &self.serve;
            super::reuseport::spawn(cfg.listen, n, serve, &config, &active, &shutdown)
                .map_err(err)?
        } else {
            let listener = TcpListener::bind(cfg.listen).await.map_err(err)?;
            let bound = listener.local_addr().map_err(err)?;
            // Linux copies TCP_NODELAY to every accepted socket: set once here, it spares
            // a setsockopt per connection (see [`ACCEPTED_NODELAY`]).
            if let Err(e) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
                tracing::warn!(listen = %bound, error = %e, "TCP_NODELAY on the listening socket failed");
            }
            let serve = (self.serve)(listener, config.clone(), active.clone(), shutdown);
            (bound, tokio::spawn(serve))
        };
        self.gauges.set(bound, Some(active));
        tracing::info!(listen = %bound, protocol = cfg.protocol.as_str(), "listening");
        self.open.insert(
            cfg.listen,
            Open {
                bound,
                config,
                stop,
                task,
            },
        );
        Ok(())
    }

    fn close(&mut self, configured: SocketAddr) -> Option<JoinHandle<()>> {
        let o = self.open.remove(&configured)?;
        self.gauges.set(o.bound, None);
        let _ = o.stop.send(true);
        tracing::info!(listen = %o.bound, "listener closed");
        Some(o.task)
    }

    /// Makes the open set match `wanted`: binds new addresses first (a bind failure closes
    /// what this call opened and changes nothing else), updates the settings of listeners
    /// that stay, then closes the ones no longer wanted (their in-flight connections finish).
    pub async fn sync(&mut self, wanted: &[ListenerConfig]) -> Result<(), ServeError> {
        let mut opened = Vec::new();
        for cfg in wanted {
            match self.open.get(&cfg.listen) {
                Some(o) => {
                    if **o.config.load() != *cfg {
                        o.config.store(Arc::new(cfg.clone()));
                    }
                }
                None => {
                    if let Err(e) = self.open(cfg).await {
                        for a in opened {
                            self.close(a);
                        }
                        return Err(e);
                    }
                    opened.push(cfg.listen);
                }
            }
        }
        let gone: Vec<SocketAddr> = self
            .open
            .keys()
            .copied()
            .filter(|a| !wanted.iter().any(|w| w.listen == *a))
            .collect();
        for a in gone {
            self.close(a);
        }
        Ok(())
    }

    /// Closes every listener and waits up to `grace` for their connections to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        let addrs: Vec<SocketAddr> = self.open.keys().copied().collect();
        let tasks: Vec<JoinHandle<()>> = addrs.into_iter().filter_map(|a| self.close(a)).collect();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(?grace, "grace period over; closing remaining connections");
        }
    }
}

/// True where accepted sockets inherit the listening socket's `TCP_NODELAY` (Linux), which
/// [`Listeners`] sets when it binds; elsewhere the binaries set it on each connection.
pub const ACCEPTED_NODELAY: bool = cfg!(target_os = "linux");

/// Accepts connections on `listener` until `shutdown`, at most `max_connections` open at
/// once (at the limit it stops accepting until one ends), and runs `handle` for each in its
/// own task, keeping `active` up to date. After `shutdown` it stops accepting and returns
/// once every connection has ended; the caller bounds that wait.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    active: Arc<AtomicU64>,
    shutdown: Shutdown,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max = max_connections.clamp(1, u32::MAX as usize);
    let limit = Arc::new(Semaphore::new(max));
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        active.fetch_add(1, Ordering::Relaxed);
        let conn = handle(stream, peer);
        let active = active.clone();
        tokio::spawn(async move {
            conn.await;
            active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back means every connection has ended.
    // `max` fits in u32: clamped above.
    let _ = limit.acquire_many(max as u32).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Binary, Config};

    /// The saving [`ACCEPTED_NODELAY`] counts on: a connection accepted from a listener
    /// that [`Listeners`] opened already has `TCP_NODELAY`.
    #[tokio::test]
    async fn accepted_connections_inherit_nodelay() {
        let cfg = Config::parse(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[pool.p]\nbackends = [\"127.0.0.1:1\"]\n[[route]]\nhost = \"*\"\npool = \"p\"\n",
            std::path::Path::new("test.toml"),
            Binary::Proxy,
        )
        .expect("config");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let serve: ServeFn = Arc::new(move |listener, _, _, _| {
            let tx = tx.clone();
            Box::pin(async move {
                if let Ok((s, _)) = listener.accept().await {
                    let nodelay = s.nodelay().expect("getsockopt");
                    if let Some(tx) = tx.lock().expect("lock").take() {
                        let _ = tx.send(nodelay);
                    }
                }
            })
        });
        let mut listeners = Listeners::new(serve);
        listeners.sync(&cfg.listeners).await.expect("bind");
        let addr = listeners.addrs()[0];
        let _client = TcpStream::connect(addr).await.expect("connect");
        let nodelay = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("accepted in time")
            .expect("reported");
        assert_eq!(nodelay, ACCEPTED_NODELAY);
    }
}
