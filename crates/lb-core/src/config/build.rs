//! From validated config to running parts: health settings and resolvers.
//!
//! Both binaries build their pools' health monitors and their directories through these,
//! so lb-proxy and lb-sni behave the same for the same config.

use std::sync::Arc;

use std::collections::BTreeSet;

use super::{
    Config, HealthKind, PoolConfig, ProxyProtocol, ResolverConfig, ResolverKind, StaticAnswer,
    UpstreamProtocol,
};
use crate::forward::RetryPolicy;
use crate::health::{CheckKind, HealthSettings, ProbeOptions};
use crate::proxy_protocol::Version;
use crate::resolve::{
    CacheSettings, Cached, EndpointPools, HttpResolver, Resolution, Resolver, RespResolver,
    StaticResolver,
};

/// A directory as the binaries use it: cached, behind a trait object.
pub type Directory = Cached<Box<dyn Resolver>>;

/// Why a resolver could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
#[error("resolver.{name}: {reason}")]
pub struct BuildError {
    /// The resolver's name.
    pub name: String,
    /// What went wrong.
    pub reason: String,
}

impl PoolConfig {
    /// The pool's `[pool.X.health]` as health-monitor settings (HTTPS probes take `sni`,
    /// `verify` and `ca` from the pool's upstream `tls`; probes send the pool's PROXY
    /// header and speak HTTP/2 to `protocol = "h2"` pools).
    pub fn health_settings(&self) -> HealthSettings {
        let h = &self.health;
        let kind = match h.kind {
            HealthKind::None => CheckKind::None,
            HealthKind::Tcp => CheckKind::Tcp,
            HealthKind::Http => CheckKind::Http {
                path: h.path.clone(),
                expect: h.expect,
            },
            HealthKind::Https => CheckKind::Https {
                path: h.path.clone(),
                expect: h.expect,
                sni: self.tls.as_ref().and_then(|t| t.sni.clone()),
                verify: self.tls.as_ref().is_some_and(|t| t.verify),
                ca: self.tls.as_ref().and_then(|t| t.ca.clone()),
            },
        };
        HealthSettings {
            kind,
            port: h.port,
            interval: h.interval,
            timeout: h.timeout,
            rise: h.rise.get(),
            fall: h.fall.get(),
            jitter: h.jitter,
            initial_up: h.initial_up,
            // Probes look like the pool's own traffic: a backend behind PROXY protocol or
            // speaking only HTTP/2 would refuse anything else.
            probe: ProbeOptions {
                proxy_protocol: self.proxy_protocol.map(|p| match p {
                    ProxyProtocol::V1 => Version::V1,
                    ProxyProtocol::V2 => Version::V2,
                }),
                http2: self.protocol == UpstreamProtocol::H2,
            },
        }
    }
}

impl ResolverConfig {
    /// `retries` (other keys at the pool defaults) for the endpoints it answers.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            ..RetryPolicy::default()
        }
    }

    /// Builds the cached directory this section describes, its answers' endpoints kept as
    /// pools ([`EndpointPools`]) and pool-name answers checked against `config`'s pools.
    pub fn build_for(&self, config: &Config) -> Result<Arc<Directory>, BuildError> {
        let known: BTreeSet<String> = config.pools.keys().cloned().collect();
        self.build_with(Some(Arc::new(known)))
    }

    /// Builds the cached directory this section describes (pool-name answers are not
    /// checked: see [`build_for`](Self::build_for)).
    pub fn build(&self) -> Result<Arc<Directory>, BuildError> {
        self.build_with(None)
    }

    fn build_with(
        &self,
        known_pools: Option<Arc<BTreeSet<String>>>,
    ) -> Result<Arc<Directory>, BuildError> {
        let err = |reason: String| BuildError {
            name: self.name.clone(),
            reason,
        };
        let inner: Box<dyn Resolver> = match &self.kind {
            ResolverKind::Static { map } => {
                Box::new(StaticResolver::from_answers(map.iter().map(|(k, v)| {
                    let answer = match v {
                        StaticAnswer::Endpoints(eps) => Resolution::Found(Arc::from(eps.clone())),
                        StaticAnswer::Pool(p) => Resolution::Pool(Arc::from(p.as_str())),
                    };
                    (k.clone(), answer)
                })))
            }
            ResolverKind::Http { url } => Box::new(
                HttpResolver::new(url.as_str(), self.timeout)
                    .map_err(|e| err(e.to_string()))?
                    .with_bare_pool(self.bare_pool),
            ),
            ResolverKind::Custom(custom) => Box::new(custom.resolver()),
            ResolverKind::Resp { url, prefix } => {
                if url.db != 0 || url.username.is_some() {
                    return Err(err(
                        "AUTH and database selection are not supported yet".into()
                    ));
                }
                let host = if url.host.contains(':') {
                    format!("[{}]", url.host)
                } else {
                    url.host.clone()
                };
                let raw = format!("redis://{host}:{}", url.port);
                Box::new(
                    RespResolver::from_url(&raw, prefix.clone(), self.timeout)
                        .map_err(|e| err(e.to_string()))?
                        .with_bare_pool(self.bare_pool),
                )
            }
        };
        let settings = CacheSettings {
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            stale_ttl: self.stale_ttl,
            max_entries: self.max_entries.get(),
            ..CacheSettings::named(self.name.clone())
        };
        let pools = EndpointPools {
            settings: EndpointPools::settings(self.max_conns_per_backend),
            known_pools,
            ..EndpointPools::new(&self.name)
        };
        Ok(Arc::new(
            Cached::new(inner, settings).with_endpoint_pools(pools),
        ))
    }
}
