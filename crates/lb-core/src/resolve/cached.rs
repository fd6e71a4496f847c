//! [`Cached`]: TTLs, negative caching, stale-if-error, a size bound and single-flight
//! around any [`Resolver`].
//!
//! ## How a lookup is answered
//! 1. **Fast path** ([`Cached::try_get`]): one lock-free read of a concurrent map
//!    ([`papaya`], epoch-based reclamation). A fresh `Found` is a `hit`, a fresh
//!    `NotFound` is `negative`. During an error backoff (below) the last good `Found` is
//!    served as `stale` if it is younger than `ttl + stale_ttl`, else the remembered
//!    error is returned as `error`. No lock, no allocation: the endpoints are an
//!    `Arc<[SocketAddr]>` whose count is bumped.
//! 2. **Miss path**: a mutex-guarded table of in-flight lookups. The first caller for a
//!    name becomes the *leader* and calls the directory; everyone else arriving while it
//!    runs waits on the leader's channel and gets the same result (`coalesced`). So a
//!    thousand concurrent misses for one name make exactly one upstream call. If a leader
//!    is cancelled (its future dropped), a waiter takes over.
//! 3. **Recording**: the leader stores the answer before it removes its flight (both
//!    ordered by the flight lock), so a caller that finds no flight always finds the
//!    answer. `Found` lives `ttl`, `NotFound` lives `negative_ttl` (`miss`). An upstream
//!    error never becomes a negative entry: the last good `Found`, while younger than
//!    `ttl + stale_ttl`, is served (`stale`); otherwise the error is returned (`error`).
//!
//! ## Error backoff
//! After an upstream error the name is not asked again for `error_backoff` (default
//! 1 s): lookups meanwhile get the stale answer or the same error at once, instead of
//! each waiting for a failing directory's timeout. Set it to zero to ask every time.
//!
//! ## Size bound
//! At most `max_entries` names are kept. Inserts are serialised by one writer lock
//! (the miss path only) and evict with CLOCK, an approximation of LRU: each entry has a
//! "referenced" bit set by hits; the hand clears set bits and evicts the first entry
//! whose bit is clear. Entries past their useful life are not swept; they are the first
//! to go because nothing references them.

mod clock;
mod endpoints;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use self::clock::{Clock, NameHasher};
pub use self::endpoints::{Answer, Directed, EndpointPools, Routing, Unrouted};
use super::{BoxFuture, Resolution, ResolveError, Resolver};
use crate::pool::Pool;

/// Settings of one [`Cached`] resolver; the defaults are those of `[resolver.X]`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// The resolver's name, the `resolver` label of `lb_resolver_lookups_total`.
    pub name: String,
    /// How long a `Found` answer is served without asking again. Default 30 s.
    pub ttl: Duration,
    /// How long a `NotFound` answer is served without asking again. Default 5 s.
    pub negative_ttl: Duration,
    /// How long past `ttl` a last good `Found` is still served while the directory
    /// fails. Default 5 min.
    pub stale_ttl: Duration,
    /// Most names kept (at least 1). Default 100 000.
    pub max_entries: usize,
    /// How long after an upstream error the name is not asked again (see the module
    /// docs). Default 1 s; zero disables.
    pub error_backoff: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            name: "default".to_string(),
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            stale_ttl: Duration::from_secs(300),
            max_entries: 100_000,
            error_backoff: Duration::from_secs(1),
        }
    }
}

impl CacheSettings {
    /// The defaults with the given metric name.
    pub fn named(name: impl Into<String>) -> Self {
        CacheSettings {
            name: name.into(),
            ..CacheSettings::default()
        }
    }

    /// These settings with `ttl` for found answers and `negative_ttl` for not-found ones.
    pub fn with_ttls(mut self, ttl: Duration, negative_ttl: Duration) -> Self {
        self.ttl = ttl;
        self.negative_ttl = negative_ttl;
        self
    }
}

/// How a lookup was answered: the `result` label of `lb_resolver_lookups_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answered {
    /// A fresh cached `Found`.
    Hit,
    /// This caller asked the directory and got `Found` or `NotFound`.
    Miss,
    /// A fresh cached `NotFound`.
    Negative,
    /// The directory failed; the last good `Found` was served.
    Stale,
    /// Another caller's in-flight lookup answered (whatever its outcome).
    Coalesced,
    /// The directory failed and nothing usable was cached (or during error backoff).
    Error,
}

