//! Reading what a backend sends: the response head ([`parse_head`]) and the body
//! ([`Reading`]: `Content-Length`, chunked with trailers, or until the connection
//! closes), over a `BytesMut`. The rules are the codec's ([`crate::http1`]: the head,
//! its framing fields, the chunked decoder); this module keeps the bytes, builds the
//! response and its fields. The connection ([`super::H1Conn`]) reads, these decide; the
//! proptests below feed every split of a response.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::SizeHint;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode, Version};

use super::{MAX_HEAD, MAX_HEADERS, READ_CHUNK, READ_MAX};
use crate::error::H1Error;
use crate::http1::fields::{ConnectionOptions, Framing};
use crate::http1::{self, Chunked, Event};
use crate::request::headers::{append_lines, field_map, is_hop_by_hop};

/// Where each field of a parsed block lies in it: name start/end, value start/end.
type Spans = [(u32, u32, u32, u32); MAX_HEADERS];

/// The header map of the fields at `spans` in `block`, and the `Connection` options
/// ([`field_map`]).
fn fields(
    block: &Bytes,
    spans: &[(u32, u32, u32, u32)],
    drop_hop: bool,
) -> Result<(HeaderMap, ConnectionOptions), H1Error> {
    let named = spans.iter().map(|&(a, b, c, d)| {
        (
            &block[a as usize..b as usize],
            &block[c as usize..d as usize],
        )
    });
    field_map(block, named, spans.len(), drop_hop).ok_or(H1Error::Field)
}

fn span_of(base: &[u8], part: &[u8]) -> (u32, u32) {
    // Both lie in one buffer of at most MAX_HEAD bytes (checked by the callers).
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    (start as u32, (start + part.len()) as u32)
}

/// Records where each field parsed from `window` lies in it, so the fields can be built
/// once the block is split off the buffer; the number of fields.
fn record(window: &[u8], fields: &[httparse::Header<'_>], spans: &mut Spans) -> usize {
    for (slot, h) in spans.iter_mut().zip(fields) {
        let (a, b) = span_of(window, h.name.as_bytes());
        let (c, d) = span_of(window, h.value);
        *slot = (a, b, c, d);
    }
    fields.len()
}

/// Parses a response head at the front of `buf`, skipping (consuming) 1xx interim
/// responses other than 101. `Ok(None)`: incomplete, more bytes needed. On success the
/// head's bytes are consumed and the response's body says how to read the rest.
/// `head_request`: the request was `HEAD`; `upgrade`: it asked for an upgrade.
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
) -> Result<Option<Response<Reading>>, H1Error> {
    loop {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut spans: Spans = [(0, 0, 0, 0); MAX_HEADERS];
        let limits = http1::Limits { max_head: MAX_HEAD };
        let (len, code, version, count) =
            match http1::parse_response_head(buf, &limits, &mut headers) {
                Ok(http1::Status::Complete(h)) => {
                    (h.len, h.code, h.version, record(buf, h.fields, &mut spans))
                }
                Ok(http1::Status::Incomplete) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
        let status =
            StatusCode::from_u16(code).map_err(|_| H1Error::Parse(httparse::Error::Status))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            buf.advance(len);
            continue;
        }
        if status == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
            return Err(H1Error::UnexpectedSwitch);
        }
        let block = buf.split_to(len).freeze();
        let spans = &spans[..count];
        let switching = status == StatusCode::SWITCHING_PROTOCOLS;
        let bodyless = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
        let mut framing = Framing::default();
        let raw = scan(&block, spans, bodyless, switching, &mut framing);
        let body = http1::response_body(code, version, head_request, &framing);
        let headers = match &raw {
            Some(_) => HeaderMap::new(),
            // A 101 keeps its hop-by-hop fields: its `Connection: upgrade` is relayed.
            None => fields(&block, spans, !switching)?.0,
        };
        let mut reading = Reading::for_response(status, version, body, framing.connection)?;
        reading.raw = raw;
        let mut resp = Response::new(reading);
        *resp.status_mut() = status;
        *resp.version_mut() = match version {
            http1::Version::Http10 => Version::HTTP_10,
            http1::Version::Http11 => Version::HTTP_11,
        };
        *resp.headers_mut() = headers;
        return Ok(Some(resp));
    }
}

