//! The admin API shared by lb-proxy and lb-sni: pools, backends, routing answers, metrics
//! and the stats page, as JSON over HTTP/1.1 on a loopback listener by default.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /` | the stats page (no token needed) |
//! | `GET /healthz` | `200 ok` (no token needed) |
//! | `GET /api/v1/pools` | `{"pools":[POOL,...]}` |
//! | `GET /api/v1/pools/{pool}` | `POOL`, 404 if unknown |
//! | `POST /api/v1/pools/{pool}/backends` | `{"addr","weight"?,"id"?,"backup"?}` → 201; 409 duplicate; 400 bad input |
//! | `PATCH /api/v1/pools/{pool}/backends/{addr}` | `{"weight"?,"state"?: "up"\|"draining"}` → 200 |
//! | `DELETE /api/v1/pools/{pool}/backends/{addr}` | 204; 404 unknown |
//! | `POST /api/v1/pools/{pool}/backends/{addr}/drain` | 202 |
//! | `GET /api/v1/route?pool=P&key=K` | `{"backend":"h:p"}` |
//! | `GET /metrics` | Prometheus text |
//!
//! When a token is configured every call but `/` and `/healthz` needs
//! `Authorization: Bearer TOKEN`. Errors are `{"error":"..."}`.

mod api;
mod json;

pub use api::handle;
pub use json::rfc3339;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::discovery::PoolHandle;

/// Metrics a binary adds to `/metrics` beyond the per-pool ones lb-core renders.
pub trait MetricsSource: Send + Sync + 'static {
    /// Appends Prometheus text.
    fn render(&self, out: &mut String);
}

/// What the admin API serves; swapped whole on reload.
#[derive(Debug, Default, Clone)]
pub struct AdminView {
    /// Pools by name.
    pub pools: BTreeMap<String, PoolHandle>,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The retry counters of directories' endpoint pools, by resolver name: shown as
    /// `lb_retries_total{pool="<resolver>"}`.
    pub directory_retries: BTreeMap<String, Arc<crate::metrics::PoolStats>>,
}

impl AdminView {
    /// A view of `pools` (by name), guarded by `token` when set.
    pub fn from_pools<'a>(
        pools: impl IntoIterator<Item = (&'a str, &'a PoolHandle)>,
        token: Option<String>,
    ) -> AdminView {
        AdminView {
            pools: pools
                .into_iter()
                .map(|(n, h)| (n.to_owned(), h.clone()))
                .collect(),
            token,
            directory_retries: BTreeMap::new(),
        }
    }

    /// Adds the retry counters of directories (by resolver name) to `lb_retries_total`.
    pub fn with_directory_retries<'a>(
        mut self,
        directories: impl IntoIterator<Item = (&'a str, &'a crate::config::Directory)>,
    ) -> AdminView {
        for (name, d) in directories {
            self.directory_retries
                .insert(name.to_owned(), d.endpoint_pools().stats.clone());
        }
        self
    }
}

/// Shared state of the admin API.
pub struct AdminState {
    view: ArcSwap<AdminView>,
    extra: Option<Arc<dyn MetricsSource>>,
}

impl AdminState {
    /// Admin state over `view`, with binary-specific metrics in `extra`.
    pub fn new(view: AdminView, extra: Option<Arc<dyn MetricsSource>>) -> AdminState {
        AdminState {
            view: ArcSwap::from_pointee(view),
            extra,
        }
    }

    /// The current view.
    pub fn view(&self) -> Arc<AdminView> {
        self.view.load_full()
    }

    /// Replaces the view (reload).
    pub fn replace(&self, view: AdminView) {
        self.view.store(Arc::new(view));
    }

    pub(crate) fn extra(&self) -> Option<&Arc<dyn MetricsSource>> {
        self.extra.as_ref()
    }
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("view", &self.view.load())
            .finish()
    }
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(client = %peer, error = %e, "admin connection ended");
            }
        });
    }
}
