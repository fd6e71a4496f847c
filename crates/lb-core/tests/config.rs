//! The config model on valid files: the full example for both binaries, every default,
//! every key set explicitly, and the runtime helpers (pool building, reload).

#![cfg(feature = "config")]

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::*;
use lb_core::config::*;
use lb_core::name::HostPattern;
use lb_core::{Pool, StrategyKind};
use lb_test_support::cert::write_pem;
use lb_test_support::temp_dir;

#[test]
fn spec_example_for_lb_proxy() {
    let c = ok(FULL_EXAMPLE, Binary::Proxy);
    assert_eq!(c.binary, Binary::Proxy);
    assert_eq!(c.threads, 0);
    assert_eq!(c.admin.listen, sa("127.0.0.1:9091"));
    assert_eq!(c.admin.token.as_deref(), Some("s3cret"));

    assert_eq!(c.listeners.len(), 1);
    let l = &c.listeners[0];
    assert_eq!(l.listen, sa("127.0.0.1:8080"));
    assert_eq!(l.protocol, ListenerProtocol::Http);
    assert_eq!(l.header_timeout, Duration::from_secs(10));
    assert_eq!(l.max_connections.get(), 10_000);
    assert!(!l.accept_proxy_protocol);
    assert!(l.tls.is_none());

    let web = c.pool("web").unwrap();
    assert_eq!(web.strategy, StrategyKind::Consistent);
    match &web.key {
        KeySpec::PathRegex(re) => {
            assert_eq!(re.as_str(), "^/documents/([^/?]+)");
            let caps = re.captures("/documents/42?x").unwrap();
            assert_eq!(&caps[1], "42");
        }
        other => panic!("wrong key {other:?}"),
    }
    assert_eq!(web.key.to_string(), "path-regex:^/documents/([^/?]+)");
    let addrs: Vec<_> = web
        .backends
        .iter()
        .map(|b| (b.addr(), b.weight()))
        .collect();
    assert_eq!(
        addrs,
        vec![
            (sa("127.0.0.1:19001"), 1),
            (sa("127.0.0.1:19002"), 1),
            (sa("127.0.0.1:19003"), 2)
        ]
    );
    assert_eq!(web.retries, 2);
    assert_eq!(web.connect_timeout, Duration::from_secs(2));
    assert_eq!(web.response_timeout, Duration::from_secs(30));
    assert_eq!(web.idle_timeout, Duration::from_secs(60));
    let h = &web.health;
    assert_eq!(h.kind, HealthKind::Http);
    assert_eq!(h.path, "/health");
    assert_eq!(h.expect, 200);
    assert_eq!(h.interval, Duration::from_secs(1));
    assert_eq!(h.timeout, Duration::from_millis(500));
    assert_eq!((h.rise.get(), h.fall.get()), (2, 3));

    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[0].host, HostPattern::Exact("app.test".into()));
    assert_eq!(c.routes[0].target, RouteTarget::Pool("web".into()));
    assert_eq!(c.routes[1].host, HostPattern::Any);
    assert_eq!(
        c.routes[1].target,
        RouteTarget::Resolver("directory".into())
    );

    let dir = c.resolver("directory").unwrap();
    match &dir.kind {
        ResolverKind::Http { url } => {
            assert_eq!(
                url.render("tenant-42.example.com"),
                "http://127.0.0.1:6280/backend/tenant-42.example.com"
            );
            assert_eq!((url.host(), url.port()), ("127.0.0.1", 6280));
        }
        other => panic!("wrong kind {other:?}"),
    }
    assert_eq!(
        (dir.ttl, dir.negative_ttl, dir.timeout),
        (
            Duration::from_secs(30),
            Duration::from_secs(5),
            Duration::from_secs(1)
        )
    );
}