/// Reads the framing fields of a head into `framing` and, in the same pass, its fields
/// as bytes ([`RawFields`]; `None` when the head needs a header map, as the type's docs
/// say, or when `switching`).
fn scan<'a>(
    block: &'a Bytes,
    spans: &[(u32, u32, u32, u32)],
    bodyless: bool,
    switching: bool,
    framing: &mut Framing<'a>,
) -> Option<RawFields> {
    let mut raw = RawFields {
        block: block.clone(),
        start: spans.first().map_or(0, |s| s.0),
        end: 0,
        skips: [(0, 0); MAX_SKIPS],
        skipped: 0,
        has_date: false,
        has_length: false,
    };
    // Relayed as bytes only when every line ends with CRLF, the blank line too.
    let mut keep = !switching && (spans.is_empty() || block.ends_with(b"\r\n\r\n"));
    for (i, &(a, b, c, d)) in spans.iter().enumerate() {
        let name = &block[a as usize..b as usize];
        let value = &block[c as usize..d as usize];
        // A line ends where the next one (or the blank line) starts. Between a value and
        // that lie only whitespace and CRLF or a bare LF, so the byte before it is CR
        // exactly when the line ends with CRLF.
        let next = spans.get(i + 1).map_or(block.len() - 2, |s| s.0 as usize);
        keep &= block[next - 2] == b'\r';
        let skip = match name.len() {
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                framing.add_coding(value);
                true
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                framing.add_length(value);
                // A 204 or 304 with a length gets a map (hyper's rules for it apply).
                keep &= !bodyless;
                raw.has_length = true;
                false
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                keep &= !framing.add_connection(value);
                true
            }
            4 if name.eq_ignore_ascii_case(b"date") => {
                raw.has_date = true;
                false
            }
            _ => is_hop_by_hop(name),
        };
        if skip && keep {
            match raw.skips.get_mut(raw.skipped as usize) {
                Some(slot) => {
                    *slot = (a, next as u32);
                    raw.skipped += 1;
                }
                None => keep = false,
            }
        }
        raw.end = next as u32;
    }
    keep.then_some(raw)
}

/// Hop-by-hop lines a head may have and still be relayed from its bytes.
const MAX_SKIPS: usize = 4;

/// A backend's response fields kept as the bytes they came in, for
/// the client side ([`write`](crate::client::write)) to write to the client as they are: no header map is built
/// for the response, nor dropped after it. The lines the relay removes (the hop-by-hop
/// fields: `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`,
/// `Upgrade`) are skipped. A head this does not fit (a 101, a `Connection` naming other
/// fields, more than `MAX_SKIPS` hop-by-hop lines, a line not ended by CRLF, a
/// `Content-Length` on a 204 or 304) gets a header map as before.
#[derive(Debug)]
pub struct RawFields {
    block: Bytes,
    /// The first field line, and the end of the last one (before the blank line).
    start: u32,
    end: u32,
    /// Lines left out, in order.
    skips: [(u32, u32); MAX_SKIPS],
    skipped: u8,
    /// A `Date` field is among the kept lines.
    pub has_date: bool,
    /// A `Content-Length` field is among the kept lines.
    pub has_length: bool,
}

impl RawFields {
    /// At most how many bytes [`RawFields::write`] writes.
    pub fn bytes_len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// The kept lines, each `name: value` and CRLF as the backend sent it.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut at = self.start as usize;
        for &(from, to) in &self.skips[..self.skipped as usize] {
            out.extend_from_slice(&self.block[at..from as usize]);
            at = to as usize;
        }
        out.extend_from_slice(&self.block[at..self.end as usize]);
    }

    /// The value of the first kept field named `name` (ASCII case-insensitive), trimmed.
    pub fn value(&self, name: &[u8]) -> Option<&[u8]> {
        self.block[self.start as usize..self.end as usize]
            .split(|&b| b == b'\n')
            .find_map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let colon = line.iter().position(|&b| b == b':')?;
                line[..colon]
                    .eq_ignore_ascii_case(name)
                    .then(|| line[colon + 1..].trim_ascii())
            })
    }

    /// Appends the kept fields to `map` (for hyper's HTTP/2 server, which encodes from one).
    pub fn append_to(&self, map: &mut HeaderMap) {
        let mut kept = Vec::with_capacity(self.bytes_len() + 2);
        self.write(&mut kept);
        append_lines::<MAX_HEADERS>(map, kept);
    }
}

/// How a response body is read, and whether its connection may serve another exchange.
#[derive(Debug)]
pub struct Reading {
    pub(super) state: State,
    /// The connection may be reused after this body (HTTP/1.1 without `Connection:
    /// close`, framed, nothing extra received).
    pub(super) keep: bool,
    /// The response's fields as they came, when they are not in the response's map (see
    /// [`RawFields`]).
    pub raw: Option<RawFields>,
    /// Bytes of a chunked body's trailer section so far, left at the front of the read
    /// buffer until the section ends (the decoder reads on after them).
    trailer: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// A chunked body.
    Chunked(Chunked),
    /// Until the connection closes.
    Eof,
    /// Read to the end.
    Done,
}

/// One step of decoding a body from a buffer.
#[derive(Debug)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailers of a chunked body.
    Trailers(HeaderMap),
    /// The body is complete.
    End,
    /// More bytes are needed.
    More,
}

