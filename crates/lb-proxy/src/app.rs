//! The whole proxy from a config: lb-core's [`Shell`] (listeners, admin API, reload, drain;
//! the same as lb-sni's) around the HTTP listener of [`server`](crate::server).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use lb_core::admin::MetricsSource;
use lb_core::config::Config;
use lb_core::server::{self, ConnectionGauges, Reload, ServeFn, Shell, ShellError};

use crate::server as http;
use crate::state::{BuildError, Runtime};

/// Why the proxy could not start or reload.
pub type AppError = ShellError<BuildError>;

struct ProxyMetrics {
    runtime: Arc<ArcSwap<Runtime>>,
    connections: Arc<ConnectionGauges>,
}

impl MetricsSource for ProxyMetrics {
    fn render(&self, out: &mut String) {
        let rt = self.runtime.load();
        rt.errors.render(out);
        self.connections.render(out);
        server::render_directories(
            out,
            rt.directories.iter().map(|(n, d)| (n.as_str(), &*d.cache)),
        );
    }
}

/// A running proxy.
pub struct App(Shell<Runtime>);

impl App {
    /// Binds every listener and the admin API and starts serving.
    pub async fn start(config: Config) -> Result<App, AppError> {
        let serve = |rt: Arc<ArcSwap<Runtime>>| -> ServeFn {
            Arc::new(move |listener, cfg, active, shutdown| {
                // lb-proxy reads its listener settings when the listener opens.
                let cfg = (**cfg.load()).clone();
                Box::pin(http::serve(
                    listener,
                    cfg,
                    rt.clone(),
                    active,
                    shutdown.wait(),
                ))
            })
        };
        let metrics = |runtime, connections| -> Arc<dyn MetricsSource> {
            Arc::new(ProxyMetrics {
                runtime,
                connections,
            })
        };
        Ok(App(Shell::start(config, serve, metrics).await?))
    }

    /// The bound listener addresses (useful with port 0).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.0.listen_addrs()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.0.admin_addr()
    }

    /// Applies a new, already validated config (see [`Shell::reload`]).
    pub async fn reload(&mut self, config: Config) -> Result<(), AppError> {
        self.0.reload(config).await
    }

    /// Stops accepting, lets in-flight requests finish within `grace`, then returns.
    pub async fn shutdown(self, grace: Duration) {
        self.0.shutdown(grace).await;
    }
}

impl Reload for App {
    async fn reload(&mut self, config: Config) -> Result<(), String> {
        self.0.reload(config).await.map_err(|e| e.to_string())
    }
}
