//! `lb-sni`: a TCP proxy that routes TLS connections on their SNI without terminating them
//! (or plain HTTP on its `Host` header).
//!
//! A connection flows accept → (PROXY header) → peek → route → pick → replay → splice; the
//! pools, health checks, directories, admin API, reload and drain are lb-core's, shared
//! with lb-proxy.
//!
//! # Layout
//! - [`hello`]: the incremental, zero-copy TLS ClientHello parser (SNI, ALPN, `Incomplete`).
//! - [`head`]: the plain-HTTP request head, for `Host` routing.
//! - [`alert`]: the plaintext TLS alert records sent before refusing a connection.
//! - [`conn`]: one connection, from accept to the end of its tunnel (lb-core's
//!   [`tunnel`](lb_core::server::tunnel) splice, with half-close and an idle timeout).
//! - [`state`]: routes, pools and directories for one config generation.
//! - [`metrics`]: lb-sni's counters on `/metrics`.
//! - [`app`]: the whole router from a config: listeners, admin API, reload, drain.
//!
//! # Example
//! ```
//! use lb_sni::{parse_client_hello, HelloError};
//!
//! // Plain HTTP on a TLS listener is refused on its first byte.
//! assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n").unwrap_err(), HelloError::NotTls);
//! // A lone handshake record header asks for more bytes.
//! assert!(parse_client_hello(&[0x16, 0x03, 0x01]).unwrap_err().is_incomplete());
//! // No route for the name: answer with an alert, then close.
//! let _reply: [u8; 7] = lb_sni::unrecognized_name_alert();
//! ```

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod alert;
pub mod app;
pub mod conn;
mod connect;
pub mod head;
pub mod hello;
pub mod metrics;
pub mod state;

pub use alert::{internal_error_alert, unrecognized_name_alert};
pub use hello::{parse_client_hello, Alpn, Hello, HelloError, MAX_HELLO_BYTES};
