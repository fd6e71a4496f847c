//! `GET /api/v1/stats`: what the stats page draws, per pool, backend, route and resolver.
//!
//! A background task ([`spawn_sampler`]) reads the counters of every pool once a second
//! into a [`Book`]. It only loads atomics the request path writes (requests, failures,
//! status classes, bytes, hold-time histograms of [`Watch`](crate::watch::Watch)), so the
//! request path never waits for it; the book's mutex is shared by the sampler and the
//! admin handler alone. Per backend and route the book keeps the last [`WINDOW`] samples
//! (rates are over the last 5 s); per pool also a ring of the last [`HISTORY`] seconds of
//! requests/s and errors/s for the charts. Everything is bounded by the config: pools,
//! backends and routes that leave are forgotten at the next tick.
//!
//! Definitions: *requests* are attempts sent to a backend (lb-sni: connections);
//! *errors* are failed attempts (refused, reset, timed out, or a 5xx answer); *4xx/5xx*
//! count lb-proxy's responses by class; *p50/p99* are of the time requests held a backend
//! (lb-proxy: to the end of the response body; lb-sni: the connection's life), over the
//! last 5 s; *bytes in* go to the backend, *out* come from it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde_json::{json, Value};

use super::json::rfc3339;
use super::AdminView;
use crate::backend::BackendState;
use crate::clock;
use crate::metrics::{quantile, BUCKETS};

/// How often the sampler reads the counters.
pub const TICK: Duration = Duration::from_secs(1);
/// Samples kept per series: rates are over the last `WINDOW - 1` ticks.
pub const WINDOW: usize = 6;
/// Ticks of history per pool for the charts (5 minutes).
pub const HISTORY: usize = 300;

const HELD: usize = BUCKETS.len() + 1;

/// Counters of a backend (or a pool's sum) at one instant.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    at: u64,
    requests: u64,
    failures: u64,
    c4: u64,
    c5: u64,
    bytes_in: u64,
    bytes_out: u64,
    held: [u64; HELD],
}

impl Sample {
    fn of(state: &BackendState, at: u64) -> Sample {
        let classes = state.class_counts();
        let (bytes_in, bytes_out) = state.watch().bytes();
        Sample {
            at,
            requests: state.requests(),
            failures: state.failures(),
            c4: classes[3],
            c5: classes[4],
            bytes_in,
            bytes_out,
            held: state.watch().held().counts(),
        }
    }

    fn add(&mut self, o: &Sample) {
        self.requests += o.requests;
        self.failures += o.failures;
        self.c4 += o.c4;
        self.c5 += o.c5;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        for (a, b) in self.held.iter_mut().zip(o.held) {
            *a += b;
        }
    }
}

/// The last [`WINDOW`] samples of one series.
#[derive(Debug, Default)]
struct Series(VecDeque<Sample>);

impl Series {
    fn push(&mut self, s: Sample) {
        if self.0.len() == WINDOW {
            self.0.pop_front();
        }
        self.0.push_back(s);
    }

