//! The running configuration: routes, pools and directories built from a [`Config`], and
//! swapped whole on reload.
//!
//! Pools are kept across reloads when they stay in the file, so live state (health, active
//! counts, ejections) survives; their static membership is reset to the file's list.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use lb_core::admin::{AdminView, RouteView};
use lb_core::certs::CertError;
use lb_core::config::{Config, Directory, KeySpec, RateLimitConfig, RouteTarget};
use lb_core::forward::RetryPolicy;
use lb_core::metrics::ReasonCounters;
use lb_core::name::HostPattern;
use lb_core::server::{build_pools, Generation, PoolBuildError, RunningPool};
use tokio_rustls::TlsAcceptor;

use crate::limit::{label, RateLimit};
use crate::tunnel::TunnelStats;
use crate::upstream::{spawn_sweeper, Upstreams, UpstreamsError};

/// A pool as the proxy runs it: lb-core's [`RunningPool`] (pool, source, config, health
/// monitor; reachable through `Deref`) plus the proxy's upstream connections.
pub struct PoolTarget {
    /// The pool, its source, config and health monitor.
    pub running: Arc<RunningPool>,
    /// Pooled connections to its backends.
    pub upstreams: Arc<Upstreams>,
}

impl std::ops::Deref for PoolTarget {
    type Target = RunningPool;
    fn deref(&self) -> &RunningPool {
        &self.running
    }
}

impl PoolTarget {
    /// The key spec.
    pub fn key(&self) -> &KeySpec {
        &self.config.key
    }
}

/// A directory as the proxy runs it.
pub struct DirectoryTarget {
    /// The resolver's name.
    pub name: String,
    /// The cached directory.
    pub cache: Arc<Directory>,
    /// Pooled connections to the endpoints it names (`connect_timeout`, `idle_timeout`).
    pub upstreams: Arc<Upstreams>,
    /// `retries` towards its endpoints.
    pub retry: RetryPolicy,
    /// An endpoint's response head within this, else 504.
    pub response_timeout: Duration,
    /// Idle time of a response body (and of pooled connections).
    pub idle_timeout: Duration,
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
    /// The route's rate limit, if any.
    pub rate_limit: Option<Arc<RateLimit>>,
}

impl Route {
    /// Whether `path` is under the route's `path_prefix` by whole segments, as a
    /// Kubernetes Ingress `Prefix` matches: `/api` matches `/api`, `/api/` and `/api/v1`,
    /// never `/apiary`. A trailing `/` of the prefix is ignored (`/api/` is `/api`, and `/`
    /// matches every path). No prefix matches everything.
    pub fn matches_path(&self, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|p| under_prefix(p, path).is_some())
    }
}

/// What follows `prefix` in `target` (a path, with its query or not) when the path is
/// under it by whole segments (see [`Route::matches_path`]): empty, or starting with `/`
/// or `?`.
pub(crate) fn under_prefix<'a>(prefix: &str, target: &'a str) -> Option<&'a str> {
    let rest = target.strip_prefix(prefix.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with(['/', '?'])).then_some(rest)
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
    /// TLS of the terminating listeners, by configured address: certificates are read
    /// when a generation is built, so a reload picks up renewed files.
    pub tls: BTreeMap<SocketAddr, TlsAcceptor>,
    /// Upgraded connections (shared across generations).
    pub tunnels: Arc<TunnelStats>,
    /// True when some pool sends the PROXY protocol: client connections accepted then get
    /// a [`ClientSlot`](crate::upstream::ClientSlot) for their own upstream connections.
    pub proxy_protocol: bool,
    /// The access log (`[log]`); `None` when off. Kept across reloads that do not change it.
    pub access: Option<lb_core::server::AccessLog>,
}

