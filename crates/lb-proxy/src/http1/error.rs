//! Why a message is refused, and the one answer each reason gets.

use lb_core::metrics::Reason;

/// A head or body the codec refuses. Each maps to one [`Reason`] ([`Error::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The head is longer than [`Limits::max_head`](super::Limits::max_head).
    #[error("head larger than the limit")]
    HeadTooLarge,
    /// More header fields than the caller has room for.
    #[error("too many header fields")]
    TooManyFields,
    /// The request or status line, or a field line, is not HTTP/1.x syntax.
    #[error("malformed {0}")]
    Syntax(&'static str),
    /// Whitespace between a field's name and its colon (RFC 9112 §5.1).
    #[error("whitespace before a field's colon")]
    SpaceBeforeColon,
    /// A field line continued on the next line (obs-fold, RFC 9112 §5.2).
    #[error("obsolete line folding")]
    ObsFold,
    /// CR, LF or NUL inside a field value (RFC 9110 §5.5).
    #[error("CR, LF or NUL in a field value")]
    BadValue,
    /// `Content-Length` together with `Transfer-Encoding` (RFC 9112 §6.3).
    #[error("Content-Length together with Transfer-Encoding")]
    LengthAndCoding,
    /// A `Content-Length` value that is not plain digits, or too large.
    #[error("invalid Content-Length")]
    BadLength,
    /// Several `Content-Length` values that differ.
    #[error("differing Content-Length values")]
    DifferingLengths,
    /// A `Transfer-Encoding` that is not exactly `chunked` (another coding, `chunked` not
    /// last or twice, none at all), or one in an HTTP/1.0 request.
    #[error("Transfer-Encoding other than chunked")]
    BadCoding,
    /// An HTTP/1.1 request without `Host`.
    #[error("no Host field")]
    MissingHost,
    /// More than one `Host` field.
    #[error("more than one Host field")]
    RepeatedHost,
    /// A `Host` that disagrees with the absolute-form target's authority.
    #[error("Host disagrees with the target's authority")]
    HostMismatch,
    /// A request target that is none of the four forms (RFC 9112 §3.2).
    #[error("invalid request target")]
    BadTarget,
    /// A chunked body's framing is broken.
    #[error("malformed chunked body: {0}")]
    Chunk(#[from] ChunkError),
    /// A body larger than allowed.
    #[error("body larger than the limit")]
    BodyTooLarge,
}

impl Error {
    /// The answer to a client whose request broke this rule.
    pub fn reason(self) -> Reason {
        match self {
            Error::HeadTooLarge | Error::TooManyFields => Reason::HeaderTooLarge,
            Error::BodyTooLarge => Reason::BodyTooLarge,
            _ => Reason::BadRequest,
        }
    }
}

/// What is wrong with a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk-size line that does not start with a hex digit, or has other bytes after
    /// the size than whitespace and extensions.
    #[error("invalid chunk size")]
    Size,
    /// A chunk size of more than 15 significant hex digits (2^60 bytes or more).
    #[error("chunk size too large")]
    SizeTooLarge,
    /// A line not ended by CRLF (a bare CR or LF).
    #[error("line not ended by CRLF")]
    LineEnd,
    /// A chunk's data not followed by CRLF (more data than its size said).
    #[error("chunk data not followed by CRLF")]
    DataEnd,
    /// A NUL or other control byte in an extension or trailer line.
    #[error("control byte in a chunk extension or trailer")]
    Control,
    /// A trailer line starting with whitespace (obs-fold).
    #[error("folded trailer line")]
    Trailer,
    /// A chunk-size line, or the trailer section, longer than allowed.
    #[error("chunk-size line or trailer section too long")]
    TooLong,
}