impl Answered {
    /// All kinds, in metric order.
    pub const ALL: [Answered; 6] = [
        Answered::Hit,
        Answered::Miss,
        Answered::Negative,
        Answered::Stale,
        Answered::Coalesced,
        Answered::Error,
    ];

    /// The metric label value: `hit`, `miss`, `negative`, `stale`, `coalesced`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Answered::Hit => "hit",
            Answered::Miss => "miss",
            Answered::Negative => "negative",
            Answered::Stale => "stale",
            Answered::Coalesced => "coalesced",
            Answered::Error => "error",
        }
    }
}

/// The answer to [`Cached::lookup`]: the result and how it was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// What the name resolves to (a stale answer is an `Ok(Found)`).
    pub result: Result<Resolution, ResolveError>,
    /// Where the result came from.
    pub answered: Answered,
}

/// Counters of a [`Cached`] resolver, for `lb_resolver_lookups_total{resolver,result}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups per [`Answered`] kind, indexed like [`Answered::ALL`].
    pub lookups: [u64; 6],
    /// Names currently cached.
    pub entries: usize,
}

impl CacheStats {
    /// The count for one kind.
    pub fn get(&self, kind: Answered) -> u64 {
        self.lookups[kind as usize]
    }

    /// `(label, count)` pairs in metric order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Answered::ALL
            .iter()
            .map(move |k| (k.as_str(), self.get(*k)))
    }
}

/// What is cached for one name. Immutable once published, except the CLOCK bit.
#[derive(Debug)]
struct Entry {
    /// The last good answer, if any.
    good: Option<Resolution>,
    /// A `Found` answer's endpoints as a pool: their passive health lives as long as
    /// the name stays cached (and across refreshes).
    pool: Option<Arc<Pool>>,
    /// How a fresh `good` is counted: `hit`, or `negative` for `NotFound` and for a
    /// pool name the config does not have.
    fresh: Answered,
    /// `good` is served as fresh until then.
    fresh_until: Instant,
    /// A `Found` in `good` may be served stale until then.
    stale_until: Instant,
    /// The last upstream error and the end of its backoff.
    error: Option<(ResolveError, Instant)>,
    /// This name's CLOCK slot.
    slot: usize,
    /// Set by hits, cleared by the CLOCK hand.
    referenced: AtomicBool,
}

type Flight = watch::Receiver<Option<Result<Resolution, ResolveError>>>;

/// A caching, single-flight wrapper around a [`Resolver`]; see the module docs.
pub struct Cached<R> {
    inner: R,
    settings: CacheSettings,
    pools: EndpointPools,
    map: papaya::HashMap<Arc<str>, Entry, NameHasher>,
    /// In-flight upstream lookups by name; also orders "store answer, end flight".
    flights: Mutex<HashMap<Arc<str>, Flight>>,
    /// Serialises inserts and evictions so the bound is exact.
    clock: Mutex<Clock>,
    counters: [AtomicU64; 6],
}

impl<R> std::fmt::Debug for Cached<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("settings", &self.settings)
            .field("entries", &self.map.len())
            .finish()
    }
}

/// How many times a waiter re-tries after its leader vanished before asking itself.
const MAX_TAKEOVERS: usize = 3;

impl<R: Resolver> Cached<R> {
    /// Wraps `inner`. `max_entries` below 1 is taken as 1.
    pub fn new(inner: R, mut settings: CacheSettings) -> Self {
        settings.max_entries = settings.max_entries.max(1);
        let map = papaya::HashMap::builder()
            .hasher(NameHasher::random())
            .capacity(settings.max_entries.min(1024))
            .build();
        Cached {
            clock: Mutex::new(Clock::new(settings.max_entries)),
            inner,
            pools: EndpointPools::new(&settings.name),
            settings,
            map,
            flights: Mutex::new(HashMap::new()),
            counters: Default::default(),
        }
    }

    /// The wrapped resolver.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The settings in force.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Counters and size, for metrics.
    pub fn stats(&self) -> CacheStats {
        let mut lookups = [0; 6];
        for (n, c) in lookups.iter_mut().zip(&self.counters) {
            *n = c.load(Ordering::Relaxed);
        }
        CacheStats {
            lookups,
            entries: self.map.len(),
        }
    }

