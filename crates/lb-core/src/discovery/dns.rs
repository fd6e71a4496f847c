//! `discovery = { kind = "dns", name, port, min_ttl, max_ttl }`: membership from DNS.
//!
//! With `port`, the backends are the A and AAAA records of `name`, each on `port`, weight
//! 1 (a Kubernetes headless service, a round-robin name). Without `port`, `name` is looked
//! up as SRV (`_http._tcp.web.example`): each record's target is resolved to its addresses
//! on the record's port; the SRV weight becomes the backend weight (0 → 1, above 256 →
//! 256), and records with a higher priority value than the lowest become backups, which
//! take traffic only when no primary is usable. A target listed twice keeps its largest
//! weight.
//!
//! ## Re-resolving
//! The answer's TTL (the smallest of the records used, SRV and address records alike) is
//! clamped to `min_ttl..=max_ttl` and never below 250 ms; the name is resolved again when
//! it runs out. The resolver (hickory-resolver) keeps no cache of its own, so each
//! re-resolve asks the name servers: the TTL is honoured in exactly one layer, here.
//!
//! ## Failures
//! A failed lookup — timeout, SERVFAIL, NXDOMAIN, no records — is logged and the last good
//! membership stays; the lookup is retried after `min_ttl` (at least 1 s). A name that goes
//! away therefore never empties a pool by itself: remove the pool, or point the name at
//! other backends.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use tokio::sync::watch;

use super::{
    publish, stopped, BoxFuture, DiscoveryError, Source, SourceKind, Stopper, SyncClock, WriteError,
};
use crate::backend::MAX_WEIGHT;
use crate::pool::{Change, Pool};
use crate::Backend;

/// The shortest wait between two lookups, whatever the TTL and `min_ttl` say.
const FLOOR: Duration = Duration::from_millis(250);
/// The shortest wait after a failed lookup.
const RETRY_FLOOR: Duration = Duration::from_secs(1);
/// Per query to a name server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What a `dns` source resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsSettings {
    /// The name (A/AAAA with `port`, SRV without).
    pub name: String,
    /// Port for A/AAAA answers; `None` = SRV.
    pub port: Option<u16>,
    /// TTL floor.
    pub min_ttl: Duration,
    /// TTL ceiling.
    pub max_ttl: Duration,
    /// Name servers to ask; empty = the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
}

impl DnsSettings {
    /// How long to keep an answer whose records say `ttl`.
    fn clamp(&self, ttl: Duration) -> Duration {
        ttl.max(self.min_ttl).min(self.max_ttl).max(FLOOR)
    }
}

/// Why one lookup failed.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error("{0}")]
    Net(#[from] hickory_resolver::net::NetError),
    #[error("the answer has no usable records")]
    Empty,
}

#[derive(Debug)]
struct Inner {
    settings: DnsSettings,
    clock: SyncClock,
}

/// The `dns` source: see the module docs.
#[derive(Debug)]
pub struct DnsSource {
    inner: Arc<Inner>,
    stopper: Stopper,
}

impl DnsSource {
    /// Builds the resolver and spawns the task that resolves now and again at each TTL's
    /// end, until the source or the pool is dropped. Must run inside a tokio runtime.
    pub fn spawn(pool: Arc<Pool>, settings: DnsSettings) -> Result<DnsSource, DiscoveryError> {
        let resolver = build_resolver(&settings.nameservers)?;
        let inner = Arc::new(Inner {
            settings,
            clock: SyncClock::default(),
        });
        let (stopper, rx) = Stopper::new();
        tokio::spawn(run(inner.clone(), resolver, Arc::downgrade(&pool), rx));
        Ok(DnsSource { inner, stopper })
    }
}

