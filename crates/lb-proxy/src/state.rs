//! The running configuration: routes, pools and directories built from a [`Config`], and
//! swapped whole on reload.
//!
//! Pools are kept across reloads when they stay in the file, so live state (health, active
//! counts, ejections) survives; their static membership is reset to the file's list. Pools
//! with `discovery` keep following their source (restarted only when the discovery
//! settings change) and are never reset to the file's `backends`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use lb_core::config::{
    Config, Directory, Discovery, KeySpec, PoolConfig, RetryBudget, RouteTarget,
};
use lb_core::discovery::{PoolHandle, Source, StaticSource};
use lb_core::health::{checker_for, HealthMonitor};
use lb_core::metrics::ReasonCounters;
use lb_core::name::HostPattern;
use lb_core::{Change, Pool};

use crate::upstream::{spawn_sweeper, Upstreams};

/// A pool as the proxy runs it.
pub struct PoolTarget {
    /// Pool and membership source.
    pub handle: PoolHandle,
    /// The pool's config (key, retries, timeouts).
    pub config: PoolConfig,
    /// Pooled connections to its backends.
    pub upstreams: Arc<Upstreams>,
    /// Retries in flight (retry budget).
    pub retries_in_flight: AtomicU64,
    /// The health monitor, stopped when dropped.
    pub monitor: Option<HealthMonitor>,
}

impl PoolTarget {
    /// The key spec.
    pub fn key(&self) -> &KeySpec {
        &self.config.key
    }
    /// The retry budget.
    pub fn budget(&self) -> RetryBudget {
        self.config.retry_budget
    }
}

/// A directory as the proxy runs it.
pub struct DirectoryTarget {
    /// The resolver's name.
    pub name: String,
    /// The cached directory.
    pub cache: Arc<Directory>,
    /// Pooled connections to the endpoints it names.
    pub upstreams: Arc<Upstreams>,
}

/// Where a route sends requests.
#[derive(Clone)]
pub enum Target {
    /// A configured pool.
    Pool(Arc<PoolTarget>),
    /// A directory lookup of the host.
    Directory(Arc<DirectoryTarget>),
}

/// One `[[route]]`.
pub struct Route {
    /// Host pattern.
    pub host: HostPattern,
    /// Path prefix, if any.
    pub path_prefix: Option<String>,
    /// Strip the prefix before forwarding.
    pub strip_prefix: bool,
    /// Target.
    pub target: Target,
    /// Request headers to set.
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// Request headers to remove.
    pub remove_headers: Vec<HeaderName>,
}

/// Everything a request needs, for one config generation.
pub struct Runtime {
    /// Routes in order; the first match wins.
    pub routes: Vec<Route>,
    /// Pools by name.
    pub pools: BTreeMap<String, Arc<PoolTarget>>,
    /// Directories by name.
    pub directories: BTreeMap<String, Arc<DirectoryTarget>>,
    /// Errors by reason (shared across generations).
    pub errors: Arc<ReasonCounters>,
}

/// Why a runtime could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A pool could not be created or updated.
    #[error("pool.{pool}: {reason}")]
    Pool {
        /// Pool name.
        pool: String,
        /// Why.
        reason: String,
    },
    /// A resolver could not be built.
    #[error(transparent)]
    Resolver(#[from] lb_core::config::BuildError),
    /// A header in set_headers/remove_headers.
    #[error("route[{route}]: bad header {name:?}")]
    Header {
        /// Route index.
        route: usize,
        /// Header name.
        name: String,
    },
}

