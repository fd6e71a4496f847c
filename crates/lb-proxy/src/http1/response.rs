//! Response heads (what a backend sends) and their bodies' framing.

use std::mem::MaybeUninit;

use super::fields::Framing;
use super::request::head_len;
use super::{Body, Error, Limits, Status, Version};

/// A response head, borrowing the buffer it was parsed from and the caller's field slots.
#[derive(Clone, Copy, Debug)]
pub struct ResponseHead<'b, 'f> {
    /// The status code (100 to 999).
    pub code: u16,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, in order.
    pub fields: &'f [httparse::Header<'b>],
    /// The head's length in bytes: the body starts there.
    pub len: usize,
}

impl<'b> ResponseHead<'b, '_> {
    /// What the framing fields say (the body depends on the request too: see
    /// [`response_body`]). A pass over the fields, for a caller that does not make its
    /// own (the upstream client feeds [`Framing`] from its pass over them).
    pub fn framing(&self) -> Framing<'b> {
        let mut framing = Framing::default();
        for h in self.fields {
            framing.add(h.name.as_bytes(), h.value);
        }
        framing
    }

    /// The connection may serve another exchange, as far as this head says.
    pub fn keep_alive(&self) -> bool {
        self.framing().connection.persists(self.version)
    }
}

/// Parses the response head at the front of `buf` (everything read so far), using
/// `fields` for its header fields (more → [`Error::TooManyFields`]).
pub fn parse_response_head<'b, 'f>(
    buf: &'b [u8],
    limits: &Limits,
    fields: &'f mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Status<ResponseHead<'b, 'f>>, Error> {
    let window = &buf[..buf.len().min(limits.max_head)];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, window, fields);
    let Status::Complete(len) = head_len(parsed, buf.len(), window, limits)? else {
        return Ok(Status::Incomplete);
    };
    let httparse::Response {
        version: Some(version),
        code: Some(code),
        headers,
        ..
    } = resp
    else {
        // A complete parse sets both.
        return Err(Error::Syntax("status line"));
    };
    let version = Version::from_minor(version);
    Ok(Status::Complete(ResponseHead {
        code,
        version,
        fields: headers,
        len,
    }))
}

/// How the body of a response with status `code` is read (RFC 9112 §6.3): none for a
/// `HEAD` request, 1xx, 204 and 304 (and 101, after which the connection is a tunnel);
/// otherwise as its fields say ([`Framing::response_body`]).
pub fn response_body(
    code: u16,
    version: Version,
    head_request: bool,
    framing: &Framing<'_>,
) -> Result<Body, Error> {
    if head_request || (100..200).contains(&code) || code == 204 || code == 304 {
        return Ok(Body::Empty);
    }
    framing.response_body(version)
}