#[test]
fn spec_example_for_lb_sni() {
    // lb-sni hashes only client-ip or sni: the proxy's path-regex key is refused, by name.
    let msg = err(FULL_EXAMPLE, Binary::Sni);
    assert_names(
        &msg,
        "pool.web.key",
        &[
            "path-regex:^/documents/([^/?]+)",
            "not allowed in lb-sni",
            "client-ip or sni",
        ],
    );
    assert_eq!(msg.lines().count(), 1, "only the key is wrong: {msg}");

    let text = FULL_EXAMPLE.replace(
        r#"key = "path-regex:^/documents/([^/?]+)""#,
        r#"key = "sni""#,
    );
    let c = ok(&text, Binary::Sni);
    assert_eq!(c.binary, Binary::Sni);
    assert_eq!(c.listeners[0].protocol, ListenerProtocol::Tls);
    let web = c.pool("web").unwrap();
    assert_eq!(web.key, KeySpec::Sni);
    assert_eq!(web.backends.len(), 3);
    assert_eq!(
        c.routes[1].target,
        RouteTarget::Resolver("directory".into())
    );
    assert!(
        c.routes[1].host.matches_opt(None),
        "'*' also matches a hello without SNI"
    );
    // lb-proxy in turn refuses the sni key.
    let msg = err(&text, Binary::Proxy);
    assert_names(
        &msg,
        "pool.web.key",
        &["\"sni\"", "not allowed in lb-proxy"],
    );
}

