//! The whole router from a config: lb-core's [`Shell`] (listeners, admin API, reload,
//! drain; the same as lb-proxy's) around [`conn::handle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use lb_core::admin::MetricsSource;
use lb_core::config::Config;
use lb_core::server::{accept_loop, Reload, ServeFn, Shell, ShellError};

use crate::conn::{self, Ctx};
use crate::metrics::{Render, SniMetrics};
use crate::state::{BuildError, Runtime};

/// Why the router could not start or reload.
pub type AppError = ShellError<BuildError>;

/// A running lb-sni.
pub struct App(Shell<Runtime>);

impl App {
    /// Binds every listener and the admin API and starts routing.
    pub async fn start(config: Config) -> Result<App, AppError> {
        let serve = |rt: Arc<ArcSwap<Runtime>>| -> ServeFn {
            Arc::new(move |listener, cfg, active, shutdown| {
                let rt = rt.clone();
                let max = cfg.load().max_connections.get();
                Box::pin(accept_loop(
                    listener,
                    max,
                    active,
                    shutdown,
                    move |stream, peer| {
                        // Settings and routes as of the accept: a reload applies to new
                        // connections, established tunnels are not touched.
                        let runtime = rt.load_full();
                        let ctx = Ctx {
                            listener: cfg.load_full(),
                            metrics: runtime.metrics.clone(),
                            runtime,
                        };
                        conn::handle(stream, peer, ctx)
                    },
                ))
            })
        };
        let metrics = |runtime, connections| -> Arc<dyn MetricsSource> {
            Arc::new(Render {
                runtime,
                connections,
            })
        };
        Ok(App(Shell::start(config, serve, metrics).await?))
    }

    /// The bound listener addresses, in the order of their configured addresses.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.0.listen_addrs()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.0.admin_addr()
    }

    /// Shared counters (for embedding and tests).
    pub fn metrics(&self) -> Arc<SniMetrics> {
        self.0.current().metrics.clone()
    }

    /// Applies a new, already validated config (see [`Shell::reload`]).
    pub async fn reload(&mut self, config: Config) -> Result<(), AppError> {
        self.0.reload(config).await
    }

    /// Stops accepting, lets open tunnels finish within `grace`, then returns.
    pub async fn shutdown(self, grace: Duration) {
        self.0.shutdown(grace).await;
    }
}

impl Reload for App {
    async fn reload(&mut self, config: Config) -> Result<(), String> {
        self.0.reload(config).await.map_err(|e| e.to_string())
    }
}
