//! File model → runtime types: every check that needs more than a type.
//!
//! Validation walks the file model once, records every problem with its key path, and
//! only builds a [`Config`] when there was none. Where a value is bad it carries on with
//! the default so later checks (route → pool references, duplicates) still run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::parse_duration;
use super::error::{Issue, KeyPath, Problem};
use super::file::{FileAdmin, FileConfig, FileListener, FileLog};
use super::net::{parse_socket_addr, Cidr};
use super::types::{
    resolve_path, AccessFormat, AccessTarget, AdminConfig, CertKey, Config, ListenerConfig,
    ListenerProtocol, LogConfig, TlsFiles, TlsVersion,
};
use super::Binary;

/// Collects issues while validating.
pub(crate) struct Checker<'a> {
    pub(crate) binary: Binary,
    base: &'a Path,
    pub(crate) issues: Vec<Issue>,
}

impl<'a> Checker<'a> {
    pub(crate) fn fail(&mut self, key: KeyPath, problem: Problem) {
        self.issues.push(Issue::new(key, problem));
    }

    /// A duration at `key`, or `default` when absent; `positive` rejects `0s`.
    pub(crate) fn dur(
        &mut self,
        key: &KeyPath,
        v: Option<&String>,
        default: Duration,
        positive: bool,
    ) -> Duration {
        let Some(s) = v else { return default };
        match parse_duration(s) {
            Some(d) if positive && d.is_zero() => {
                self.fail(key.clone(), Problem::ZeroDuration);
                default
            }
            Some(d) => d,
            None => {
                self.fail(key.clone(), Problem::BadDuration(s.clone()));
                default
            }
        }
    }

    /// An integer at `key` within `min..=max` that fits `T`, or `default`.
    pub(crate) fn num<T: TryFrom<i64> + Copy>(
        &mut self,
        key: &KeyPath,
        v: Option<i64>,
        default: T,
        (min, max): (i64, i64),
        expected: &'static str,
    ) -> T {
        let Some(n) = v else { return default };
        match T::try_from(n) {
            Ok(t) if (min..=max).contains(&n) => t,
            _ => {
                self.fail(
                    key.clone(),
                    Problem::OutOfRange {
                        value: n.to_string(),
                        expected,
                    },
                );
                default
            }
        }
    }

    /// A float at `key` within `min..=max`, or `default`.
    pub(crate) fn float(
        &mut self,
        key: &KeyPath,
        v: Option<f64>,
        default: f64,
        (min, max): (f64, f64),
        expected: &'static str,
    ) -> f64 {
        let Some(x) = v else { return default };
        if x.is_finite() && x >= min && x <= max {
            x
        } else {
            self.fail(
                key.clone(),
                Problem::OutOfRange {
                    value: x.to_string(),
                    expected,
                },
            );
            default
        }
    }

    pub(crate) fn addr(&mut self, key: &KeyPath, s: &str) -> Option<SocketAddr> {
        let a = parse_socket_addr(s);
        if a.is_none() {
            self.fail(key.clone(), Problem::BadAddress(s.to_owned()));
        }
        a
    }

    /// Reports `key` as lb-proxy only when validating for lb-sni and it is present.
    pub(crate) fn proxy_only(&mut self, key: &KeyPath, present: bool, why: &'static str) -> bool {
        if present && self.binary == Binary::Sni {
            self.fail(
                key.clone(),
                Problem::NotSupported {
                    binary: self.binary,
                    why,
                },
            );
            return false;
        }
        present
    }

    /// A file that must exist and be readable now; relative to the config's directory.
    pub(crate) fn readable(&mut self, key: &KeyPath, p: &str) -> PathBuf {
        let path = resolve_path(self.base, p);
        if let Err(e) = std::fs::File::open(&path)
            .and_then(|f| f.metadata())
            .and_then(|m| {
                if m.is_file() {
                    Ok(())
                } else {
                    Err(std::io::Error::other("not a regular file"))
                }
            })
        {
            self.fail(
                key.clone(),
                Problem::Unreadable {
                    path: path.clone(),
                    error: e.to_string(),
                },
            );
        }
        path
    }

    pub(crate) fn base(&self) -> &Path {
        self.base
    }

    /// Pool and resolver names: 1..=64 of letters, digits, `-`, `_`.
    pub(crate) fn ident(&mut self, key: &KeyPath, name: &str, what: &'static str) {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            self.fail(key.clone(), Problem::BadIdent(name.to_owned(), what));
        }
    }
}

