//! Validation of `[[route]]` and `[resolver.X]`.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::Duration;

use super::error::{KeyPath, Problem};
use super::file::{FileResolver, FileRoute};
use super::net::{is_header_value, is_token, RedisUrl, UrlTemplate};
use super::types::{ResolverConfig, ResolverKind, RouteConfig, RouteTarget, StaticAnswer};
use super::validate::Checker;
use super::Binary;
use crate::name::{normalize_name, HostPattern};

#[allow(clippy::too_many_lines)] // one check per key of the table, in the table's order: split, the table's rules would scatter
pub(crate) fn route(
    c: &mut Checker<'_>,
    key: &KeyPath,
    r: FileRoute,
    pools: &BTreeSet<String>,
    resolvers: &BTreeSet<String>,
) -> Option<RouteConfig> {
    let host_s = r.host.as_deref().unwrap_or("*");
    let host = match HostPattern::parse(host_s) {
        Ok(h) => Some(h),
        Err(error) => {
            c.fail(
                key.key("host"),
                Problem::BadName {
                    value: host_s.to_owned(),
                    error,
                },
            );
            None
        }
    };
    let why = "lb-sni routes on the host name only";
    let mut path_prefix = None;
    if c.proxy_only(&key.key("path_prefix"), r.path_prefix.is_some(), why) {
        if let Some(p) = r.path_prefix {
            if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
                c.fail(
                    key.key("path_prefix"),
                    Problem::Invalid(
                        "a path prefix starts with '/' and has no spaces or control characters",
                    ),
                );
            }
            path_prefix = Some(p);
        }
    }
    let strip_prefix = c.proxy_only(&key.key("strip_prefix"), r.strip_prefix.is_some(), why)
        && r.strip_prefix == Some(true);
    if strip_prefix && path_prefix.is_none() && c.binary == Binary::Proxy {
        c.fail(
            key.key("strip_prefix"),
            Problem::Invalid("strip_prefix needs path_prefix"),
        );
    }
    let list = |names: Vec<&String>| {
        names
            .into_iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match (r.pool, r.resolver) {
        (Some(pool), Some(resolver)) => {
            c.fail(key.clone(), Problem::PoolAndResolver { pool, resolver });
            None
        }
        (None, None) => {
            c.fail(key.clone(), Problem::NoRouteTarget);
            None
        }
        (Some(p), None) => {
            if !pools.contains(&p) {
                c.fail(
                    key.key("pool"),
                    Problem::UnknownPool {
                        name: p.clone(),
                        defined: list(pools.iter().collect()),
                    },
                );
            }
            Some(RouteTarget::Pool(p))
        }
        (None, Some(r)) => {
            if !resolvers.contains(&r) {
                c.fail(
                    key.key("resolver"),
                    Problem::UnknownResolver {
                        name: r.clone(),
                        defined: list(resolvers.iter().collect()),
                    },
                );
            }
            Some(RouteTarget::Resolver(r))
        }
    };
    let hwhy = "lb-sni forwards bytes and does not rewrite headers";
    let mut set_headers = Vec::new();
    if c.proxy_only(&key.key("set_headers"), r.set_headers.is_some(), hwhy) {
        for (name, value) in r.set_headers.unwrap_or_default() {
            let hk = key.key("set_headers").key(&name);
            if !is_token(&name) {
                c.fail(
                    hk.clone(),
                    Problem::BadToken {
                        what: "header name",
                        value: name.clone(),
                    },
                );
            }
            if !is_header_value(&value) {
                c.fail(hk, Problem::BadHeaderValue(value.clone()));
            }
            set_headers.push((name.to_ascii_lowercase(), value));
        }
    }
    let mut remove_headers = Vec::new();
    if c.proxy_only(&key.key("remove_headers"), r.remove_headers.is_some(), hwhy) {
        for (i, name) in r.remove_headers.unwrap_or_default().into_iter().enumerate() {
            if !is_token(&name) {
                c.fail(
                    key.key("remove_headers").index(i),
                    Problem::BadToken {
                        what: "header name",
                        value: name.clone(),
                    },
                );
            }
            remove_headers.push(name.to_ascii_lowercase());
        }
    }
    let mut alpn = Vec::new();
    if let Some(list) = r.alpn {
        if c.binary == Binary::Proxy {
            c.fail(
                key.key("alpn"),
                Problem::NotSupported {
                    binary: c.binary,
                    why: "routing on the ClientHello's ALPN is lb-sni's (lb-proxy negotiates ALPN itself)",
                },
            );
        } else if list.is_empty() {
            c.fail(
                key.key("alpn"),
                Problem::Invalid("an empty alpn list matches nothing: remove the key to match any"),
            );
        }
        for (i, proto) in list.into_iter().enumerate() {
            if proto.is_empty() || proto.len() > 255 {
                c.fail(
                    key.key("alpn").index(i),
                    Problem::Invalid(
                        "an ALPN protocol id is 1-255 bytes, e.g. \"h2\" or \"http/1.1\"",
                    ),
                );
            }
            alpn.push(proto);
        }
    }
    let rate_limit = match r.rate_limit {
        Some(l)
            if c.proxy_only(
                &key.key("rate_limit"),
                true,
                "lb-sni forwards connections, not requests (rate limits are lb-proxy's)",
            ) =>
        {
            super::validate_limit::rate_limit(c, &key.key("rate_limit"), l)
        }
        _ => None,
    };
    Some(RouteConfig {
        host: host?,
        path_prefix,
        strip_prefix,
        target: target?,
        set_headers,
        remove_headers,
        alpn,
        rate_limit,
    })
}