    /// Rates between the oldest and newest sample (`None` before two samples).
    fn rates(&self) -> Value {
        let (Some(a), Some(b)) = (self.0.front(), self.0.back()) else {
            return Value::Null;
        };
        let secs = b.at.saturating_sub(a.at) as f64 / 1e9;
        if secs <= 0.0 {
            return Value::Null;
        }
        let per = |x: u64, y: u64| round(y.saturating_sub(x) as f64 / secs);
        let held: Vec<u64> = a
            .held
            .iter()
            .zip(b.held)
            .map(|(x, y)| y.saturating_sub(*x))
            .collect();
        let ms = |q| quantile(&held, q).map(|s| round(s * 1000.0));
        json!({
            "requests": per(a.requests, b.requests),
            "errors": per(a.failures, b.failures),
            "4xx": per(a.c4, b.c4),
            "5xx": per(a.c5, b.c5),
            "bytes_in": per(a.bytes_in, b.bytes_in),
            "bytes_out": per(a.bytes_out, b.bytes_out),
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One pool's series and history.
#[derive(Debug, Default)]
struct PoolBook {
    total: Series,
    retries: VecDeque<(u64, u64)>,
    backends: HashMap<SocketAddr, Series>,
    /// Requests/s and errors/s of each past tick, oldest first.
    history: VecDeque<[f64; 2]>,
}

/// What the sampler has seen (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct Book {
    pools: HashMap<String, PoolBook>,
    routes: HashMap<(String, &'static str), VecDeque<(u64, u64)>>,
}

fn push_counter(q: &mut VecDeque<(u64, u64)>, at: u64, v: u64) {
    if q.len() == WINDOW {
        q.pop_front();
    }
    q.push_back((at, v));
}

fn counter_rate(q: &VecDeque<(u64, u64)>) -> Option<f64> {
    let (a, b) = (q.front()?, q.back()?);
    let secs = b.0.saturating_sub(a.0) as f64 / 1e9;
    (secs > 0.0).then(|| round(b.1.saturating_sub(a.1) as f64 / secs))
}

impl Book {
    /// Reads every counter of `view` at clock time `now`.
    pub fn sample(&mut self, view: &AdminView, now: u64) {
        self.pools.retain(|name, _| view.pools.contains_key(name));
        for (name, h) in &view.pools {
            let book = self.pools.entry(name.clone()).or_default();
            let snap = h.pool.snapshot();
            let mut total = Sample {
                at: now,
                ..Sample::default()
            };
            for m in snap.members() {
                let s = Sample::of(m.state(), now);
                total.add(&s);
                book.backends.entry(m.backend().addr()).or_default().push(s);
            }
            book.backends.retain(|a, _| snap.member(*a).is_some());
            if let Some(last) = book.total.0.back() {
                let secs = now.saturating_sub(last.at) as f64 / 1e9;
                if secs > 0.0 {
                    if book.history.len() == HISTORY {
                        book.history.pop_front();
                    }
                    book.history.push_back([
                        round(total.requests.saturating_sub(last.requests) as f64 / secs),
                        round(total.failures.saturating_sub(last.failures) as f64 / secs),
                    ]);
                }
            }
            book.total.push(total);
            let retries = h.pool.stats().retries.load(Ordering::Relaxed);
            push_counter(&mut book.retries, now, retries);
        }
        let mut live = Vec::new();
        for r in &view.routes {
            for (label, c) in &r.counters {
                let key = (r.name.clone(), *label);
                let q = self.routes.entry(key.clone()).or_default();
                push_counter(q, now, c.load(Ordering::Relaxed));
                live.push(key);
            }
        }
        self.routes.retain(|k, _| live.contains(k));
    }
}

/// Samples `view` into `book` every [`TICK`] until the book is dropped (with the admin
/// state that owns it).
pub fn spawn_sampler(view: Arc<ArcSwap<AdminView>>, book: Weak<Mutex<Book>>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::debug!("no tokio runtime: the stats page has no history");
        return;
    };
    rt.spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(book) = book.upgrade() else { break };
            let view = view.load_full();
            let now = clock::now_nanos();
            // Only the admin handler shares this lock; nothing panics while it is held.
            let mut b = book.lock().unwrap_or_else(|p| p.into_inner());
            b.sample(&view, now);
        }
    });
}

