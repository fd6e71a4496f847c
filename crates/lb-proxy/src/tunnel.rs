//! HTTP/1.1 upgrades (WebSocket) through the proxy: the tunnel after a 101.
//!
//! A request from an HTTP/1.1 client with `Connection: upgrade` and an `Upgrade` header
//! keeps those two headers (every other hop-by-hop header is still removed, see
//! [`proxy`](crate::proxy)) and goes out on an upstream connection, fresh or pooled,
//! that never goes back to the pool. It is not retried once sent; only a failure before
//! it left (a connect failure) moves it to the next backend.
//!
//! When the backend answers `101 Switching Protocols`, the 101 goes to the client with its
//! `Upgrade` header, `Connection: upgrade` and the protocol's own fields
//! (`Sec-WebSocket-Accept`, ...). Once the client's connection has written it, it runs
//! the [`Switch`] the 101 carries: the client's stream (any bytes it sent after its
//! request first) and our HTTP/1.1 client's connection to the backend (any bytes read
//! after the 101 first) are spliced by lb-core's
//! [`tunnel`]: bytes both ways, half-close passed on, and both
//! closed after the listener's `idle_timeout` with no byte either way. The backend counts
//! as active until the tunnel ends. A drain waits for open tunnels within its grace period
//! ([`TunnelStats::all_closed`]). Any other answer is relayed like any response.
//!
//! Requests without an upgrade pay nothing for this: the upgrade is noticed in the same
//! pass over the header names that finds the hop-by-hop headers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lb_core::metrics;
use lb_core::server::tunnel::{self, End};
use lb_core::Lease;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::upstream::h1::Upgraded;

/// Tunnels open now and the bytes moved through them, for `/metrics` and for drain.
/// Shared by every config generation.
#[derive(Debug, Default)]
pub struct TunnelStats {
    active: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
    /// Of those, the bytes moved by splice(2) (plain TCP on both sides).
    spliced: AtomicU64,
    /// Woken when the last open tunnel ends.
    closed: Notify,
}

impl TunnelStats {
    /// Resolves once no tunnel is open. Drain waits for it (within the grace period), as
    /// hyper's graceful shutdown stops watching a connection once it has switched.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            // Registered before the count is read, so a tunnel ending in between wakes it.
            closed.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Tunnels open now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Appends `lb_tunnels_active` and `lb_tunnel_bytes_total{direction}` in Prometheus
    /// text (`direction` is `in`, client → backend, or `out`).
    pub fn render(&self, out: &mut String) {
        metrics::header(
            out,
            "lb_tunnels_active",
            "gauge",
            "Upgraded (WebSocket) connections being spliced.",
        );
        metrics::sample(out, "lb_tunnels_active", &[], self.active() as f64);
        metrics::header(
            out,
            "lb_tunnel_bytes_total",
            "counter",
            "Bytes moved through upgraded connections.",
        );
        for (dir, n) in [("in", &self.up), ("out", &self.down)] {
            let v = n.load(Ordering::Relaxed) as f64;
            metrics::sample(out, "lb_tunnel_bytes_total", &[("direction", dir)], v);
        }
        metrics::header(
            out,
            "lb_tunnel_spliced_bytes_total",
            "counter",
            "Of the tunnel bytes, those moved by splice(2), kernel to kernel.",
        );
        let v = self.spliced.load(Ordering::Relaxed) as f64;
        metrics::sample(out, "lb_tunnel_spliced_bytes_total", &[], v);
    }
}

/// The client side of an upgrade request: what its tunnel needs once a 101 is out.
pub(crate) struct ClientUpgrade {
    /// The listener's `idle_timeout`.
    pub idle: Duration,
    /// Where the tunnel is counted.
    pub stats: Arc<TunnelStats>,
}

/// Counts a tunnel as open until dropped.
struct Open(Arc<TunnelStats>);

