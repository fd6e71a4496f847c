//! Directory answers as backends: the endpoints of a `Found` answer become a small
//! [`Pool`] kept with the cached entry, so passive health, outlier ejection and
//! `max_conns_per_backend` apply to them as to a configured pool's backends, for as long
//! as the name stays cached. A refreshed answer updates the same pool (endpoints that stay
//! keep their state); a pool-name answer is checked against the config's pools.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Answered, Cached, Entry};
use crate::backend::Backend;
use crate::metrics::PoolStats;
use crate::outlier::OutlierSettings;
use crate::pool::{Change, Pool, PoolSettings};
use crate::resolve::{Resolution, ResolveError, Resolver};
use crate::select::StrategyKind;

/// How a [`Cached`] directory turns its answers into pools.
#[derive(Clone, Debug)]
pub struct EndpointPools {
    /// The settings of every answer's pool. Default: [`EndpointPools::settings`].
    pub settings: PoolSettings,
    /// Counters shared by every endpoint pool of the directory: `lb_retries_total` for
    /// the resolver, and the retries in flight its retry budget bounds.
    pub stats: Arc<PoolStats>,
    /// The pool names a `Pool` answer may name; `None` accepts any. An answer naming
    /// another is logged as a bad answer and cached for `negative_ttl`.
    pub known_pools: Option<Arc<BTreeSet<String>>>,
}

impl EndpointPools {
    /// The defaults for a directory named `name`: [`EndpointPools::settings`], no pool
    /// names checked.
    pub fn new(_name: &str) -> EndpointPools {
        EndpointPools {
            settings: EndpointPools::settings(0),
            stats: Arc::default(),
            known_pools: None,
        }
    }

    /// The pool settings of directory answers: `rendezvous` (the binaries key it by the
    /// client IP, so one client stays on one endpoint and both binaries pick the same),
    /// at most `max_conns_per_backend` requests per endpoint (0 = unlimited), and an
    /// endpoint ejected at its first failure (30 s, growing), so one that refuses
    /// connections is passed over by the next requests while another can serve; a lone
    /// endpoint is never ejected.
    pub fn settings(max_conns_per_backend: u32) -> PoolSettings {
        PoolSettings {
            strategy: StrategyKind::Rendezvous,
            max_conns_per_backend,
            outlier: OutlierSettings {
                consecutive_errors: 1,
                base_ejection: Duration::from_secs(30),
                max_ejected: 0.5,
            },
            ..PoolSettings::default()
        }
    }

    /// The pool name `res` names when the config has no such pool.
    pub(super) fn is_unknown<'r>(&self, res: &'r Resolution) -> Option<&'r str> {
        match (res, &self.known_pools) {
            (Resolution::Pool(p), Some(known)) if !known.contains(&**p) => Some(p),
            _ => None,
        }
    }

    /// A new pool of `eps` for `name`.
    pub(super) fn build(&self, name: &str, eps: &[SocketAddr]) -> Pool {
        let stats = self.stats.clone();
        match Pool::with_stats(name, self.settings.clone(), unique(eps), stats.clone()) {
            Ok(pool) => pool,
            Err(e) => {
                // Distinct addresses (`unique`) make distinct ids, so this does not
                // happen; an empty pool (503) would be the answer if it did.
                tracing::warn!(name, error = %e, "directory answer not usable as a pool");
                #[allow(clippy::expect_used)] // an empty pool has nothing to collide
                Pool::with_stats(name, self.settings.clone(), Vec::new(), stats)
                    .expect("an empty pool always builds")
            }
        }
    }

    /// The pool for a new answer `eps`: the old entry's, updated, when it had one (so
    /// endpoints that stay keep their health), else a new one.
    pub(super) fn keep(&self, name: &str, eps: &[SocketAddr], old: Option<&Entry>) -> Arc<Pool> {
        if let Some(pool) = old.and_then(|e| e.pool.as_ref()) {
            let same = {
                let snap = pool.snapshot();
                let members = snap.members();
                members.len() == eps.len()
                    && members
                        .iter()
                        .zip(eps)
                        .all(|(m, a)| m.backend().addr() == *a)
            };
            if same || pool.apply(Change::Reset(unique(eps))).is_ok() {
                return pool.clone();
            }
        }
        Arc::new(self.build(name, eps))
    }
}

/// The endpoints as backends, each address once, in answer order.
fn unique(eps: &[SocketAddr]) -> Vec<Backend> {
    let mut seen = BTreeSet::new();
    eps.iter()
        .filter(|a| seen.insert(**a))
        .map(|a| Backend::new(*a))
        .collect()
}

