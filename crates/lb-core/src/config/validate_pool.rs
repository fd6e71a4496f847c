//! Validation of `[pool.X]` and `[pool.X.health]`.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::time::Duration;

use super::error::{KeyPath, Problem};
use super::file::{FileBackend, FilePool};
use super::net::is_token;
use super::pool::{
    BackendConfig, Discovery, HealthConfig, KeySpec, KeySpecError, PoolConfig, ProxyProtocol,
    RetryBudget, RetryOn, UpstreamProtocol, UpstreamTls,
};
use super::validate::Checker;
use super::Binary;
use crate::backend::MAX_WEIGHT;
use crate::name::normalize_name;
use crate::outlier::OutlierSettings;
use crate::select::StrategyKind;

const PROXY_KEYS: &str =
    "client-ip, host, path, uri, header:NAME, cookie:NAME, query:NAME or path-regex:RE";
const SNI_KEYS: &str = "client-ip or sni";

#[allow(clippy::too_many_lines)] // one check per key of the table, in the table's order: split, the table's rules would scatter
pub(crate) fn pool(c: &mut Checker<'_>, key: &KeyPath, name: &str, p: FilePool) -> PoolConfig {
    let d = PoolConfig::with_defaults(name);
    let strategy = match p.strategy.as_deref().map(str::parse::<StrategyKind>) {
        None => d.strategy,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            c.fail(key.key("strategy"), Problem::UnknownStrategy(e));
            d.strategy
        }
    };
    let key_spec = p
        .key
        .as_deref()
        .map_or(KeySpec::ClientIp, |s| key_spec(c, &key.key("key"), s));

    let mut backends = Vec::new();
    let mut seen_addr = BTreeSet::new();
    let mut seen_id = BTreeSet::new();
    let has_backends = p.backends.as_ref().is_some_and(|b| !b.is_empty());
    for (i, b) in p.backends.unwrap_or_default().into_iter().enumerate() {
        let bk = key.key("backends").index(i);
        if let Some(b) = backend(c, &bk, b) {
            if !seen_addr.insert(b.addr) {
                c.fail(
                    bk,
                    Problem::Duplicate {
                        what: "backend address",
                        value: b.addr.to_string(),
                    },
                );
            } else if !seen_id.insert(b.id.clone()) {
                c.fail(
                    bk.key("id"),
                    Problem::Duplicate {
                        what: "backend id",
                        value: b.id.clone(),
                    },
                );
            } else {
                backends.push(b);
            }
        }
    }
    let discovery = match p.discovery {
        None => Discovery::Static,
        Some(_) if has_backends => {
            c.fail(key.key("discovery"), Problem::BackendsWithDiscovery);
            Discovery::Static
        }
        Some(f) => super::validate_health::discovery(c, &key.key("discovery"), f),
    };

    let retries = c.num(
        &key.key("retries"),
        p.retries,
        d.retries,
        (0, 100),
        "0 to 100",
    );
    let retry_on = match p.retry_on {
        None => d.retry_on,
        Some(list) => retry_on(c, &key.key("retry_on"), &list),
    };
    let retry_budget = match p.retry_budget {
        None => d.retry_budget,
        Some(b) => {
            let k = key.key("retry_budget");
            RetryBudget {
                ratio: c.float(
                    &k.key("ratio"),
                    b.ratio,
                    d.retry_budget.ratio,
                    (0.0, 1.0),
                    "0.0 to 1.0",
                ),
                min_concurrent: c.num(
                    &k.key("min_concurrent"),
                    b.min_concurrent,
                    d.retry_budget.min_concurrent,
                    (0, 1_000_000),
                    "0 to 1000000",
                ),
            }
        }
    };
    let connect_timeout = c.dur(
        &key.key("connect_timeout"),
        p.connect_timeout.as_ref(),
        d.connect_timeout,
        true,
    );
    let response_timeout = c.dur(
        &key.key("response_timeout"),
        p.response_timeout.as_ref(),
        d.response_timeout,
        true,
    );
    let idle_timeout = c.dur(
        &key.key("idle_timeout"),
        p.idle_timeout.as_ref(),
        d.idle_timeout,
        true,
    );
    let max_conns_per_backend = c.num(
        &key.key("max_conns_per_backend"),
        p.max_conns_per_backend,
        0u32,
        (0, i64::from(u32::MAX)),
        "0 (unlimited) to 4294967295",
    );
    let slow_start = c.dur(
        &key.key("slow_start"),
        p.slow_start.as_ref(),
        Duration::ZERO,
        false,
    );
    if !slow_start.is_zero() && !strategy.supports_slow_start() {
        c.fail(key.key("slow_start"), Problem::Invalid("slow_start only applies to round-robin, random and least-conn: hashing strategies never move keys for it"));
    }
    let vnodes: u32 = c.num(
        &key.key("vnodes"),
        p.vnodes,
        d.vnodes.get(),
        (1, 1000),
        "1 to 1000",
    );
    let bound = c.float(
        &key.key("bound"),
        p.bound,
        d.bound,
        (1.0, 1000.0),
        "1.0 or more",
    );
    let outlier = match p.outlier {
        None => d.outlier,
        Some(o) => {
            let k = key.key("outlier");
            OutlierSettings {
                consecutive_errors: c.num(
                    &k.key("consecutive_errors"),
                    o.consecutive_errors,
                    d.outlier.consecutive_errors,
                    (0, 1_000_000),
                    "0 (off) to 1000000",
                ),
                base_ejection: c.dur(
                    &k.key("base_ejection"),
                    o.base_ejection.as_ref(),
                    d.outlier.base_ejection,
                    true,
                ),
                max_ejected: c.float(
                    &k.key("max_ejected"),
                    o.max_ejected,
                    d.outlier.max_ejected,
                    (0.0, 1.0),
                    "0.0 to 1.0",
                ),
            }
        }
    };
    let proxy_protocol = match p.proxy_protocol.as_deref() {
        None => None,
        Some("v1") => Some(ProxyProtocol::V1),
        Some("v2") => Some(ProxyProtocol::V2),
        Some(other) => {
            c.fail(
                key.key("proxy_protocol"),
                Problem::UnknownValue {
                    what: "PROXY protocol version",
                    value: other.to_owned(),
                    expected: "\"v1\" or \"v2\"",
                },
            );
            None
        }
    };
    let mut sticky = None;
    if c.proxy_only(
        &key.key("sticky"),
        p.sticky.is_some(),
        "lb-sni does not see cookies",
    ) {
        let cookie = p
            .sticky
            .and_then(|s| s.cookie)
            .unwrap_or_else(|| "lb_sticky".to_owned());
        if !is_token(&cookie) {
            c.fail(
                key.key("sticky").key("cookie"),
                Problem::BadToken {
                    what: "cookie name",
                    value: cookie.clone(),
                },
            );
        }
        sticky = Some(cookie);
    }
    let mut tls = None;
    if c.proxy_only(
        &key.key("tls"),
        p.tls.is_some(),
        "lb-sni forwards TLS untouched; upstream TLS is lb-proxy only",
    ) {
        if let Some(t) = p.tls {
            let k = key.key("tls");
            let sni = t.sni.map(|s| match normalize_name(&s) {
                Ok(n) => n.into_owned(),
                Err(error) => {
                    c.fail(
                        k.key("sni"),
                        Problem::BadName {
                            value: s.clone(),
                            error,
                        },
                    );
                    s
                }
            });
            let ca = t.ca.map(|p| ca_file(c, &k.key("ca"), &p));
            tls = Some(UpstreamTls {
                sni,
                verify: t.verify.unwrap_or(true),
                ca,
            });
        }
    }
    let mut protocol = UpstreamProtocol::Http1;
    if c.proxy_only(
        &key.key("protocol"),
        p.protocol.is_some(),
        "lb-sni forwards bytes; the HTTP version towards backends is lb-proxy only",
    ) {
        match p.protocol.as_deref() {
            Some("http1") | None => {}
            Some("h2") => protocol = UpstreamProtocol::H2,
            Some(other) => c.fail(
                key.key("protocol"),
                Problem::UnknownValue {
                    what: "upstream protocol",
                    value: other.to_owned(),
                    expected: "\"http1\" or \"h2\"",
                },
            ),
        }
    }
    let health = p.health.map_or_else(HealthConfig::default, |h| {
        super::validate_health::health(c, &key.key("health"), h)
    });

    PoolConfig {
        name: name.to_owned(),
        strategy,
        key: key_spec,
        backends,
        discovery,
        retries,
        retry_on,
        retry_budget,
        connect_timeout,
        response_timeout,
        idle_timeout,
        max_conns_per_backend,
        slow_start,
        vnodes: NonZeroU32::new(vnodes).unwrap_or(d.vnodes),
        bound,
        outlier,
        proxy_protocol,
        sticky,
        tls,
        protocol,
        health,
    }
}

