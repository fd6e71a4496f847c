//! The one entry point: a pool's `discovery` setting → a running [`Source`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{DnsSettings, DnsSource, FileSource, RedisSettings, RedisSource, Source, StaticSource};
use crate::config::Discovery;
use crate::pool::Pool;

/// Knobs that the config file does not expose, with production defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// How often a `file` source reads its file. Default 1 s.
    pub file_poll: Duration,
    /// Name servers a `dns` source asks (UDP, then TCP on truncation). Empty (the default)
    /// = the system's `/etc/resolv.conf`.
    pub dns_nameservers: Vec<SocketAddr>,
    /// Per connect and per command towards Redis. Default 1 s.
    pub redis_timeout: Duration,
    /// Longest wait between Redis reconnects (the backoff starts at 100 ms and doubles).
    /// Default 5 s.
    pub redis_backoff_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            file_poll: Duration::from_secs(1),
            dns_nameservers: Vec::new(),
            redis_timeout: Duration::from_secs(1),
            redis_backoff_max: Duration::from_secs(5),
        }
    }
}

/// Why a discovery source could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Called outside a tokio runtime.
    #[error("discovery needs a tokio runtime")]
    NoRuntime,
    /// The DNS resolver could not be configured (for example an unreadable
    /// `/etc/resolv.conf`).
    #[error("dns discovery: cannot configure the resolver: {0}")]
    Resolver(String),
}

/// Starts the source for `discovery` on `pool`, with [`Options::default`]. See the module
/// docs for each kind and the lifecycle; `static` returns a [`StaticSource`] and starts
/// nothing.
///
/// ```
/// use std::sync::Arc;
/// use lb_core::config::Discovery;
/// use lb_core::discovery::{start, SourceKind};
/// use lb_core::{Pool, PoolSettings};
///
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// let dir = std::env::temp_dir().join(format!("lb-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("web.json");
/// std::fs::write(&path, r#"["127.0.0.1:8081", {"addr": "127.0.0.1:8082", "weight": 2}]"#).unwrap();
/// let pool = Arc::new(Pool::new("web", PoolSettings::default(), vec![]).unwrap());
/// let source = start(pool.clone(), &Discovery::File { path }).unwrap();
/// assert_eq!(source.kind(), SourceKind::File);
/// assert_eq!(pool.snapshot().members().len(), 2); // a file is read before start returns
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
pub fn start(pool: Arc<Pool>, discovery: &Discovery) -> Result<Arc<dyn Source>, DiscoveryError> {
    start_with(pool, discovery, &Options::default())
}

/// [`start`] with explicit [`Options`] (tests, embedders with their own name servers).
pub fn start_with(
    pool: Arc<Pool>,
    discovery: &Discovery,
    options: &Options,
) -> Result<Arc<dyn Source>, DiscoveryError> {
    if matches!(discovery, Discovery::Static) {
        return Ok(Arc::new(StaticSource));
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(DiscoveryError::NoRuntime);
    }
    Ok(match discovery {
        Discovery::Static => Arc::new(StaticSource),
        Discovery::File { path } => {
            Arc::new(FileSource::spawn(pool, path.clone(), options.file_poll))
        }
        Discovery::Dns {
            name,
            port,
            min_ttl,
            max_ttl,
        } => Arc::new(DnsSource::spawn(
            pool,
            DnsSettings {
                name: name.clone(),
                port: *port,
                min_ttl: *min_ttl,
                max_ttl: *max_ttl,
                nameservers: options.dns_nameservers.clone(),
            },
        )?),
        Discovery::Redis { url, key, resync } => Arc::new(RedisSource::spawn(
            pool,
            RedisSettings {
                url: url.clone(),
                key: key.clone(),
                resync: *resync,
                timeout: options.redis_timeout,
                backoff_max: options.redis_backoff_max,
            },
        )),
    })
}