#[test]
#[allow(clippy::too_many_lines)] // one assertion per default: the list is the test
fn every_default_applies() {
    let text = format!(
        "{MINIMAL}\n[pool.p]\nbackends = [\"127.0.0.1:1\"]\n[pool.q.health]\nkind = \"http\"\n\
         [[route]]\npool = \"p\"\n[resolver.r]\nkind = \"static\"\nmap = {{ \"a.test\" = \"127.0.0.1:2\" }}\n"
    );
    for binary in [Binary::Proxy, Binary::Sni] {
        let c = ok(&text, binary);
        assert_eq!(c.threads, 0);
        assert_eq!(
            c.admin,
            AdminConfig {
                listen: sa("127.0.0.1:9091"),
                token: None,
                tls: None,
            }
        );

        let l = &c.listeners[0];
        let proto = if binary == Binary::Proxy {
            ListenerProtocol::Http
        } else {
            ListenerProtocol::Tls
        };
        assert_eq!(l.protocol, proto);
        assert_eq!(l.header_timeout, Duration::from_secs(10));
        assert_eq!(l.idle_timeout, Duration::from_secs(60));
        assert_eq!(l.max_header_bytes.get(), 65_536);
        assert_eq!(l.max_body_bytes, None);
        assert_eq!(l.max_connections.get(), 10_000);
        assert!(!l.accept_proxy_protocol);
        assert!(l.trusted_proxies.is_empty());
        assert!(l.tls.is_none());

        let p = c.pool("p").unwrap();
        assert_eq!(p.strategy, StrategyKind::RoundRobin);
        assert_eq!(p.key, KeySpec::ClientIp);
        assert_eq!(p.backends[0].id(), "127.0.0.1:1");
        assert_eq!(p.backends[0].weight(), 1);
        assert!(!p.backends[0].backup());
        assert_eq!(p.discovery, Discovery::Static);
        assert_eq!(p.retries, 2);
        assert_eq!(
            p.retry_on,
            RetryOn {
                connect: true,
                reset: true,
                status_502: false,
                status_503: false
            }
        );
        assert_eq!(
            p.retry_budget,
            RetryBudget {
                ratio: 0.2,
                min_concurrent: 3
            }
        );
        assert_eq!(p.connect_timeout, Duration::from_secs(2));
        assert_eq!(p.response_timeout, Duration::from_secs(30));
        assert_eq!(p.idle_timeout, Duration::from_secs(60));
        assert_eq!(p.max_conns_per_backend, 0);
        assert_eq!(p.slow_start, Duration::ZERO);
        assert_eq!(p.vnodes.get(), 160);
        assert_eq!(p.bound, 1.25);
        assert_eq!(p.outlier.consecutive_errors, 5);
        assert_eq!(p.outlier.base_ejection, Duration::from_secs(30));
        assert_eq!(p.outlier.max_ejected, 0.5);
        assert_eq!(p.proxy_protocol, None);
        assert_eq!(p.sticky, None);
        assert_eq!(p.tls, None);
        assert_eq!(p.protocol, UpstreamProtocol::Http1);
        assert_eq!(p.health, HealthConfig::default());
        assert_eq!(p.health.kind, HealthKind::None);
        assert_eq!(
            p,
            &PoolConfig {
                name: "p".into(),
                backends: p.backends.clone(),
                ..PoolConfig::with_defaults("p")
            }
        );

        let h = &c.pool("q").unwrap().health;
        assert_eq!(h.kind, HealthKind::Http);
        assert_eq!(h.path, "/");
        assert_eq!(h.expect, 200);
        assert_eq!(h.port, None);
        assert_eq!(h.interval, Duration::from_secs(2));
        assert_eq!(h.timeout, Duration::from_secs(1));
        assert_eq!(
            (h.rise, h.fall),
            (NonZeroU32::new(2).unwrap(), NonZeroU32::new(3).unwrap())
        );
        assert_eq!(h.jitter, 0.1);
        assert!(h.initial_up);

        let r = &c.routes[0];
        assert_eq!(r.host, HostPattern::Any);
        assert_eq!(r.path_prefix, None);
        assert!(!r.strip_prefix);
        assert!(r.set_headers.is_empty() && r.remove_headers.is_empty());

        let res = c.resolver("r").unwrap();
        assert_eq!(res.ttl, Duration::from_secs(30));
        assert_eq!(res.negative_ttl, Duration::from_secs(5));
        assert_eq!(res.stale_ttl, Duration::from_secs(300));
        assert_eq!(res.timeout, Duration::from_secs(1));
        assert_eq!(res.max_entries.get(), 100_000);
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one assertion per key: the list is the test
fn every_key_set_explicitly() {
    let dir = temp_dir("config");
    // Listener certificates are loaded at validation: real pairs (a.pem + a.key, and
    // cert.pem with its key copied to key.pem).
    write_pem(&dir.join("a.pem"), &dir.join("a.key"), &["lb-test-ca"]);
    write_pem(
        &dir.join("cert.pem"),
        &dir.join("cert.key"),
        &["lb-test-ca"],
    );
    std::fs::copy(dir.join("cert.key"), dir.join("key.pem")).unwrap();
    // The CA bundle's content is checked (it must hold a certificate).
    write_pem(&dir.join("ca.pem"), &dir.join("ca.key"), &["lb-test-ca"]);
    let text = r#"
threads = 4
[admin]
listen = "0.0.0.0:9091"
token = "t0ken"

[[listener]]
listen = "[::1]:8443"
protocol = "http"
header_timeout = "5s"
idle_timeout = "2m"
max_header_bytes = 8192
max_body_bytes = 1048576
max_connections = 100
accept_proxy_protocol = true
trusted_proxies = ["10.0.0.0/8", "fd00::/8", "127.0.0.1"]
tls = { certs = [{ cert = "cert.pem", key = "key.pem" }, { cert = "a.pem", key = "a.key" }], min_version = "1.3" }

[[listener]]
listen = "127.0.0.1:8080"
tls = { cert = "cert.pem", key = "key.pem" }

[pool.api]
strategy = "consistent-bounded"
key = "header:X-Tenant"
backends = [{ addr = "127.0.0.1:1", weight = 0, id = "one" }, { addr = "[::1]:2", weight = 256, backup = true }]
retries = 1
retry_on = ["connect", "reset", "502", "503"]
retry_budget = { ratio = 0.5, min_concurrent = 10 }
connect_timeout = "250ms"
response_timeout = "1h"
idle_timeout = "90s"
max_conns_per_backend = 64
vnodes = 40
bound = 2
outlier = { consecutive_errors = 0, base_ejection = "10s", max_ejected = 0.25 }
proxy_protocol = "v2"
sticky = {}
tls = { sni = "API.internal", verify = false, ca = "ca.pem" }
protocol = "h2"

[pool.api.health]
kind = "tcp"
port = 9000
interval = "3s"
timeout = "2s"
rise = 1
fall = 1
jitter = "0%"
initial = "down"

[pool.dns]
strategy = "least-conn"
slow_start = "30s"
discovery = { kind = "dns", name = "_http._tcp.svc.example", min_ttl = "1s", max_ttl = "1m" }

[pool.file]
discovery = { kind = "file", path = "backends.txt" }

[pool.shared]
key = "cookie:session"
strategy = "maglev"
discovery = { kind = "redis", url = "redis://127.0.0.1:6379/1", key = "lb:pool:shared", resync = "5s" }

[pool.q]
strategy = "rendezvous"
key = "query:user"

[[route]]
host = "*.Example.com"
path_prefix = "/api"
strip_prefix = true
pool = "api"
set_headers = { "X-From" = "lb", "Host" = "api.internal" }
remove_headers = ["Cookie"]

[[route]]
resolver = "map"

[resolver.map]
kind = "static"
map = { "A.test" = "127.0.0.1:3", "b.test" = ["127.0.0.1:4", "[::1]:5"] }
stale_ttl = "0s"
max_entries = 10

[resolver.redis]
kind = "resp"
url = "redis://127.0.0.1:6380"
prefix = "tenant:"
"#;
    let path = dir.join("lb.toml");
    std::fs::write(&path, text).unwrap();
    let c = Config::load(&path, Binary::Proxy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.threads, 4);
    assert_eq!(c.admin.listen, sa("0.0.0.0:9091"));

    let l = &c.listeners[0];
    assert_eq!(l.listen, sa("[::1]:8443"));
    assert_eq!(
        (l.header_timeout, l.idle_timeout),
        (Duration::from_secs(5), Duration::from_secs(120))
    );
    assert_eq!(l.max_header_bytes.get(), 8192);
    assert_eq!(l.max_body_bytes.map(|n| n.get()), Some(1 << 20));
    assert_eq!(l.max_connections.get(), 100);
    assert!(l.accept_proxy_protocol);
    assert_eq!(l.trusted_proxies.len(), 3);
    assert!(any_contains(
        &l.trusted_proxies,
        "10.9.8.7".parse().unwrap()
    ));
    assert!(any_contains(
        &l.trusted_proxies,
        "::ffff:127.0.0.1".parse().unwrap()
    ));
    assert!(any_contains(&l.trusted_proxies, "fd00::1".parse().unwrap()));
    assert!(!any_contains(
        &l.trusted_proxies,
        "127.0.0.2".parse().unwrap()
    ));
    let tls = l.tls.as_ref().unwrap();
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert_eq!(tls.certs.len(), 2);
    assert_eq!(
        tls.certs[1].key,
        dir.join("a.key"),
        "relative to the config file"
    );
    let tls2 = c.listeners[1].tls.as_ref().unwrap();
    assert_eq!(tls2.min_version, TlsVersion::Tls12);
    assert_eq!(
        tls2.certs,
        vec![CertKey {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem")
        }]
    );

    let api = c.pool("api").unwrap();
    assert_eq!(api.strategy, StrategyKind::ConsistentBounded);
    assert_eq!(api.key, KeySpec::Header("x-tenant".into()));
    assert_eq!(api.backends[0].id(), "one");
    assert_eq!(api.backends[0].weight(), 0);
    assert_eq!(api.backends[1].id(), "[::1]:2");
    assert!(api.backends[1].backup());
    assert_eq!(api.retries, 1);
    assert_eq!(
        api.retry_on,
        RetryOn {
            connect: true,
            reset: true,
            status_502: true,
            status_503: true
        }
    );
    assert_eq!(
        api.retry_budget,
        RetryBudget {
            ratio: 0.5,
            min_concurrent: 10
        }
    );
    assert_eq!(api.retry_budget.allowed(100), 50);
    assert_eq!(api.connect_timeout, Duration::from_millis(250));
    assert_eq!(api.response_timeout, Duration::from_secs(3600));
    assert_eq!(api.max_conns_per_backend, 64);
    assert_eq!(api.vnodes.get(), 40);
    assert_eq!(api.bound, 2.0);
    assert_eq!(api.outlier.consecutive_errors, 0);
    assert_eq!(api.outlier.max_ejected, 0.25);
    assert_eq!(api.proxy_protocol, Some(ProxyProtocol::V2));
    assert_eq!(api.protocol, UpstreamProtocol::H2);
    assert_eq!(api.sticky.as_deref(), Some("lb_sticky"));
    assert_eq!(
        api.tls,
        Some(UpstreamTls {
            sni: Some("api.internal".into()),
            verify: false,
            ca: Some(dir.join("ca.pem"))
        })
    );
    let h = &api.health;
    assert_eq!(
        (
            h.kind,
            h.port,
            h.rise.get(),
            h.fall.get(),
            h.jitter,
            h.initial_up
        ),
        (HealthKind::Tcp, Some(9000), 1, 1, 0.0, false)
    );
    let settings = api.pool_settings();
    assert_eq!(settings.strategy, StrategyKind::ConsistentBounded);
    assert_eq!(settings.params.vnodes, 40);
    assert_eq!(settings.bound, 2.0);
    assert_eq!(settings.max_conns_per_backend, 64);
    assert!(!settings.initial_up);

    let dns = c.pool("dns").unwrap();
    assert_eq!(dns.slow_start, Duration::from_secs(30));
    assert_eq!(
        dns.discovery,
        Discovery::Dns {
            name: "_http._tcp.svc.example".into(),
            port: None,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(60)
        }
    );
    assert_eq!(
        c.pool("file").unwrap().discovery,
        Discovery::File {
            path: dir.join("backends.txt")
        }
    );
    let shared = c.pool("shared").unwrap();
    assert_eq!(shared.key, KeySpec::Cookie("session".into()));
    match &shared.discovery {
        Discovery::Redis { url, key, resync } => {
            assert_eq!((url.authority().as_str(), url.db), ("127.0.0.1:6379", 1));
            assert_eq!(key, "lb:pool:shared");
            assert_eq!(*resync, Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(shared.discovery.kind(), "redis");
    assert_eq!(c.pool("q").unwrap().key, KeySpec::Query("user".into()));

    let r = &c.routes[0];
    assert_eq!(r.host, HostPattern::Suffix(".example.com".into()));
    assert_eq!(r.path_prefix.as_deref(), Some("/api"));
    assert!(r.strip_prefix);
    assert_eq!(
        r.set_headers,
        vec![
            ("host".into(), "api.internal".into()),
            ("x-from".into(), "lb".into())
        ]
    );
    assert_eq!(r.remove_headers, vec!["cookie".to_owned()]);

    let m = c.resolver("map").unwrap();
    match &m.kind {
        ResolverKind::Static { map } => {
            assert_eq!(map["a.test"], vec![sa("127.0.0.1:3")]);
            assert_eq!(map["b.test"], vec![sa("127.0.0.1:4"), sa("[::1]:5")]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((m.stale_ttl, m.max_entries.get()), (Duration::ZERO, 10));
    match &c.resolver("redis").unwrap().kind {
        ResolverKind::Resp { url, prefix } => {
            assert_eq!((url.port, prefix.as_str()), (6380, "tenant:"))
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pool_config_builds_a_pool() {
    let text = format!(
        "{MINIMAL}[pool.web]\nstrategy = \"maglev\"\nbackends = [\"127.0.0.1:1\", {{ addr = \"127.0.0.1:2\", id = \"two\", weight = 3 }}, {{ addr = \"127.0.0.1:3\", backup = true }}]\n"
    );
    let c = ok(&text, Binary::Proxy);
    let web = c.pool("web").unwrap();
    let backends = web.backends();
    assert_eq!(backends[1].id(), "two");
    assert_eq!(backends[1].weight(), 3);
    assert!(backends[2].is_backup());
    let pool = Pool::new("web", web.pool_settings(), backends).unwrap();
    let snap = pool.snapshot();
    assert_eq!(snap.members().len(), 3);
    assert_eq!(snap.settings().strategy, StrategyKind::Maglev);
    // Backups get no traffic while a primary is up.
    let picked = snap.route(b"k").unwrap().backend().addr();
    assert_ne!(picked, sa("127.0.0.1:3"));
}

#[test]
fn reload_keeps_restart_only_keys() {
    let running = ok(&format!("threads = 2\n{MINIMAL}"), Binary::Proxy);
    let mut new = ok(
        &format!("threads = 8\n{MINIMAL}[admin]\nlisten = \"127.0.0.1:9999\"\n"),
        Binary::Proxy,
    );
    assert_eq!(
        new.keep_restart_keys(&running),
        vec!["threads", "admin.listen"]
    );
    assert_eq!(new.threads, 2);
    assert_eq!(new.admin.listen, sa("127.0.0.1:9091"));
    let mut same = running.clone();
    assert!(same.keep_restart_keys(&running).is_empty());
}

#[test]
fn binary_names() {
    assert_eq!("lb-proxy".parse::<Binary>(), Ok(Binary::Proxy));
    assert_eq!("lb-sni".parse::<Binary>(), Ok(Binary::Sni));
    assert!("lb".parse::<Binary>().is_err());
    assert_eq!(Binary::Sni.to_string(), "lb-sni");
}

#[test]
fn consistent_nginx_is_a_strategy_of_both_binaries() {
    for binary in [Binary::Proxy, Binary::Sni] {
        let text = format!(
            "{MINIMAL}[pool.web]\nstrategy = \"consistent-nginx\"\nbackends = [\"127.0.0.1:1\", {{ addr = \"127.0.0.1:2\", weight = 2 }}]\n"
        );
        let c = ok(&text, binary);
        let settings = c.pool("web").unwrap().pool_settings();
        assert_eq!(settings.strategy, StrategyKind::ConsistentNginx);
        assert!(settings.strategy.is_deterministic());
    }
    let e = err(
        &format!("{MINIMAL}[pool.web]\nstrategy = \"nginx\"\n"),
        Binary::Proxy,
    );
    assert_names(&e, "pool.web.strategy", &["consistent-nginx"]);
}

#[test]
fn rate_limits_and_their_defaults() {
    let text = format!(
        "{MINIMAL}[pool.web]\n\
         [[route]]\nhost = \"a.test\"\npool = \"web\"\n\
         rate_limit = {{ key = \"header:X-User\", rate = \"100/s\", burst = 50, max_keys = 1000 }}\n\
         [[route]]\nhost = \"b.test\"\npool = \"web\"\nrate_limit = {{ rate = \"600/m\" }}\n\
         [[route]]\npool = \"web\"\n"
    );
    let c = ok(&text, Binary::Proxy);
    let a = c.routes[0].rate_limit.as_ref().unwrap();
    assert_eq!(a.key, KeySpec::Header("x-user".into()));
    assert_eq!((a.count.get(), a.per), (100, Duration::from_secs(1)));
    assert_eq!((a.burst.get(), a.max_keys.get()), (50, 1000));
    assert_eq!(a.interval(), Duration::from_millis(10));
    let b = c.routes[1].rate_limit.as_ref().unwrap();
    assert_eq!(b.key, KeySpec::ClientIp);
    assert_eq!((b.count.get(), b.per), (600, Duration::from_secs(60)));
    // One second's worth of the rate, and the default table size.
    assert_eq!((b.burst.get(), b.max_keys.get()), (10, 100_000));
    assert_eq!(c.routes[2].rate_limit, None);
}
