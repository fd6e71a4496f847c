//! Validation of a pool's `discovery` and `[pool.X.health]`: how membership and health
//! are learned.

use std::num::NonZeroU32;
use std::time::Duration;

use super::duration::parse_percent;
use super::error::{KeyPath, Problem};
use super::file::{FileDiscovery, FileHealth};
use super::net::RedisUrl;
use super::pool::{Discovery, HealthConfig, HealthKind};
use super::types::resolve_path;
use super::validate::Checker;
use crate::name::normalize_name;

#[allow(clippy::too_many_lines)] // one check per key of the table, in the table's order: split, the table's rules would scatter
pub(crate) fn discovery(c: &mut Checker<'_>, key: &KeyPath, f: FileDiscovery) -> Discovery {
    let kind = f.kind.clone();
    let only = |c: &mut Checker<'_>, allowed: &[&str]| {
        let present = [
            ("path", f.path.is_some()),
            ("name", f.name.is_some()),
            ("port", f.port.is_some()),
            ("min_ttl", f.min_ttl.is_some()),
            ("max_ttl", f.max_ttl.is_some()),
            ("url", f.url.is_some()),
            ("key", f.key.is_some()),
            ("resync", f.resync.is_some()),
        ];
        for (k, set) in present {
            if set && !allowed.contains(&k) {
                c.fail(key.key(k), Problem::KeyNotForKind(kind.clone()));
            }
        }
    };
    match f.kind.as_str() {
        "static" => {
            only(c, &[]);
            Discovery::Static
        }
        "file" => {
            only(c, &["path"]);
            match &f.path {
                Some(p) if !p.is_empty() => Discovery::File {
                    path: resolve_path(c.base(), p),
                },
                _ => {
                    c.fail(
                        key.key("path"),
                        Problem::Invalid("kind \"file\" needs path = \"backends.txt\""),
                    );
                    Discovery::Static
                }
            }
        }
        "dns" => {
            only(c, &["name", "port", "min_ttl", "max_ttl"]);
            let name = match f.name.as_deref().map(|n| (n, normalize_name(n))) {
                Some((_, Ok(n))) => n.into_owned(),
                Some((n, Err(error))) => {
                    c.fail(
                        key.key("name"),
                        Problem::BadName {
                            value: n.to_owned(),
                            error,
                        },
                    );
                    String::new()
                }
                None => {
                    c.fail(
                        key.key("name"),
                        Problem::Invalid("kind \"dns\" needs name = \"backends.example.com\""),
                    );
                    String::new()
                }
            };
            let port = f
                .port
                .map(|p| c.num(&key.key("port"), Some(p), 1u16, (1, 65_535), "1 to 65535"));
            let min_ttl = c.dur(
                &key.key("min_ttl"),
                f.min_ttl.as_ref(),
                Duration::from_secs(5),
                true,
            );
            let max_ttl = c.dur(
                &key.key("max_ttl"),
                f.max_ttl.as_ref(),
                Duration::from_secs(300),
                true,
            );
            if min_ttl > max_ttl {
                c.fail(
                    key.key("min_ttl"),
                    Problem::Invalid("min_ttl must not exceed max_ttl"),
                );
            }
            Discovery::Dns {
                name,
                port,
                min_ttl,
                max_ttl,
            }
        }
        "redis" => {
            only(c, &["url", "key", "resync"]);
            let url = match f.url.as_deref().map(|u| (u, RedisUrl::parse(u))) {
                Some((_, Ok(u))) => Some(u),
                Some((u, Err(reason))) => {
                    c.fail(
                        key.key("url"),
                        Problem::BadUrl {
                            value: u.to_owned(),
                            reason,
                        },
                    );
                    None
                }
                None => {
                    c.fail(
                        key.key("url"),
                        Problem::Invalid("kind \"redis\" needs url = \"redis://host:port\""),
                    );
                    None
                }
            };
            let hkey = match f.key {
                Some(k) if !k.is_empty() => k,
                _ => {
                    c.fail(
                        key.key("key"),
                        Problem::Invalid("kind \"redis\" needs a non-empty key = \"lb:pool:NAME\""),
                    );
                    String::new()
                }
            };
            let resync = c.dur(
                &key.key("resync"),
                f.resync.as_ref(),
                Duration::from_secs(1),
                true,
            );
            match url {
                Some(url) => Discovery::Redis {
                    url,
                    key: hkey,
                    resync,
                },
                None => Discovery::Static,
            }
        }
        other => {
            c.fail(
                key.key("kind"),
                Problem::UnknownValue {
                    what: "discovery kind",
                    value: other.to_owned(),
                    expected: "\"static\", \"file\", \"dns\" or \"redis\"",
                },
            );
            Discovery::Static
        }
    }
}