/// Validates a file model for `binary`; relative paths resolve against `base`.
pub(crate) fn validate(
    file: FileConfig,
    binary: Binary,
    base: &Path,
    origin: &Path,
) -> Result<Config, Vec<Issue>> {
    let mut c = Checker {
        binary,
        base,
        issues: Vec::new(),
    };
    let root = KeyPath::root();

    let threads = c.num(
        &root.key("threads"),
        file.threads,
        0usize,
        (0, 1024),
        "0 (one per core) to 1024",
    );
    let admin = admin(&mut c, file.admin.unwrap_or_default());
    let log = log(&mut c, file.log.unwrap_or_default());

    if file.listener.is_empty() {
        c.fail(
            root.key("listener"),
            Problem::Invalid("at least one [[listener]] is required"),
        );
    }
    let mut listeners = Vec::new();
    let mut bound: BTreeSet<SocketAddr> = BTreeSet::from([admin.listen]);
    for (i, l) in file.listener.into_iter().enumerate() {
        let key = root.key("listener").index(i);
        if let Some(l) = listener(&mut c, &key, l) {
            // Port 0 asks the OS for a fresh port, so it never collides.
            if l.listen.port() != 0 && !bound.insert(l.listen) {
                c.fail(
                    key.key("listen"),
                    Problem::Duplicate {
                        what: "listen address (another listener or [admin])",
                        value: l.listen.to_string(),
                    },
                );
            }
            listeners.push(l);
        }
    }

    let mut pools = BTreeMap::new();
    for (name, p) in file.pool {
        let key = root.key("pool").key(&name);
        c.ident(&key, &name, "pool");
        let pool = super::validate_pool::pool(&mut c, &key, &name, p);
        pools.insert(name, pool);
    }

    let pool_names: BTreeSet<String> = pools.keys().cloned().collect();
    let resolver_names: BTreeSet<String> = file.resolver.keys().cloned().collect();
    let mut resolvers = BTreeMap::new();
    for (name, r) in file.resolver {
        let key = root.key("resolver").key(&name);
        c.ident(&key, &name, "resolver");
        if let Some(r) = super::validate_route::resolver(&mut c, &key, &name, r, &pool_names) {
            resolvers.insert(name, r);
        }
    }
    // A resolver whose own config has errors still counts as defined for routes.
    let mut routes = Vec::new();
    for (i, r) in file.route.into_iter().enumerate() {
        let key = root.key("route").index(i);
        if let Some(r) = super::validate_route::route(&mut c, &key, r, &pool_names, &resolver_names)
        {
            routes.push(r);
        }
    }

    if !c.issues.is_empty() {
        return Err(c.issues);
    }
    Ok(Config {
        binary,
        origin: origin.to_path_buf(),
        threads,
        admin,
        log,
        listeners,
        pools,
        routes,
        resolvers,
    })
}

fn log(c: &mut Checker<'_>, l: FileLog) -> LogConfig {
    let key = KeyPath::root().key("log");
    let mut out = LogConfig::default();
    match l.access.as_deref() {
        None | Some("stdout") => {}
        Some("off") => out.access = AccessTarget::Off,
        Some("") => c.fail(
            key.key("access"),
            Problem::Invalid("expected \"stdout\", \"off\" or a file path"),
        ),
        Some(p) => {
            let path = resolve_path(c.base(), p);
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dir.is_dir() {
                c.fail(
                    key.key("access"),
                    Problem::Unreadable {
                        path: dir,
                        error: "the directory of the access log does not exist".into(),
                    },
                );
            }
            out.access = AccessTarget::File(path);
        }
    }
    match l.format.as_deref() {
        None | Some("text") => {}
        Some("json") => out.format = AccessFormat::Json,
        Some(other) => c.fail(
            key.key("format"),
            Problem::UnknownValue {
                what: "log format",
                value: other.to_owned(),
                expected: "\"text\" or \"json\"",
            },
        ),
    }
    out
}

fn admin(c: &mut Checker<'_>, a: FileAdmin) -> AdminConfig {
    let key = KeyPath::root().key("admin");
    let mut out = AdminConfig::default();
    if let Some(l) = &a.listen {
        if let Some(addr) = c.addr(&key.key("listen"), l) {
            out.listen = addr;
        }
    }
    if let Some(t) = a.token {
        if t.is_empty() || !t.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
            c.fail(
                key.key("token"),
                Problem::Invalid("the token must be non-empty visible ASCII without spaces"),
            );
        }
        out.token = Some(t);
    }
    if let Some(t) = a.tls {
        out.tls = listener_tls(c, &key.key("tls"), t);
    }
    if !out.listen.ip().is_loopback() && out.token.is_none() {
        c.fail(key.key("listen"), Problem::AdminWithoutToken(out.listen));
    }
    out
}

