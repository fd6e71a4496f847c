//! The config model on bad files: each class of error gives a message naming the file
//! (with line and column), the key path and the bad value.

#![cfg(feature = "config")]

mod common;

use std::path::Path;

use common::*;
use lb_core::config::*;
use lb_test_support::temp_dir;

#[test]
fn unknown_keys_at_every_depth() {
    let cases = [
        ("thread = 1\n", "thread", 1),
        ("[admin]\nlisten = \"127.0.0.1:1\"\ntokn = \"x\"\n", "admin.tokn", 3),
        ("[[listener]]\nlisten = \"127.0.0.1:1\"\n[[listener]]\nlisten = \"127.0.0.1:2\"\nheader_timout = \"1s\"\n", "listener[1].header_timout", 5),
        ("[pool.web]\nstratgy = \"random\"\n", "pool.web.stratgy", 2),
        ("[pool.web]\nbackends = [\"127.0.0.1:1\", { addr = \"127.0.0.1:2\", wieght = 2 }]\n", "pool.web.backends[1].wieght", 2),
        ("[pool.web.health]\nkind = \"tcp\"\nintervall = \"1s\"\n", "pool.web.health.intervall", 3),
        ("[pool.web]\noutlier = { errors = 1 }\n", "pool.web.outlier.errors", 2),
        ("[[route]]\npool = \"x\"\nhosts = \"*\"\n", "route[0].hosts", 3),
        ("[resolver.d]\nkind = \"http\"\nttls = \"1s\"\n", "resolver.d.ttls", 3),
    ];
    for (text, key, line) in cases {
        let msg = err(text, Binary::Proxy);
        let unknown = key.rsplit('.').next().unwrap();
        let unknown = unknown.rsplit(']').next().unwrap().trim_start_matches('.');
        assert_names(
            &msg,
            key,
            &[&format!("unknown field `{unknown}`"), "expected"],
        );
        assert!(
            msg.starts_with(&format!("config.toml:{line}:")),
            "line {line} in {msg:?}"
        );
    }
}

#[test]
fn schema_errors_name_the_key() {
    let msg = err("[[listener]]\nheader_timeout = \"1s\"\n", Binary::Proxy);
    assert_names(&msg, "listener[0]", &["missing field `listen`"]);
    let msg = err(
        "[pool.web]\nbackends = [{ addr = \"127.0.0.1:1\", weight = \"2\" }]\n",
        Binary::Proxy,
    );
    assert_names(
        &msg,
        "pool.web.backends[0].weight",
        &["invalid type", "\"2\""],
    );
    let msg = err("[pool.web]\nbackends = [42]\n", Binary::Proxy);
    assert_names(&msg, "pool.web.backends[0]", &["backend address"]);
    let msg = err("threads = \"4\"\n", Binary::Sni);
    assert_names(&msg, "threads", &["invalid type"]);
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let text = "[[listener]]\nlisten = \"127.0.0.1:1\"\n\n[pool.web\nstrategy = \"random\"\n";
    let e = parse(text, Binary::Proxy).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("config.toml:4:"), "{msg}");
    assert!(msg.contains("TOML syntax error"), "{msg}");
    assert!(matches!(e.issues[0].problem, Problem::Syntax(_)));
    assert_eq!(e.issues[0].position.map(|p| p.line), Some(4));

    let msg = err("threads = 1\nthreads = 2\n", Binary::Proxy);
    assert!(msg.starts_with("config.toml:2:"), "{msg}");
}

