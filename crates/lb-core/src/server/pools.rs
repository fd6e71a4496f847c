//! Pools as both binaries run them: built from the config, with their membership source
//! and health monitor, and carried across reloads so live state survives.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, PoolConfig};
use crate::discovery::{PoolHandle, StaticSource};
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

/// Every pool of `config`, running. A pool of `previous` with the same name and the same
/// [`PoolSettings`](crate::PoolSettings) is kept (so health, active counts and ejections
/// survive a reload) and its static membership is reset to the file's list; any other
/// pool is built new. Health monitors are started afresh (they keep each member's current
/// health). Must run inside a tokio runtime.
pub fn build_pools(
    config: &Config,
    previous: &BTreeMap<String, Arc<RunningPool>>,
) -> Result<BTreeMap<String, Arc<RunningPool>>, PoolBuildError> {
    let mut pools = BTreeMap::new();
    for (name, pc) in &config.pools {
        let err = |reason: String| PoolBuildError {
            pool: name.clone(),
            reason,
        };
        let reuse = previous
            .get(name)
            .filter(|old| old.config.pool_settings() == pc.pool_settings());
        let pool = match reuse {
            Some(old) => {
                let pool = old.handle.pool.clone();
                pool.apply(Change::Reset(pc.backends()))
                    .map_err(|e| err(e.to_string()))?;
                pool
            }
            None => Arc::new(
                Pool::new(name.clone(), pc.pool_settings(), pc.backends())
                    .map_err(|e| err(e.to_string()))?,
            ),
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
                handle: PoolHandle {
                    pool,
                    source: Arc::new(StaticSource),
                },
                config: pc.clone(),
                monitor,
            }),
        );
    }
    Ok(pools)
}