/// Wall-clock time of a clock instant (`at`, clock nanos) seen at `now`.
fn wall(at: u64, now: u64) -> String {
    let ago = Duration::from_nanos(now.saturating_sub(at));
    rfc3339(
        SystemTime::now()
            .checked_sub(ago)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

fn secs_ago(at: u64, now: u64) -> f64 {
    round(now.saturating_sub(at) as f64 / 1e9)
}

/// The body of `GET /api/v1/stats`.
#[allow(clippy::too_many_lines)] // one JSON document, written top to bottom as the page reads it
pub fn stats_json(view: &AdminView, book: &Book) -> Value {
    let now = clock::now_nanos();
    let empty = PoolBook::default();
    let pools: Vec<Value> = view
        .pools
        .iter()
        .map(|(name, h)| {
            let book = book.pools.get(name).unwrap_or(&empty);
            let snap = h.pool.snapshot();
            let backends: Vec<Value> = snap
                .members()
                .iter()
                .map(|m| {
                    let st = m.state();
                    let since = st.status_since(now);
                    let (bytes_in, bytes_out) = st.watch().bytes();
                    let check = st.watch().last_check().map(|c| {
                        json!({
                            "ok": c.ok,
                            "error": c.error.as_deref(),
                            "ago_s": secs_ago(c.at, now),
                        })
                    });
                    let rates = book
                        .backends
                        .get(&m.backend().addr())
                        .map_or(Value::Null, Series::rates);
                    json!({
                        "addr": m.backend().addr().to_string(),
                        "id": m.backend().id(),
                        "weight": m.backend().weight(),
                        "backup": m.backend().is_backup(),
                        "state": m.status(now).as_str(),
                        "since": (since != 0).then(|| wall(since, now)),
                        "since_s": (since != 0).then(|| secs_ago(since, now)),
                        "check": check,
                        "active": st.active(),
                        "requests": st.requests(),
                        "failures": st.failures(),
                        "ejections": st.ejections(),
                        "bytes_in": bytes_in,
                        "bytes_out": bytes_out,
                        "rates": rates,
                    })
                })
                .collect();
            let history_requests: Vec<f64> = book.history.iter().map(|h| h[0]).collect();
            let history_errors: Vec<f64> = book.history.iter().map(|h| h[1]).collect();
            json!({
                "name": name,
                "strategy": h.pool.settings().strategy.as_str(),
                "source": h.source.kind().as_str(),
                "last_sync": h.source.last_sync().map(rfc3339),
                "active": h.pool.active(),
                "retries": h.pool.stats().retries.load(Ordering::Relaxed),
                "ejections": snap.members().iter().map(|m| u64::from(m.state().ejections())).sum::<u64>(),
                "rates": book.total.rates(),
                "retries_per_s": counter_rate(&book.retries),
                "history": {
                    "step_s": TICK.as_secs(),
                    "requests": history_requests,
                    "errors": history_errors,
                },
                "backends": backends,
            })
        })
        .collect();
    let routes: Vec<Value> = view
        .routes
        .iter()
        .map(|r| {
            let mut counters = serde_json::Map::new();
            for (label, c) in &r.counters {
                let rate = book
                    .routes
                    .get(&(r.name.clone(), *label))
                    .and_then(counter_rate);
                counters.insert(
                    (*label).to_owned(),
                    json!({ "total": c.load(Ordering::Relaxed), "per_s": rate }),
                );
            }
            json!({ "route": r.name, "target": r.target, "counters": counters })
        })
        .collect();
    let resolvers: Vec<Value> = view
        .resolvers
        .iter()
        .map(|(name, d)| {
            let stats = d.stats();
            let counts: serde_json::Map<String, Value> = stats
                .iter()
                .map(|(k, n)| (k.to_owned(), json!(n)))
                .collect();
            let all: u64 = stats.iter().map(|(_, n)| n).sum();
            let cached: u64 = stats
                .iter()
                .filter(|(k, _)| matches!(*k, "hit" | "negative" | "stale" | "coalesced"))
                .map(|(_, n)| n)
                .sum();
            json!({
                "name": name,
                "entries": d.len(),
                "lookups": counts,
                "hit_ratio": (all > 0).then(|| round(cached as f64 / all as f64)),
                "errors": stats.iter().find(|(k, _)| *k == "error").map_or(0, |(_, n)| n),
            })
        })
        .collect();
    json!({
        "now": rfc3339(SystemTime::now()),
        "tick_s": TICK.as_secs(),
        "pools": pools,
        "routes": routes,
        "resolvers": resolvers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{PoolHandle, StaticSource};
    use crate::{Backend, Pool, PoolSettings, StrategyKind};

    fn view() -> (AdminView, Arc<Pool>) {
        let b = Backend::new("127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")));
        let pool = Arc::new(
            Pool::new(
                "web",
                PoolSettings::with_strategy(StrategyKind::RoundRobin),
                vec![b],
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let mut v = AdminView::default();
        v.pools.insert(
            "web".into(),
            PoolHandle {
                pool: pool.clone(),
                source: Arc::new(StaticSource),
            },
        );
        (v, pool)
    }

    #[test]
    fn rates_history_and_bounds() {
        let (v, pool) = view();
        let mut book = Book::default();
        let sec = 1_000_000_000;
        for t in 0..(HISTORY as u64 + 20) {
            // 10 requests a second, 2 of them failures.
            for i in 0..10 {
                let snap = pool.snapshot();
                let lease = snap
                    .select(b"k")
                    .next()
                    .unwrap_or_else(|| panic!("a lease"));
                lease
                    .member()
                    .state()
                    .count_status(if i < 2 { 503 } else { 200 });
                if i < 2 {
                    lease.report(crate::Outcome::Failure);
                }
            }
            book.sample(&v, (t + 1) * sec);
        }
        let p = &book.pools["web"];
        assert_eq!(p.history.len(), HISTORY);
        assert!(
            p.history.iter().all(|h| *h == [10.0, 2.0]),
            "{:?}",
            p.history
        );
        let j = stats_json(&v, &book);
        let pool = &j["pools"][0];
        assert_eq!(pool["rates"]["requests"], json!(10.0));
        assert_eq!(pool["rates"]["5xx"], json!(2.0));
        assert_eq!(
            pool["history"]["requests"].as_array().map(Vec::len),
            Some(HISTORY)
        );
        assert_eq!(
            pool["backends"][0]["requests"],
            json!((HISTORY as u64 + 20) * 10)
        );
        assert!(pool["backends"][0]["rates"]["p50_ms"].is_number(), "{j}");
        // A pool that leaves is forgotten.
        book.sample(&AdminView::default(), (HISTORY as u64 + 30) * sec);
        assert!(book.pools.is_empty());
    }
}