#[test]
fn bad_values_name_key_and_value() {
    let pool = |body: &str| format!("{MINIMAL}[pool.web]\nbackends = [\"127.0.0.1:1\"]\n{body}\n");
    let cases: Vec<(String, Binary, &str, Vec<&str>)> = vec![
        (pool("[pool.web.health]\nkind = \"http\"\ninterval = \"1x\""), Binary::Proxy, "pool.web.health.interval", vec!["bad duration \"1x\"", "ms, s, m or h"]),
        (pool("connect_timeout = \"1.5s\""), Binary::Proxy, "pool.web.connect_timeout", vec!["\"1.5s\""]),
        (pool("connect_timeout = \"0s\""), Binary::Proxy, "pool.web.connect_timeout", vec!["greater than 0s"]),
        (format!("{MINIMAL}[[listener]]\nlisten = \"127.0.0.1\"\n"), Binary::Proxy, "listener[1].listen", vec!["bad address \"127.0.0.1\"", "ip:port"]),
        (format!("{MINIMAL}[[listener]]\nlisten = \"localhost:80\"\n"), Binary::Sni, "listener[1].listen", vec!["\"localhost:80\""]),
        (pool("strategy = \"foo\""), Binary::Proxy, "pool.web.strategy", vec!["unknown strategy \"foo\": expected one of round-robin", "consistent-bounded"]),
        (pool("key = \"hash:x\""), Binary::Proxy, "pool.web.key", vec!["bad key \"hash:x\"", "header:NAME"]),
        (pool("key = \"header:bad name\""), Binary::Proxy, "pool.web.key", vec!["\"header:bad name\"", "header name"]),
        (format!("{MINIMAL}[pool.web]\nbackends = [{{ addr = \"127.0.0.1:1\", weight = 300 }}]\n"), Binary::Proxy, "pool.web.backends[0].weight", vec!["300 is out of range", "0 (drain) to 256"]),
        (pool("discovery = { kind = \"dns\", name = \"svc.test\", port = 80 }"), Binary::Proxy, "pool.web.discovery", vec!["`backends` and `discovery` cannot be used together"]),
        (format!("{MINIMAL}[pool.web]\n[[route]]\npool = \"nope\"\n"), Binary::Proxy, "route[0].pool", vec!["unknown pool \"nope\"", "[web]"]),
        (format!("{MINIMAL}[[route]]\nresolver = \"dir\"\n"), Binary::Sni, "route[0].resolver", vec!["unknown resolver \"dir\""]),
        (format!("{MINIMAL}[pool.web]\n[resolver.d]\nkind = \"static\"\nmap = {{}}\n[[route]]\npool = \"web\"\nresolver = \"d\"\n"), Binary::Proxy, "route[0]", vec!["exactly one of `pool` or `resolver`", "\"web\"", "\"d\""]),
        (format!("{MINIMAL}[[route]]\nhost = \"a.test\"\n"), Binary::Proxy, "route[0]", vec!["needs `pool` or `resolver`"]),
        (pool("key = \"sni\""), Binary::Proxy, "pool.web.key", vec!["key \"sni\" is not allowed in lb-proxy"]),
        (pool("key = \"host\""), Binary::Sni, "pool.web.key", vec!["key \"host\" is not allowed in lb-sni", "client-ip or sni"]),
        ("[[listener]]\nlisten = \"127.0.0.1:1\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }\n".to_owned(), Binary::Sni, "listener[0].tls", vec!["not supported by lb-sni"]),
        ("[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tls\"\n".to_owned(), Binary::Proxy, "listener[0].protocol", vec!["not supported by lb-proxy"]),
        ("[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"udp\"\n".to_owned(), Binary::Sni, "listener[0].protocol", vec!["unknown protocol \"udp\"", "\"tls\""]),
        (format!("{MINIMAL}[admin]\nlisten = \"0.0.0.0:9091\"\n"), Binary::Proxy, "admin.listen", vec!["0.0.0.0:9091 is not a loopback address", "token"]),
        ("[[listener]]\nlisten = \"127.0.0.1:1\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n".to_owned(), Binary::Proxy, "listener[0].trusted_proxies[1]", vec!["bad CIDR \"10.0.0.0/40\"", "prefix length"]),
        ("[[listener]]\nlisten = \"127.0.0.1:1\"\ntrusted_proxies = [\"10.0.0.1/8\"]\n".to_owned(), Binary::Sni, "listener[0].trusted_proxies[0]", vec!["did you mean 10.0.0.0/8"]),
        (pool("key = \"path-regex:^/(a\""), Binary::Proxy, "pool.web.key", vec!["bad regex \"^/(a\""]),
        (pool("key = \"path-regex:^/documents/\""), Binary::Proxy, "pool.web.key", vec!["regex \"^/documents/\" has no capture group"]),
        (pool("sticky = { cookie = \"s\" }"), Binary::Sni, "pool.web.sticky", vec!["not supported by lb-sni"]),
        (pool("tls = { verify = false }"), Binary::Sni, "pool.web.tls", vec!["not supported by lb-sni"]),
        (pool("protocol = \"h3\""), Binary::Proxy, "pool.web.protocol", vec!["unknown upstream protocol \"h3\"", "\"http1\" or \"h2\""]),
        (pool("protocol = \"h2\""), Binary::Sni, "pool.web.protocol", vec!["not supported by lb-sni"]),
        (pool("retry_on = [\"connect\", \"504\"]"), Binary::Proxy, "pool.web.retry_on[1]", vec!["unknown retry_on condition \"504\""]),
        (pool("retry_on = [\"503\"]"), Binary::Sni, "pool.web.retry_on[0]", vec!["lb-sni never sees HTTP statuses"]),
        (pool("bound = 0.5"), Binary::Proxy, "pool.web.bound", vec!["0.5 is out of range", "1.0 or more"]),
        (pool("outlier = { max_ejected = 1.5 }"), Binary::Proxy, "pool.web.outlier.max_ejected", vec!["1.5"]),
        (pool("proxy_protocol = \"v3\""), Binary::Sni, "pool.web.proxy_protocol", vec!["\"v3\"", "\"v1\" or \"v2\""]),
        (pool("strategy = \"consistent\"\nslow_start = \"10s\""), Binary::Proxy, "pool.web.slow_start", vec!["round-robin, random and least-conn"]),
        (pool("[pool.web.health]\nkind = \"http\"\nexpect = 600"), Binary::Proxy, "pool.web.health.expect", vec!["600 is out of range"]),
        (pool("[pool.web.health]\nkind = \"http\"\nfall = 0"), Binary::Proxy, "pool.web.health.fall", vec!["0 is out of range"]),
        (pool("[pool.web.health]\nkind = \"http\"\njitter = \"10\""), Binary::Proxy, "pool.web.health.jitter", vec!["bad percentage \"10\""]),
        (pool("[pool.web.health]\nkind = \"http\"\ninitial = \"maybe\""), Binary::Proxy, "pool.web.health.initial", vec!["\"maybe\"", "\"up\" or \"down\""]),
        (pool("[pool.web.health]\nkind = \"grpc\""), Binary::Proxy, "pool.web.health.kind", vec!["unknown health kind \"grpc\""]),
        (pool("[pool.web.health]\npath = \"/health\""), Binary::Proxy, "pool.web.health.path", vec!["kind \"none\" (the default) runs no checks"]),
        (pool("[pool.web.health]\nkind = \"tcp\"\nexpect = 204"), Binary::Proxy, "pool.web.health.expect", vec!["not a key of kind \"tcp\""]),
        (format!("{MINIMAL}[pool.w]\ndiscovery = {{ kind = \"file\", name = \"x\" }}\n"), Binary::Proxy, "pool.w.discovery.name", vec!["not a key of kind \"file\""]),
        (format!("{MINIMAL}[pool.w]\ndiscovery = {{ kind = \"zk\" }}\n"), Binary::Proxy, "pool.w.discovery.kind", vec!["unknown discovery kind \"zk\""]),
        (format!("{MINIMAL}[pool.w]\ndiscovery = {{ kind = \"redis\", url = \"http://x\", key = \"k\" }}\n"), Binary::Proxy, "pool.w.discovery.url", vec!["bad URL \"http://x\"", "redis://"]),
        (format!("{MINIMAL}[resolver.d]\nkind = \"http\"\nurl = \"http://127.0.0.1/no-name\"\n"), Binary::Proxy, "resolver.d.url", vec!["bad URL", "must contain {name}"]),
        (format!("{MINIMAL}[resolver.d]\nkind = \"ldap\"\n"), Binary::Proxy, "resolver.d.kind", vec!["unknown resolver kind \"ldap\""]),
        (format!("{MINIMAL}[resolver.d]\nkind = \"static\"\nmap = {{ \"bad name\" = \"127.0.0.1:1\" }}\n"), Binary::Proxy, "resolver.d.map.\"bad name\"", vec!["bad name \"bad name\""]),
        (format!("{MINIMAL}[pool.web]\n[[route]]\npool = \"web\"\nset_headers = {{ \"bad header\" = \"x\" }}\n"), Binary::Proxy, "route[0].set_headers.\"bad header\"", vec!["bad header name \"bad header\""]),
        (format!("{MINIMAL}[pool.web]\n[[route]]\npool = \"web\"\nremove_headers = [\"a:b\"]\n"), Binary::Proxy, "route[0].remove_headers[0]", vec!["bad header name \"a:b\""]),
        (format!("{MINIMAL}[pool.web]\n[[route]]\npool = \"web\"\npath_prefix = \"/x\"\n"), Binary::Sni, "route[0].path_prefix", vec!["not supported by lb-sni"]),
        (format!("{MINIMAL}[pool.web]\n[[route]]\npool = \"web\"\nstrip_prefix = true\n"), Binary::Proxy, "route[0].strip_prefix", vec!["needs path_prefix"]),
        (format!("{MINIMAL}[pool.web]\n[[route]]\npool = \"web\"\nhost = \"a.*.test\"\n"), Binary::Proxy, "route[0].host", vec!["bad name \"a.*.test\""]),
        (format!("{MINIMAL}[pool.\"a b\"]\n"), Binary::Proxy, "pool.\"a b\"", vec!["bad pool name \"a b\""]),
        (format!("{MINIMAL}[pool.web]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n"), Binary::Proxy, "pool.web.backends[1]", vec!["duplicate backend address 127.0.0.1:1"]),
        (format!("{MINIMAL}[[listener]]\nlisten = \"127.0.0.1:8080\"\n"), Binary::Proxy, "listener[1].listen", vec!["duplicate listen address"]),
        ("threads = 1\n".to_owned(), Binary::Proxy, "listener", vec!["at least one [[listener]]"]),
        (format!("{MINIMAL}max_connections = 0\n"), Binary::Proxy, "listener[0].max_connections", vec!["0 is out of range"]),
    ];
    for (text, binary, key, fragments) in cases {
        let msg = err(&text, binary);
        assert_names(&msg, key, &fragments);
    }
}

