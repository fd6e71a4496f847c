//! Metrics primitives: lock-free counters and histograms, and Prometheus text rendering.
//!
//! Everything counted on the request path is a relaxed atomic increment; rendering walks the
//! atomics when `/metrics` is scraped. The metric names are a contract (dashboards and tests
//! name them); docs/operations.md lists each with its type, labels and binary:
//! `lb_requests_total{pool,backend,class}`, `lb_request_duration_seconds{pool}`,
//! `lb_proxy_errors_total{reason}`, `lb_backend_up`, `lb_backend_active`,
//! `lb_connections_active{listener}`, `lb_resolver_lookups_total{resolver,result}`,
//! `lb_retries_total{pool}`, `lb_worker_threads`, `lb_access_log_dropped_total`; for
//! lb-proxy `lb_rate_limited_total{route}`, `lb_tunnels_active` and
//! `lb_tunnel_bytes_total{direction}`; for lb-sni `lb_bytes_total{direction}`,
//! `lb_hello_peek_seconds`, `lb_route_connections_total{route,host,target}` and
//! `lb_backend_connections_total{pool,backend}`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket latency histogram in atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Observations per bucket (not cumulative); the last entry counts those above the
    /// largest bound.
    pub fn counts(&self) -> [u64; BUCKETS.len() + 1] {
        let mut out = [0; BUCKETS.len() + 1];
        let mut sum = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            out[i] = b.load(Ordering::Relaxed);
            sum += out[i];
        }
        out[BUCKETS.len()] = self.count().saturating_sub(sum);
        out
    }

    /// Renders `name_bucket`, `name_sum` and `name_count` lines with `labels`.
    pub fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let le = b.to_string();
            let mut l: Vec<(&str, &str)> = labels.to_vec();
            l.push(("le", &le));
            sample(out, &format!("{name}_bucket"), &l, cumulative as f64);
        }
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        l.push(("le", "+Inf"));
        let count = self.count();
        sample(out, &format!("{name}_bucket"), &l, count as f64);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        sample(out, &format!("{name}_sum"), labels, sum);
        sample(out, &format!("{name}_count"), labels, count as f64);
    }
}

/// The `q` quantile (0–1) in seconds of per-bucket `counts` (as [`Histogram::counts`]
/// gives, or the difference of two of them): interpolated linearly inside its bucket;
/// above the largest bound it is that bound. `None` without observations.
pub fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let Some(&hi) = BUCKETS.get(i) else {
                return BUCKETS.last().copied();
            };
            let lo = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            return Some(lo + (hi - lo) * (rank - seen as f64) / n as f64);
        }
        seen += n;
    }
    BUCKETS.last().copied()
}

/// Why the balancer answered or closed by itself: the `x-lb-error` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 404: no route, or the directory says the name does not exist.
    UnknownHost,
    /// 400: malformed request, invalid name, smuggling attempt.
    BadRequest,
    /// 408: the request head did not arrive in time.
    HeaderTimeout,
    /// 413: request body over `max_body_bytes`.
    BodyTooLarge,
    /// 431: request head over `max_header_bytes`.
    HeaderTooLarge,
    /// 502: no backend accepted a connection.
    UpstreamConnect,
    /// 502: the backend closed or reset before a response.
    UpstreamReset,
    /// 502: the directory failed and nothing stale was cached.
    DirectoryUnavailable,
    /// 503: no backend is up (or all are full).
    NoHealthyBackend,
    /// 504: no response head within `response_timeout`.
    UpstreamTimeout,
    /// 429: the route's `rate_limit` refused the request's key (lb-proxy).
    RateLimited,
}

impl Reason {
    /// Every reason, in metric order.
    pub const ALL: [Reason; 11] = [
        Reason::UnknownHost,
        Reason::BadRequest,
        Reason::HeaderTimeout,
        Reason::BodyTooLarge,
        Reason::HeaderTooLarge,
        Reason::UpstreamConnect,
        Reason::UpstreamReset,
        Reason::DirectoryUnavailable,
        Reason::NoHealthyBackend,
        Reason::UpstreamTimeout,
        Reason::RateLimited,
    ];