#[allow(clippy::too_many_lines)] // one check per key of the table, in the table's order: split, the table's rules would scatter
fn listener(c: &mut Checker<'_>, key: &KeyPath, l: FileListener) -> Option<ListenerConfig> {
    let listen = c.addr(&key.key("listen"), &l.listen);
    let pkey = key.key("protocol");
    let protocol = match (c.binary, l.protocol.as_deref()) {
        (Binary::Proxy, None | Some("http")) => ListenerProtocol::Http,
        (Binary::Proxy, Some("tls")) => {
            c.fail(pkey, Problem::NotSupported { binary: c.binary, why: "lb-proxy listeners speak \"http\"; add tls = { cert, key } to terminate TLS" });
            ListenerProtocol::Http
        }
        (Binary::Proxy, Some(other)) => {
            c.fail(
                pkey,
                Problem::UnknownValue {
                    what: "protocol",
                    value: other.to_owned(),
                    expected: "\"http\"",
                },
            );
            ListenerProtocol::Http
        }
        (Binary::Sni, None | Some("tls")) => ListenerProtocol::Tls,
        (Binary::Sni, Some("http")) => ListenerProtocol::Http,
        (Binary::Sni, Some(other)) => {
            c.fail(
                pkey,
                Problem::UnknownValue {
                    what: "protocol",
                    value: other.to_owned(),
                    expected: "\"tls\" (route on SNI) or \"http\" (route on Host)",
                },
            );
            ListenerProtocol::Tls
        }
    };
    let header_timeout = c.dur(
        &key.key("header_timeout"),
        l.header_timeout.as_ref(),
        Duration::from_secs(10),
        true,
    );
    let idle_timeout = c.dur(
        &key.key("idle_timeout"),
        l.idle_timeout.as_ref(),
        Duration::from_secs(60),
        true,
    );
    let max_header_bytes: usize = c.num(
        &key.key("max_header_bytes"),
        l.max_header_bytes,
        65_536,
        (1024, 16 << 20),
        "1024 to 16777216 (16 MiB)",
    );
    let max_body: u64 = c.num(
        &key.key("max_body_bytes"),
        l.max_body_bytes,
        0,
        (0, i64::MAX),
        "0 (unlimited) or more",
    );
    let max_conns: usize = c.num(
        &key.key("max_connections"),
        l.max_connections,
        10_000,
        (1, 10_000_000),
        "1 to 10000000",
    );
    let mut trusted_proxies = Vec::new();
    for (i, s) in l.trusted_proxies.unwrap_or_default().iter().enumerate() {
        match s.parse::<Cidr>() {
            Ok(cidr) => trusted_proxies.push(cidr),
            Err(error) => c.fail(
                key.key("trusted_proxies").index(i),
                Problem::BadCidr {
                    value: s.clone(),
                    error,
                },
            ),
        }
    }
    let tkey = key.key("tls");
    let tls = match l.tls {
        Some(t)
            if c.proxy_only(
                &tkey,
                true,
                "lb-sni passes TLS through without terminating it (use lb-proxy to terminate)",
            ) =>
        {
            listener_tls(c, &tkey, t)
        }
        _ => None,
    };
    Some(ListenerConfig {
        listen: listen?,
        protocol,
        header_timeout,
        idle_timeout,
        max_header_bytes: NonZeroUsize::new(max_header_bytes)?,
        max_body_bytes: NonZeroU64::new(max_body),
        max_connections: NonZeroUsize::new(max_conns)?,
        accept_proxy_protocol: l.accept_proxy_protocol.unwrap_or(false),
        trusted_proxies,
        tls,
    })
}

fn listener_tls(
    c: &mut Checker<'_>,
    key: &KeyPath,
    t: super::file::FileListenerTls,
) -> Option<TlsFiles> {
    let min_version = match t.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::Tls12,
        Some("1.3") => TlsVersion::Tls13,
        Some(other) => {
            c.fail(
                key.key("min_version"),
                Problem::UnknownValue {
                    what: "TLS version",
                    value: other.to_owned(),
                    expected: "\"1.2\" or \"1.3\"",
                },
            );
            TlsVersion::Tls12
        }
    };
    let mut certs = Vec::new();
    #[cfg(feature = "tls")]
    let single = t.certs.is_none();
    match (t.cert, t.key, t.certs) {
        (Some(cert), Some(k), None) => certs.push(CertKey {
            cert: c.readable(&key.key("cert"), &cert),
            key: c.readable(&key.key("key"), &k),
        }),
        (None, None, Some(list)) if !list.is_empty() => {
            for (i, p) in list.iter().enumerate() {
                let ik = key.key("certs").index(i);
                certs.push(CertKey {
                    cert: c.readable(&ik.key("cert"), &p.cert),
                    key: c.readable(&ik.key("key"), &p.key),
                });
            }
        }
        (None, None, Some(_)) => c.fail(
            key.key("certs"),
            Problem::Invalid("`certs` needs at least one { cert, key }"),
        ),
        (_, _, Some(_)) => c.fail(
            key.clone(),
            Problem::Invalid("use either cert + key or certs = [...], not both"),
        ),
        _ => c.fail(
            key.clone(),
            Problem::Invalid("TLS needs cert and key (or certs = [{ cert, key }, ...])"),
        ),
    }
    let files = TlsFiles { certs, min_version };
    // Only when every file could be opened: else the error above says why already.
    #[cfg(feature = "tls")]
    if files
        .certs
        .iter()
        .all(|p| p.cert.is_file() && p.key.is_file())
    {
        if let Err((i, e)) = crate::certs::check(&files) {
            let at = if single {
                key.clone()
            } else {
                key.key("certs").index(i)
            };
            c.fail(at, Problem::Certificate(e.to_string()));
        }
    }
    Some(files)
}
