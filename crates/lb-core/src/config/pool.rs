//! Runtime types of a `[pool.X]`: everything needed to build a [`crate::Pool`], its health
//! checks, discovery and the proxy's per-pool behaviour.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use regex::Regex;

use super::net::{is_token, RedisUrl};
use crate::backend::Backend;
pub use crate::forward::{RetryBudget, RetryOn};
use crate::outlier::OutlierSettings;
use crate::pool::PoolSettings;
use crate::select::{Params, StrategyKind};

/// What a hashing strategy hashes (`key = "..."`). A missing header, cookie, query
/// parameter or capture falls back to the client IP.
#[derive(Clone, Debug)]
pub enum KeySpec {
    /// `client-ip` (the default): the client address (after trusted proxies).
    ClientIp,
    /// `host`: the normalised request host.
    Host,
    /// `path`: the request path without the query.
    Path,
    /// `uri`: path and query.
    Uri,
    /// `header:NAME`: a request header's value (name lower-cased).
    Header(String),
    /// `cookie:NAME`: a cookie's value.
    Cookie(String),
    /// `query:NAME`: a query parameter's value.
    Query(String),
    /// `path-regex:RE`: the first capture group of `RE` matched against the path.
    PathRegex(Regex),
    /// `sni` (lb-sni only): the ClientHello's server name.
    Sni,
}

impl PartialEq for KeySpec {
    fn eq(&self, other: &Self) -> bool {
        use KeySpec::*;
        match (self, other) {
            (Header(a), Header(b)) | (Cookie(a), Cookie(b)) | (Query(a), Query(b)) => a == b,
            (PathRegex(a), PathRegex(b)) => a.as_str() == b.as_str(),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// Why a key spec is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpecError {
    /// Not one of the forms.
    Unknown,
    /// A header or cookie name that is not an HTTP token, or an empty query name.
    BadName(&'static str),
    /// The regex does not compile.
    BadRegex(String),
    /// The regex has no capture group.
    NoCapture,
}

impl FromStr for KeySpec {
    type Err = KeySpecError;
    fn from_str(s: &str) -> Result<KeySpec, KeySpecError> {
        Ok(match s {
            "client-ip" => KeySpec::ClientIp,
            "host" => KeySpec::Host,
            "path" => KeySpec::Path,
            "uri" => KeySpec::Uri,
            "sni" => KeySpec::Sni,
            _ => {
                let (kind, arg) = s.split_once(':').ok_or(KeySpecError::Unknown)?;
                match kind {
                    "header" if is_token(arg) => KeySpec::Header(arg.to_ascii_lowercase()),
                    "header" => {
                        return Err(KeySpecError::BadName(
                            "header name: letters, digits and !#$%&'*+-.^_`|~",
                        ))
                    }
                    "cookie" if is_token(arg) => KeySpec::Cookie(arg.to_owned()),
                    "cookie" => {
                        return Err(KeySpecError::BadName(
                            "cookie name: letters, digits and !#$%&'*+-.^_`|~",
                        ))
                    }
                    "query" if !arg.is_empty() && !arg.contains(['&', '=', '#', ' ']) => {
                        KeySpec::Query(arg.to_owned())
                    }
                    "query" => {
                        return Err(KeySpecError::BadName(
                            "query parameter name: non-empty, without '&', '=', '#' or spaces",
                        ))
                    }
                    "path-regex" => {
                        let re =
                            Regex::new(arg).map_err(|e| KeySpecError::BadRegex(e.to_string()))?;
                        if re.captures_len() < 2 {
                            return Err(KeySpecError::NoCapture);
                        }
                        KeySpec::PathRegex(re)
                    }
                    _ => return Err(KeySpecError::Unknown),
                }
            }
        })
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::ClientIp => f.write_str("client-ip"),
            KeySpec::Host => f.write_str("host"),
            KeySpec::Path => f.write_str("path"),
            KeySpec::Uri => f.write_str("uri"),
            KeySpec::Header(n) => write!(f, "header:{n}"),
            KeySpec::Cookie(n) => write!(f, "cookie:{n}"),
            KeySpec::Query(n) => write!(f, "query:{n}"),
            KeySpec::PathRegex(r) => write!(f, "path-regex:{}", r.as_str()),
            KeySpec::Sni => f.write_str("sni"),
        }
    }
}

/// A backend as declared in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) weight: u16,
    pub(crate) id: String,
    pub(crate) backup: bool,
}

impl BackendConfig {
    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The weight, 0..=256 (0 = drain). Default 1.
    pub fn weight(&self) -> u16 {
        self.weight
    }
    /// The placement id. Default: the address as written canonically.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Backup: traffic only when no other backend is up. Default false.
    pub fn backup(&self) -> bool {
        self.backup
    }