impl Open {
    fn new(stats: Arc<TunnelStats>) -> Self {
        stats.active.fetch_add(1, Ordering::Relaxed);
        Open(stats)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// An exchange that switched protocols: the backend's connection, ready to be joined to
/// the client's once the 101 is out.
pub(crate) struct Switch {
    upstream: Upgraded,
    idle: Duration,
    stats: Arc<TunnelStats>,
    open: Open,
    lease: Option<Lease>,
    backend: SocketAddr,
}

impl Switch {
    /// The tunnel of a 101 from `backend`: `upstream` is its connection (bytes after the
    /// 101 first), `lease` keeps it active until the tunnel ends. Counted as open from
    /// now, so a drain that starts while the 101 is written waits too.
    pub(crate) fn new(
        upstream: Upgraded,
        client: ClientUpgrade,
        lease: Option<Lease>,
        backend: SocketAddr,
    ) -> Switch {
        let ClientUpgrade { idle, stats } = client;
        let open = Open::new(stats.clone());
        Switch {
            upstream,
            idle,
            stats,
            open,
            lease,
            backend,
        }
    }

    /// Joins `client` (its 101 written) to the backend until both ends close or neither
    /// moves a byte for `idle_timeout`. `early`: bytes the client sent after its request
    /// before the 101 (the first frames of the new protocol), sent to the backend first.
    /// Bytes are copied through user space; [`Switch::run_tcp`] splices.
    pub(crate) async fn run<C: AsyncRead + AsyncWrite + Unpin + Send>(
        mut self,
        client: &mut C,
        early: Bytes,
    ) {
        if !self.send_early(&early).await {
            return;
        }
        let end = tunnel::splice(
            tokio::io::split(client),
            tokio::io::split(&mut self.upstream),
            self.idle,
            &self.stats.up,
            &self.stats.down,
        )
        .await;
        self.ended(&end, early.len() as u64, 0);
    }

    /// True when the backend's side is plain TCP, so [`Switch::run_tcp`] can splice.
    pub(crate) fn is_plain(&self) -> bool {
        self.upstream.is_plain()
    }

    /// [`Switch::run`] for a plain TCP client and a plain TCP backend ([`Switch::is_plain`]):
    /// the bytes move through pipes with splice(2), never through user space (lb-core's
    /// [`splice_tcp`](tunnel::splice_tcp)).
    pub(crate) async fn run_tcp(mut self, client: &mut TcpStream, early: Bytes) {
        if !self.send_early(&early).await {
            return;
        }
        let Some((pre, upstream)) = self.upstream.tcp() else {
            // Callers check `is_plain` first.
            tracing::debug!(backend = %self.backend, "tunnel to a TLS backend not spliced");
            return;
        };
        // What the backend sent after its 101 goes to the client first.
        if let Err(e) = client.write_all(&pre).await {
            tracing::debug!(backend = %self.backend, error = %e, "tunnel ended before it started");
            return;
        }
        self.stats
            .down
            .fetch_add(pre.len() as u64, Ordering::Relaxed);
        let end = tunnel::splice_tcp(
            client,
            upstream,
            self.idle,
            &self.stats.up,
            &self.stats.down,
        )
        .await;
        self.ended(&end, early.len() as u64, pre.len() as u64);
    }

    /// Sends the client's early bytes to the backend; false when that failed.
    async fn send_early(&mut self, early: &[u8]) -> bool {
        if early.is_empty() {
            return true;
        }
        if let Err(e) = self.upstream.write_all(early).await {
            tracing::debug!(backend = %self.backend, error = %e, "tunnel ended before it started");
            return false;
        }
        self.stats
            .up
            .fetch_add(early.len() as u64, Ordering::Relaxed);
        true
    }

    /// Counts what the tunnel moved (`up`, `down`: bytes sent before the splice) for the
    /// backend, and logs its end.
    fn ended(self, end: &End, up: u64, down: u64) {
        let Switch {
            open,
            lease,
            backend,
            stats,
            ..
        } = self;
        drop(open);
        let (moved, how) = match end {
            End::Closed(m) => (m, "closed"),
            End::Idle(m) => (m, "idle-timeout"),
            End::Error(m, _) => (m, "error"),
        };
        stats.spliced.fetch_add(moved.spliced, Ordering::Relaxed);
        if let Some(l) = &lease {
            l.member()
                .state()
                .watch()
                .add_bytes(moved.up + up, moved.down + down);
        }
        drop(lease);
        tracing::debug!(
            backend = %backend,
            up = moved.up + up,
            down = moved.down + down,
            spliced = moved.spliced,
            end = how,
            "tunnel ended"
        );
    }
}