#[allow(clippy::too_many_lines)] // one check per key of the table, in the table's order: split, the table's rules would scatter
pub(crate) fn resolver(
    c: &mut Checker<'_>,
    key: &KeyPath,
    name: &str,
    r: FileResolver,
    pools: &BTreeSet<String>,
) -> Option<ResolverConfig> {
    let not_for = |c: &mut Checker<'_>, k: &str, present: bool| {
        if present {
            c.fail(key.key(k), Problem::KeyNotForKind(r.kind.clone()));
        }
    };
    let kind = match r.kind.as_str() {
        "http" => {
            not_for(c, "prefix", r.prefix.is_some());
            not_for(c, "map", r.map.is_some());
            match r.url.as_deref() {
                None => {
                    c.fail(
                        key.key("url"),
                        Problem::Invalid(
                            "kind \"http\" needs url = \"http://host:port/path/{name}\"",
                        ),
                    );
                    None
                }
                Some(u) => match UrlTemplate::parse(u) {
                    Ok(url) => Some(ResolverKind::Http { url }),
                    Err(reason) => {
                        c.fail(
                            key.key("url"),
                            Problem::BadUrl {
                                value: u.to_owned(),
                                reason,
                            },
                        );
                        None
                    }
                },
            }
        }
        "resp" => {
            not_for(c, "map", r.map.is_some());
            match r.url.as_deref() {
                None => {
                    c.fail(
                        key.key("url"),
                        Problem::Invalid("kind \"resp\" needs url = \"redis://host:port\""),
                    );
                    None
                }
                Some(u) => match RedisUrl::parse(u) {
                    Ok(url) => Some(ResolverKind::Resp {
                        url,
                        prefix: r.prefix.clone().unwrap_or_default(),
                    }),
                    Err(reason) => {
                        c.fail(
                            key.key("url"),
                            Problem::BadUrl {
                                value: u.to_owned(),
                                reason,
                            },
                        );
                        None
                    }
                },
            }
        }
        "static" => {
            not_for(c, "url", r.url.is_some());
            not_for(c, "prefix", r.prefix.is_some());
            let mut map = BTreeMap::new();
            for (n, eps) in r.map.iter().flatten() {
                let nk = key.key("map").key(n);
                let norm = match normalize_name(n) {
                    Ok(norm) => norm.into_owned(),
                    Err(error) => {
                        c.fail(
                            nk,
                            Problem::BadName {
                                value: n.clone(),
                                error,
                            },
                        );
                        continue;
                    }
                };
                if eps.0.is_empty() {
                    c.fail(
                        nk.clone(),
                        Problem::Invalid("at least one endpoint is needed"),
                    );
                }
                let answer = match eps.0.as_slice() {
                    [one] if one.starts_with("pool:") => {
                        let pool = one["pool:".len()..].trim().to_owned();
                        if !pools.contains(&pool) {
                            c.fail(
                                nk.clone(),
                                Problem::UnknownPool {
                                    name: pool.clone(),
                                    defined: pools
                                        .iter()
                                        .map(String::as_str)
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                },
                            );
                        }
                        StaticAnswer::Pool(pool)
                    }
                    _ => StaticAnswer::Endpoints(
                        eps.0.iter().filter_map(|e| c.addr(&nk, e)).collect(),
                    ),
                };
                if map.insert(norm.clone(), answer).is_some() {
                    c.fail(
                        nk,
                        Problem::Duplicate {
                            what: "name (after normalisation)",
                            value: norm,
                        },
                    );
                }
            }
            Some(ResolverKind::Static { map })
        }
        other => {
            c.fail(
                key.key("kind"),
                Problem::UnknownValue {
                    what: "resolver kind",
                    value: other.to_owned(),
                    expected: "\"http\", \"resp\" or \"static\"",
                },
            );
            None
        }
    };
    let ttl = c.dur(
        &key.key("ttl"),
        r.ttl.as_ref(),
        Duration::from_secs(30),
        false,
    );
    let negative_ttl = c.dur(
        &key.key("negative_ttl"),
        r.negative_ttl.as_ref(),
        Duration::from_secs(5),
        false,
    );
    let stale_ttl = c.dur(
        &key.key("stale_ttl"),
        r.stale_ttl.as_ref(),
        Duration::from_secs(300),
        false,
    );
    let timeout = c.dur(
        &key.key("timeout"),
        r.timeout.as_ref(),
        Duration::from_secs(1),
        true,
    );
    let max_entries: usize = c.num(
        &key.key("max_entries"),
        r.max_entries,
        100_000,
        (1, 100_000_000),
        "1 to 100000000",
    );
    let d = super::PoolConfig::with_defaults(name);
    let connect_timeout = c.dur(
        &key.key("connect_timeout"),
        r.connect_timeout.as_ref(),
        d.connect_timeout,
        true,
    );
    let response_timeout = c.dur(
        &key.key("response_timeout"),
        r.response_timeout.as_ref(),
        d.response_timeout,
        true,
    );
    let idle_timeout = c.dur(
        &key.key("idle_timeout"),
        r.idle_timeout.as_ref(),
        d.idle_timeout,
        true,
    );
    let retries = c.num(
        &key.key("retries"),
        r.retries,
        d.retries,
        (0, 100),
        "0 to 100",
    );
    let max_conns_per_backend = c.num(
        &key.key("max_conns_per_backend"),
        r.max_conns_per_backend,
        0u32,
        (0, i64::from(u32::MAX)),
        "0 (unlimited) to 4294967295",
    );
    let bare_pool = match r.bare.as_deref() {
        None => false,
        Some("pool") if r.kind != "static" => true,
        Some("pool") => {
            c.fail(key.key("bare"), Problem::KeyNotForKind(r.kind.clone()));
            false
        }
        Some(other) => {
            c.fail(
                key.key("bare"),
                Problem::UnknownValue {
                    what: "bare answer meaning",
                    value: other.to_owned(),
                    expected: "\"pool\" (a bare word answered names a pool)",
                },
            );
            false
        }
    };
    Some(ResolverConfig {
        name: name.to_owned(),
        kind: kind?,
        ttl,
        negative_ttl,
        stale_ttl,
        timeout,
        max_entries: NonZeroUsize::new(max_entries)?,
        connect_timeout,
        response_timeout,
        idle_timeout,
        retries,
        max_conns_per_backend,
        bare_pool,
    })
}
