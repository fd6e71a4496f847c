//! The whole router from a config: lb-core's [`Shell`] (listeners, admin API, reload,
//! drain; the same as lb-proxy's) around [`conn::handle`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use lb_core::admin::MetricsSource;
use lb_core::config::Config;
use lb_core::server::{accept_loop, ServeFn, Shell, ShellError};

use crate::conn::{self, Ctx};
use crate::metrics::Render;
use crate::state::{BuildError, Runtime};

/// Why the router could not start or reload.
pub type AppError = ShellError<BuildError>;

/// A running lb-sni: lb-core's [`Shell`] (listeners, admin API, reload, drain) over
/// lb-sni's [`Runtime`]. A reload applies to new connections; established tunnels are not
/// touched.
pub type App = Shell<Runtime>;

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
                move |stream, peer, _: &_| {
                    // Settings and routes as of the accept.
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
    Shell::start(config, serve, metrics).await
}
