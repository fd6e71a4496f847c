//! The whole proxy from a config: lb-core's [`Shell`] (listeners, admin API, reload, drain;
//! the same as lb-sni's) around the HTTP listener of `server`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use lb_core::admin::MetricsSource;
use lb_core::config::Config;
use lb_core::server::{self, ConnectionGauges, ServeFn, Shell, ShellError};

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
        rt.tunnels.render(out);
        crate::limit::render(
            out,
            rt.routes.iter().filter_map(|r| r.rate_limit.as_deref()),
        );
        self.connections.render(out);
        if let Some(log) = &rt.access {
            log.render(out);
        }
        server::render_directories(
            out,
            rt.directories.iter().map(|(n, d)| (n.as_str(), &*d.cache)),
        );
    }
}

/// A running proxy: lb-core's [`Shell`] (listeners, admin API, reload, drain) over the
/// proxy's runtime (its configuration as running, rebuilt on reload).
pub type App = Shell<Runtime>;

/// Binds every listener and the admin API and starts serving.
pub async fn start(config: Config) -> Result<App, AppError> {
    let serve = |rt: Arc<ArcSwap<Runtime>>| -> ServeFn {
        Arc::new(move |listener, cfg, active, shutdown| {
            // lb-proxy reads its listener settings when the listener opens.
            let cfg = (**cfg.load()).clone();
            Box::pin(http::serve(listener, cfg, rt.clone(), active, shutdown))
        })
    };
    let metrics = |runtime, connections| -> Arc<dyn MetricsSource> {
        Arc::new(ProxyMetrics {
            runtime,
            connections,
        })
    };
    Shell::start(config, serve, metrics).await
}