impl<R: Resolver> Cached<R> {
    /// Sets how answers become pools ([`lookup_target`](Self::lookup_target)).
    pub fn with_endpoint_pools(mut self, pools: EndpointPools) -> Self {
        self.pools = pools;
        self
    }

    /// How answers become pools.
    pub fn endpoint_pools(&self) -> &EndpointPools {
        &self.pools
    }

    /// Resolves `name` like [`lookup`](Self::lookup), with a `Found` answer's endpoints as
    /// the [`Pool`] kept with the cached entry, so passive health and outlier ejection
    /// apply to them. On a hit: no lock, no allocation.
    pub async fn lookup_target(&self, name: &str) -> Directed {
        let lookup = self.lookup(name).await;
        let answer = match lookup.result {
            Ok(Resolution::Found(eps)) => Ok(Answer::Endpoints(self.endpoint_pool(name, &eps))),
            Ok(Resolution::Pool(p)) => Ok(Answer::Pool(p)),
            Ok(_) => Ok(Answer::NotFound),
            Err(e) => Err(e),
        };
        Directed {
            answer,
            answered: lookup.answered,
        }
    }

    /// Routes `name` by [`lookup_target`](Self::lookup_target)'s answer, for a binary
    /// whose config pools `pool` finds by name: the directory's endpoints or the pool it
    /// named. A pool name the config does not have is a bad answer
    /// ([`Unrouted::Unavailable`], logged at debug here, and by the cache when it
    /// arrived); a failed lookup is logged at warn. Each binary maps [`Unrouted`] to its
    /// protocol.
    pub async fn route<'p, P: ?Sized + 'p>(
        &self,
        name: &str,
        pool: impl FnOnce(&str) -> Option<&'p P>,
    ) -> Result<Routing<'p, P>, Unrouted> {
        let resolver = &self.settings().name;
        match self.lookup_target(name).await.answer {
            Ok(Answer::Endpoints(endpoints)) => Ok(Routing::Endpoints(endpoints)),
            Ok(Answer::Pool(named)) => match pool(&named) {
                Some(p) => Ok(Routing::Pool(p)),
                None => {
                    tracing::debug!(%resolver, name, pool = %named, "directory named an unknown pool");
                    Err(Unrouted::Unavailable)
                }
            },
            Ok(_) => Err(Unrouted::UnknownHost),
            Err(e) => {
                tracing::warn!(%resolver, name, error = %e, "directory lookup failed");
                Err(Unrouted::Unavailable)
            }
        }
    }

    /// The pool kept with `name`'s entry when it holds these endpoints; else (the entry
    /// was evicted or replaced meanwhile) a pool for this request alone.
    fn endpoint_pool(&self, name: &str, eps: &Arc<[SocketAddr]>) -> Arc<Pool> {
        let guard = self.map.guard();
        if let Some(Entry {
            good: Some(Resolution::Found(have)),
            pool: Some(pool),
            ..
        }) = self.map.get(name, &guard)
        {
            if Arc::ptr_eq(have, eps) {
                return pool.clone();
            }
        }
        Arc::new(self.pools.build(name, eps))
    }
}

/// What a directory's answer routes to ([`Cached::lookup_target`](super::Cached::lookup_target)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Answer {
    /// The answer's endpoints, as the pool kept with the cached entry.
    Endpoints(Arc<Pool>),
    /// A pool of the config, by name (it may not exist: then it is a bad answer).
    Pool(Arc<str>),
    /// The directory knows the name does not exist.
    NotFound,
}

/// The answer to [`Cached::lookup_target`](super::Cached::lookup_target): where to route
/// and how the lookup was answered.
#[derive(Clone, Debug)]
pub struct Directed {
    /// Where the name goes, or why the directory could not say.
    pub answer: Result<Answer, ResolveError>,
    /// Where the answer came from.
    pub answered: Answered,
}

/// Where [`Cached::route`] sends a name.
#[derive(Debug)]
pub enum Routing<'p, P: ?Sized> {
    /// The config's pool the directory named.
    Pool(&'p P),
    /// The directory's endpoints, as the pool kept with the cached entry.
    Endpoints(Arc<Pool>),
}

/// Why [`Cached::route`] found no route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrouted {
    /// The directory knows the name does not exist (`unknown-host`).
    UnknownHost,
    /// The lookup failed, or the answer named a pool the config does not have
    /// (`directory-unavailable`).
    Unavailable,
}

