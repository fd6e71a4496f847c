//! The file model: exactly what TOML can say, nothing checked beyond types.
//!
//! Every table denies unknown keys. Values that need parsing (durations, addresses, key
//! specs, kinds) stay strings here and integers stay `i64`, so validation can report them
//! with the key path and the accepted range instead of a bare serde message.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub threads: Option<i64>,
    pub admin: Option<FileAdmin>,
    #[serde(default)]
    pub listener: Vec<FileListener>,
    #[serde(default)]
    pub pool: BTreeMap<String, FilePool>,
    #[serde(default)]
    pub route: Vec<FileRoute>,
    #[serde(default)]
    pub resolver: BTreeMap<String, FileResolver>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
}

/// `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileListener {
    pub listen: String,
    pub protocol: Option<String>,
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_header_bytes: Option<i64>,
    pub max_body_bytes: Option<i64>,
    pub max_connections: Option<i64>,
    pub accept_proxy_protocol: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub tls: Option<FileListenerTls>,
}

/// `[[listener]] tls = { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileListenerTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub certs: Option<Vec<FileCertKey>>,
    pub min_version: Option<String>,
}

/// One `{ cert, key }` pair.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCertKey {
    pub cert: String,
    pub key: String,
}

/// `[pool.X]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePool {
    pub strategy: Option<String>,
    pub key: Option<String>,
    pub backends: Option<Vec<FileBackend>>,
    pub discovery: Option<FileDiscovery>,
    pub retries: Option<i64>,
    pub retry_on: Option<Vec<String>>,
    pub retry_budget: Option<FileRetryBudget>,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_conns_per_backend: Option<i64>,
    pub slow_start: Option<String>,
    pub vnodes: Option<i64>,
    pub bound: Option<f64>,
    pub outlier: Option<FileOutlier>,
    pub proxy_protocol: Option<String>,
    pub sticky: Option<FileSticky>,
    pub tls: Option<FileUpstreamTls>,
    pub protocol: Option<String>,
    pub health: Option<FileHealth>,
}

/// A backend: `"h:p"` or `{ addr, weight, id, backup }`.
#[derive(Debug)]
pub(crate) enum FileBackend {
    Addr(String),
    Table(FileBackendTable),
}

/// The table form of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBackendTable {
    pub addr: String,
    pub weight: Option<i64>,
    pub id: Option<String>,
    pub backup: Option<bool>,
}

impl<'de> Deserialize<'de> for FileBackend {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileBackend;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a backend address \"ip:port\" or a table { addr, weight, id, backup }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileBackend, E> {
                Ok(FileBackend::Addr(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileBackend, A::Error> {
                FileBackendTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(FileBackend::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `discovery = { kind, ... }`: every kind's keys; validation checks which belong.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDiscovery {
    pub kind: String,
    pub path: Option<String>,
    pub name: Option<String>,
    pub port: Option<i64>,
    pub min_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub url: Option<String>,
    pub key: Option<String>,
    pub resync: Option<String>,
}

/// `retry_budget = { ratio, min_concurrent }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRetryBudget {
    pub ratio: Option<f64>,
    pub min_concurrent: Option<i64>,
}

/// `outlier = { consecutive_errors, base_ejection, max_ejected }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileOutlier {
    pub consecutive_errors: Option<i64>,
    pub base_ejection: Option<String>,
    pub max_ejected: Option<f64>,
}

/// `sticky = { cookie }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSticky {
    pub cookie: Option<String>,
}

/// `tls = { sni, verify, ca }` of a pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstreamTls {
    pub sni: Option<String>,
    pub verify: Option<bool>,
    pub ca: Option<String>,
}

/// `[pool.X.health]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileHealth {
    pub kind: Option<String>,
    pub path: Option<String>,
    pub expect: Option<i64>,
    pub port: Option<i64>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub jitter: Option<String>,
    pub initial: Option<String>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRoute {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub strip_prefix: Option<bool>,
    pub pool: Option<String>,
    pub resolver: Option<String>,
    pub set_headers: Option<BTreeMap<String, String>>,
    pub remove_headers: Option<Vec<String>>,
    pub alpn: Option<Vec<String>>,
}

/// `[resolver.X]`: every kind's keys; validation checks which belong.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileResolver {
    pub kind: String,
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub map: Option<BTreeMap<String, OneOrMany>>,
    pub ttl: Option<String>,
    pub negative_ttl: Option<String>,
    pub stale_ttl: Option<String>,
    pub timeout: Option<String>,
    pub max_entries: Option<i64>,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub retries: Option<i64>,
    pub max_conns_per_backend: Option<i64>,
    pub bare: Option<String>,
}

/// A static map value: `"h:p"` or `["h:p", ...]`.
#[derive(Debug)]
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an endpoint \"ip:port\" or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(OneOrMany(v))
            }
        }
        d.deserialize_any(V)
    }
}
