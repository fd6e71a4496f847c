//! The TOML config model shared by `lb-proxy`, `lb-sni` and `lb check`.
//!
//! ## Pipeline
//! 1. **Text → document.** The file is parsed once into a span-preserving TOML document
//!    (the private `source` module); a syntax error is reported with its line and column.
//! 2. **Document → file model.** serde reads `file` types that mirror the TOML exactly:
//!    every table has `deny_unknown_fields`, values that need parsing stay strings. An
//!    unknown key, a wrong type or a missing required key is reported with the key path
//!    found from the error's span (`pool.web.backends[2].wieght`) and its position.
//! 3. **File model → runtime types.** [`validate`](Config::parse) checks everything else
//!    for one [`Binary`] and builds [`Config`], whose types can only hold valid states:
//!    `Duration`, `NonZeroU32`, `SocketAddr`, [`StrategyKind`](crate::StrategyKind), a
//!    parsed [`KeySpec`] with its compiled regex, [`HostPattern`](crate::name::HostPattern),
//!    [`Cidr`] lists. Validation collects *every* problem before failing; each
//!    [`Issue`] names the key, the bad value and what was expected, and is located in the
//!    file when possible:
//!
//! ```text
//! lb.toml:17:12: pool.web.strategy: unknown strategy "foo": expected one of round-robin, random, ...
//! ```
//!
//! Relative file paths in the config (TLS certificates and keys, CA bundles, discovery
//! files) are resolved against the directory of the config file. Certificate, key and CA
//! files must exist and be readable at validation time (their PEM content is parsed by the
//! binary that uses them); a discovery file may appear later.
//!
//! Defaults are those of docs/config.md (the config reference); every runtime field documents its
//! own.
//!
//! ```
//! use lb_core::config::{Binary, Config};
//! use std::path::Path;
//!
//! let text = r#"
//! [[listener]]
//! listen = "127.0.0.1:8080"
//!
//! [pool.web]
//! strategy = "consistent"
//! key = "path-regex:^/documents/([^/?]+)"
//! backends = ["127.0.0.1:19001", { addr = "127.0.0.1:19002", weight = 2 }]
//!
//! [[route]]
//! pool = "web"
//! "#;
//! let config = Config::parse(text, Path::new("lb.toml"), Binary::Proxy)?;
//! let web = config.pool("web").unwrap();
//! let pool = lb_core::Pool::new("web", web.pool_settings(), web.backends()).unwrap();
//! assert_eq!(pool.snapshot().members().len(), 2);
//!
//! let err = Config::parse("threads = -1", Path::new("lb.toml"), Binary::Proxy).unwrap_err();
//! assert!(err.to_string().starts_with("lb.toml:1:11: threads: -1 is out of range"));
//! # Ok::<(), lb_core::config::ConfigError>(())
//! ```

#[cfg(feature = "http")]
mod build;
mod code;
mod duration;
mod error;
mod file;
mod keys;
mod net;
mod pool;
mod source;
mod types;
mod validate;
mod validate_health;
mod validate_limit;
mod validate_pool;
mod validate_route;

#[cfg(feature = "http")]
pub use build::{BuildError, Directory};
#[cfg(feature = "runtime")]
pub use code::CustomResolver;
pub use duration::{format_duration, parse_duration, parse_percent};
pub use error::{ConfigError, Issue, KeyPath, Position, Problem, Segment};
pub use keys::{known_keys, KeyTable};
pub use net::{
    any_contains, is_header_value, is_token, parse_socket_addr, Cidr, CidrError, RedisUrl,
    UrlTemplate,
};
pub use pool::{
    BackendConfig, Discovery, HealthConfig, HealthKind, KeySpec, KeySpecError, PoolConfig,
    ProxyProtocol, RetryBudget, RetryOn, UpstreamProtocol, UpstreamTls,
};
pub use types::{
    AccessFormat, AccessTarget, AdminConfig, CertKey, Config, ListenerConfig, ListenerProtocol,
    LogConfig, RateLimitConfig, ResolverConfig, ResolverKind, RouteConfig, RouteTarget,
    StaticAnswer, TlsFiles, TlsVersion,
};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which binary a config is validated for: the shapes are shared, some keys are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    /// `lb-proxy`: HTTP reverse proxy, optional TLS termination.
    Proxy,
    /// `lb-sni`: TCP proxy routing on SNI (or plain-HTTP Host).
    Sni,
}

impl Binary {
    /// `lb-proxy` or `lb-sni`.
    pub fn as_str(self) -> &'static str {
        match self {
            Binary::Proxy => "lb-proxy",
            Binary::Sni => "lb-sni",
        }
    }
}

impl fmt::Display for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Binary {
    type Err = String;
    /// `lb-proxy` / `proxy`, `lb-sni` / `sni` (for `lb check --binary`).
    fn from_str(s: &str) -> Result<Binary, String> {
        match s {
            "lb-proxy" | "proxy" => Ok(Binary::Proxy),
            "lb-sni" | "sni" => Ok(Binary::Sni),
            other => Err(format!(
                "unknown binary {other:?}: expected lb-proxy or lb-sni"
            )),
        }
    }
}

impl Config {
    /// Reads and validates the config file at `path` for `binary`.
    pub fn load(path: &Path, binary: Binary) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::single(
                path.to_path_buf(),
                Issue::new(KeyPath::root(), Problem::Read(e.to_string())),
            )
        })?;
        Config::parse(&text, path, binary)
    }

    /// Validates config `text` for `binary`. `origin` names the file in messages, and
    /// relative paths inside resolve against its directory.
    pub fn parse(text: &str, origin: &Path, binary: Binary) -> Result<Config, ConfigError> {
        let file_err = |issue: Issue| ConfigError::single(origin.to_path_buf(), issue);
        let doc = source::Doc::parse(text.to_owned()).map_err(|e| {
            let mut issue = Issue::new(
                KeyPath::root(),
                Problem::Syntax(e.message().trim_end().replace('\n', "; ")),
            );
            issue.position = e.span().map(|s| source::position(text, s.start));
            file_err(issue)
        })?;
        let model: file::FileConfig = toml_edit::de::from_document(doc.clone()).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            let key = offset.map_or_else(KeyPath::root, |o| source::path_at(&doc, o));
            let mut issue = Issue::new(
                key,
                Problem::Schema(e.message().trim_end().replace('\n', "; ")),
            );
            issue.position = offset.map(|o| source::position(text, o));
            file_err(issue)
        })?;
        let base = origin.parent().map_or_else(PathBuf::new, Path::to_path_buf);
        validate::validate(model, binary, &base, origin).map_err(|mut issues| {
            for issue in &mut issues {
                issue.position =
                    source::locate(&doc, &issue.key).map(|o| source::position(text, o));
            }
            // Stable: issues without a position keep their relative order at the end.
            issues.sort_by_key(|i| {
                i.position
                    .map_or((usize::MAX, usize::MAX), |p| (p.line, p.column))
            });
            ConfigError {
                file: origin.to_path_buf(),
                issues,
            }
        })
    }
}