    /// Names currently cached (never more than `max_entries`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The fast path alone: answers from the cache if it can (`hit`, `negative`, and
    /// during an error backoff `stale` or `error`), else `None` without asking anyone.
    /// Lock-free and allocation-free except when returning a remembered error.
    pub fn try_get(&self, name: &str) -> Option<Lookup> {
        let guard = self.map.guard();
        let entry = self.map.get(name, &guard)?;
        let lookup = answer_from(entry, Instant::now())?;
        // Read before write: a hot name's cache line is not dirtied on every hit.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(self.count(lookup))
    }

    /// Resolves `name` through the cache; see the module docs for each outcome.
    ///
    /// The cache is consulted when this is called: a hit returns an already-ready future
    /// (no allocation); only the miss path boxes its future.
    pub fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        match self.try_get(name) {
            Some(hit) => LookupFuture(LookupState::Ready(Some(hit))),
            None => LookupFuture(LookupState::Pending(Box::pin(self.lookup_slow(name)))),
        }
    }

    /// The miss path: single-flight, then the directory.
    async fn lookup_slow(&self, name: &str) -> Lookup {
        for _ in 0..MAX_TAKEOVERS {
            let role = {
                let mut flights = lock(&self.flights);
                // Re-check under the flight lock: a leader stores before it unregisters.
                if let Some(hit) = self.try_get(name) {
                    return hit;
                }
                match flights.get(name) {
                    Some(rx) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let key: Arc<str> = Arc::from(name);
                        flights.insert(key.clone(), rx);
                        Ok((key, tx))
                    }
                }
            };
            let mut rx = match role {
                Ok((key, tx)) => return self.lead(key, tx).await,
                Err(rx) => rx,
            };
            let shared = rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|r| r.clone());
            if let Some(result) = shared {
                return self.count(Lookup {
                    result,
                    answered: Answered::Coalesced,
                });
            }
            // The leader was dropped before answering: try again (maybe as leader).
        }
        let result = self.inner.resolve(name).await;
        let lookup = self.record(name, result);
        self.count(lookup)
    }

    /// Asks the directory as the single leader for `key`, records and shares the result.
    async fn lead(
        &self,
        key: Arc<str>,
        tx: watch::Sender<Option<Result<Resolution, ResolveError>>>,
    ) -> Lookup {
        let mut flight = FlightGuard {
            flights: &self.flights,
            key,
            done: false,
        };
        let result = self.inner.resolve(&flight.key).await;
        let lookup = self.record(&flight.key, result);
        {
            let mut flights = lock(&self.flights);
            flights.remove(&flight.key);
            flight.done = true;
        }
        tx.send_replace(Some(lookup.result.clone()));
        self.count(lookup)
    }

    /// Stores an upstream result and says how it is answered.
    fn record(&self, name: &str, result: Result<Resolution, ResolveError>) -> Lookup {
        let now = Instant::now();
        let s = &self.settings;
        let guard = self.map.guard();
        let old = self.map.get(name, &guard);
        let (entry, lookup) = match result {
            Ok(res) => {
                let unknown = self.pools.is_unknown(&res);
                if let Some(pool) = unknown {
                    tracing::warn!(resolver = %s.name, name, pool, "bad directory answer: no such pool");
                }
                let (ttl, fresh) = match res {
                    Resolution::Found(_) | Resolution::Pool(_) if unknown.is_none() => {
                        (s.ttl, Answered::Hit)
                    }
                    _ => (s.negative_ttl, Answered::Negative),
                };
                let fresh_until = now + ttl;
                let stale_until = match fresh {
                    Answered::Hit => fresh_until + s.stale_ttl,
                    _ => fresh_until,
                };
                let pool = match &res {
                    Resolution::Found(eps) => Some(self.pools.keep(name, eps, old)),
                    _ => None,
                };
                let entry = Entry {
                    good: Some(res.clone()),
                    pool,
                    fresh,
                    fresh_until,
                    stale_until,
                    error: None,
                    slot: 0,
                    referenced: AtomicBool::new(false),
                };
                (
                    Some(entry),
                    Lookup {
                        result: Ok(res),
                        answered: Answered::Miss,
                    },
                )
            }
            Err(err) => {
                let stale = old.and_then(|e| match &e.good {
                    Some(good) if e.fresh == Answered::Hit && now < e.stale_until => {
                        Some(good.clone())
                    }
                    _ => None,
                });
                let lookup = match &stale {
                    Some(found) => Lookup {
                        result: Ok(found.clone()),
                        answered: Answered::Stale,
                    },
                    None => Lookup {
                        result: Err(err.clone()),
                        answered: Answered::Error,
                    },
                };
                let entry = (!s.error_backoff.is_zero()).then(|| Entry {
                    good: old.and_then(|e| e.good.clone()),
                    pool: old.and_then(|e| e.pool.clone()),
                    fresh: old.map_or(Answered::Negative, |e| e.fresh),
                    fresh_until: old.map_or(now, |e| e.fresh_until),
                    stale_until: old.map_or(now, |e| e.stale_until),
                    error: Some((err, now + s.error_backoff)),
                    slot: 0,
                    referenced: AtomicBool::new(false),
                });
                (entry, lookup)
            }
        };
        if let Some(entry) = entry {
            self.store(name, entry, &guard);
        }
        lookup
    }

    /// Inserts or replaces `name`, evicting with CLOCK when full.
    fn store(&self, name: &str, mut entry: Entry, guard: &impl papaya::Guard) {
        let mut clock = lock(&self.clock);
        if let Some(old) = self.map.get(name, guard) {
            entry.slot = old.slot;
            if let Some(key) = clock.key(old.slot) {
                self.map.insert(key, entry, guard);
                return;
            }
        }
        let key: Arc<str> = Arc::from(name);
        let (slot, evicted) = clock.place(key.clone(), |k| {
            self.map
                .get(k, guard)
                .is_some_and(|e| e.referenced.swap(false, Ordering::Relaxed))
        });
        if let Some(victim) = evicted {
            self.map.remove(&victim, guard);
        }
        entry.slot = slot;
        self.map.insert(key, entry, guard);
    }

    fn count(&self, lookup: Lookup) -> Lookup {
        self.counters[lookup.answered as usize].fetch_add(1, Ordering::Relaxed);
        lookup
    }
}