    /// The lb-core [`Backend`].
    pub fn to_backend(&self) -> Backend {
        let b = Backend::new(self.addr)
            .with_id(self.id.as_str())
            .with_backup(self.backup);
        // Validation only builds BackendConfig with weight <= MAX_WEIGHT, so this cannot
        // fail; fall back to the default weight rather than panic if that ever changes.
        match b.clone().with_weight(u32::from(self.weight)) {
            Ok(b) => b,
            Err(_) => b,
        }
    }
}

/// Where a pool's membership comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Discovery {
    /// The `backends` list (the default).
    Static,
    /// A watched file of backends (path resolved against the config file's directory; it
    /// need not exist yet).
    File {
        /// The file.
        path: PathBuf,
    },
    /// DNS: A/AAAA records of `name` on `port`, or SRV records when `port` is absent.
    Dns {
        /// The DNS name.
        name: String,
        /// Port for A/AAAA answers; `None` = look up SRV.
        port: Option<u16>,
        /// TTL floor. Default 5 s.
        min_ttl: Duration,
        /// TTL ceiling. Default 300 s.
        max_ttl: Duration,
    },
    /// A Redis hash shared by a fleet.
    Redis {
        /// The server.
        url: RedisUrl,
        /// The hash key (events on `<key>:events`).
        key: String,
        /// Full re-read period. Default 1 s.
        resync: Duration,
    },
}

impl Discovery {
    /// `static`, `file`, `dns` or `redis` (the admin API's `source`).
    pub fn kind(&self) -> &'static str {
        match self {
            Discovery::Static => "static",
            Discovery::File { .. } => "file",
            Discovery::Dns { .. } => "dns",
            Discovery::Redis { .. } => "redis",
        }
    }
}

/// PROXY protocol version sent to backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// The HTTP version lb-proxy speaks to a pool's backends (`protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    /// `"http1"` (the default): HTTP/1.1, idle connections pooled per backend and shared
    /// by every client.
    #[default]
    Http1,
    /// `"h2"`: HTTP/2 with prior knowledge on cleartext, or negotiated by ALPN `h2` with
    /// `tls`; one multiplexed connection per backend carries concurrent requests.
    H2,
}

impl UpstreamProtocol {
    /// `"http1"` or `"h2"`, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::H2 => "h2",
        }
    }
}

/// lb-proxy upstream TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Server name sent and verified. Default none (the backend address).
    pub sni: Option<String>,
    /// Verify the certificate. Default true.
    pub verify: bool,
    /// CA bundle PEM file (checked readable). Default none (the platform roots).
    pub ca: Option<PathBuf>,
}

/// Active health check kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthKind {
    /// HTTP GET, expecting a status.
    Http,
    /// HTTPS GET, expecting a status.
    Https,
    /// TCP connect.
    Tcp,
    /// No active checks (the default).
    None,
}

/// `[pool.X.health]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    /// Default `none`.
    pub kind: HealthKind,
    /// HTTP path, starts with `/`. Default `/`.
    pub path: String,
    /// Expected status, 100..=599. Default 200.
    pub expect: u16,
    /// Probe port; `None` = the backend's port (the default).
    pub port: Option<u16>,
    /// Default 2 s.
    pub interval: Duration,
    /// Default 1 s.
    pub timeout: Duration,
    /// Successes in a row to go up. Default 2.
    pub rise: NonZeroU32,
    /// Failures in a row to go down. Default 3.
    pub fall: NonZeroU32,
    /// Random extra delay per probe as a fraction of `interval` (0.0..=1.0). Default 0.1.
    pub jitter: f64,
    /// Backends start up (`initial = "up"`, the default) or wait for `rise` successes.
    pub initial_up: bool,
}

const fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            kind: HealthKind::None,
            path: "/".to_owned(),
            expect: 200,
            port: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: nz(2),
            fall: nz(3),
            jitter: 0.1,
            initial_up: true,
        }
    }
}

/// `[pool.X]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// The pool's name.
    pub name: String,
    /// Default `round-robin`.
    pub strategy: StrategyKind,
    /// Default `client-ip`.
    pub key: KeySpec,
    /// Static backends (empty with discovery). Addresses and ids are unique.
    pub backends: Vec<BackendConfig>,
    /// Default static.
    pub discovery: Discovery,
    /// Further candidates tried. Default 2.
    pub retries: u32,
    /// Default connect + reset.
    pub retry_on: RetryOn,
    /// Default ratio 0.2, min_concurrent 3.
    pub retry_budget: RetryBudget,
    /// Default 2 s.
    pub connect_timeout: Duration,
    /// Upstream response head. Default 30 s.
    pub response_timeout: Duration,
    /// Pooled upstream connection idle. Default 60 s.
    pub idle_timeout: Duration,
    /// 0 = unlimited (the default).
    pub max_conns_per_backend: u32,
    /// Default 0 s (off).
    pub slow_start: Duration,
    /// Ring points per unit of weight. Default 160.
    pub vnodes: NonZeroU32,
    /// `consistent-bounded` load factor, ≥ 1.0. Default 1.25.
    pub bound: f64,
    /// Passive ejection. Default 5 errors, 30 s, 0.5.
    pub outlier: OutlierSettings,
    /// PROXY protocol towards backends. Default none.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// lb-proxy: sticky cookie name. Default none (`sticky = {}` means `lb_sticky`).
    pub sticky: Option<String>,
    /// lb-proxy: upstream TLS. Default none.
    pub tls: Option<UpstreamTls>,
    /// lb-proxy: the HTTP version spoken to the backends. Default `http1`.
    pub protocol: UpstreamProtocol,
    /// Active health checks.
    pub health: HealthConfig,
}

impl PoolConfig {
    /// A pool named `name` with every key at its default (no backends, static).
    pub fn with_defaults(name: &str) -> PoolConfig {
        PoolConfig {
            name: name.to_owned(),
            strategy: StrategyKind::RoundRobin,
            key: KeySpec::ClientIp,
            backends: Vec::new(),
            discovery: Discovery::Static,
            retries: 2,
            retry_on: RetryOn::default(),
            retry_budget: RetryBudget::default(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_conns_per_backend: 0,
            slow_start: Duration::ZERO,
            vnodes: nz(160),
            bound: 1.25,
            outlier: OutlierSettings::default(),
            proxy_protocol: None,
            sticky: None,
            tls: None,
            protocol: UpstreamProtocol::Http1,
            health: HealthConfig::default(),
        }
    }

    /// The lb-core pool settings (strategy, vnodes, bound, slow start, per-backend limit,
    /// outlier detection, initial health).
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            strategy: self.strategy,
            params: Params {
                vnodes: self.vnodes.get(),
                ..Params::default()
            },
            bound: self.bound,
            slow_start: self.slow_start,
            max_conns_per_backend: self.max_conns_per_backend,
            outlier: self.outlier,
            initial_up: self.health.initial_up,
        }
    }

    /// `retries`, `retry_on` and `retry_budget` together.
    pub fn retry_policy(&self) -> crate::forward::RetryPolicy {
        crate::forward::RetryPolicy {
            retries: self.retries,
            retry_on: self.retry_on,
            budget: self.retry_budget,
        }
    }

    /// The static backends as lb-core [`Backend`]s (unique addresses and ids, so
    /// [`crate::Pool::new`] accepts them).
    pub fn backends(&self) -> Vec<Backend> {
        self.backends
            .iter()
            .map(BackendConfig::to_backend)
            .collect()
    }
}