/// A CA bundle: readable now and, with the `tls` feature, holding at least one PEM
/// certificate, so `--check` names a bad file instead of the first connection failing.
fn ca_file(c: &mut Checker<'_>, key: &KeyPath, p: &str) -> std::path::PathBuf {
    let before = c.issues.len();
    let path = c.readable(key, p);
    #[cfg(feature = "tls")]
    if c.issues.len() == before {
        if let Err(e) = crate::tls::roots(Some(&path)) {
            let error = match e {
                crate::tls::ClientTlsError::Ca { reason, .. } => reason.to_string(),
                crate::tls::ClientTlsError::NoRoots(_) => {
                    "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned()
                }
                other => other.to_string(),
            };
            c.fail(
                key.clone(),
                Problem::BadCa {
                    path: path.clone(),
                    error,
                },
            );
        }
    }
    #[cfg(not(feature = "tls"))]
    let _ = before;
    path
}

pub(crate) fn key_spec(c: &mut Checker<'_>, key: &KeyPath, s: &str) -> KeySpec {
    let expected = match c.binary {
        Binary::Proxy => PROXY_KEYS,
        Binary::Sni => SNI_KEYS,
    };
    let spec = match s.parse::<KeySpec>() {
        Ok(k) => k,
        Err(e) => {
            let problem = match e {
                KeySpecError::Unknown => Problem::BadKeySpec {
                    value: s.to_owned(),
                    reason: format!("expected {expected}"),
                },
                KeySpecError::BadName(what) => Problem::BadKeySpec {
                    value: s.to_owned(),
                    reason: format!("bad {what}"),
                },
                KeySpecError::BadRegex(error) => Problem::BadRegex {
                    value: regex_part(s),
                    error,
                },
                KeySpecError::NoCapture => Problem::RegexWithoutCapture(regex_part(s)),
            };
            c.fail(key.clone(), problem);
            return KeySpec::ClientIp;
        }
    };
    let allowed = match c.binary {
        Binary::Proxy => spec != KeySpec::Sni,
        Binary::Sni => matches!(spec, KeySpec::ClientIp | KeySpec::Sni),
    };
    if !allowed {
        c.fail(
            key.clone(),
            Problem::KeyNotForBinary {
                value: s.to_owned(),
                binary: c.binary,
                expected,
            },
        );
        return KeySpec::ClientIp;
    }
    spec
}