const DIRECTORY_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DIRECTORY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Runtime {
    /// Builds a runtime; `previous` lends its pools so live state survives a reload.
    /// Must run inside a tokio runtime (health monitors and sweepers are spawned).
    pub fn build(
        config: &Config,
        previous: Option<&Runtime>,
        errors: Arc<ReasonCounters>,
    ) -> Result<Runtime, BuildError> {
        let mut pools = BTreeMap::new();
        for (name, pc) in &config.pools {
            let perr = |reason: String| BuildError::Pool {
                pool: name.clone(),
                reason,
            };
            let before = previous.and_then(|p| p.pools.get(name));
            let reuse = before.filter(|old| old.config.pool_settings() == pc.pool_settings());
            // The same discovery as before: keep following the running source.
            let same_source = before.filter(|old| {
                pc.discovery != Discovery::Static && old.config.discovery == pc.discovery
            });
            let start = |pool: &Arc<Pool>| {
                lb_core::discovery::start(pool.clone(), &pc.discovery)
                    .map_err(|e| perr(e.to_string()))
            };
            let (pool, source): (Arc<Pool>, Arc<dyn Source>) = match (reuse, same_source) {
                (Some(old), Some(_)) => (old.handle.pool.clone(), old.handle.source.clone()),
                (Some(old), None) => {
                    let pool = old.handle.pool.clone();
                    let source = if pc.discovery == Discovery::Static {
                        pool.apply(Change::Reset(pc.backends()))
                            .map_err(|e| perr(e.to_string()))?;
                        Arc::new(StaticSource)
                    } else {
                        start(&pool)?
                    };
                    (pool, source)
                }
                (None, _) => {
                    // New settings on a discovered pool: start from its current membership
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
                            .map_err(|e| perr(e.to_string()))?,
                    );
                    let source = start(&pool)?;
                    (pool, source)
                }
            };
            let health = pc.health_settings();
            let monitor = checker_for(&health)
                .map_err(|e| perr(format!("health: {e}")))?
                .map(|checker| {
                    HealthMonitor::spawn(
                        pool.clone(),
                        health,
                        checker,
                        std::future::pending::<()>(),
                    )
                });
            let upstreams = Upstreams::new(pc.connect_timeout, pc.idle_timeout);
            spawn_sweeper(&upstreams);
            pools.insert(
                name.clone(),
                Arc::new(PoolTarget {
                    handle: PoolHandle { pool, source },
                    config: pc.clone(),
                    upstreams,
                    retries_in_flight: AtomicU64::new(0),
                    monitor,
                }),
            );
        }
        let mut directories = BTreeMap::new();
        for (name, rc) in &config.resolvers {
            let upstreams = Upstreams::new(DIRECTORY_CONNECT_TIMEOUT, DIRECTORY_IDLE_TIMEOUT);
            spawn_sweeper(&upstreams);
            directories.insert(
                name.clone(),
                Arc::new(DirectoryTarget {
                    name: name.clone(),
                    cache: rc.build()?,
                    upstreams,
                }),
            );
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, rc) in config.routes.iter().enumerate() {
            // Validation guarantees every route names a defined pool or resolver.
            let target = match &rc.target {
                RouteTarget::Pool(p) => pools.get(p).cloned().map(Target::Pool),
                RouteTarget::Resolver(r) => directories.get(r).cloned().map(Target::Directory),
            };
            let Some(target) = target else { continue };
            let bad = |name: &str| BuildError::Header {
                route: i,
                name: name.to_owned(),
            };
            let mut set_headers = Vec::new();
            for (k, v) in &rc.set_headers {
                let n = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad(k))?;
                let v = HeaderValue::from_str(v).map_err(|_| bad(k))?;
                set_headers.push((n, v));
            }
            let mut remove_headers = Vec::new();
            for k in &rc.remove_headers {
                remove_headers.push(HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad(k))?);
            }
            routes.push(Route {
                host: rc.host.clone(),
                path_prefix: rc.path_prefix.clone(),
                strip_prefix: rc.strip_prefix,
                target,
                set_headers,
                remove_headers,
            });
        }
        Ok(Runtime {
            routes,
            pools,
            directories,
            errors,
        })
    }

    /// Stops the discovery sources of `self` (the runtime just replaced) that `new` does not
    /// keep, so a replaced source never races its successor.
    pub fn retire_sources(&self, new: &Runtime) {
        for (name, old) in &self.pools {
            let kept = new.pools.get(name).is_some_and(|n| {
                std::ptr::addr_eq(
                    Arc::as_ptr(&n.handle.source),
                    Arc::as_ptr(&old.handle.source),
                )
            });
            if !kept {
                old.handle.source.stop();
            }
        }
    }

    /// Waits (at most `within`) for every pool's discovery source to make its first sync,
    /// so a starting or reloading proxy does not serve a discovered pool empty. Sources
    /// still waiting are logged and keep trying in the background.
    pub async fn discovery_ready(&self, within: Duration) {
        let late = lb_core::discovery::wait_ready(
            self.pools.values().map(|p| p.handle.source.clone()),
            within,
        )
        .await;
        for (name, p) in &self.pools {
            if late
                .iter()
                .any(|l| std::ptr::addr_eq(Arc::as_ptr(l), Arc::as_ptr(&p.handle.source)))
            {
                tracing::warn!(pool = %name, source = p.handle.source.kind().as_str(), "no discovery sync yet; serving the pool's current membership meanwhile");
            }
        }
    }

    /// The first route matching a normalised host and a path.
    #[inline]
    pub fn route(&self, host: &str, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| {
            r.host.matches(host) && r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
        })
    }

    /// The admin view of this runtime.
    pub fn admin_view(&self, token: Option<String>) -> lb_core::admin::AdminView {
        lb_core::admin::AdminView {
            pools: self
                .pools
                .iter()
                .map(|(n, p)| (n.clone(), p.handle.clone()))
                .collect(),
            token,
        }
    }
}