    /// The `x-lb-error` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownHost => "unknown-host",
            Reason::BadRequest => "bad-request",
            Reason::HeaderTimeout => "header-timeout",
            Reason::BodyTooLarge => "body-too-large",
            Reason::HeaderTooLarge => "header-too-large",
            Reason::UpstreamConnect => "upstream-connect",
            Reason::UpstreamReset => "upstream-reset",
            Reason::DirectoryUnavailable => "directory-unavailable",
            Reason::NoHealthyBackend => "no-healthy-backend",
            Reason::UpstreamTimeout => "upstream-timeout",
            Reason::RateLimited => "rate-limited",
        }
    }

    /// The HTTP status lb-proxy answers with.
    pub fn status(self) -> u16 {
        match self {
            Reason::UnknownHost => 404,
            Reason::BadRequest => 400,
            Reason::HeaderTimeout => 408,
            Reason::BodyTooLarge => 413,
            Reason::HeaderTooLarge => 431,
            Reason::UpstreamConnect | Reason::UpstreamReset | Reason::DirectoryUnavailable => 502,
            Reason::NoHealthyBackend => 503,
            Reason::UpstreamTimeout => 504,
            Reason::RateLimited => 429,
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

/// Counters per [`Reason`].
#[derive(Debug, Default)]
pub struct ReasonCounters([AtomicU64; Reason::ALL.len()]);

impl ReasonCounters {
    /// Counts one occurrence.
    #[inline]
    pub fn inc(&self, r: Reason) {
        self.0[r.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for `r`.
    pub fn get(&self, r: Reason) -> u64 {
        self.0[r.index()].load(Ordering::Relaxed)
    }

    /// Renders `lb_proxy_errors_total{reason}`.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "lb_proxy_errors_total",
            "counter",
            "Answers and closes made by the balancer itself, by x-lb-error reason.",
        );
        for r in Reason::ALL {
            sample(
                out,
                "lb_proxy_errors_total",
                &[("reason", r.as_str())],
                self.get(r) as f64,
            );
        }
    }
}

/// Per-pool request statistics.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Request durations (first byte in to response head out).
    pub duration: Histogram,
    /// Retries made (`lb_retries_total`).
    pub retries: AtomicU64,
    /// Requests retrying now, held against the retry budget
    /// ([`Attempts`](crate::forward::Attempts)).
    pub retries_in_flight: AtomicU64,
}

/// Writes a `# HELP` and `# TYPE` header.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line, escaping label values.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", &[("pool", "a\"b")]);
        assert!(
            out.contains("x_bucket{pool=\"a\\\"b\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{pool=\"a\\\"b\",le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{pool=\"a\\\"b\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_count{pool=\"a\\\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let h = Histogram::default();
        assert_eq!(quantile(&h.counts(), 0.5), None);
        for _ in 0..99 {
            h.observe(Duration::from_micros(700)); // (0.5 ms, 1 ms]
        }
        h.observe(Duration::from_secs(60)); // above every bound
        let c = h.counts();
        assert_eq!((c[1], c[BUCKETS.len()]), (99, 1));
        let p50 = quantile(&c, 0.5).unwrap_or(0.0);
        assert!(p50 > 0.0005 && p50 <= 0.001, "{p50}");
        assert_eq!(quantile(&c, 0.999), Some(10.0));
    }

    #[test]
    fn reasons_have_distinct_names_and_statuses() {
        let c = ReasonCounters::default();
        c.inc(Reason::UpstreamTimeout);
        assert_eq!(c.get(Reason::UpstreamTimeout), 1);
        assert_eq!(c.get(Reason::UnknownHost), 0);
        assert_eq!(Reason::NoHealthyBackend.status(), 503);
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