#[test]
fn unreadable_tls_files_are_named() {
    let text = "[[listener]]\nlisten = \"127.0.0.1:1\"\ntls = { cert = \"missing-cert.pem\", key = \"missing-key.pem\" }\n";
    let msg = err(text, Binary::Proxy);
    assert_names(
        &msg,
        "listener[0].tls.cert",
        &["cannot read missing-cert.pem"],
    );
    assert!(
        msg.contains("listener[0].tls.key: cannot read missing-key.pem"),
        "{msg}"
    );
    let msg = err(
        "[[listener]]\nlisten = \"127.0.0.1:1\"\ntls = { cert = \"c\" }\n",
        Binary::Proxy,
    );
    assert_names(&msg, "listener[0].tls", &["cert and key"]);
}

#[test]
fn bad_ca_files_are_named() {
    let dir = temp_dir("config");
    let bad = dir.join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let text = format!(
        "{MINIMAL}[pool.web]\nbackends = [\"127.0.0.1:1\"]\ntls = {{ ca = {:?} }}\n",
        bad.display().to_string()
    );
    let msg = err(&text, Binary::Proxy);
    let _ = std::fs::remove_dir_all(&dir);
    assert_names(
        &msg,
        "pool.web.tls.ca",
        &[
            &format!("bad CA file {}", bad.display()),
            "no PEM certificate",
        ],
    );
    let msg = err(
        &format!("{MINIMAL}[pool.web]\ntls = {{ ca = \"/nonexistent/ca.pem\" }}\n"),
        Binary::Proxy,
    );
    assert_names(
        &msg,
        "pool.web.tls.ca",
        &["cannot read /nonexistent/ca.pem"],
    );
    assert!(!msg.contains("bad CA file"), "reported once: {msg}");
}

