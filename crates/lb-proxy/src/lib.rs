//! # lb-proxy
//!
//! The HTTP load balancer of `lb`, built on [`lb_core`]: a request flows
//! listener → route → key → pick → forward.
//!
//! ## Layout
//! - [`server`]: listeners, connection limits, HTTP/1.1 and h2c, graceful drain.
//! - [`conn`]: the client stream under hyper: header/idle timeouts, 408, 431, smuggling 400.
//! - [`slab`]: request-long byte strings cut from one shared buffer per thread.
//! - [`sniff`]: HTTP/1 or h2c told apart on the first bytes, so hyper's read buffer stays 8 KiB.
//! - [`front`]: the common HTTP/1.1 request served without hyper; anything else goes to hyper.
//! - [`http1`]: the HTTP/1 codec: heads, body framing and the request-framing rules, without I/O.
//! - [`fields`]: a request's fields kept as the bytes they came in, relayed as lines.
//! - [`forward`]: routing, retries and relaying of one request.
//! - [`access`]: the access-log line of a request, written when its response body ends.
//! - [`headers`]: hop-by-hop removal and the forwarding headers of a request.
//! - [`upgrade`]: HTTP/1.1 upgrades (WebSocket): the 101 and the tunnel after it.
//! - [`key`]: request keys for hashing strategies.
//! - [`limit`]: per-route rate limits (GCRA per key in a bounded, sharded table).
//! - [`cookie`]: `Cookie` header parsing and the sticky-session cookie.
//! - [`upstream`]: connections to backends: pooled HTTP/1.1 or shared HTTP/2, TLS, PROXY headers.
//! - [`body`]: request and response bodies without boxing.
//! - [`state`]: the running configuration, rebuilt on reload.
//! - [`app`]: the whole proxy from a config: listeners, admin API, reload, drain.
//! - [`demo`]: `lb-proxy --demo`.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod access;
pub mod app;
pub mod body;
pub mod conn;
pub mod cookie;
pub mod demo;
pub mod fields;
pub mod forward;
pub mod front;
pub mod headers;
pub mod http1;
pub mod key;
pub mod limit;
pub mod pipe;
pub mod server;
pub mod slab;
pub mod sniff;
pub mod state;
pub mod stream;
pub mod upgrade;
pub mod upstream;
