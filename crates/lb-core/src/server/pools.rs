//! Pools as both binaries run them: built from the config, with their membership source
//! and health monitor, and carried across reloads so live state survives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Discovery, PoolConfig};
use crate::discovery::{self, PoolHandle, Source, StaticSource};
use crate::forward::RetryPolicy;
use crate::health::{checker_for, HealthMonitor};
use crate::{Change, Pool};

/// A configured pool, running: the pool and its source, the config it was built from, and
/// its active health checks (stopped when this is dropped).
#[derive(Debug)]
pub struct RunningPool {
    /// The pool and where its membership comes from.
    pub handle: PoolHandle,
    /// The `[pool.NAME]` section it was built from.
    pub config: PoolConfig,
    /// Its `retries`, `retry_on` and `retry_budget`, as [`Attempts`](crate::forward::Attempts) take them.
    pub retry: RetryPolicy,
    monitor: Option<HealthMonitor>,
}

impl RunningPool {
    /// The pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.handle.pool
    }

    /// The health monitor, when the pool has active checks.
    pub fn monitor(&self) -> Option<&HealthMonitor> {
        self.monitor.as_ref()
    }
}

/// Why a pool could not be started from a valid config.
#[derive(Debug, thiserror::Error)]
#[error("pool.{pool}: {reason}")]
pub struct PoolBuildError {
    /// The pool's name.
    pub pool: String,
    /// What went wrong.
    pub reason: String,
}

/// Every pool of `config`, running. Must run inside a tokio runtime.
///
/// Across a reload (`previous` holds the running pools):
/// - a pool with the same name and [`PoolSettings`](crate::PoolSettings) is kept, so
///   health, active counts and ejections survive; a static pool's membership is reset to
///   the file's `backends`;
/// - a pool with `discovery` is never reset to the file: it keeps its running source
///   while the discovery settings stay the same, and gets a new source (and keeps its
///   members until that source's first sync) when they change;
/// - anything else is built new. Health monitors start afresh (keeping each member's
///   current health).
///
/// New sources run from here; replaced ones run until [`retire_sources`] stops them, so
/// a reload that fails later leaves the running ones untouched.
pub fn build_pools(
    config: &Config,
    previous: &BTreeMap<&str, &RunningPool>,
) -> Result<BTreeMap<String, Arc<RunningPool>>, PoolBuildError> {
    let mut pools = BTreeMap::new();
    for (name, pc) in &config.pools {
        let err = |reason: String| PoolBuildError {
            pool: name.clone(),
            reason,
        };
        let before = previous.get(name.as_str()).copied();
        let reuse = before.filter(|old| old.config.pool_settings() == pc.pool_settings());
        let same_source = before.filter(|old| {
            pc.discovery != Discovery::Static && old.config.discovery == pc.discovery
        });
        let start = |pool: &Arc<Pool>| {
            discovery::start(pool.clone(), &pc.discovery).map_err(|e| err(e.to_string()))
        };
        let (pool, source): (Arc<Pool>, Arc<dyn Source>) = match (reuse, same_source) {
            (Some(old), Some(_)) => (old.handle.pool.clone(), old.handle.source.clone()),
            (Some(old), None) => {
                let pool = old.handle.pool.clone();
                let source = if pc.discovery == Discovery::Static {
                    pool.apply(Change::Reset(pc.backends()))
                        .map_err(|e| err(e.to_string()))?;
                    Arc::new(StaticSource)
                } else {
                    start(&pool)?
                };
                (pool, source)
            }
            (None, _) => {
                // New settings on a discovered pool: start from its current members
                // rather than empty while the new source makes its first sync.
                let initial = match same_source {
                    Some(old) => old
                        .handle
                        .pool
                        .snapshot()
                        .members()
                        .iter()
                        .map(|m| m.backend().clone())
                        .collect(),
                    None => pc.backends(),
                };
                let pool = Arc::new(
                    Pool::new(name.clone(), pc.pool_settings(), initial)
                        .map_err(|e| err(e.to_string()))?,
                );
                let source = start(&pool)?;
                (pool, source)
            }
        };
        let health = pc.health_settings();
        let monitor = checker_for(&health)
            .map_err(|e| err(format!("health: {e}")))?
            .map(|checker| {
                HealthMonitor::spawn(pool.clone(), health, checker, std::future::pending::<()>())
            });
        pools.insert(
            name.clone(),
            Arc::new(RunningPool {
                handle: PoolHandle { pool, source },
                config: pc.clone(),
                retry: pc.retry_policy(),
                monitor,
            }),
        );
    }
    Ok(pools)
}

fn same_source(a: &Arc<dyn Source>, b: &Arc<dyn Source>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Stops the sources of `old` (the pools being replaced) that `new` does not keep, so a
/// replaced source never races its successor on a shared pool. Call it once the reload
/// can no longer fail.
pub fn retire_sources(old: &BTreeMap<&str, &RunningPool>, new: &BTreeMap<&str, &RunningPool>) {
    for (name, o) in old {
        let kept = new
            .get(name)
            .is_some_and(|n| same_source(&n.handle.source, &o.handle.source));
        if !kept {
            o.handle.source.stop();
        }
    }
}

/// Waits (at most `within`) for every pool's source to make its first sync, so a starting
/// or reloading binary does not serve a discovered pool empty. Sources still waiting are
/// logged and keep trying in the background.
pub async fn discovery_ready(pools: &BTreeMap<&str, &RunningPool>, within: Duration) {
    let sources: Vec<Arc<dyn Source>> = pools.values().map(|p| p.handle.source.clone()).collect();
    let late = discovery::wait_ready(sources, within).await;
    for (name, p) in pools {
        if late.iter().any(|l| same_source(l, &p.handle.source)) {
            tracing::warn!(
                pool = %name,
                source = p.handle.source.kind().as_str(),
                "no discovery sync yet; serving the pool's current membership meanwhile"
            );
        }
    }
}
