//! The HTTP/1 codec: pure functions over bytes, no I/O, no allocation.
//!
//! Every rule of HTTP/1 message framing the proxy applies lives here once, for the
//! client side (requests) and the upstream client (responses) alike, so that the proxy
//! and a backend can never disagree about where a message ends (RFC 9112 §6.3, §11.2):
//!
//! - [`parse_request_head`] and [`parse_response_head`] take *everything buffered so
//!   far* and answer [`Status::Incomplete`] ("read more", never an error for a strict
//!   prefix of a valid head) or a head that borrows the buffer. httparse reads the
//!   syntax; [`fields`] then judges the fields that decide the framing: one
//!   `Content-Length` (values that agree, plain digits), `Transfer-Encoding` naming only
//!   `chunked`, never both, one `Host` that agrees with an absolute-form target.
//! - [`Chunked`] decodes a chunked body as a state machine fed any split of its bytes:
//!   chunk sizes, extensions, the CRLF after each chunk's data and the trailer section.
//! - [`Error`] says which rule a message broke, and [`Error::reason`] the one answer it
//!   gets (`400 bad-request`, `431 header-too-large` or `413 body-too-large`).
//!
//! Requests refused here (each a test in `tests.rs`, and on the wire in
//! `tests/framing.rs`): `Content-Length` with `Transfer-Encoding`; several differing
//! `Content-Length` values or one that is not plain digits; a `Transfer-Encoding` whose
//! last coding is not `chunked` or that names any other coding; whitespace before a
//! field's colon; obs-fold; CR, LF or NUL in a field value; a bad chunk size or chunk
//! framing; a missing `Host` in HTTP/1.1, a repeated one, or one that disagrees with an
//! absolute-form target.
//!
//! ```
//! use lb_proxy::http1::{parse_request_head, Body, Limits, Status};
//! use std::mem::MaybeUninit;
//!
//! let bytes = b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello";
//! let mut fields = [const { MaybeUninit::uninit() }; 16];
//! let limits = Limits::default();
//! assert!(matches!(parse_request_head(&bytes[..20], &limits, &mut fields), Ok(Status::Incomplete)));
//! let Ok(Status::Complete(head)) = parse_request_head(bytes, &limits, &mut fields) else {
//!     panic!("a complete head");
//! };
//! assert_eq!((head.method, head.target, head.host), ("POST", "/up", Some(&b"app.test"[..])));
//! assert_eq!(head.body, Body::Length(5));
//! assert_eq!(&bytes[head.len..], b"hello");
//! ```

mod chunked;
mod error;
pub mod fields;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use chunked::{Chunked, Event};
pub use error::{ChunkError, Error};
pub use request::{parse_request_head, RequestHead, Target};
pub use response::{parse_response_head, response_body, ResponseHead};

/// An answer for bytes read so far: complete, or a prefix that needs more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// The whole thing was found.
    Complete(T),
    /// Read more and call again with everything read so far.
    Incomplete,
}

/// The HTTP version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after each message unless `keep-alive` is asked.
    Http10,
    /// HTTP/1.1: the connection persists unless `close` is said.
    Http11,
}

impl Version {
    /// The version of httparse's minor version number (`0` is HTTP/1.0).
    pub(super) fn from_minor(minor: u8) -> Self {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// How a message's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body.
    Empty,
    /// Exactly this many bytes (never 0: that is [`Body::Empty`]).
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`Chunked`].
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// Size limits of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes a head may take, blank lines before it and its own blank line
    /// included (more → [`Error::HeadTooLarge`], 431). Default 64 KiB.
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4), sent first by an h2c client with prior
/// knowledge.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a connection's first bytes are the HTTP/2 preface: `Complete(true)` once all
/// of it is there, `Complete(false)` as soon as a byte differs, `Incomplete` while
/// `first` is a strict prefix of it (an empty `first` included).
pub fn h2c_preface(first: &[u8]) -> Status<bool> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Status::Complete(false)
    } else if n == H2_PREFACE.len() {
        Status::Complete(true)
    } else {
        Status::Incomplete
    }
}