#[test]
fn all_semantic_errors_are_collected_in_file_order() {
    let text = "\
[[listener]]
listen = \"nope\"

[pool.web]
strategy = \"foo\"
backends = [{ addr = \"127.0.0.1:1\", weight = 300 }]

[[route]]
pool = \"missing\"
";
    let e = parse(text, Binary::Proxy).unwrap_err();
    let keys: Vec<String> = e.issues.iter().map(|i| i.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "listener[0].listen",
            "pool.web.strategy",
            "pool.web.backends[0].weight",
            "route[0].pool"
        ]
    );
    let lines: Vec<usize> = e.issues.iter().map(|i| i.position.unwrap().line).collect();
    assert_eq!(lines, [2, 5, 6, 9]);
    assert_eq!(e.to_string().lines().count(), 4);
    assert!(matches!(e.issues[1].problem, Problem::UnknownStrategy(_)));
    assert!(
        e.to_string().contains(
            "config.toml:5:12: pool.web.strategy: unknown strategy \"foo\": expected one of"
        ),
        "{e}"
    );
}

#[test]
fn admin_off_loopback_needs_a_token() {
    let c = ok(
        &format!("{MINIMAL}[admin]\nlisten = \"0.0.0.0:9091\"\ntoken = \"s3cret\"\n"),
        Binary::Sni,
    );
    assert_eq!(c.admin.listen, sa("0.0.0.0:9091"));
    let c = ok(
        &format!("{MINIMAL}[admin]\nlisten = \"[::1]:9999\"\n"),
        Binary::Proxy,
    );
    assert_eq!(c.admin.listen, sa("[::1]:9999"));
    let msg = err(
        &format!("{MINIMAL}[admin]\nlisten = \"[::]:9091\"\n"),
        Binary::Sni,
    );
    assert_names(
        &msg,
        "admin.listen",
        &["[::]:9091 is not a loopback address"],
    );
}

#[test]
fn load_names_a_missing_file() {
    let e = Config::load(Path::new("/nonexistent/lb.toml"), Binary::Proxy).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("/nonexistent/lb.toml: cannot read the config file"),
        "{msg}"
    );
}

