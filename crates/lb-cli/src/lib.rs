//! # lb-cli
//!
//! The `lb` command: a client of the admin API of `lb-proxy` and `lb-sni`, offline
//! analysis of lb-core's hashing strategies, and `lb ring serve`, a pool of lb-core
//! answered over the Redis protocol.
//!
//! ## Layout
//! - [`admin`]: the admin API client (one HTTP/1.1 request per call, hyper's low-level client).
//! - [`output`]: the human tables of `lb pools` and `lb pool`.
//! - [`hash`]: `lb hash`: load spread, keys moved, pick cost.
//! - [`svg`]: `lb hash --svg`: the chart of an analysis.
//! - [`ring`]: the RESP ring server (`serve(listener, ring, shutdown)`) and its command parser.
//! - [`serve`]: `lb ring serve` options → pool, health monitor and server.
//!
//! - [`cmd`]: the command line (clap) and what each command runs; `main.rs` calls it.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod admin;
pub mod cmd;
pub mod hash;
pub mod output;
pub mod ring;
pub mod serve;
pub mod svg;