/// Why a runtime could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A pool could not be created or updated.
    #[error(transparent)]
    Pool(#[from] PoolBuildError),
    /// A pool's upstream TLS settings could not be loaded (the CA file).
    #[error(transparent)]
    Upstreams(#[from] UpstreamsError),
    /// A resolver could not be built.
    #[error(transparent)]
    Resolver(#[from] lb_core::config::BuildError),
    /// A listener's certificates could not be loaded.
    #[error("listener {listen}: {source}")]
    Tls {
        /// The listener.
        listen: SocketAddr,
        /// What is wrong with which file.
        source: CertError,
    },
    /// A header in set_headers/remove_headers.
    #[error("route[{route}]: bad header {name:?}")]
    Header {
        /// Route index.
        route: usize,
        /// Header name.
        name: String,
    },
    /// The access log could not be opened.
    #[error(transparent)]
    AccessLog(#[from] lb_core::server::AccessLogError),
}

impl Runtime {
    /// Builds a runtime; `previous` lends its pools so live state survives a reload.
    /// Must run inside a tokio runtime (health monitors and sweepers are spawned).
    /// Long (about 90 lines): one pass over the config's sections, in the order they
    /// depend on each other (pools, resolvers, routes, listeners' TLS).
    pub fn build(
        config: &Config,
        previous: Option<&Runtime>,
        errors: Arc<ReasonCounters>,
    ) -> Result<Runtime, BuildError> {
        let access = lb_core::server::access::for_generation(
            &config.log,
            previous.and_then(|p| p.access.as_ref()),
        )?;
        let previous_pools = previous.map(Generation::pools).unwrap_or_default();
        let mut pools = BTreeMap::new();
        for (name, running) in build_pools(config, &previous_pools)? {
            let upstreams = Upstreams::for_pool(&running.config)?;
            spawn_sweeper(&upstreams);
            pools.insert(name, Arc::new(PoolTarget { running, upstreams }));
        }
        let mut directories = BTreeMap::new();
        for (name, rc) in &config.resolvers {
            let upstreams = Upstreams::new(rc.connect_timeout, rc.idle_timeout);
            spawn_sweeper(&upstreams);
            directories.insert(
                name.clone(),
                Arc::new(DirectoryTarget {
                    name: name.clone(),
                    cache: rc.build_for(config)?,
                    upstreams,
                    retry: rc.retry_policy(),
                    response_timeout: rc.response_timeout,
                    idle_timeout: rc.idle_timeout,
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
            let rate_limit = rc
                .rate_limit
                .as_ref()
                .map(|c| rate_limit(c, label(&rc.host, rc.path_prefix.as_deref()), previous));
            routes.push(Route {
                rate_limit,
                host: rc.host.clone(),
                path_prefix: rc.path_prefix.clone(),
                strip_prefix: rc.strip_prefix,
                target,
                set_headers,
                remove_headers,
            });
        }
        let mut tls = BTreeMap::new();
        for l in &config.listeners {
            if let Some(files) = &l.tls {
                let server =
                    lb_core::certs::server_config(files).map_err(|source| BuildError::Tls {
                        listen: l.listen,
                        source,
                    })?;
                tls.insert(l.listen, TlsAcceptor::from(server));
            }
        }
        let proxy_protocol = pools.values().any(|p| p.upstreams.proxy_protocol());
        Ok(Runtime {
            routes,
            pools,
            directories,
            errors,
            tls,
            tunnels: previous.map_or_else(Arc::default, |p| p.tunnels.clone()),
            proxy_protocol,
            access,
        })
    }

    /// The first route matching a normalised host and a path.
    #[inline]
    pub fn route(&self, host: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.host.matches(host) && r.matches_path(path))
    }
}

/// A route's limit: the previous generation's when a route with the same label had the
/// same settings (its keys' state survives a reload), else a new one that keeps counting
/// on the previous counter of that label.
fn rate_limit(
    config: &RateLimitConfig,
    label: String,
    previous: Option<&Runtime>,
) -> Arc<RateLimit> {
    let old = previous
        .into_iter()
        .flat_map(|p| &p.routes)
        .filter_map(|r| r.rate_limit.as_ref())
        .find(|l| l.label() == label);
    match old {
        Some(l) if l.config() == config => l.clone(),
        Some(l) => Arc::new(RateLimit::new(config.clone(), label, l.counter())),
        None => Arc::new(RateLimit::new(config.clone(), label, Arc::default())),
    }
}

impl Generation for Runtime {
    type Error = BuildError;

    fn build(config: &Config, previous: Option<&Runtime>) -> Result<Runtime, BuildError> {
        // Error counters carry over from generation to generation.
        let errors = previous.map_or_else(Arc::default, |p| p.errors.clone());
        Runtime::build(config, previous, errors)
    }

    fn access_log(&self) -> Option<&lb_core::server::AccessLog> {
        self.access.as_ref()
    }

    fn pools(&self) -> BTreeMap<&str, &RunningPool> {
        self.pools
            .iter()
            .map(|(n, p)| (n.as_str(), &*p.running))
            .collect()
    }

    fn admin_view(&self, token: Option<String>) -> AdminView {
        let pools = self.pools.iter().map(|(n, p)| (n.as_str(), &p.handle));
        let directories = self.directories.iter().map(|(n, d)| (n.as_str(), &d.cache));
        let mut view = AdminView::from_pools(pools, token).with_directories(directories);
        view.routes = self
            .routes
            .iter()
            .map(|r| RouteView {
                name: label(&r.host, r.path_prefix.as_deref()),
                target: match &r.target {
                    Target::Pool(p) => format!("pool:{}", p.handle.pool.name()),
                    Target::Directory(d) => format!("resolver:{}", d.name),
                },
                counters: r
                    .rate_limit
                    .iter()
                    .map(|l| ("rate_limited", l.counter()))
                    .collect(),
            })
            .collect();
        view
    }
}

#[cfg(test)]
impl Runtime {
    /// A runtime with one pool of one (unreachable) backend and a catch-all route, for
    /// unit tests; must run inside a tokio runtime.
    pub(crate) fn for_tests() -> Runtime {
        let text = "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
                    [pool.p]\nbackends = [\"127.0.0.1:1\"]\n[[route]]\npool = \"p\"\n";
        let config = lb_core::config::Config::parse(
            text,
            std::path::Path::new("t.toml"),
            lb_core::config::Binary::Proxy,
        )
        .expect("a valid test config");
        Runtime::build(&config, None, Arc::default()).expect("a test runtime")
    }
}

#[cfg(test)]
mod tests {
    use super::under_prefix;

    #[test]
    fn prefixes_match_whole_segments() {
        for (prefix, target, rest) in [
            ("/api", "/api", Some("")),
            ("/api", "/api/", Some("/")),
            ("/api", "/api/v1?x=1", Some("/v1?x=1")),
            ("/api", "/api?x=1", Some("?x=1")),
            ("/api/", "/api", Some("")),
            ("/api/", "/api/v1", Some("/v1")),
            ("/", "/anything", Some("/anything")),
            ("/api", "/apiary", None),
            ("/api", "/ap", None),
            ("/api", "/API", None),
        ] {
            assert_eq!(under_prefix(prefix, target), rest, "{prefix} {target}");
        }
    }
}
