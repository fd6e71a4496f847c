//! The errors of bodies and upstream exchanges, in one place: a request body's error
//! can end an upstream exchange, and an upstream exchange's can end a response body.

use std::io;
use std::time::Duration;

/// The largest upstream response head (status line and fields), and largest trailer block.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Why a client's request body could not be read to its end: the client's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    /// The client closed its connection before the body's end.
    #[error("the client closed its connection inside the request body")]
    Truncated,
    /// The chunked framing (or the trailer section) is malformed.
    #[error("malformed chunked request body")]
    Framing,
    /// Reading the client connection failed (reset).
    #[error("the client connection failed inside the request body")]
    Io,
    /// No byte of the body came for the listener's `idle_timeout`.
    #[error("no request body byte within idle_timeout")]
    Stalled,
}

/// Errors of proxied bodies.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The peer's body failed (reset, malformed chunk).
    #[error("body: {0}")]
    Hyper(#[from] hyper::Error),
    /// An upstream HTTP/1.1 body failed (reset, truncated, malformed chunk).
    #[error("upstream body: {0}")]
    Upstream(#[from] H1Error),
    /// The request body exceeded `max_body_bytes`.
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    /// No bytes moved for `idle_timeout`.
    #[error("body stalled for {0:?}")]
    Stalled(Duration),
    /// The client's HTTP/1 body broke (read by the connection).
    #[error("request body: {0}")]
    Client(#[from] ClientBodyError),
}

/// Why an exchange on an upstream HTTP/1.1 connection failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// Reading or writing the connection failed.
    #[error("upstream i/o: {0}")]
    Io(#[from] io::Error),
    /// The backend closed the connection before a complete response head.
    #[error("connection closed before a complete response head")]
    ClosedBeforeHead,
    /// The response head is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    Parse(httparse::Error),
    /// A field name or value in the head could not be kept.
    #[error("malformed response header field")]
    Field,
    /// The response head exceeds [`MAX_HEAD`] bytes.
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The response's framing is invalid or contradicts itself.
    #[error("invalid response framing: {0}")]
    Framing(&'static str),
    /// A chunk of a chunked body is malformed.
    #[error("malformed chunked body: {0}")]
    Chunk(&'static str),
    /// The body ended (connection closed) before its announced end.
    #[error("response body truncated")]
    Truncated,
    /// `101 Switching Protocols` to a request that asked no upgrade.
    #[error("101 to a request without an upgrade")]
    UnexpectedSwitch,
    /// The request body failed (the client's stream, or its size limit).
    #[error("request body: {0}")]
    Body(Box<BodyError>),
    /// The request body did not match its `Content-Length`.
    #[error("request body does not match its Content-Length")]
    BodyLength,
    /// The codec refused the response's head or framing.
    #[error("invalid response: {0}")]
    Codec(crate::http1::Error),
    /// No complete response head by the response deadline.
    #[error("no response head before the deadline")]
    Timeout,
}

impl From<crate::http1::Error> for H1Error {
    fn from(e: crate::http1::Error) -> Self {
        match e {
            crate::http1::Error::HeadTooLarge | crate::http1::Error::TooManyFields => {
                H1Error::HeadTooLarge
            }
            e => H1Error::Codec(e),
        }
    }
}
