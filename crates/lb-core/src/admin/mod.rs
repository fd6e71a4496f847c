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
#[cfg(feature = "server")]
pub(crate) use json::rfc3339;

pub use api::handle;

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
        }
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

/// Serves the admin API on `listener` until `shutdown` resolves; then it stops accepting,
/// answers the requests in flight, and returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send,
) {
    // Admin clients are operators and scripts: a generous bound on open connections.
    const MAX_CONNECTIONS: usize = 1024;
    crate::server::accept_until(
        listener,
        MAX_CONNECTIONS,
        shutdown,
        move |stream, peer, sd| {
            let state = state.clone();
            let mut sd = sd.clone();
            async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                let mut conn = std::pin::pin!(conn);
                // On drain: the request in flight is answered, then the connection closes.
                let ended = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = sd.stopped() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = ended {
                    tracing::debug!(client = %peer, error = %e, "admin connection ended");
                }
            }
        },
    )
    .await;
}
