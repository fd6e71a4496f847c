//! The whole proxy from a config: listeners, the admin API, SIGHUP reload, drain. The
//! machinery is lb-core's [`server`](lb_core::server), shared with lb-sni; this module
//! supplies the HTTP listener and the proxy's metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use lb_core::admin::{AdminState, MetricsSource};
use lb_core::config::Config;
use lb_core::metrics::ReasonCounters;
use lb_core::server;
use lb_core::server::{AdminServer, ConnectionGauges, Listeners, Reload, ServeError, ServeFn};

use crate::server as http;
use crate::state::{BuildError, Runtime};

/// Why the proxy could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Building pools or resolvers failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listener or the admin address could not be bound.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

struct ProxyMetrics {
    runtime: Arc<ArcSwap<Runtime>>,
    errors: Arc<ReasonCounters>,
    connections: Arc<ConnectionGauges>,
}

impl MetricsSource for ProxyMetrics {
    fn render(&self, out: &mut String) {
        self.errors.render(out);
        self.connections.render(out);
        let rt = self.runtime.load();
        server::render_directories(
            out,
            rt.directories.iter().map(|(n, d)| (n.as_str(), &*d.cache)),
        );
    }
}

/// A running proxy.
pub struct App {
    config: Config,
    runtime: Arc<ArcSwap<Runtime>>,
    admin: Arc<AdminState>,
    admin_server: AdminServer,
    errors: Arc<ReasonCounters>,
    listeners: Listeners,
}

impl App {
    /// Binds every listener and the admin API and starts serving.
    pub async fn start(config: Config) -> Result<App, AppError> {
        let errors = Arc::new(ReasonCounters::default());
        let runtime = Arc::new(ArcSwap::from_pointee(Runtime::build(
            &config,
            None,
            errors.clone(),
        )?));
        let rt = runtime.clone();
        let serve: ServeFn = Arc::new(move |listener, cfg, active, shutdown| {
            // lb-proxy reads its listener settings when the listener opens.
            let cfg = (**cfg.load()).clone();
            Box::pin(http::serve(
                listener,
                cfg,
                rt.clone(),
                active,
                shutdown.wait(),
            ))
        });
        let mut listeners = Listeners::new(serve);
        let extra: Arc<dyn MetricsSource> = Arc::new(ProxyMetrics {
            runtime: runtime.clone(),
            errors: errors.clone(),
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
            errors,
            listeners,
        })
    }

    /// The bound listener addresses (useful with port 0).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.addrs()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_server.addr()
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
        self.listeners.sync(&config.listeners).await?;
        self.runtime.store(Arc::new(new_rt));
        self.admin
            .replace(self.runtime.load().admin_view(config.admin.token.clone()));
        self.config = config;
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish within `grace`, then returns.
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
