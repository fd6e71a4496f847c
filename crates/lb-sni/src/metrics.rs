//! lb-sni's own metrics, added to lb-core's per-pool ones on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use lb_core::admin::MetricsSource;
use lb_core::metrics::{self, Histogram, ReasonCounters};
use lb_core::server::{render_directories, ConnectionGauges};

use crate::state::Runtime;

/// Counters shared by every connection (relaxed atomics).
#[derive(Debug, Default)]
pub struct SniMetrics {
    /// Connections refused or cut by the router itself, by reason.
    pub errors: ReasonCounters,
    /// Bytes client → backend.
    pub bytes_in: AtomicU64,
    /// Bytes backend → client.
    pub bytes_out: AtomicU64,
    /// From accept to a routable ClientHello / request head.
    pub peek: Histogram,
}

/// What `/metrics` renders for lb-sni.
pub struct Render {
    /// The running config (routes, directories, counters).
    pub runtime: Arc<ArcSwap<Runtime>>,
    /// Open connections per listener.
    pub connections: Arc<ConnectionGauges>,
}

impl MetricsSource for Render {
    fn render(&self, out: &mut String) {
        let rt = self.runtime.load();
        let m = &rt.metrics;
        m.errors.render(out);
        self.connections.render(out);
        metrics::header(
            out,
            "lb_bytes_total",
            "counter",
            "Bytes spliced, by direction (in: client to backend, out: backend to client).",
        );
        for (dir, n) in [("in", &m.bytes_in), ("out", &m.bytes_out)] {
            metrics::sample(
                out,
                "lb_bytes_total",
                &[("direction", dir)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        metrics::header(
            out,
            "lb_hello_peek_seconds",
            "histogram",
            "Time from accept to a routable ClientHello or request head.",
        );
        m.peek.render(out, "lb_hello_peek_seconds", &[]);
        metrics::header(
            out,
            "lb_route_connections_total",
            "counter",
            "Connections routed, by route (index in the file since the last reload) and target.",
        );
        for (i, r) in rt.routes.iter().enumerate() {
            let host = r.host.to_string();
            metrics::sample(
                out,
                "lb_route_connections_total",
                &[
                    ("route", &i.to_string()),
                    ("host", &host),
                    ("target", r.target.name()),
                ],
                r.connections.load(Ordering::Relaxed) as f64,
            );
        }
        metrics::header(
            out,
            "lb_backend_connections_total",
            "counter",
            "Connections handed to each backend (attempts included), by pool.",
        );
        for (name, p) in &rt.pools {
            for m in p.pool().snapshot().members() {
                metrics::sample(
                    out,
                    "lb_backend_connections_total",
                    &[("pool", name), ("backend", &m.backend().addr().to_string())],
                    m.state().requests() as f64,
                );
            }
        }
        render_directories(
            out,
            rt.directories.iter().map(|(n, d)| (n.as_str(), &*d.cache)),
        );
    }
}
