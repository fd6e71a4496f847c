//! The whole router from a config: listeners, the admin API, SIGHUP reload, drain — lb-core's
//! [`server`](lb_core::server) machinery (the same as lb-proxy's) around [`conn::handle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use lb_core::admin::{AdminState, MetricsSource};
use lb_core::config::Config;
use lb_core::server::{accept_loop, AdminServer, Listeners, Reload, ServeError, ServeFn};

use crate::conn::{self, Ctx};
use crate::metrics::{Render, SniMetrics};
use crate::state::{BuildError, Runtime};

/// Why the router could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Building pools or resolvers failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listener or the admin address could not be bound.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A running lb-sni.
pub struct App {
    config: Config,
    runtime: Arc<ArcSwap<Runtime>>,
    admin: Arc<AdminState>,
    admin_server: AdminServer,
    listeners: Listeners,
    metrics: Arc<SniMetrics>,
}

impl App {
    /// Binds every listener and the admin API and starts routing.
    pub async fn start(config: Config) -> Result<App, AppError> {
        let runtime = Arc::new(ArcSwap::from_pointee(Runtime::build(&config, None)?));
        let metrics = Arc::new(SniMetrics::default());
        let (rt, m) = (runtime.clone(), metrics.clone());
        let serve: ServeFn = Arc::new(move |listener, cfg, active, shutdown| {
            let (rt, m) = (rt.clone(), m.clone());
            let max = cfg.load().max_connections.get();
            Box::pin(accept_loop(
                listener,
                max,
                active,
                shutdown,
                move |stream, peer| {
                    // Settings and routes as of the accept: a reload applies to new connections.
                    let ctx = Ctx {
                        listener: cfg.load_full(),
                        runtime: rt.load_full(),
                        metrics: m.clone(),
                    };
                    conn::handle(stream, peer, ctx)
                },
            ))
        });
        let mut listeners = Listeners::new(serve);
        let extra: Arc<dyn MetricsSource> = Arc::new(Render {
            metrics: metrics.clone(),
            runtime: runtime.clone(),
            connections: listeners.gauges(),
        });
        let admin = Arc::new(AdminState::new(
            runtime.load().admin_view(config.admin.token.clone()),
            Some(extra),
        ));
        let admin_server = AdminServer::start(config.admin.listen, admin.clone()).await?;
        listeners.sync(&config.listeners).await?;
        Ok(App {
            config,
            runtime,
            admin,
            admin_server,
            listeners,
            metrics,
        })
    }

    /// The bound listener addresses, in the order of their configured addresses.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.addrs()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_server.addr()
    }

    /// Shared counters (for embedding and tests).
    pub fn metrics(&self) -> &Arc<SniMetrics> {
        &self.metrics
    }

    /// Applies a new, already validated config: pools that stay keep their live state,
    /// listeners are opened, updated and closed to match, established tunnels are not
    /// touched. `threads` and `[admin].listen` need a restart. On error nothing changes.
    pub async fn reload(&mut self, mut config: Config) -> Result<(), AppError> {
        for key in config.keep_restart_keys(&self.config) {
            tracing::warn!(
                key,
                "changing this needs a restart; keeping the running value"
            );
        }
        let new_rt = Runtime::build(&config, Some(&self.runtime.load()))?;
        self.listeners.sync(&config.listeners).await?;
        self.runtime.store(Arc::new(new_rt));
        self.admin
            .replace(self.runtime.load().admin_view(config.admin.token.clone()));
        self.config = config;
        Ok(())
    }

    /// Stops accepting, lets open tunnels finish within `grace`, then returns.
    pub async fn shutdown(self, grace: Duration) {
        drop(self.admin_server);
        self.listeners.shutdown(grace).await;
    }
}

impl Reload for App {
    async fn reload(&mut self, config: Config) -> Result<(), String> {
        App::reload(self, config).await.map_err(|e| e.to_string())
    }
}