#[test]
fn port_zero_listener_and_admin_do_not_collide() {
    let text = "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\
                [[route]]\nhost = \"*\"\npool = \"web\"\n[pool.web]\nbackends = [\"127.0.0.1:1\"]\n";
    let c = Config::parse(text, Path::new("t.toml"), Binary::Proxy);
    assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
}

#[test]
fn resolver_endpoint_keys_and_pool_answers_are_checked() {
    let http = "[resolver.d]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/{name}\"\n";
    let cases: [(String, &str, &[&str]); 7] = [
        (
            format!("{http}connect_timeout = \"soon\"\n"),
            "resolver.d.connect_timeout",
            &["bad duration", "\"soon\""],
        ),
        (
            format!("{http}response_timeout = \"0s\"\n"),
            "resolver.d.response_timeout",
            &["greater than 0s"],
        ),
        (
            format!("{http}idle_timeout = 5\n"),
            "resolver.d.idle_timeout",
            &["invalid type"],
        ),
        (
            format!("{http}retries = 101\n"),
            "resolver.d.retries",
            &["101", "0 to 100"],
        ),
        (
            format!("{http}max_conns_per_backend = -1\n"),
            "resolver.d.max_conns_per_backend",
            &["-1", "unlimited"],
        ),
        (
            format!("{http}bare = \"word\"\n"),
            "resolver.d.bare",
            &["\"word\"", "\"pool\""],
        ),
        (
            "[resolver.s]\nkind = \"static\"\nmap = { \"a.test\" = \"pool:pod9\" }\n".to_owned(),
            "resolver.s.map.\"a.test\"",
            &["unknown pool \"pod9\""],
        ),
    ];
    for (text, key, fragments) in cases {
        let msg = err(&format!("{MINIMAL}{text}"), Binary::Sni);
        assert_names(&msg, key, fragments);
    }
}