fn regex_part(s: &str) -> String {
    s.strip_prefix("path-regex:").unwrap_or(s).to_owned()
}

fn backend(c: &mut Checker<'_>, key: &KeyPath, b: FileBackend) -> Option<BackendConfig> {
    let (addr_s, weight, id, backup, akey) = match b {
        FileBackend::Addr(a) => (a, None, None, false, key.clone()),
        FileBackend::Table(t) => (
            t.addr,
            t.weight,
            t.id,
            t.backup.unwrap_or(false),
            key.key("addr"),
        ),
    };
    let addr = c.addr(&akey, &addr_s);
    let weight: u16 = c.num(
        &key.key("weight"),
        weight,
        1,
        (0, i64::from(MAX_WEIGHT)),
        "0 (drain) to 256",
    );
    if id.as_ref().is_some_and(|i| i.is_empty() || i.len() > 256) {
        c.fail(
            key.key("id"),
            Problem::Invalid("a backend id is 1 to 256 bytes"),
        );
    }
    let addr = addr?;
    Some(BackendConfig {
        addr,
        weight,
        id: id.unwrap_or_else(|| addr.to_string()),
        backup,
    })
}

fn retry_on(c: &mut Checker<'_>, key: &KeyPath, list: &[String]) -> RetryOn {
    let mut r = RetryOn {
        connect: false,
        reset: false,
        status_502: false,
        status_503: false,
    };
    for (i, s) in list.iter().enumerate() {
        match s.as_str() {
            "connect" => r.connect = true,
            "reset" => r.reset = true,
            "502" | "503" if c.binary == Binary::Sni => c.fail(
                key.index(i),
                Problem::NotSupported {
                    binary: c.binary,
                    why:
                        "lb-sni never sees HTTP statuses: retry_on takes \"connect\" and \"reset\"",
                },
            ),
            "502" => r.status_502 = true,
            "503" => r.status_503 = true,
            other => c.fail(
                key.index(i),
                Problem::UnknownValue {
                    what: "retry_on condition",
                    value: other.to_owned(),
                    expected: "\"connect\", \"reset\", \"502\" or \"503\"",
                },
            ),
        }
    }
    r
}
