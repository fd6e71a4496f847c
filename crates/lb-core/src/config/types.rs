//! Runtime types of the whole config (pools are in [`super::pool`]). Built only by
//! validation, so every value is in range; fields are public for reading.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::net::Cidr;
use super::pool::{KeySpec, PoolConfig};
use super::Binary;
use crate::name::HostPattern;

/// A validated config of one binary.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Which binary it was validated for.
    pub binary: Binary,
    /// The file it came from (relative paths inside were resolved against its directory).
    pub origin: PathBuf,
    /// Worker threads; 0 = one per core. Default 0. Needs a restart to change.
    pub threads: usize,
    /// The admin API.
    pub admin: AdminConfig,
    /// `[log]`: the access log.
    pub log: LogConfig,
    /// Listeners, in file order (at least one).
    pub listeners: Vec<ListenerConfig>,
    /// Pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
    /// Routes in file order: the first match wins.
    pub routes: Vec<RouteConfig>,
    /// Resolvers by name.
    pub resolvers: BTreeMap<String, ResolverConfig>,
}

impl Config {
    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.get(name)
    }

    /// The resolver with this name.
    pub fn resolver(&self, name: &str) -> Option<&ResolverConfig> {
        self.resolvers.get(name)
    }

    /// For a reload: keeps the running values of the keys that need a restart (`threads`,
    /// `[admin].listen`) and returns the names of those that the new file changed, so the
    /// caller can log a warning for each.
    pub fn keep_restart_keys(&mut self, running: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.threads != running.threads {
            changed.push("threads");
            self.threads = running.threads;
        }
        if self.admin.listen != running.admin.listen {
            changed.push("admin.listen");
            self.admin.listen = running.admin.listen;
        }
        changed
    }
}

/// `[log]`: where access-log lines go and how they are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// `access`: `"stdout"` (default), `"off"`, or a file path.
    pub access: AccessTarget,
    /// `format`: `"text"` (default) or `"json"`.
    pub format: AccessFormat,
}

/// Where access-log lines go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccessTarget {
    /// Standard output (the default).
    #[default]
    Stdout,
    /// No access log.
    Off,
    /// Appended to this file (relative paths resolved against the config's directory);
    /// reopened on SIGHUP.
    File(PathBuf),
}

/// How access-log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessFormat {
    /// `key=value` pairs separated by spaces, values with spaces or quotes quoted.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default `127.0.0.1:9091`. Non-loopback only with a token.
    pub listen: SocketAddr,
    /// When set, every admin call needs `Authorization: Bearer <token>`. Default none.
    pub token: Option<String>,
    /// Serve the admin API over HTTPS with these files. Default none (plain HTTP).
    pub tls: Option<TlsFiles>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            token: None,
            tls: None,
        }
    }
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerProtocol {
    /// HTTP (lb-proxy always; lb-sni routes on the `Host` header). TLS-terminated HTTP in
    /// lb-proxy is still `Http`, with [`ListenerConfig::tls`] set.
    Http,
    /// lb-sni: TLS passed through, routed on the ClientHello's SNI.
    Tls,
}

impl ListenerProtocol {
    /// `http` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Http => "http",
            ListenerProtocol::Tls => "tls",
        }
    }
}

/// `[[listener]]`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Address to bind (required).
    pub listen: SocketAddr,
    /// Default `http` (lb-proxy) / `tls` (lb-sni).
    pub protocol: ListenerProtocol,
    /// Whole request head / ClientHello / Host head within this. Default 10 s.
    pub header_timeout: Duration,
    /// Client keep-alive idle and tunnel idle. Default 60 s.
    pub idle_timeout: Duration,
    /// Request head limit (431 above). Default 65536.
    pub max_header_bytes: NonZeroUsize,
    /// Request body limit (413 above); `None` = unlimited (the default, `0` in the file).
    pub max_body_bytes: Option<NonZeroU64>,
    /// Connections at once; at the limit the listener stops accepting. Default 10000.
    pub max_connections: NonZeroUsize,
    /// Expect a PROXY v1/v2 header first. Default false.
    pub accept_proxy_protocol: bool,
    /// Peers whose `X-Forwarded-For` / PROXY address is believed. Default none.
    pub trusted_proxies: Vec<Cidr>,
    /// lb-proxy: terminate TLS here. Default none.
    pub tls: Option<TlsFiles>,
}

/// Minimum TLS version of a terminating listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (the default).
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// One certificate chain and its private key (PEM files; existence and readability were
/// checked at validation, PEM parsing is the proxy's job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertKey {
    /// Certificate chain PEM file.
    pub cert: PathBuf,
    /// Private key PEM file.
    pub key: PathBuf,
}

/// `tls = { cert, key }` or `tls = { certs = [{ cert, key }, ...] }`, plus `min_version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// At least one pair; with several the proxy chooses by SNI (the first is the default).
    pub certs: Vec<CertKey>,
    /// Default 1.2.
    pub min_version: TlsVersion,
}