#[test]
fn resolver_endpoint_keys_default_to_the_pool_defaults() {
    let text = format!(
        "{MINIMAL}[pool.pod0]\n[resolver.d]\nkind = \"static\"\nmap = {{ \"a.test\" = \"pool:pod0\", \"b.test\" = \"127.0.0.1:9\" }}\n\
         [resolver.e]\nkind = \"resp\"\nurl = \"redis://127.0.0.1:6379\"\nbare = \"pool\"\nretries = 0\nconnect_timeout = \"250ms\"\nmax_conns_per_backend = 7\n"
    );
    let c = ok(&text, Binary::Proxy);
    let d = c.resolver("d").unwrap();
    let pool = lb_core::config::PoolConfig::with_defaults("x");
    assert_eq!(
        (
            d.connect_timeout,
            d.response_timeout,
            d.idle_timeout,
            d.retries,
            d.max_conns_per_backend,
            d.bare_pool
        ),
        (
            pool.connect_timeout,
            pool.response_timeout,
            pool.idle_timeout,
            pool.retries,
            0,
            false
        )
    );
    match &d.kind {
        ResolverKind::Static { map } => {
            assert_eq!(map["a.test"], StaticAnswer::Pool("pod0".into()));
            assert_eq!(
                map["b.test"],
                vec!["127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap()]
            );
        }
        other => panic!("{other:?}"),
    }
    let e = c.resolver("e").unwrap();
    assert_eq!(
        (
            e.retries,
            e.connect_timeout,
            e.max_conns_per_backend,
            e.bare_pool
        ),
        (0, std::time::Duration::from_millis(250), 7, true)
    );
}

#[test]
fn rate_limit_errors_name_the_key() {
    let route = |limit: &str| {
        format!("{MINIMAL}[pool.web]\n[[route]]\npool = \"web\"\nrate_limit = {limit}\n")
    };
    let cases: Vec<(String, Binary, &str, Vec<&str>)> = vec![
        (
            route("{ rate = \"100\" }"),
            Binary::Proxy,
            "route[0].rate_limit.rate",
            vec!["bad rate \"100\"", "per s or m", "\"100/s\""],
        ),
        (
            route("{ rate = \"100/h\" }"),
            Binary::Proxy,
            "route[0].rate_limit.rate",
            vec!["bad rate \"100/h\""],
        ),
        (
            route("{ rate = \"0/s\" }"),
            Binary::Proxy,
            "route[0].rate_limit.rate",
            vec!["bad rate \"0/s\"", "at least 1"],
        ),
        (
            route("{ rate = \"1.5/s\" }"),
            Binary::Proxy,
            "route[0].rate_limit.rate",
            vec!["bad rate \"1.5/s\""],
        ),
        (
            route("{ rate = \"10/s\", burst = 0 }"),
            Binary::Proxy,
            "route[0].rate_limit.burst",
            vec!["0 is out of range", "at once"],
        ),
        (
            route("{ rate = \"10/s\", max_keys = 0 }"),
            Binary::Proxy,
            "route[0].rate_limit.max_keys",
            vec!["0 is out of range"],
        ),
        (
            route("{ rate = \"10/s\", key = \"ip\" }"),
            Binary::Proxy,
            "route[0].rate_limit.key",
            vec!["bad key \"ip\"", "client-ip"],
        ),
        (
            route("{ rate = \"10/s\", key = \"sni\" }"),
            Binary::Proxy,
            "route[0].rate_limit.key",
            vec!["key \"sni\" is not allowed in lb-proxy"],
        ),
        (
            route("{ rate = \"10/s\", key = \"path-regex:^/a\" }"),
            Binary::Proxy,
            "route[0].rate_limit.key",
            vec!["has no capture group"],
        ),
        (
            route("{ rate = \"10/s\", brust = 5 }"),
            Binary::Proxy,
            "route[0].rate_limit.brust",
            vec!["unknown field `brust`"],
        ),
        (
            route("{ burst = 5 }"),
            Binary::Proxy,
            "route[0].rate_limit",
            vec!["missing field `rate`"],
        ),
        (
            route("{ rate = \"10/s\" }"),
            Binary::Sni,
            "route[0].rate_limit",
            vec!["not supported by lb-sni"],
        ),
    ];
    for (text, binary, key, fragments) in cases {
        let msg = err(&text, binary);
        assert_names(&msg, key, &fragments);
    }
}

#[test]
fn admin_tls_files_are_checked() {
    let msg = err(
        &format!("{MINIMAL}[admin]\ntls = {{ cert = \"/nonexistent/c.pem\", key = \"/nonexistent/k.pem\" }}\n"),
        Binary::Proxy,
    );
    assert_names(&msg, "admin.tls.cert", &["/nonexistent/c.pem"]);
    assert_names(&msg, "admin.tls.key", &["/nonexistent/k.pem"]);
    let msg = err(
        &format!("{MINIMAL}[admin]\ntls = {{ cert = \"c.pem\" }}\n"),
        Binary::Sni,
    );
    assert_names(&msg, "admin.tls", &["cert and key"]);
}
