//! Request heads: httparse for the syntax, [`Framing`] for the fields that decide the
//! framing, and the target's form (RFC 9112 §3.2).

use std::mem::MaybeUninit;

use super::fields::{ConnectionOptions, Framing};
use super::{Body, Error, Limits, Status, Version};

/// The form of a request target (RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/path?query`, the usual form.
    Origin(&'a str),
    /// `http://authority/path`: the authority (no userinfo) is the request's host.
    Absolute {
        /// The scheme is `https`.
        https: bool,
        /// `host[:port]`.
        authority: &'a [u8],
    },
    /// `host:port`, for `CONNECT`.
    Authority(&'a str),
    /// `*`, for a server-wide `OPTIONS`.
    Asterisk,
}

impl<'a> Target<'a> {
    /// The form of `target` for `method`; `None` for none of the four.
    pub fn parse(method: &str, target: &'a str) -> Option<Target<'a>> {
        if target.starts_with('/') {
            return Some(Target::Origin(target));
        }
        if method == "CONNECT" {
            return (!target.is_empty() && !target.contains(['/', '?', '#', '@']))
                .then_some(Target::Authority(target));
        }
        if target == "*" {
            return (method == "OPTIONS").then_some(Target::Asterisk);
        }
        let (scheme, rest) = target.split_once("://")?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return None;
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        Some(Target::Absolute {
            https,
            authority: authority.as_bytes(),
        })
    }

    /// The path and query: the target of an origin-form request, what follows the
    /// authority of an absolute-form one (`/` when nothing does), none for the others.
    pub fn path_and_query(self, target: &'a str) -> Option<&'a str> {
        match self {
            Target::Origin(t) => Some(t),
            Target::Absolute { .. } => {
                let rest = target.split_once("://").map_or("", |(_, r)| r);
                let at = rest.find(['/', '?']).unwrap_or(rest.len());
                Some(if at == rest.len() { "/" } else { &rest[at..] })
            }
            Target::Authority(_) | Target::Asterisk => None,
        }
    }
}

/// A request head, borrowing the buffer it was parsed from and the caller's field slots.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'b, 'f> {
    /// The method, as sent (case-sensitive).
    pub method: &'b str,
    /// The request target, as sent.
    pub target: &'b str,
    /// The target's form.
    pub form: Target<'b>,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, in order.
    pub fields: &'f [httparse::Header<'b>],
    /// The head's length in bytes, blank lines before it and its own blank line
    /// included: the body (or the next request) starts there.
    pub len: usize,
    /// How the body is framed.
    pub body: Body,
    /// The authority the request is for: the absolute-form target's, else `Host`'s
    /// (`None` only in HTTP/1.0 without either).
    pub host: Option<&'b [u8]>,
    /// The connection may serve another request after this one (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The client accepts trailers (`TE: trailers`).
    pub te_trailers: bool,
    /// Some `TE`, `Expect` or `Upgrade` field: the client asks something of the
    /// connection beyond framing.
    pub negotiates: bool,
    /// An upgrade is asked (`Upgrade` named by `Connection`), or the method is `CONNECT`.
    pub upgrade: bool,
    /// The `Connection` options.
    pub connection: ConnectionOptions,
    /// Some `Connection` option names other fields (to be removed as well).
    pub connection_names_fields: bool,
}

/// Parses the request head at the front of `buf` (everything read so far), using
/// `fields` for its header fields (more → [`Error::TooManyFields`], 431). Blank lines
/// before the request line are skipped (and counted in its length). Every framing rule
/// of the module docs is applied: a head that parses is one the proxy can forward
/// without ambiguity.
pub fn parse_request_head<'b, 'f>(
    buf: &'b [u8],
    limits: &Limits,
    fields: &'f mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Status<RequestHead<'b, 'f>>, Error> {
    let window = &buf[..buf.len().min(limits.max_head)];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, window, fields);
    let Status::Complete(len) = head_len(parsed, buf.len(), window, limits)? else {
        return Ok(Status::Incomplete);
    };
    let httparse::Request {
        method: Some(method),
        path: Some(target),
        version: Some(version),
        headers,
    } = req
    else {
        // A complete parse sets all three.
        return Err(Error::Syntax("request line"));
    };
    let version = Version::from_minor(version);
    let form = Target::parse(method, target).ok_or(Error::BadTarget)?;
    let mut framing = Framing::default();
    for h in headers.iter() {
        framing.add(h.name.as_bytes(), h.value);
    }
    let body = framing.request_body(version)?;
    let host = framing.request_host(version, form)?;
    let connection = framing.connection;
    Ok(Status::Complete(RequestHead {
        method,
        target,
        form,
        version,
        fields: headers,
        len,
        body,
        host,
        keep_alive: connection.persists(version),
        expect_continue: framing.expect_continue,
        te_trailers: framing.te_trailers,
        negotiates: framing.te || framing.expect || framing.upgrade,
        upgrade: (framing.upgrade && connection.upgrade) || method == "CONNECT",
        connection,
        connection_names_fields: framing.connection_names_fields,
    }))
}

/// httparse's answer for `window` (the first `max_head` bytes of a `buf_len`-byte
/// buffer) as the head's length, for requests and responses alike: a partial head that
/// already fills `max_head` is [`Error::HeadTooLarge`], a refused one is [`classify`]d.
pub(super) fn head_len(
    parsed: httparse::Result<usize>,
    buf_len: usize,
    window: &[u8],
    limits: &Limits,
) -> Result<Status<usize>, Error> {
    match parsed {
        Ok(httparse::Status::Complete(n)) => Ok(Status::Complete(n)),
        Ok(httparse::Status::Partial) if buf_len >= limits.max_head => Err(Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(Status::Incomplete),
        Err(httparse::Error::TooManyHeaders) => Err(Error::TooManyFields),
        Err(e) => Err(classify(window, e)),
    }
}

/// Which rule a head httparse refused broke: the first field line that shows it, else
/// the syntax error httparse found. Runs on refused heads only.
pub(super) fn classify(head: &[u8], e: httparse::Error) -> Error {
    let mut lines = head.split(|&b| b == b'\n');
    // Skip blank lines, then the start line.
    let mut bare_lf = false;
    for line in lines.by_ref() {
        if !(line.is_empty() || line == b"\r") {
            bare_lf = !line.ends_with(b"\r");
            break;
        }
    }
    for line in lines {
        let crlf = line.ends_with(b"\r");
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.contains(&0) || line.contains(&b'\r') {
            return Error::BadValue;
        }
        if matches!(line[0], b' ' | b'\t') {
            return Error::ObsFold;
        }
        match line.iter().position(|&b| b == b':') {
            Some(colon) if colon > 0 && matches!(line[colon - 1], b' ' | b'\t') => {
                return Error::SpaceBeforeColon
            }
            // A line without a colon after a line ended by a bare LF: that LF was inside a
            // value.
            None if bare_lf => return Error::BadValue,
            _ => {}
        }
        bare_lf = !crlf;
    }
    Error::Syntax(match e {
        httparse::Error::HeaderName => "field name",
        httparse::Error::HeaderValue => "field value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Status => "status",
        httparse::Error::Token => "method or target",
        httparse::Error::Version => "version",
        httparse::Error::TooManyHeaders => "field count",
    })
}
