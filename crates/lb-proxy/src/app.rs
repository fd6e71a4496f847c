//! The whole proxy from a config: listeners, the admin API, SIGHUP reload, drain.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use lb_core::admin::{AdminState, MetricsSource};
use lb_core::config::{Config, ListenerConfig};
use lb_core::metrics::{self, ReasonCounters};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server;
use crate::state::{BuildError, Runtime};

/// How long start and reload wait for discovered pools' first sync before serving.
const DISCOVERY_WAIT: Duration = Duration::from_secs(2);

/// Why the proxy could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Building pools or resolvers failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listener or the admin address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Open client connections per listener address.
type ConnGauges = Mutex<BTreeMap<SocketAddr, Arc<AtomicU64>>>;

struct ProxyMetrics {
    runtime: Arc<ArcSwap<Runtime>>,
    errors: Arc<ReasonCounters>,
    connections: Arc<ConnGauges>,
}

impl MetricsSource for ProxyMetrics {
    fn render(&self, out: &mut String) {
        self.errors.render(out);
        metrics::header(
            out,
            "lb_connections_active",
            "gauge",
            "Open client connections per listener.",
        );
        let gauges = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        for (addr, n) in gauges.iter() {
            metrics::sample(
                out,
                "lb_connections_active",
                &[("listener", &addr.to_string())],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        drop(gauges);
        let rt = self.runtime.load();
        metrics::header(
            out,
            "lb_resolver_lookups_total",
            "counter",
            "Directory lookups by result.",
        );
        for (name, d) in &rt.directories {
            for (result, n) in d.cache.stats().iter() {
                metrics::sample(
                    out,
                    "lb_resolver_lookups_total",
                    &[("resolver", name), ("result", result)],
                    n as f64,
                );
            }
        }
    }
}

struct Listener {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running proxy.
pub struct App {
    config: Config,
    runtime: Arc<ArcSwap<Runtime>>,
    admin: Arc<AdminState>,
    errors: Arc<ReasonCounters>,
    listeners: BTreeMap<SocketAddr, Listener>,
    admin_addr: SocketAddr,
    admin_stop: watch::Sender<bool>,
    connections: Arc<ConnGauges>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl App {
    /// Binds every listener and the admin API and starts serving.
    pub async fn start(config: Config) -> Result<App, AppError> {
        let errors = Arc::new(ReasonCounters::default());
        let runtime = Runtime::build(&config, None, errors.clone())?;
        runtime.discovery_ready(DISCOVERY_WAIT).await;
        let runtime = Arc::new(ArcSwap::from_pointee(runtime));
        let connections = Arc::new(ConnGauges::default());
        let extra: Arc<dyn MetricsSource> = Arc::new(ProxyMetrics {
            runtime: runtime.clone(),
            errors: errors.clone(),
            connections: connections.clone(),
        });
        let admin = Arc::new(AdminState::new(
            runtime.load().admin_view(config.admin.token.clone()),
            Some(extra),
        ));
        let admin_listener = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.admin.listen,
                source,
            })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| AppError::Bind {
                addr: config.admin.listen,
                source,
            })?;
        let (admin_stop, rx) = watch::channel(false);
        tokio::spawn(lb_core::admin::serve(
            admin_listener,
            admin.clone(),
            stopped(rx),
        ));
        let mut app = App {
            config: config.clone(),
            runtime,
            admin,
            errors,
            listeners: BTreeMap::new(),
            admin_addr,
            admin_stop,
            connections,
        };
        for l in &config.listeners {
            app.open(l.clone()).await?;
        }
        Ok(app)
    }

    async fn open(&mut self, cfg: ListenerConfig) -> Result<(), AppError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let (stop, rx) = watch::channel(false);
        let active = Arc::new(AtomicU64::new(0));
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr, active.clone());
        let task = tokio::spawn(server::serve(
            listener,
            cfg,
            self.runtime.clone(),
            active,
            stopped(rx),
        ));
        tracing::info!(listen = %addr, "listening");
        self.listeners.insert(addr, Listener { stop, task });
        Ok(())
    }

    /// The bound listener addresses (useful with port 0).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.keys().copied().collect()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Applies a new, already validated config. Pools that stay keep their live state;
    /// listeners are opened and closed to match; `threads` and `[admin].listen` need a
    /// restart (a warning is logged and the old values kept). On error nothing changes.
    pub async fn reload(&mut self, mut config: Config) -> Result<(), AppError> {
        for key in config.keep_restart_keys(&self.config) {
            tracing::warn!(
                key,
                "changing this needs a restart; keeping the running value"
            );
        }
        let new_rt = Runtime::build(&config, Some(&self.runtime.load()), self.errors.clone())?;
        let wanted: BTreeMap<SocketAddr, ListenerConfig> = config
            .listeners
            .iter()
            .map(|l| (l.listen, l.clone()))
            .collect();
        // Bind new listeners first so a bind failure leaves everything as it was.
        let mut opened = Vec::new();
        for (addr, l) in &wanted {
            if !self.config.listeners.iter().any(|o| o.listen == *addr) {
                if let Err(e) = self.open(l.clone()).await {
                    for a in opened {
                        self.close(a);
                    }
                    return Err(e);
                }
                opened.push(*addr);
            }
        }
        // Past the last failure point: stop the discovery sources being replaced (so they
        // never race their successors on a shared pool), let the new ones sync, swap.
        self.runtime.load().retire_sources(&new_rt);
        new_rt.discovery_ready(DISCOVERY_WAIT).await;
        self.runtime.store(Arc::new(new_rt));
        self.admin
            .replace(self.runtime.load().admin_view(config.admin.token.clone()));
        let gone: Vec<SocketAddr> = self
            .config
            .listeners
            .iter()
            .map(|l| l.listen)
            .filter(|a| !wanted.contains_key(a))
            .collect();
        for a in gone {
            self.close(a);
        }
        self.config = config;
        tracing::info!("config reloaded");
        Ok(())
    }

    fn close(&mut self, configured: SocketAddr) {
        let key =
            self.listeners.keys().copied().find(|a| {
                *a == configured || (configured.port() == 0 && a.ip() == configured.ip())
            });
        if let Some(k) = key {
            self.connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&k);
        }
        if let Some(l) = key.and_then(|k| self.listeners.remove(&k)) {
            let _ = l.stop.send(true);
            tracing::info!(listen = %configured, "listener closed");
        }
    }

    /// Stops accepting, lets in-flight requests finish within `grace`, then returns.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.admin_stop.send(true);
        let mut tasks = Vec::new();
        for (_, l) in self.listeners {
            let _ = l.stop.send(true);
            tasks.push(l.task);
        }
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
