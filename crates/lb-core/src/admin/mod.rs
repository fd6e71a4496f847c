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
//! | `GET /api/v1/stats` | per pool, backend, route and resolver: state, since when, last check, rates, p50/p99, bytes, 5 minutes of history ([`stats`]) |
//! | `GET /metrics` | Prometheus text |
//!
//! When a token is configured every call but `/` and `/healthz` needs
//! `Authorization: Bearer TOKEN`. Errors are `{"error":"..."}`. With `[admin] tls` every
//! connection is HTTPS ([`AdminTls`], a handshake around the accepted stream).

mod api;
mod json;
pub mod stats;
mod tls;

pub use api::handle;
pub use json::rfc3339;
pub use tls::{serve_connection, AdminTls, AdminTlsError, HANDSHAKE_TIMEOUT};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::net::TcpListener;

use crate::discovery::PoolHandle;

/// Metrics a binary adds to `/metrics` beyond the per-pool ones lb-core renders.
pub trait MetricsSource: Send + Sync + 'static {
    /// Appends Prometheus text.
    fn render(&self, out: &mut String);
}

/// What the admin API serves; swapped whole on reload.
#[derive(Default, Clone)]
pub struct AdminView {
    /// Pools by name.
    pub pools: BTreeMap<String, PoolHandle>,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Directories by resolver name (the stats page shows their cache figures).
    pub resolvers: BTreeMap<String, Arc<crate::config::Directory>>,
    /// Routes in order (the stats page shows them with their target's figures).
    pub routes: Vec<RouteView>,
    /// The retry counters of directories' endpoint pools, by resolver name: shown as
    /// `lb_retries_total{pool="<resolver>"}`.
    pub directory_retries: BTreeMap<String, Arc<crate::metrics::PoolStats>>,
}

impl std::fmt::Debug for AdminView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminView")
            .field("pools", &self.pools)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("resolvers", &self.resolvers.keys().collect::<Vec<_>>())
            .field("routes", &self.routes)
            .finish()
    }
}

/// A route as the stats page shows it.
#[derive(Debug, Clone)]
pub struct RouteView {
    /// How it matches: host pattern and path prefix (`api.example.com/v1`, `*`).
    pub name: String,
    /// `pool:NAME` or `resolver:NAME`.
    pub target: String,
    /// Counters of the route, shown as totals and per second: e.g. lb-proxy's
    /// `("rate_limited", ...)`, lb-sni's `("connections", ...)`.
    pub counters: Vec<(&'static str, Arc<AtomicU64>)>,
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
            resolvers: BTreeMap::new(),
            routes: Vec::new(),
            directory_retries: BTreeMap::new(),
        }
    }

    /// Adds the directories (by resolver name): listed as resolvers, and their retry
    /// counters in `lb_retries_total`.
    pub fn with_directories<'a>(
        mut self,
        directories: impl IntoIterator<Item = (&'a str, &'a Arc<crate::config::Directory>)>,
    ) -> AdminView {
        for (name, d) in directories {
            self.directory_retries
                .insert(name.to_owned(), d.endpoint_pools().stats.clone());
            self.resolvers.insert(name.to_owned(), d.clone());
        }
        self
    }
}

/// Shared state of the admin API.
pub struct AdminState {
    view: Arc<ArcSwap<AdminView>>,
    book: Arc<Mutex<stats::Book>>,
    extra: Option<Arc<dyn MetricsSource>>,
    tls: ArcSwapOption<AdminTls>,
}

impl AdminState {
    /// Admin state over `view`, with binary-specific metrics in `extra`.
    ///
    /// Inside a tokio runtime this also starts the stats sampler ([`stats`]), which stops
    /// when the state is dropped.
    pub fn new(view: AdminView, extra: Option<Arc<dyn MetricsSource>>) -> AdminState {
        let view = Arc::new(ArcSwap::from_pointee(view));
        let book = Arc::default();
        stats::spawn_sampler(view.clone(), Arc::downgrade(&book));
        AdminState {
            view,
            book,
            extra,
            tls: ArcSwapOption::empty(),
        }
    }

    /// Serves new connections over TLS with `tls`, or plain HTTP with `None` (start and
    /// reload; connections already open keep what they started with).
    pub fn set_tls(&self, tls: Option<AdminTls>) {
        self.tls.store(tls.map(Arc::new));
    }

    /// The TLS settings of new connections, if any.
    pub fn tls(&self) -> Option<Arc<AdminTls>> {
        self.tls.load_full()
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

    /// `GET /api/v1/stats`: the current view with the sampler's rates and history.
    pub fn stats(&self) -> serde_json::Value {
        let view = self.view();
        // Shared with the sampler only; nothing panics while it is held.
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        stats::stats_json(&view, &book)
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
        move |stream, peer, sd| serve_connection(stream, peer, state.clone(), sd.clone()),
    )
    .await;
}
