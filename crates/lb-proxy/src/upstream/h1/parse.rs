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
/// [`front`](crate::front) to write to the client as they are: no header map is built
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

    /// Appends the kept fields to `map` (for hyper's server, which encodes from one).
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

/// The size of a chunk-size line (without CRLF), as the codec's decoder reads it.
#[cfg(test)]
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let mut chunked = Chunked::new();
    for part in [line, b"\r\n"] {
        let mut at = 0;
        while at < part.len() {
            match chunked.decode(&part[at..]) {
                (_, Event::Error(e)) => return Err(http1::Error::Chunk(e).into()),
                (0, _) => break,
                (n, _) => at += n,
            }
        }
    }
    // A size line leaves the decoder in the chunk's data (none for the last chunk).
    Ok(chunked.data_left())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a response decodes to: status, fields, body, trailers, and whether the
    /// connection stays reusable.
    type DecodedResp = (
        u16,
        Vec<(String, Vec<u8>)>,
        Vec<u8>,
        Vec<(String, Vec<u8>)>,
        bool,
    );

    /// Fields by name (stable: a name's values keep their order), as a map holds them.
    fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = map
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Feeds `pieces` in turn, decoding as far as each allows; then EOF.
    fn decode_pieces(pieces: &[&[u8]], head_request: bool) -> Result<DecodedResp, H1Error> {
        let mut buf = BytesMut::new();
        let mut head: Option<Response<Reading>> = None;
        let mut body = Vec::new();
        let mut trailers = Vec::new();
        let mut feed = pieces.iter();
        loop {
            let mut more = false;
            if head.is_none() {
                head = parse_head(&mut buf, head_request, false)?;
                more = head.is_none();
            }
            if let Some(resp) = head.as_mut() {
                match resp.body_mut().decode(&mut buf)? {
                    Decoded::Data(d) => body.extend_from_slice(&d),
                    Decoded::Trailers(t) => trailers = pairs(&t),
                    Decoded::End => break,
                    Decoded::More => more = true,
                }
            }
            if more {
                match feed.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => match head.as_mut() {
                        None => return Err(H1Error::ClosedBeforeHead),
                        Some(resp) => match resp.body_mut().at_eof()? {
                            Decoded::End => break,
                            _ => return Err(H1Error::Truncated),
                        },
                    },
                }
            }
        }
        let resp = head.ok_or(H1Error::ClosedBeforeHead)?;
        let keep = resp.body().keep && buf.is_empty();
        // The fields as relayed: the map's, and those kept as bytes.
        let mut fields = resp.headers().clone();
        if let Some(raw) = &resp.body().raw {
            raw.append_to(&mut fields);
        }
        Ok((resp.status().as_u16(), pairs(&fields), body, trailers, keep))
    }

    fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts {
            out.push(&bytes[at..c]);
            at = c;
        }
        out.push(&bytes[at..]);
        out
    }

    fn field() -> impl Strategy<Value = (String, String)> {
        ("x-[a-z0-9-]{0,12}", "[!-~]([ -~]{0,30}[!-~])?")
    }

    prop_compose! {
        fn response()(
            status in prop_oneof![200u16..204, 205u16..304, 305u16..600],
            fields in prop::collection::vec(field(), 0..12),
            body in prop::collection::vec(any::<u8>(), 0..3000),
            chunked in any::<bool>(),
            sizes in prop::collection::vec(1usize..700, 1..20),
            ext in any::<bool>(),
            trailers in prop::collection::vec(field(), 0..4),
        ) -> (Vec<u8>, u16, Vec<(String, String)>, Vec<u8>, Vec<(String, String)>) {
            let mut out = format!("HTTP/1.1 {status} Whatever\r\n").into_bytes();
            for (n, v) in &fields {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            let mut all = fields.clone();
            let trailers = if chunked { trailers } else { Vec::new() };
            if chunked {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                all.push(("transfer-encoding".into(), "chunked".into()));
                let mut rest = &body[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let k = sizes[i % sizes.len()].min(rest.len());
                    let e = if ext { ";a=b;c" } else { "" };
                    out.extend_from_slice(format!("{k:X}{e}\r\n").as_bytes());
                    out.extend_from_slice(&rest[..k]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[k..];
                    i += 1;
                }
                out.extend_from_slice(b"0\r\n");
                for (n, v) in &trailers {
                    out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
                all.push(("content-length".into(), body.len().to_string()));
                out.extend_from_slice(&body);
            }
            (out, status, all, body, trailers)
        }
    }

    fn as_pairs(v: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = v
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    proptest! {
        #[test]
        fn any_split_decodes_like_the_whole(
            (bytes, status, fields, body, trailers) in response(),
            points in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            let whole = decode_pieces(&[&bytes], false).expect("valid response decodes");
            prop_assert_eq!(whole.0, status);
            // Relayed from the head's bytes, without the hop-by-hop `Transfer-Encoding`.
            let relayed: Vec<_> = fields
                .iter()
                .filter(|(n, _)| n != "transfer-encoding")
                .cloned()
                .collect();
            prop_assert_eq!(&whole.1, &as_pairs(&relayed));
            prop_assert_eq!(&whole.2, &body);
            prop_assert_eq!(&whole.3, &as_pairs(&trailers));
            prop_assert!(whole.4, "a complete framed response keeps the connection");
            let split = decode_pieces(&split_at_points(&bytes, &points), false)
                .expect("split response decodes");
            prop_assert_eq!(split, whole);
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            prefix in prop::sample::select(vec![
                &b""[..],
                b"HTTP/1.1 200 OK\r\n",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",
            ]),
            points in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut all = prefix.to_vec();
            all.extend_from_slice(&bytes);
            let _ = decode_pieces(&split_at_points(&all, &points), false);
            let _ = decode_pieces(&split_at_points(&all, &points), true);
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert_eq!(chunk_size(b"000").unwrap(), 0);
        assert_eq!(chunk_size(b"1aF").unwrap(), 0x1af);
        assert_eq!(chunk_size(b"10 ;ext=1").unwrap(), 16);
        assert_eq!(chunk_size(b"10;ext").unwrap(), 16);
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"g").is_err());
        assert!(chunk_size(b"10 x").is_err());
        assert!(chunk_size(b"1000000000000000").is_err());
    }

    #[test]
    fn head_request_and_framing_rules() {
        let r = decode_pieces(&[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"], true).unwrap();
        assert_eq!((r.0, r.2.len(), r.4), (200, 0, true));
        // Close-delimited: complete at EOF, never reused.
        let r = decode_pieces(&[b"HTTP/1.1 200 OK\r\n\r\nabc", b"def"], false).unwrap();
        assert_eq!((r.2.as_slice(), r.4), (&b"abcdef"[..], false));
        // Connection: close is not reused.
        let r = decode_pieces(
            &[b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\na"],
            false,
        )
        .unwrap();
        assert!(!r.4);
        // Extra bytes after the body: not reusable.
        let r = decode_pieces(&[b"HTTP/1.1 204 No Content\r\n\r\nextra"], false).unwrap();
        assert!(!r.4);
        assert!(
            decode_pieces(&[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc"], false).is_err()
        );
        assert!(decode_pieces(&[b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"], false).is_err());
        assert!(decode_pieces(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 1, 1\r\n\r\na"],
            false
        )
        .is_ok());
        assert!(decode_pieces(&[b"HTTP/1.1 101 Switching Protocols\r\n\r\n"], false).is_err());
    }

    /// The head parsed from `text`, whole.
    fn head_of(text: &[u8]) -> Response<Reading> {
        let mut buf = BytesMut::from(text);
        parse_head(&mut buf, false, false)
            .expect("valid head")
            .expect("complete head")
    }

    #[test]
    fn raw_fields_are_written_as_sent_without_hop_by_hop_lines() {
        let resp = head_of(
            b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
              Content-Type:  text/plain \r\nProxy-Connection: x\r\nContent-Length: 2\r\n\
              Date: Thu, 03 Dec 2026 08:00:00 GMT\r\n\r\n",
        );
        assert!(resp.headers().is_empty(), "no map for a head kept as bytes");
        let raw = resp.body().raw.as_ref().expect("kept as bytes");
        let mut out = Vec::new();
        raw.write(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Server: x\r\nContent-Type:  text/plain \r\nContent-Length: 2\r\n\
             Date: Thu, 03 Dec 2026 08:00:00 GMT\r\n"
        );
        assert!(raw.has_date && raw.has_length);
        assert_eq!(resp.body().size_hint().exact(), Some(2));
        let mut map = HeaderMap::new();
        raw.append_to(&mut map);
        assert_eq!(
            pairs(&map),
            vec![
                ("content-length".to_owned(), b"2".to_vec()),
                ("content-type".to_owned(), b"text/plain".to_vec()),
                ("date".to_owned(), b"Thu, 03 Dec 2026 08:00:00 GMT".to_vec()),
                ("server".to_owned(), b"x".to_vec()),
            ]
        );
        // No fields at all.
        let resp = head_of(b"HTTP/1.1 200 OK\r\n\r\n");
        let mut out = Vec::new();
        resp.body().raw.as_ref().expect("kept").write(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn heads_that_need_a_map_get_one() {
        for head in [
            // Connection names a field, which must go too.
            &b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nx-secret: 1\r\ncontent-length: 0\r\n\r\n"[..],
            // More hop-by-hop lines than are skipped from the bytes.
            b"HTTP/1.1 200 OK\r\nte: a\r\nte: b\r\nupgrade: c\r\nkeep-alive: d\r\nkeep-alive: e\r\ncontent-length: 0\r\n\r\n",
            // A length on a 304.
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            // A line ended by LF alone.
            b"HTTP/1.1 200 OK\r\nx-a: 1\ncontent-length: 0\r\n\r\n",
        ] {
            let resp = head_of(head);
            assert!(
                resp.body().raw.is_none(),
                "{}",
                String::from_utf8_lossy(head)
            );
            assert!(!resp.headers().is_empty());
        }
    }
}