impl Reading {
    /// How the body of a response with `status` is read, as the codec framed it
    /// (`body`), and whether the connection is kept after it.
    fn for_response(
        status: StatusCode,
        version: http1::Version,
        body: Result<http1::Body, http1::Error>,
        connection: ConnectionOptions,
    ) -> Result<Reading, H1Error> {
        let mut keep = connection.persists(version);
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // The connection now carries the upgraded protocol.
            keep = false;
        }
        let state = match body? {
            http1::Body::Empty => State::Done,
            http1::Body::Length(n) => State::Length(n),
            http1::Body::Chunked => State::Chunked(Chunked::new()),
            http1::Body::Close => {
                keep = false;
                State::Eof
            }
        };
        Ok(Reading {
            state,
            keep,
            raw: None,
            trailer: 0,
        })
    }

    /// How a client's request body framed as `body` is read (the client side reads
    /// request bodies with the same decoder as response bodies).
    pub fn for_request(body: http1::Body) -> Reading {
        let state = match body {
            http1::Body::Length(n) => State::Length(n),
            http1::Body::Chunked => State::Chunked(Chunked::new()),
            // A request body is never delimited by the connection's end.
            http1::Body::Empty | http1::Body::Close => State::Done,
        };
        Reading {
            state,
            keep: true,
            raw: None,
            trailer: 0,
        }
    }

    /// True once the body is complete (or there is none).
    pub fn is_end(&self) -> bool {
        self.state == State::Done
    }

    /// The exact remaining length when known.
    pub fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// How many bytes the next read should make room for.
    pub fn want(&self) -> usize {
        match self.state {
            State::Length(n) => (n.min(READ_MAX as u64) as usize).max(READ_CHUNK),
            State::Chunked(c) => (c.data_left().min(READ_MAX as u64) as usize).max(READ_CHUNK),
            State::Eof => READ_MAX / 4,
            State::Done => READ_CHUNK,
        }
    }

    /// Decodes the next step of the body from the front of `buf`, consuming what it
    /// uses.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let take = (buf.len() as u64).min(left);
                    let data = buf.split_to(take as usize).freeze();
                    self.state = match left - take {
                        0 => State::Done,
                        r => State::Length(r),
                    };
                    return Ok(Decoded::Data(data));
                }
                State::Eof => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::Chunked(mut chunked) => {
                    let kept = self.trailer as usize;
                    let (n, event) = chunked.decode(&buf[kept..]);
                    self.state = State::Chunked(chunked);
                    // Once the trailer section started, its bytes (and the final CRLF)
                    // stay in `buf` until it ends; before it, framing is dropped.
                    let keep = |r: &mut Reading, buf: &mut BytesMut| {
                        if kept > 0 || event == Event::Trailer {
                            r.trailer += n as u32;
                        } else {
                            buf.advance(n);
                        }
                    };
                    match event {
                        // Data comes before any trailer (nothing is kept then).
                        Event::Data => return Ok(Decoded::Data(buf.split_to(n).freeze())),
                        Event::Framing | Event::Trailer => keep(self, buf),
                        Event::NeedMore => {
                            keep(self, buf);
                            return Ok(Decoded::More);
                        }
                        Event::End => {
                            self.state = State::Done;
                            if kept == 0 {
                                buf.advance(n);
                                return Ok(Decoded::End);
                            }
                            let block = buf.split_to(kept + n).freeze();
                            return trailers(&block).map(Decoded::Trailers);
                        }
                        Event::Error(e) => return Err(http1::Error::Chunk(e).into()),
                    }
                }
            }
        }
    }
    /// The connection closed with `decode` wanting more: the end of a close-delimited
    /// body, else a truncated one.
    pub fn at_eof(&mut self) -> Result<Decoded, H1Error> {
        match self.state {
            State::Eof | State::Done => {
                self.state = State::Done;
                Ok(Decoded::End)
            }
            _ => Err(H1Error::Truncated),
        }
    }
}

/// A trailer section (its field lines and the blank line) as a header map.
fn trailers(block: &Bytes) -> Result<HeaderMap, H1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut spans: Spans = [(0, 0, 0, 0); MAX_HEADERS];
    let count = match httparse::parse_headers(block, &mut headers) {
        Ok(httparse::Status::Complete((_, hs))) => record(block, hs, &mut spans),
        Ok(httparse::Status::Partial) => return Err(H1Error::Chunk("malformed trailer section")),
        Err(httparse::Error::TooManyHeaders) => return Err(H1Error::HeadTooLarge),
        Err(e) => return Err(H1Error::Parse(e)),
    };
    Ok(fields(block, &spans[..count], false)?.0)
}

#[cfg(test)]
mod tests;
