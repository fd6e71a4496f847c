//! A client's request head parsed with the codec and turned into a request whose
//! handling has started: its fields kept in the head's bytes when they are plain
//! enough ([`RawHead`]), else a header map sharing those bytes; its body read as the
//! handling asks for it.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use hyper::{Method, Request, Uri, Version};
use lb_core::metrics::Reason;

use crate::client::ctx::Ctx;
use crate::client::pump::BodyStart;
use crate::http1;
use crate::proxy::{self, Handling};
use crate::request::body::InBody;
use crate::request::fields::RawHead;
use crate::request::headers::field_map;
use crate::request::pipe::Pipe;
use crate::upstream::h1::{Decoded, Reading};

/// The most header fields of a request head (more: `431 header-too-large`).
pub(crate) const MAX_FIELDS: usize = 100;

/// A parsed request, its handling started (boxed, not yet polled: the parsed request
/// moves into its box once instead of travelling back through the callers).
pub(crate) struct Started {
    pub(crate) handling: Handling,
    pub(crate) head_request: bool,
    /// The connection closes after it (asked by the client, or HTTP/1.0 without
    /// `keep-alive`).
    pub(crate) close: bool,
    /// An HTTP/1.0 client: no chunked response; `keep-alive` said when kept.
    pub(crate) http10: bool,
    /// The client accepts trailers (`TE: trailers`).
    pub(crate) trailers: bool,
    /// The request's body, read as its handling asks for it.
    pub(crate) body: Option<BodyStart>,
}

pub(crate) enum Taken {
    Request(Started),
    /// A head the codec refuses: answered with this reason, and the connection closed.
    Refused(Reason),
    /// The head is not complete yet.
    Partial,
}

/// Room in a request's field map for the forwarding fields the proxy adds
/// (`X-Forwarded-For`, `-Proto`, `-Host`, `X-Request-Id`), so the map is allocated once.
const ADDED_FIELDS: usize = 4;

/// Parses the head at the front of `buf`; a complete head is taken off it and becomes
/// the request (its values share the head's bytes).
pub(crate) fn take_request(buf: &mut Bytes, ctx: &Ctx<'_>) -> Taken {
    let (taken, used) = parse_request(buf, ctx);
    match taken {
        // Pipelined bytes after the head (a body, rarely a next request) stay, sharing
        // the head's buffer.
        Taken::Request(_) => *buf = buf.slice(used..),
        // An incomplete head waits for more in a buffer of its own, so a slow client
        // does not keep a shared one (see `slab`) alive.
        Taken::Partial => *buf = Bytes::copy_from_slice(buf),
        Taken::Refused(_) => {}
    }
    taken
}

/// The request at the front of `bytes` and how many bytes its head took (0 when none
/// was taken).
fn parse_request(bytes: &Bytes, ctx: &Ctx<'_>) -> (Taken, usize) {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let limits = http1::Limits {
        max_head: match ctx.info.max_header {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
    };
    let head = match http1::parse_request_head(bytes, &limits, &mut fields) {
        Ok(http1::Status::Complete(h)) => h,
        Ok(http1::Status::Incomplete) => return (Taken::Partial, 0),
        Err(e) => return (Taken::Refused(e.reason()), 0),
    };
    let len = head.len;
    // A tunnel through a reverse proxy is not something it serves.
    if head.method == "CONNECT" {
        return (Taken::Refused(Reason::BadRequest), 0);
    }
    let Ok(method) = Method::from_bytes(head.method.as_bytes()) else {
        return (Taken::Refused(Reason::BadRequest), 0);
    };
    let Ok(uri) = Uri::from_maybe_shared(bytes.slice_ref(head.target.as_bytes())) else {
        return (Taken::Refused(Reason::BadRequest), 0);
    };
    let http10 = head.version == http1::Version::Http10;
    // A body whose bytes all came with the head (a small `Content-Length` body, the
    // usual POST) is taken whole: no pipe, and it goes upstream with the head.
    let mut used = len;
    let mut whole = None;
    if let http1::Body::Length(n) = head.body {
        if let Some(end) = usize::try_from(n).ok().and_then(|n| len.checked_add(n)) {
            if end <= bytes.len() {
                whole = Some(bytes.slice(len..end));
                used = end;
            }
        }
    }
    // SPEC: nothing of a request with broken chunk framing reaches a backend. What came
    // with the head is checked before the head goes anywhere; bytes that come later can
    // only break off the request already started (its upstream connection is dropped).
    if head.body == http1::Body::Chunked && !chunks_well_framed(&bytes[len..]) {
        return (Taken::Refused(Reason::BadRequest), 0);
    }
    let body = match whole {
        Some(_) => None,
        None => body_start(head.body, head.expect_continue),
    };
    let in_body = match whole {
        Some(data) => Some(InBody::Whole(Some(data))),
        None => body.as_ref().map(|b| InBody::H1(b.pipe.body())),
    };
    let mut request = Request::new(in_body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let head_request = request.method() == Method::HEAD;
    let close = !head.keep_alive;
    let usual = !http10
        && !head.negotiates
        && !head.upgrade
        && matches!(head.form, http1::Target::Origin(_));
    // The usual head: its fields stay in its bytes (see `fields`).
    let raw = if usual {
        RawHead::new(bytes.slice(..len), head.fields)
    } else {
        None
    };
    if raw.is_none() {
        // httparse checked the characters already; `field_map` applies the types' own checks.
        let named = head.fields.iter().map(|h| (h.name.as_bytes(), h.value));
        let Some((headers, _)) = field_map(bytes, named, head.fields.len() + ADDED_FIELDS, true)
        else {
            return (Taken::Refused(Reason::BadRequest), 0);
        };
        *request.headers_mut() = headers;
    }
    let started = Started {
        handling: proxy::handle(ctx.rt.load_full(), ctx.info.clone(), request, raw),
        head_request,
        close,
        http10,
        trailers: head.te_trailers,
        body,
    };
    (Taken::Request(started), used)
}

/// False when `after_head`, the start of a chunked body (and maybe more after it), breaks
/// the chunked framing before the body ends: decoded with the body's own decoder, on a
/// copy (chunked request bodies are rare; the usual body has a length).
fn chunks_well_framed(after_head: &[u8]) -> bool {
    if after_head.is_empty() {
        return true;
    }
    let mut reading = Reading::for_request(http1::Body::Chunked);
    let mut buf = BytesMut::from(after_head);
    loop {
        match reading.decode(&mut buf) {
            Ok(Decoded::Data(_)) => {}
            // The body's end (trailers end it too), or the end of what came so far.
            Ok(Decoded::Trailers(_) | Decoded::End | Decoded::More) => return true,
            Err(_) => return false,
        }
    }
}

/// How a request body framed as `body` is read, and its pipe; `None` without a body.
fn body_start(body: http1::Body, expect_continue: bool) -> Option<BodyStart> {
    let length = match body {
        http1::Body::Empty | http1::Body::Close => return None,
        http1::Body::Length(n) => Some(n),
        http1::Body::Chunked => None,
    };
    Some(BodyStart {
        pipe: Pipe::new(length),
        reading: Reading::for_request(body),
        expect_continue,
    })
}