impl Unrouted {
    /// The [`Reason`](crate::metrics::Reason) it is counted and answered as.
    pub fn reason(self) -> crate::metrics::Reason {
        match self {
            Unrouted::UnknownHost => crate::metrics::Reason::UnknownHost,
            Unrouted::Unavailable => crate::metrics::Reason::DirectoryUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Reason;
    use crate::outlier::Outcome;
    use crate::resolve::{CacheSettings, Cached, StaticResolver};

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn directory() -> Cached<StaticResolver> {
        let r = StaticResolver::from_answers([
            (
                "two.test".to_owned(),
                Resolution::Found(Arc::from(vec![sa("127.0.0.1:1"), sa("127.0.0.1:2")])),
            ),
            ("pod.test".to_owned(), Resolution::Pool(Arc::from("pod0"))),
            ("nope.test".to_owned(), Resolution::Pool(Arc::from("pod9"))),
        ]);
        let known = ["pod0".to_owned()].into_iter().collect();
        Cached::new(r, CacheSettings::named("dir")).with_endpoint_pools(EndpointPools {
            known_pools: Some(Arc::new(known)),
            ..EndpointPools::new("dir")
        })
    }

    #[tokio::test]
    async fn an_answers_pool_and_its_health_live_with_the_entry() {
        let d = directory();
        let first = match d.lookup_target("two.test").await.answer {
            Ok(Answer::Endpoints(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.snapshot().members().len(), 2);
        assert_eq!(first.settings().strategy, StrategyKind::Rendezvous);
        // A failure ejects the endpoint at once (one of two may be ejected).
        let snap = first.snapshot();
        let lease = snap.select(b"client").next().expect("a lease");
        let failed = lease.addr();
        lease.report(Outcome::Failure);
        drop(lease);
        let again = match d.lookup_target("two.test").await.answer {
            Ok(Answer::Endpoints(p)) => p,
            other => panic!("{other:?}"),
        };
        assert!(
            Arc::ptr_eq(&first, &again),
            "the cached entry keeps its pool"
        );
        for _ in 0..10 {
            let l = again.snapshot().select(b"client").next().expect("a lease");
            assert_ne!(l.addr(), failed, "the failed endpoint is passed over");
        }
    }

    #[tokio::test]
    async fn pool_names_are_checked_and_unknown_ones_cached_as_negative() {
        let d = directory();
        let known = d.lookup_target("pod.test").await;
        assert!(matches!(known.answer, Ok(Answer::Pool(ref p)) if &**p == "pod0"));
        assert_eq!(d.lookup_target("pod.test").await.answered, Answered::Hit);
        let unknown = d.lookup_target("nope.test").await;
        assert!(matches!(unknown.answer, Ok(Answer::Pool(ref p)) if &**p == "pod9"));
        assert_eq!(
            d.lookup_target("nope.test").await.answered,
            Answered::Negative
        );
    }

    #[tokio::test]
    async fn route_gives_a_pool_endpoints_or_why_not() {
        let d = directory();
        let pools: std::collections::BTreeMap<String, u32> = [("pod0".to_owned(), 7)].into();
        let pool = |n: &str| pools.get(n);
        match d.route("two.test", pool).await {
            Ok(Routing::Endpoints(p)) => assert_eq!(p.snapshot().members().len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            d.route("pod.test", pool).await,
            Ok(Routing::Pool(&7))
        ));
        let unknown_pool = d.route("nope.test", pool).await;
        assert!(matches!(unknown_pool, Err(Unrouted::Unavailable)));
        let not_found = d.route("none.test", pool).await;
        assert!(matches!(not_found, Err(Unrouted::UnknownHost)));
        assert_eq!(Unrouted::UnknownHost.reason(), Reason::UnknownHost);
        assert_eq!(Unrouted::Unavailable.reason(), Reason::DirectoryUnavailable);
    }

    #[test]
    fn a_refreshed_answer_updates_the_same_pool() {
        let pools = EndpointPools::new("d");
        let p = Arc::new(pools.build("n", &[sa("127.0.0.1:1"), sa("127.0.0.1:2")]));
        let state = p.snapshot().members()[1].state().clone();
        let old = Entry {
            good: None,
            pool: Some(p.clone()),
            fresh: Answered::Hit,
            fresh_until: tokio::time::Instant::now(),
            stale_until: tokio::time::Instant::now(),
            error: None,
            slot: 0,
            referenced: std::sync::atomic::AtomicBool::new(false),
        };
        let kept = pools.keep("n", &[sa("127.0.0.1:2"), sa("127.0.0.1:3")], Some(&old));
        assert!(Arc::ptr_eq(&kept, &p));
        let snap = kept.snapshot();
        let two = snap.member(sa("127.0.0.1:2")).expect("stays");
        assert!(Arc::ptr_eq(two.state(), &state), "its state survives");
        assert_eq!(snap.members().len(), 2);
    }
}
