//! `lb-sni`: a TCP proxy that routes TLS connections on their SNI without terminating them
//! (or plain HTTP on its `Host` header).
//!
//! This library holds the pure, runtime-free pieces the binary wires together.
//!
//! # Layout
//! - [`hello`]: the incremental, zero-copy TLS ClientHello parser (SNI, ALPN, `Incomplete`).
//! - [`alert`]: the plaintext TLS alert records sent before refusing a connection.
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
pub mod hello;

pub use alert::{internal_error_alert, unrecognized_name_alert};
pub use hello::{parse_client_hello, Alpn, Hello, HelloError, MAX_HELLO_BYTES};
