//! A config built from code instead of a file, for embedders: the same runtime types that
//! validation produces, with the same defaults as the file.
//!
//! ```
//! use lb_core::config::{Binary, Config, ListenerConfig, ListenerProtocol, ResolverConfig,
//!     ResolverKind, RouteConfig, RouteTarget, StaticAnswer};
//!
//! let mut config = Config::new(Binary::Proxy);
//! config.admin.listen = "127.0.0.1:0".parse().unwrap();
//! config.listeners.push(ListenerConfig::new("127.0.0.1:0".parse().unwrap(), ListenerProtocol::Http));
//! let map = [("a.example".to_owned(), StaticAnswer::Endpoints(vec!["127.0.0.1:8080".parse().unwrap()]))].into();
//! config.resolvers.insert("dir".into(), ResolverConfig::new("dir", ResolverKind::Static { map }));
//! config.routes.push(RouteConfig::new(RouteTarget::Resolver("dir".into())));
//! assert_eq!(config.routes[0].host.to_string(), "*");
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::types::{
    AdminConfig, Config, ListenerConfig, ListenerProtocol, LogConfig, ResolverConfig, ResolverKind,
    RouteConfig, RouteTarget,
};
use super::Binary;
use crate::name::HostPattern;

impl Config {
    /// An empty config for `binary`: no listener, pool, route or resolver yet (push them;
    /// a binary needs at least one listener), `threads = 0`, the default `[admin]`.
    pub fn new(binary: Binary) -> Config {
        Config {
            binary,
            origin: PathBuf::new(),
            threads: 0,
            admin: AdminConfig::default(),
            listeners: Vec::new(),
            pools: BTreeMap::new(),
            routes: Vec::new(),
            resolvers: BTreeMap::new(),
            log: LogConfig::default(),
        }
    }
}

impl ListenerConfig {
    /// A listener on `listen` with every other key at the file's default.
    pub fn new(listen: std::net::SocketAddr, protocol: ListenerProtocol) -> ListenerConfig {
        ListenerConfig {
            listen,
            protocol,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: NonZeroUsize::MIN.saturating_add(65_536 - 1),
            max_body_bytes: None,
            max_connections: NonZeroUsize::MIN.saturating_add(10_000 - 1),
            accept_proxy_protocol: false,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

impl RouteConfig {
    /// A route of every host (`*`) to `target`, with every other key at its default.
    pub fn new(target: RouteTarget) -> RouteConfig {
        RouteConfig {
            host: HostPattern::Any,
            path_prefix: None,
            strip_prefix: false,
            target,
            set_headers: Vec::new(),
            remove_headers: Vec::new(),
            alpn: Vec::new(),
            rate_limit: None,
        }
    }
}

impl ResolverConfig {
    /// A resolver named `name` over `kind`, with the file's defaults: `ttl` 30 s,
    /// `negative_ttl` 5 s, `stale_ttl` 5 min, `timeout` 1 s, `max_entries` 100000,
    /// `connect_timeout` 2 s, `response_timeout` 30 s, `idle_timeout` 60 s, `retries` 2,
    /// `max_conns_per_backend` 0 (unlimited), `bare` off.
    pub fn new(name: impl Into<String>, kind: ResolverKind) -> ResolverConfig {
        ResolverConfig {
            name: name.into(),
            kind,
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            stale_ttl: Duration::from_secs(300),
            timeout: Duration::from_secs(1),
            max_entries: NonZeroUsize::MIN.saturating_add(100_000 - 1),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            retries: 2,
            max_conns_per_backend: 0,
            bare_pool: false,
        }
    }

    /// A resolver named `name` asking your own [`Resolver`](crate::resolve::Resolver),
    /// cached like the others (the `timeout` is yours to enforce; see the trait's contract).
    #[cfg(feature = "runtime")]
    pub fn custom(
        name: impl Into<String>,
        resolver: impl crate::resolve::Resolver,
    ) -> ResolverConfig {
        ResolverConfig::new(name, ResolverKind::Custom(CustomResolver::new(resolver)))
    }
}

/// Your own [`Resolver`](crate::resolve::Resolver) inside a [`ResolverConfig`]. Two are
/// equal when they share the same resolver (so a reload with the same one changes nothing).
#[cfg(feature = "runtime")]
#[derive(Clone)]
pub struct CustomResolver(std::sync::Arc<dyn crate::resolve::Resolver>);

#[cfg(feature = "runtime")]
impl CustomResolver {
    /// Wraps `resolver`.
    pub fn new(resolver: impl crate::resolve::Resolver) -> CustomResolver {
        CustomResolver(std::sync::Arc::new(resolver))
    }

    /// The shared resolver.
    pub fn resolver(&self) -> std::sync::Arc<dyn crate::resolve::Resolver> {
        self.0.clone()
    }
}

#[cfg(feature = "runtime")]
impl PartialEq for CustomResolver {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(feature = "runtime")]
impl std::fmt::Debug for CustomResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomResolver")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constructors' defaults are the file's: a minimal file validates to the same
    /// values.
    #[test]
    fn defaults_match_the_file() {
        let text = r#"
            [[listener]]
            listen = "127.0.0.1:8080"
            [resolver.dir]
            kind = "static"
            map = { "a.test" = "127.0.0.1:1" }
            [[route]]
            resolver = "dir"
        "#;
        let file = Config::parse(text, std::path::Path::new("t.toml"), Binary::Proxy).unwrap();
        let mut code = Config::new(Binary::Proxy);
        code.origin = file.origin.clone();
        code.listeners.push(ListenerConfig::new(
            "127.0.0.1:8080".parse().unwrap(),
            ListenerProtocol::Http,
        ));
        let map = [(
            "a.test".to_owned(),
            super::super::types::StaticAnswer::Endpoints(vec!["127.0.0.1:1".parse().unwrap()]),
        )]
        .into();
        code.resolvers.insert(
            "dir".into(),
            ResolverConfig::new("dir", ResolverKind::Static { map }),
        );
        code.routes
            .push(RouteConfig::new(RouteTarget::Resolver("dir".into())));
        assert_eq!(code, file);
    }
}