fn build_resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, DiscoveryError> {
    let err = |e: hickory_resolver::net::NetError| DiscoveryError::Resolver(e.to_string());
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(err)?
    } else {
        let servers = nameservers
            .iter()
            .map(|a| {
                let mut udp = ConnectionConfig::udp();
                udp.port = a.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = a.port();
                NameServerConfig::new(a.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let mut opts = ResolverOpts::default();
    // This source honours the TTL itself; a second cache would only delay changes.
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 1;
    *builder.options_mut() = opts;
    builder.build().map_err(err)
}

async fn run(
    inner: Arc<Inner>,
    resolver: TokioResolver,
    pool: Weak<Pool>,
    mut stop: watch::Receiver<bool>,
) {
    let s = &inner.settings;
    loop {
        let Some(p) = pool.upgrade() else { return };
        let wait = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = resolve(&resolver, s) => match r {
                Ok((backends, ttl)) => {
                    let n = backends.len();
                    match publish(&p, backends) {
                        Ok(changed) => {
                            inner.clock.mark();
                            if changed {
                                tracing::info!(pool = p.name(), name = %s.name, backends = n, "dns discovery: membership changed");
                            }
                        }
                        Err(e) => tracing::warn!(pool = p.name(), name = %s.name, error = %e, "dns discovery: answer refused by the pool; keeping the last good membership"),
                    }
                    s.clamp(ttl)
                }
                Err(e) => {
                    tracing::warn!(pool = p.name(), name = %s.name, error = %e, "dns discovery: lookup failed; keeping the last good membership");
                    s.min_ttl.max(RETRY_FLOOR)
                }
            },
        };
        drop(p);
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One lookup: backends sorted by address (answers rotate; membership must not) and the
/// smallest TTL of the records used.
async fn resolve(
    resolver: &TokioResolver,
    s: &DnsSettings,
) -> Result<(Vec<Backend>, Duration), LookupError> {
    let (found, ttl) = match s.port {
        Some(port) => {
            let (ips, ttl) = lookup_ips(resolver, &s.name).await?;
            let found = ips
                .into_iter()
                .map(|ip| (SocketAddr::new(ip, port), (1u16, false)))
                .collect::<BTreeMap<_, _>>();
            (found, ttl)
        }
        None => lookup_srv(resolver, &s.name).await?,
    };
    if found.is_empty() {
        return Err(LookupError::Empty);
    }
    let backends = found
        .into_iter()
        .map(|(addr, (weight, backup))| {
            // weight is clamped to 1..=MAX_WEIGHT below, so with_weight cannot fail.
            let b = Backend::new(addr).with_backup(backup);
            b.clone().with_weight(u32::from(weight)).unwrap_or(b)
        })
        .collect();
    Ok((backends, Duration::from_secs(u64::from(ttl))))
}

async fn lookup_ips(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<IpAddr>, u32), LookupError> {
    let answer = resolver.lookup_ip(name).await?;
    let ttl = answer
        .as_lookup()
        .answers()
        .iter()
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0);
    Ok((answer.iter().collect(), ttl))
}

/// SRV records → address → (weight, backup).
async fn lookup_srv(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(BTreeMap<SocketAddr, (u16, bool)>, u32), LookupError> {
    let answer = resolver.lookup(name, RecordType::SRV).await?;
    let mut ttl = u32::MAX;
    let mut records = Vec::new();
    for r in answer.answers() {
        if let RData::SRV(srv) = &r.data {
            ttl = ttl.min(r.ttl);
            records.push(srv.clone());
        }
    }
    let Some(best) = records.iter().map(|r| r.priority).min() else {
        return Err(LookupError::Empty);
    };
    let mut found: BTreeMap<SocketAddr, (u16, bool)> = BTreeMap::new();
    for srv in records {
        let weight = srv.weight.clamp(1, MAX_WEIGHT);
        let backup = srv.priority > best;
        let (ips, t) = match lookup_ips(resolver, &srv.target.to_string()).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(target = %srv.target, error = %e, "dns discovery: SRV target does not resolve");
                continue;
            }
        };
        ttl = ttl.min(t);
        for ip in ips {
            let e = found
                .entry(SocketAddr::new(ip, srv.port))
                .or_insert((weight, backup));
            // A target listed twice: the larger weight, primary if either is.
            *e = (e.0.max(weight), e.1 && backup);
        }
    }
    Ok((found, if ttl == u32::MAX { 0 } else { ttl }))
}

impl Source for DnsSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Dns
    }
    fn last_sync(&self) -> Option<SystemTime> {
        self.inner.clock.get()
    }
    fn write<'a>(&'a self, _: &'a Pool, _: Change) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async { Err(WriteError::Conflict("DNS: change the records")) })
    }
    fn stop(&self) {
        self.stopper.stop();
    }
    fn ready(&self) -> BoxFuture<'_, ()> {
        self.inner.clock.synced()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_clamped() {
        let s = DnsSettings {
            name: "x".into(),
            port: Some(1),
            min_ttl: Duration::from_secs(5),
            max_ttl: Duration::from_secs(300),
            nameservers: vec![],
        };
        assert_eq!(s.clamp(Duration::ZERO), Duration::from_secs(5));
        assert_eq!(s.clamp(Duration::from_secs(60)), Duration::from_secs(60));
        assert_eq!(
            s.clamp(Duration::from_secs(86_400)),
            Duration::from_secs(300)
        );
        let zero = DnsSettings {
            min_ttl: Duration::ZERO,
            ..s
        };
        assert_eq!(zero.clamp(Duration::ZERO), FLOOR);
    }
}
