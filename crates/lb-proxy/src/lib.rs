//! # lb-proxy
//!
//! The HTTP load balancer of `lb`, built on [`lb_core`]. A request flows down the tree:
//!
//! 1. `server`: listeners, accept with a connection limit, PROXY header and TLS
//!    handshake, graceful drain.
//! 2. `client`: one connection — its timeouts and canned answers (`client::io`), the
//!    HTTP/1 engine (`client::h1`: parse, body, write, pipelining, upgrades), or hyper's
//!    HTTP/2 server after the preface (`client::h2`).
//! 3. [`http1`]: the HTTP/1 codec — heads, body framing and the request-framing rules,
//!    pure functions without I/O, used by the client side and the upstream client alike.
//! 4. `request`: what the proxy reads of a request — fields kept as bytes or as a map,
//!    the hashing key, the sticky cookie, the body and its pipe from the connection.
//! 5. `proxy`: route → key → pick → attempt → relay, with retries (`proxy::attempt`),
//!    the forwarding headers (`proxy::forwarding`); `response` is what goes back,
//!    `tunnel` the WebSocket tunnel after a 101, `access` the access-log line.
//! 6. `upstream`: connections to backends — pooled HTTP/1.1 (our own client) or shared
//!    HTTP/2, TLS, PROXY headers.
//!
//! Beside the path: `state` (the running configuration, rebuilt on reload), [`limit`]
//! (per-route rate limits), `error` (body and exchange errors), `stream` (TCP or TLS),
//! [`app`] (the whole proxy from a config) and [`demo`] (`lb-proxy --demo`).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs, unreachable_pub)]

mod access;
pub mod app;
mod client;
pub mod demo;
mod error;
pub mod http1;
pub mod limit;
mod proxy;
mod request;
mod response;
mod server;
mod state;
mod stream;
mod tunnel;
mod upstream;
