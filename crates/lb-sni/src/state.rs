//! The running configuration of lb-sni: routes, pools and directories, swapped whole on
//! reload. Pools come from lb-core's [`build_pools`], the same code lb-proxy runs, so
//! health checks, live state across reloads and membership sources behave the same.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use lb_core::admin::{AdminView, RouteView};
use lb_core::config::{Config, Directory, RouteTarget};
use lb_core::forward::RetryPolicy;
use lb_core::name::HostPattern;
use lb_core::server::{build_pools, Generation, PoolBuildError, RunningPool};

use crate::metrics::SniMetrics;

/// Where a route sends connections.
#[derive(Clone)]
pub enum Target {
    /// A configured pool.
    Pool(Arc<RunningPool>),
    /// A directory lookup of the name.
    Directory(Arc<DirectoryTarget>),
}

/// A directory as lb-sni runs it.
pub struct DirectoryTarget {
    /// The resolver's name (for logs and metrics).
    pub name: Arc<str>,
    /// The cached directory; its answers' endpoints are kept as pools.
    pub cache: Arc<Directory>,
    /// `retries` towards its endpoints.
    pub retry: RetryPolicy,
    /// Connect timeout towards its endpoints.
    pub connect_timeout: Duration,
}

impl Target {
    /// The pool's or resolver's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Pool(p) => p.pool().name(),
            Target::Directory(d) => &d.name,
        }
    }
}

/// One `[[route]]`.
pub struct Route {
    /// Host pattern on the SNI / Host.
    pub host: HostPattern,
    /// ALPN protocols of which the hello must offer one; empty = any.
    pub alpn: Vec<Vec<u8>>,
    /// Where matching connections go.
    pub target: Target,
    /// Connections routed here (`lb_route_connections_total`; shared with the stats page).
    pub connections: Arc<AtomicU64>,
}

impl Route {
    /// True when this route takes a connection for `name` (normalised; `None` without
    /// SNI/Host) offering the ALPN protocols `offered`.
    pub fn matches<'a>(
        &self,
        name: Option<&str>,
        mut offered: impl Iterator<Item = &'a [u8]>,
    ) -> bool {
        self.host.matches_opt(name)
            && (self.alpn.is_empty() || offered.any(|p| self.alpn.iter().any(|a| a == p)))
    }
}

/// Everything a connection needs, for one config generation.
pub struct Runtime {
    /// Routes in order; the first match wins.
    pub routes: Vec<Route>,
    /// Pools by name.
    pub pools: BTreeMap<String, Arc<RunningPool>>,
    /// Directories by name.
    pub directories: BTreeMap<String, Arc<DirectoryTarget>>,
    /// Counters, carried over from generation to generation.
    pub metrics: Arc<SniMetrics>,
    /// The access log (`[log]`); `None` when off. Kept across reloads that do not change it.
    pub access: Option<lb_core::server::AccessLog>,
}

/// Why a runtime could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A pool could not be started.
    #[error(transparent)]
    Pool(#[from] PoolBuildError),
    /// A resolver could not be built.
    #[error(transparent)]
    Resolver(#[from] lb_core::config::BuildError),
    /// The access log could not be opened.
    #[error(transparent)]
    AccessLog(#[from] lb_core::server::AccessLogError),
}

impl Generation for Runtime {
    type Error = BuildError;

    /// Builds a runtime; `previous` lends its pools so live state survives a reload. Must
    /// run inside a tokio runtime (health monitors are spawned).
    fn build(config: &Config, previous: Option<&Runtime>) -> Result<Runtime, BuildError> {
        let access = lb_core::server::access::for_generation(
            &config.log,
            previous.and_then(|p| p.access.as_ref()),
        )?;
        let pools = build_pools(config, &previous.map(Generation::pools).unwrap_or_default())?;
        let mut directories = BTreeMap::new();
        for (name, rc) in &config.resolvers {
            let d = DirectoryTarget {
                name: Arc::from(name.as_str()),
                cache: rc.build_for(config)?,
                retry: rc.retry_policy(),
                connect_timeout: rc.connect_timeout,
            };
            directories.insert(name.clone(), Arc::new(d));
        }
        let routes = config
            .routes
            .iter()
            .filter_map(|rc| {
                // Validation guarantees every route names a defined pool or resolver.
                let target = match &rc.target {
                    RouteTarget::Pool(p) => Target::Pool(pools.get(p)?.clone()),
                    RouteTarget::Resolver(r) => Target::Directory(directories.get(r)?.clone()),
                };
                Some(Route {
                    host: rc.host.clone(),
                    alpn: rc.alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
                    target,
                    connections: Arc::default(),
                })
            })
            .collect();
        Ok(Runtime {
            routes,
            pools,
            directories,
            metrics: previous.map_or_else(Arc::default, |p| p.metrics.clone()),
            access,
        })
    }

    fn access_log(&self) -> Option<&lb_core::server::AccessLog> {
        self.access.as_ref()
    }

    fn pools(&self) -> BTreeMap<&str, &RunningPool> {
        self.pools.iter().map(|(n, p)| (n.as_str(), &**p)).collect()
    }

    fn admin_view(&self, token: Option<String>) -> AdminView {
        let pools = self.pools.iter().map(|(n, p)| (n.as_str(), &p.handle));
        let directories = self.directories.iter().map(|(n, d)| (n.as_str(), &d.cache));
        let mut view = AdminView::from_pools(pools, token).with_directories(directories);
        view.routes = self
            .routes
            .iter()
            .map(|r| RouteView {
                name: r.host.to_string(),
                target: match &r.target {
                    Target::Pool(p) => format!("pool:{}", p.pool().name()),
                    Target::Directory(d) => format!("resolver:{}", d.name),
                },
                counters: vec![("connections", r.connections.clone())],
            })
            .collect();
        view
    }
}

impl Runtime {
    /// The first route for a normalised name and the offered ALPN protocols.
    pub fn route<'a, I>(&self, name: Option<&str>, offered: I) -> Option<&Route>
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        self.routes
            .iter()
            .find(|r| r.matches(name, offered.clone()))
    }
}