/// The future of [`Cached::lookup`]: ready at once on a hit.
#[must_use = "futures do nothing unless polled"]
pub struct LookupFuture<'a>(LookupState<'a>);

enum LookupState<'a> {
    Ready(Option<Lookup>),
    Pending(BoxFuture<'a, Lookup>),
}

impl std::fmt::Debug for LookupFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            LookupState::Ready(_) => "ready",
            LookupState::Pending(_) => "pending",
        };
        f.debug_tuple("LookupFuture").field(&state).finish()
    }
}

impl Future for LookupFuture<'_> {
    type Output = Lookup;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Lookup> {
        match &mut self.0 {
            LookupState::Ready(hit) => match hit.take() {
                Some(hit) => Poll::Ready(hit),
                // Polled again after completion: a contract breach by the caller.
                None => panic!("LookupFuture polled after completion"),
            },
            LookupState::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// The fast-path answer an entry gives at `now`, if any.
fn answer_from(entry: &Entry, now: Instant) -> Option<Lookup> {
    match &entry.good {
        Some(res) if now < entry.fresh_until => {
            return Some(Lookup {
                result: Ok(res.clone()),
                answered: entry.fresh,
            });
        }
        _ => {}
    }
    let (err, backoff_until) = entry.error.as_ref()?;
    if now >= *backoff_until {
        return None;
    }
    match &entry.good {
        Some(good) if entry.fresh == Answered::Hit && now < entry.stale_until => Some(Lookup {
            result: Ok(good.clone()),
            answered: Answered::Stale,
        }),
        _ => Some(Lookup {
            result: Err(err.clone()),
            answered: Answered::Error,
        }),
    }
}

/// Unregisters a leader's flight if the leader is dropped before it finishes, so
/// waiters see the channel close and take over instead of waiting forever.
struct FlightGuard<'a> {
    flights: &'a Mutex<HashMap<Arc<str>, Flight>>,
    key: Arc<str>,
    done: bool,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(self.flights).remove(&self.key);
        }
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the data
/// consistent at each step, so a panic elsewhere cannot leave it half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Resolver> Resolver for Cached<R> {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        Box::pin(async move { self.lookup(name).await.result })
    }
}
