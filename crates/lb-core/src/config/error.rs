//! Config errors: which file, which key, what value, what was expected.
//!
//! A [`ConfigError`] holds one or more [`Issue`]s. TOML syntax errors and schema errors
//! (unknown key, wrong type, missing required key) stop at the first one, because the
//! TOML parser and serde cannot go on; semantic validation then reports *every* problem it
//! finds, sorted by position in the file. Each issue prints as one line:
//!
//! ```text
//! config.toml:14:12: pool.web.strategy: unknown strategy "foo": expected one of round-robin, ...
//! ```

use std::fmt;
use std::path::PathBuf;

use super::Binary;
use crate::name::NameError;
use crate::select::UnknownStrategy;

use super::net::CidrError;

/// One segment of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a value lives in the file: `pool.web.health.interval`, `listener[1].listen`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The document root (prints as nothing).
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// A child key.
    pub fn key(&self, k: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.to_owned()));
        KeyPath(v)
    }

    /// An array element.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        KeyPath(v)
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub(crate) fn push(&mut self, s: Segment) {
        self.0.push(s);
    }

    pub(crate) fn pop(&mut self) {
        self.0.pop();
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column (in characters) in the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// What is wrong with a value. Each message names the bad value and what was expected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read the config file: {0}")]
    Read(String),
    /// Not valid TOML.
    #[error("TOML syntax error: {0}")]
    Syntax(String),
    /// Unknown key, wrong type or missing required key (the schema check).
    #[error("{0}")]
    Schema(String),
    /// Not `<number><ms|s|m|h>`.
    #[error("bad duration {0:?}: expected a whole number and a unit ms, s, m or h, e.g. \"500ms\", \"2s\", \"5m\"")]
    BadDuration(String),
    /// Not `<count>/s` or `<count>/m` with a count of at least 1.
    #[error("bad rate {0:?}: expected a whole number of requests (at least 1) per s or m, e.g. \"100/s\" or \"600/m\"")]
    BadRate(String),
    /// A duration that must be positive is zero.
    #[error("duration must be greater than 0s")]
    ZeroDuration,
    /// Not a percentage.
    #[error("bad percentage {0:?}: expected \"0%\" to \"100%\", e.g. \"10%\"")]
    BadPercent(String),
    /// Not `ip:port`.
    #[error("bad address {0:?}: expected ip:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")]
    BadAddress(String),
    /// An unknown strategy name.
    #[error(transparent)]
    UnknownStrategy(#[from] UnknownStrategy),
    /// A value outside a fixed set of words.
    #[error("unknown {what} {value:?}: expected {expected}")]
    UnknownValue {
        /// What the value is (`protocol`, `health kind`, ...).
        what: &'static str,
        /// The bad value.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A number outside its range.
    #[error("{value} is out of range: expected {expected}")]
    OutOfRange {
        /// The bad value as written.
        value: String,
        /// The accepted range.
        expected: &'static str,
    },
    /// A malformed `key` spec.
    #[error("bad key {value:?}: {reason}")]
    BadKeySpec {
        /// The bad spec.
        value: String,
        /// Why.
        reason: String,
    },
    /// A `path-regex:` that does not compile.
    #[error("bad regex {value:?}: {error}")]
    BadRegex {
        /// The regex.
        value: String,
        /// The regex crate's message.
        error: String,
    },
    /// A `path-regex:` without a capture group.
    #[error("regex {0:?} has no capture group: path-regex keys hash the first capture, e.g. \"^/documents/([^/?]+)\"")]
    RegexWithoutCapture(String),
    /// A key valid in one binary only.
    #[error("key {value:?} is not allowed in {binary}: expected {expected}")]
    KeyNotForBinary {
        /// The key spec.
        value: String,
        /// The binary being checked.
        binary: Binary,
        /// What that binary accepts.
        expected: &'static str,
    },
    /// A setting the binary does not support.
    #[error("not supported by {binary}: {why}")]
    NotSupported {
        /// The binary being checked.
        binary: Binary,
        /// Why.
        why: &'static str,
    },
    /// `backends` and `discovery` together.
    #[error(
        "`backends` and `discovery` cannot be used together: list backends only for static pools"
    )]
    BackendsWithDiscovery,
    /// A route with both `pool` and `resolver`.
    #[error("a route takes exactly one of `pool` or `resolver`, got pool {pool:?} and resolver {resolver:?}")]
    PoolAndResolver {
        /// The pool named.
        pool: String,
        /// The resolver named.
        resolver: String,
    },
    /// A route with neither `pool` nor `resolver`.
    #[error("a route needs `pool` or `resolver`")]
    NoRouteTarget,
    /// A reference to an undefined pool.
    #[error("unknown pool {name:?}: defined pools are [{defined}]")]
    UnknownPool {
        /// The name.
        name: String,
        /// The defined pools, comma-separated.
        defined: String,
    },
    /// A reference to an undefined resolver.
    #[error("unknown resolver {name:?}: defined resolvers are [{defined}]")]
    UnknownResolver {
        /// The name.
        name: String,
        /// The defined resolvers, comma-separated.
        defined: String,
    },
    /// A non-loopback admin address without a token.
    #[error("admin listen {0} is not a loopback address: set [admin] token (every admin call then needs it) or listen on 127.0.0.1 / [::1]")]
    AdminWithoutToken(std::net::SocketAddr),
    /// A malformed CIDR block.
    #[error("bad CIDR {value:?}: {error}")]
    BadCidr {
        /// The block.
        value: String,
        /// Why.
        error: CidrError,
    },
    /// Not an HTTP token.
    #[error("bad {what} {value:?}: expected letters, digits and !#$%&'*+-.^_`|~")]
    BadToken {
        /// `header name` or `cookie name`.
        what: &'static str,
        /// The bad name.
        value: String,
    },
    /// A header value with control characters.
    #[error("bad header value {0:?}: control characters are not allowed")]
    BadHeaderValue(String),
    /// A bad host name or route pattern.
    #[error("bad name {value:?}: {error}")]
    BadName {
        /// The name.
        value: String,
        /// Why.
        error: NameError,
    },
    /// A bad pool or resolver name.
    #[error("bad {1} name {0:?}: expected 1 to 64 letters, digits, '-' or '_'")]
    BadIdent(String, &'static str),
    /// A malformed URL.
    #[error("bad URL {value:?}: {reason}")]
    BadUrl {
        /// The URL.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A file that must be readable is not.
    #[error("cannot read {path}: {error}")]
    Unreadable {
        /// The resolved path.
        path: PathBuf,
        /// The OS error.
        error: String,
    },
    /// A certificate or key file that does not hold what TLS needs.
    #[error("{0}")]
    Certificate(String),
    /// A CA file that holds no usable PEM certificate.
    #[error("bad CA file {path}: {error}")]
    BadCa {
        /// The resolved path.
        path: PathBuf,
        /// What is wrong with its content.
        error: String,
    },
    /// The same value twice where it must be unique.
    #[error("duplicate {what} {value}")]
    Duplicate {
        /// What is duplicated.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// A key that the chosen `kind` does not use.
    #[error("not a key of kind {0:?}")]
    KeyNotForKind(String),
    /// A required value is missing or a combination is invalid.
    #[error("{0}")]
    Invalid(&'static str),
}

/// One problem at one key.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    /// The key (root for file-level problems).
    pub key: KeyPath,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// What is wrong.
    pub problem: Problem,
}

impl Issue {
    pub(crate) fn new(key: KeyPath, problem: Problem) -> Issue {
        Issue {
            key,
            position: None,
            problem,
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_root() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.key, self.problem)
        }
    }
}

/// A config that cannot be used: the file and every issue found (at least one).
///
/// Displays one line per issue: `FILE[:LINE:COL]: KEY: PROBLEM`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ConfigError {
    /// The config file as given.
    pub file: PathBuf,
    /// The issues, in file order (at least one).
    pub issues: Vec<Issue>,
}

impl ConfigError {
    pub(crate) fn single(file: PathBuf, issue: Issue) -> ConfigError {
        ConfigError {
            file,
            issues: vec![issue],
        }
    }

    /// The first issue.
    pub fn first(&self) -> Option<&Issue> {
        self.issues.first()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(p) = issue.position {
                write!(f, ":{}:{}", p.line, p.column)?;
            }
            write!(f, ": {issue}")?;
        }
        Ok(())
    }
}