/// Where a route sends matching requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// A pool defined in the file.
    Pool(String),
    /// A resolver defined in the file.
    Resolver(String),
}

/// `[[route]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteConfig {
    /// Default `*`.
    pub host: HostPattern,
    /// lb-proxy: only paths starting with this (always starts with `/`). Default none.
    pub path_prefix: Option<String>,
    /// lb-proxy: remove `path_prefix` before forwarding (needs `path_prefix`). Default false.
    pub strip_prefix: bool,
    /// The pool or resolver (exactly one, and it exists).
    pub target: RouteTarget,
    /// lb-proxy: request headers to set (names lower-cased), in name order.
    pub set_headers: Vec<(String, String)>,
    /// lb-proxy: request headers to remove (names lower-cased).
    pub remove_headers: Vec<String>,
    /// lb-sni: match only ClientHellos offering one of these ALPN protocols (in any
    /// position). Default empty: any hello, with or without ALPN.
    pub alpn: Vec<String>,
    /// lb-proxy: a request rate limit per key. Default none.
    pub rate_limit: Option<RateLimitConfig>,
}

/// `[[route]] rate_limit = { key, rate, burst, max_keys }`: GCRA per key (lb-proxy).
///
/// A key may send `burst` requests at once, then one every `per / count` on average: over
/// any span `t`, at most `burst + t × count / per` requests of one key are admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// What the limit is per (any key spec of a pool's `key`, except `sni`). Default
    /// `client-ip`.
    pub key: KeySpec,
    /// Requests per `per` (`rate = "100/s"` → 100 per second).
    pub count: NonZeroU32,
    /// One second (`/s`) or one minute (`/m`).
    pub per: Duration,
    /// Requests a key may send at once (at least 1). Default: one second's worth of
    /// `rate` (at least 1).
    pub burst: NonZeroU32,
    /// At most this many keys are tracked; the least recently seen are forgotten first.
    /// Default 100000.
    pub max_keys: NonZeroUsize,
}

impl RateLimitConfig {
    /// The emission interval: the average time between two admitted requests of a key.
    pub fn interval(&self) -> Duration {
        self.per / self.count.get()
    }
}

/// The directory behind a resolver.
#[derive(Clone, Debug, PartialEq)]
pub enum ResolverKind {
    /// `kind = "http"`: GET the URL with `{name}` replaced.
    Http {
        /// The URL template.
        url: super::net::UrlTemplate,
    },
    /// `kind = "resp"`: `GET <prefix><name>` on a Redis-protocol server.
    Resp {
        /// The server.
        url: super::net::RedisUrl,
        /// Key prefix. Default empty.
        prefix: String,
    },
    /// `kind = "static"`: a fixed map of normalised names to endpoints (never empty) or
    /// to a pool (`"pool:NAME"`).
    Static {
        /// Name → answer.
        map: BTreeMap<String, StaticAnswer>,
    },
    /// An embedder's own [`Resolver`](crate::resolve::Resolver), given from code (never
    /// from a file): see [`ResolverConfig::custom`].
    #[cfg(feature = "runtime")]
    Custom(super::code::CustomResolver),
}

/// One name's answer in a static directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaticAnswer {
    /// `"h:p"` or `["h:p", ...]` (never empty).
    Endpoints(Vec<SocketAddr>),
    /// `"pool:NAME"`: a pool of the config.
    Pool(String),
}

impl PartialEq<Vec<SocketAddr>> for StaticAnswer {
    fn eq(&self, other: &Vec<SocketAddr>) -> bool {
        matches!(self, StaticAnswer::Endpoints(eps) if eps == other)
    }
}

/// `[resolver.X]`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ResolverConfig {
    /// Its name.
    pub name: String,
    /// The directory.
    pub kind: ResolverKind,
    /// Positive answers are cached this long. Default 30 s.
    pub ttl: Duration,
    /// "Not found" answers are cached this long. Default 5 s.
    pub negative_ttl: Duration,
    /// A last good answer is served this long while the directory fails. Default 5 min.
    pub stale_ttl: Duration,
    /// One directory call at most this long. Default 1 s.
    pub timeout: Duration,
    /// Cache size bound. Default 100000.
    pub max_entries: NonZeroUsize,
    /// Connect timeout towards the endpoints it answers. Default 2 s.
    pub connect_timeout: Duration,
    /// lb-proxy: an endpoint's response head within this, else 504. Default 30 s.
    pub response_timeout: Duration,
    /// lb-proxy: an idle pooled connection to an endpoint is closed after this. Default 60 s.
    pub idle_timeout: Duration,
    /// Further endpoints tried after the first. Default 2.
    pub retries: u32,
    /// Requests (lb-sni: connections) per endpoint at most; 0 = unlimited (the default).
    pub max_conns_per_backend: u32,
    /// `bare = "pool"`: a text answer that is one bare word names a pool. Default off.
    pub bare_pool: bool,
}

/// Resolves a path from the config against the config file's directory.
pub(crate) fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
