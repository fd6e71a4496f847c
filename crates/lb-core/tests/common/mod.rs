//! Helpers shared by the config tests.

#![allow(dead_code)]
#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module

use std::net::SocketAddr;
use std::path::Path;

use lb_core::config::{Binary, Config, ConfigError};

pub const FULL_EXAMPLE: &str = r#"
threads = 0                    # worker threads; 0 = one per core (benchmarks compare with 1)

[admin]
listen = "127.0.0.1:9091"      # loopback by default
token  = "s3cret"              # optional

[[listener]]
listen = "127.0.0.1:8080"
header_timeout = "10s"
max_connections = 10000
accept_proxy_protocol = false

[pool.web]
strategy = "consistent"
key = "path-regex:^/documents/([^/?]+)"
backends = ["127.0.0.1:19001", "127.0.0.1:19002", { addr = "127.0.0.1:19003", weight = 2 }]
retries = 2
connect_timeout = "2s"
response_timeout = "30s"
idle_timeout = "60s"
[pool.web.health]
kind = "http"
path = "/health"
expect = 200
interval = "1s"
timeout = "500ms"
rise = 2
fall = 3

[[route]]
host = "app.test"
pool = "web"

[[route]]
host = "*"
resolver = "directory"

[resolver.directory]
kind = "http"
url  = "http://127.0.0.1:6280/backend/{name}"
ttl = "30s"
negative_ttl = "5s"
timeout = "1s"
"#;

pub const MINIMAL: &str = "[[listener]]\nlisten = \"127.0.0.1:8080\"\n";

pub fn parse(text: &str, binary: Binary) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("config.toml"), binary)
}

pub fn ok(text: &str, binary: Binary) -> Config {
    match parse(text, binary) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// The full error message; panics if the config was accepted.
pub fn err(text: &str, binary: Binary) -> String {
    match parse(text, binary) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts the message names the file (with a line), the key and every fragment.
pub fn assert_names(msg: &str, key: &str, fragments: &[&str]) {
    assert!(msg.starts_with("config.toml:"), "no file in {msg:?}");
    assert!(
        msg.contains(&format!(": {key}: ")),
        "no key {key:?} in {msg:?}"
    );
    for f in fragments {
        assert!(msg.contains(f), "{f:?} missing from {msg:?}");
    }
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