#[allow(clippy::too_many_lines)] // one check per key of the table, in the table's order: split, the table's rules would scatter
pub(crate) fn health(c: &mut Checker<'_>, key: &KeyPath, h: FileHealth) -> HealthConfig {
    let d = HealthConfig::default();
    let kind = match h.kind.as_deref() {
        None | Some("none") => HealthKind::None,
        Some("http") => HealthKind::Http,
        Some("https") => HealthKind::Https,
        Some("tcp") => HealthKind::Tcp,
        Some(other) => {
            c.fail(
                key.key("kind"),
                Problem::UnknownValue {
                    what: "health kind",
                    value: other.to_owned(),
                    expected: "\"http\", \"https\", \"tcp\" or \"none\"",
                },
            );
            HealthKind::Http
        }
    };
    let set = [
        ("path", h.path.is_some()),
        ("expect", h.expect.is_some()),
        ("port", h.port.is_some()),
        ("interval", h.interval.is_some()),
        ("timeout", h.timeout.is_some()),
        ("rise", h.rise.is_some()),
        ("fall", h.fall.is_some()),
        ("jitter", h.jitter.is_some()),
        ("initial", h.initial.is_some()),
    ];
    for (k, present) in set {
        let unused = match kind {
            HealthKind::None => true,
            HealthKind::Tcp => k == "path" || k == "expect",
            _ => false,
        };
        if present && unused && kind == HealthKind::None {
            c.fail(key.key(k), Problem::Invalid("kind \"none\" (the default) runs no checks: set kind = \"http\", \"https\" or \"tcp\", or remove this key"));
        } else if present && unused {
            c.fail(key.key(k), Problem::KeyNotForKind("tcp".to_owned()));
        }
    }
    let path = h.path.unwrap_or(d.path);
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        c.fail(
            key.key("path"),
            Problem::Invalid(
                "a health path starts with '/' and has no spaces or control characters",
            ),
        );
    }
    let jitter = match h.jitter {
        None => d.jitter,
        Some(j) => parse_percent(&j).unwrap_or_else(|| {
            c.fail(key.key("jitter"), Problem::BadPercent(j.clone()));
            d.jitter
        }),
    };
    let initial_up = match h.initial.as_deref() {
        None | Some("up") => true,
        Some("down") => false,
        Some(other) => {
            c.fail(
                key.key("initial"),
                Problem::UnknownValue {
                    what: "initial state",
                    value: other.to_owned(),
                    expected: "\"up\" or \"down\"",
                },
            );
            true
        }
    };
    let rise: u32 = c.num(
        &key.key("rise"),
        h.rise,
        d.rise.get(),
        (1, 1000),
        "1 to 1000",
    );
    let fall: u32 = c.num(
        &key.key("fall"),
        h.fall,
        d.fall.get(),
        (1, 1000),
        "1 to 1000",
    );
    HealthConfig {
        kind,
        path,
        expect: c.num(
            &key.key("expect"),
            h.expect,
            d.expect,
            (100, 599),
            "an HTTP status 100 to 599",
        ),
        port: h
            .port
            .map(|p| c.num(&key.key("port"), Some(p), 1u16, (1, 65_535), "1 to 65535")),
        interval: c.dur(&key.key("interval"), h.interval.as_ref(), d.interval, true),
        timeout: c.dur(&key.key("timeout"), h.timeout.as_ref(), d.timeout, true),
        rise: NonZeroU32::new(rise).unwrap_or(d.rise),
        fall: NonZeroU32::new(fall).unwrap_or(d.fall),
        jitter,
        initial_up,
    }
}
