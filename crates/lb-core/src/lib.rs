//! # lb-core
//!
//! The library behind the `lb` load balancer: backend pools that change at run time
//! without locks on the request path, every common selection strategy behind one trait,
//! health checking, name resolvers with caching, and the config model shared by the
//! `lb-proxy`, `lb-sni` and `lb` binaries.
//!
//! ```
//! use std::time::Duration;
//! use lb_core::resolve::{CacheSettings, Cached, Resolution, StaticResolver};
//! use lb_core::{Backend, Change, Pool, PoolSettings, StrategyKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backends = (1..=3)
//!     .map(|i| Ok(Backend::new(format!("127.0.0.1:{}", 19000 + i).parse()?)))
//!     .collect::<Result<Vec<_>, std::net::AddrParseError>>()?;
//! let pool = Pool::new("web", PoolSettings::with_strategy(StrategyKind::Consistent), backends)?;
//!
//! // The request path: a lock-free snapshot, then backends in preference order.
//! let snap = pool.snapshot();
//! let first = snap.select(b"/documents/42").next().ok_or("no backend")?;
//! let again = snap.select(b"/documents/42").next().ok_or("no backend")?;
//! assert_eq!(first.addr(), again.addr()); // the same key stays on the same backend
//! drop((first, again));
//!
//! // Membership changes publish a new snapshot; only the removed backend's keys move.
//! pool.apply(Change::Remove("127.0.0.1:19002".parse()?))?;
//! assert_eq!(pool.snapshot().members().len(), 2);
//!
//! // Directory routing: a name → endpoints resolver behind a cache (TTL, negative TTL,
//! // stale-if-error, single-flight). Any `Resolver` can be wrapped.
//! let directory = StaticResolver::new([("tenant-1.example.com".to_owned(), vec!["127.0.0.1:19001".parse()?])]);
//! let settings = CacheSettings::named("directory").with_ttls(Duration::from_secs(30), Duration::from_secs(5));
//! let cached = Cached::new(directory, settings);
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let found = rt.block_on(cached.lookup("tenant-1.example.com")).result?;
//! assert!(matches!(found, Resolution::Found(ref eps) if eps.len() == 1));
//! let missing = rt.block_on(cached.lookup("tenant-9.example.com")).result?;
//! assert_eq!(missing, Resolution::NotFound); // cached for the negative TTL
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//! - [`pool`]: [`Pool`], its [`Snapshot`]s, membership [`Change`]s and the per-request [`Lease`].
//! - [`backend`]: [`Backend`] (declared) and [`BackendState`] (observed, in atomics).
//! - [`select`]: the [`Select`] trait and the eight strategies.
//! - [`forward`]: one request's attempts over a pool: preference order, sticky first,
//!   retries, the retry budget, and outcomes (with whose fault) to passive health.
//! - [`hash`]: the fixed xxh3 seed every placement uses.
//! - [`metrics`]: lock-free counters, histograms and Prometheus text.
//! - [`name`]: host/SNI name normalisation and route host patterns.
//! - [`outlier`]: passive ejection from real traffic.
//! - [`health`]: the rise/fall state machine, active checkers and their monitor.
//! - [`resolve`]: the [`Resolver`](resolve::Resolver) trait, static/HTTP/RESP directories, and `Cached`.
//! - [`discovery`]: membership sources (static, file, DNS, Redis), `discovery::start`, and where admin writes go.
//! - [`admin`]: the admin API and metrics endpoint shared by both binaries.
//! - [`server`]: what both binaries run around their data path: pools with health
//!   monitors, listeners that follow reloads, the admin listener, signals and drain.
//! - [`proxy_protocol`]: PROXY protocol v1/v2 headers, written and parsed.
//! - [`resp`]: a bounded, incremental RESP2/RESP3 codec.
//! - [`rt`]: the tokio runtime for a `threads` setting.
//! - [`tls`]: rustls client settings shared by HTTPS probes and upstream TLS.
//! - [`config`]: the TOML config model of both binaries, validated into runtime types (or
//!   built from code: [`config::Config::new`]).
//! - `tower` (feature `tower`): a tower `Layer` that picks a backend from a pool per request.
//!
//! ## Extending it
//! Each extension point is a small trait with a documented contract (what each answer and
//! error means, timeouts, cancellation) and a check you run against your implementation:
//!
//! | you have | implement | check it with |
//! |---|---|---|
//! | a directory (name → endpoints) | [`resolve::Resolver`], wrapped in [`resolve::Cached`] | [`resolve::testing::check_resolver`] |
//! | a health probe | [`health::Checker`], run by [`health::HealthMonitor`] | [`health::testing::check_checker`] |
//! | a service registry | [`discovery::Source`], publishing with [`discovery::publish`] | [`discovery::testing::check_source`] |
//!
//! Backend metadata (zone, rack, version) rides on the backend:
//! [`Backend::with_metadata`], read back with [`Backend::meta`]. Selection strategies are
//! a closed set ([`StrategyKind`]): each is a table rebuilt on membership changes and read
//! without locks, dispatched statically on the request path.
//!
//! The repository's `examples/` directory holds runnable programs, each checked by the
//! tests: a shard router (`cargo run -p lb-examples --bin shard_router`), a custom
//! resolver, a Redis health probe, a custom registry, lb-proxy built from code, and a
//! tower client.
//!
//! ## Features
//! `runtime` (tokio background work), `http` (HTTP probes and directory), `tls` (HTTPS
//! probes and upstream TLS settings), `config` (TOML model), `admin` (admin API and metrics), `discovery` (file,
//! DNS and Redis membership sources), `server` (running pools, listeners, reload and drain
//! for a binary: [`server`]), `tower` (the tower layer; tower-service and tower-layer
//! only). With `default-features = false` the crate is pools, strategies and health state
//! only, with no async runtime, HTTP or TLS dependency: an embedder who only wants a ring
//! depends on `lb-core = { default-features = false }`.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod backend;
#[cfg(all(feature = "tls", feature = "config"))]
pub mod certs;
pub mod clock;
mod error;
pub mod forward;
#[cfg(feature = "runtime")]
mod futures;
pub mod hash;
pub mod metrics;
pub mod name;
pub mod outlier;
pub mod pool;
pub mod proxy_protocol;
pub mod select;
pub mod watch;

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "runtime")]
pub mod discovery;
pub mod health;
#[cfg(feature = "runtime")]
pub mod resolve;
#[cfg(feature = "runtime")]
pub mod resp;
#[cfg(feature = "runtime")]
pub mod rt;
#[cfg(feature = "runtime")]
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tower")]
pub mod tower;

pub use backend::{Backend, BackendState, BackendStatus};
pub use error::PoolError;
pub use outlier::{Outcome, OutlierSettings};
pub use pool::{Change, Chosen, Lease, Member, Pool, PoolSettings, Selection, Snapshot};
pub use select::{Select, StrategyKind};
