//! Our own HTTP/1.1 client, driven inside the request's task: no connection task, no
//! channel between the request and the connection, no wake-ups beyond the socket's.
//!
//! An [`H1Conn`] is the connection's IO (TCP or TLS, the PROXY header already sent) with a
//! read buffer and a reusable write buffer. [`H1Conn::send`] writes a request (head and a
//! buffered body in one vectored write; a streamed body as it comes, with its length or
//! chunked) and reads the response head, skipping `1xx` interim answers. The body is then
//! read by [`H1Body`], whose data frames are split off the read buffer without copying.
//!
//! Framing follows RFC 9112 §6.3: no body for `HEAD`, `1xx`, `204` and `304`; chunked
//! when `Transfer-Encoding` ends in `chunked` (extensions ignored, trailers become a
//! trailers frame); else `Content-Length`; else the body runs to the end of the
//! connection, which is then not reused. `Transfer-Encoding` with `Content-Length`, or
//! differing lengths, fail the exchange. Heads are limited to [`MAX_HEAD`] bytes and
//! [`MAX_HEADERS`] fields.

use std::future::poll_fn;
use std::io::{self, IoSlice, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Returner;
use crate::body::{BodyError, ReqBody};

/// Largest response head (status line and fields), and largest trailer block.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most fields in a response head (or trailer block).
pub const MAX_HEADERS: usize = 100;
/// What the read buffer starts with, and the least it grows by.
const READ_CHUNK: usize = 4096;
/// The most one read asks for while a large body streams.
const READ_MAX: usize = 64 * 1024;
/// A write buffer grown past this (a huge head) is released after the exchange.
const WRITE_KEEP: usize = 16 * 1024;
/// Longest chunk-size line (with extensions).
const MAX_CHUNK_LINE: usize = 4096;

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
    /// The response head exceeds [`MAX_HEAD`].
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
}

/// A failed exchange; `request` is the request back when none of its bytes were written.
pub struct SendError {
    /// What failed.
    pub error: H1Error,
    /// The unsent request.
    pub request: Option<Request<ReqBody>>,
}

/// The connection's byte stream: plain TCP or TLS over TCP.
pub enum Io {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (boxed: rustls' state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How the request body goes out.
enum Out {
    /// Nothing after the head (or the buffered body written with it).
    Done,
    /// Streamed, `Content-Length` bytes.
    Length(u64),
    /// Streamed, chunked.
    Chunked,
}

/// One upstream HTTP/1.1 connection.
pub struct H1Conn {
    io: Io,
    rbuf: BytesMut,
    /// The head being written (and chunk framing).
    wbuf: Vec<u8>,
    wpos: usize,
    /// A body part written after `wbuf[wpos..]`, then `wtail`.
    wdata: Bytes,
    wtail: &'static [u8],
}

impl H1Conn {
    /// A connection over `io`, ready for its first request.
    pub fn new(io: Io) -> H1Conn {
        H1Conn {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(512),
            wpos: 0,
            wdata: Bytes::new(),
            wtail: b"",
        }
    }

    /// True when an idle connection may carry a request: the backend neither closed it
    /// nor sent anything. No syscall unless the socket's readiness says readable.
    pub fn idle_usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.tcp().poll_read_ready(&mut cx) {
            Poll::Pending => return true,
            Poll::Ready(Err(_)) => return false,
            Poll::Ready(Ok(())) => {}
        }
        // Readable, or readiness left over from the last exchange: a read tells which
        // (TLS records such as session tickets are consumed without data).
        let mut scratch = [0u8; 64];
        let mut buf = ReadBuf::new(&mut scratch);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// The IO and the bytes read after the last response head, for an upgrade's tunnel.
    pub fn into_upgraded(self) -> Upgraded {
        Upgraded {
            pre: self.rbuf.freeze(),
            io: self.io,
        }
    }

    /// Sends `req` and reads the response head. The request comes back in the error when
    /// none of its bytes were written.
    pub async fn send(&mut self, req: Request<ReqBody>) -> Result<Response<Reading>, SendError> {
        let expect = Expect {
            head: req.method() == Method::HEAD,
            upgrade: req.headers().contains_key(header::UPGRADE),
        };
        let out = self.encode_head(&req);
        if let ReqBody::Full { data: Some(d) } = req.body() {
            if matches!(out, Out::Done) {
                self.wdata = d.clone();
            }
        }
        let mut written = 0usize;
        if let Err(e) = poll_fn(|cx| self.poll_write_out(cx, &mut written)).await {
            self.reset_out();
            return Err(SendError {
                error: e.into(),
                request: (written == 0).then_some(req),
            });
        }
        let fail = |error| SendError {
            error,
            request: None,
        };
        let mut early = None;
        if !matches!(out, Out::Done) {
            let body = req.into_body();
            early = self.stream_body(body, out, expect).await.map_err(fail)?;
        }
        let resp = match early {
            Some(mut r) => {
                // Answered before the request body was all sent: the rest of it can't be
                // told from a next request, so this connection is not reused.
                r.body_mut().keep = false;
                r
            }
            None => {
                poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx))
                    .await
                    .map_err(|e| fail(e.into()))?;
                poll_fn(|cx| self.poll_head(cx, expect))
                    .await
                    .map_err(fail)?
            }
        };
        if self.wbuf.capacity() > WRITE_KEEP {
            self.wbuf = Vec::new();
        }
        Ok(resp)
    }

    fn reset_out(&mut self) {
        self.wbuf.clear();
        self.wpos = 0;
        self.wdata = Bytes::new();
        self.wtail = b"";
    }

    /// Writes the request head into `wbuf`, adding the framing header it needs.
    fn encode_head(&mut self, req: &Request<ReqBody>) -> Out {
        let has_length = req.headers().get(header::CONTENT_LENGTH);
        let length = has_length
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // As hyper's client does: a known length is sent as is; a stream without one is
        // chunked, except for methods that (almost) never carry a body.
        let (out, add) = match req.body() {
            ReqBody::Empty => (Out::Done, Added::None),
            ReqBody::Full { data } => {
                let n = data.as_ref().map_or(0, |d| d.len() as u64);
                (
                    Out::Done,
                    if has_length.is_some() {
                        Added::None
                    } else {
                        Added::Length(n)
                    },
                )
            }
            ReqBody::Stream { .. } => match length {
                Some(n) => (Out::Length(n), Added::None),
                None if matches!(*req.method(), Method::GET | Method::HEAD | Method::CONNECT) => {
                    (Out::Done, Added::None)
                }
                None => (Out::Chunked, Added::Chunked),
            },
        };
        let w = &mut self.wbuf;
        w.clear();
        self.wpos = 0;
        w.extend_from_slice(req.method().as_str().as_bytes());
        w.push(b' ');
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        w.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        encode_fields(w, req.headers());
        match add {
            Added::None => {}
            Added::Length(n) => {
                // Writing to a Vec cannot fail.
                let _ = write!(w, "content-length: {n}\r\n");
            }
            Added::Chunked => w.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        w.extend_from_slice(b"\r\n");
        out
    }

    /// Writes `wbuf[wpos..]`, `wdata` and `wtail`, in that order, counting the bytes.
    fn poll_write_out(
        &mut self,
        cx: &mut Context<'_>,
        written: &mut usize,
    ) -> Poll<io::Result<()>> {
        loop {
            let head = &self.wbuf[self.wpos..];
            if head.is_empty() && self.wdata.is_empty() && self.wtail.is_empty() {
                self.wbuf.clear();
                self.wpos = 0;
                return Poll::Ready(Ok(()));
            }
            let bufs = [
                IoSlice::new(head),
                IoSlice::new(&self.wdata),
                IoSlice::new(self.wtail),
            ];
            let mut n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &bufs))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            let a = n.min(head.len());
            self.wpos += a;
            n -= a;
            let b = n.min(self.wdata.len());
            self.wdata.advance(b);
            n -= b;
            let c = n.min(self.wtail.len());
            self.wtail = &self.wtail[c..];
        }
    }

    /// Streams the request body; returns a response that arrived before it was all sent.
    async fn stream_body(
        &mut self,
        mut body: ReqBody,
        out: Out,
        expect: Expect,
    ) -> Result<Option<Response<Reading>>, H1Error> {
        let chunked = matches!(out, Out::Chunked);
        let mut left = match out {
            Out::Length(n) => n,
            _ => 0,
        };
        let mut ended = false;
        let mut written = 0usize;
        poll_fn(|cx| {
            // The backend may answer (and stop reading) before the body is all sent.
            if let Poll::Ready(r) = self.poll_head(cx, expect) {
                return Poll::Ready(r.map(Some));
            }
            loop {
                ready!(self.poll_write_out(cx, &mut written))?;
                if ended {
                    return Poll::Ready(Ok(None));
                }
                // What TLS holds back goes out before the body is waited for (a no-op
                // on TCP), so the backend is never left waiting on buffered bytes.
                ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                let frame = match ready!(Pin::new(&mut body).poll_frame(cx)) {
                    None => {
                        ended = true;
                        if chunked {
                            self.wbuf.extend_from_slice(b"0\r\n\r\n");
                        } else if left > 0 {
                            return Poll::Ready(Err(H1Error::BodyLength));
                        }
                        continue;
                    }
                    Some(Err(e)) => return Poll::Ready(Err(H1Error::Body(Box::new(e)))),
                    Some(Ok(f)) => f,
                };
                match frame.into_data() {
                    Ok(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        if chunked {
                            // Writing to a Vec cannot fail.
                            let _ = write!(self.wbuf, "{:x}\r\n", data.len());
                            self.wtail = b"\r\n";
                        } else {
                            let n = data.len() as u64;
                            if n > left {
                                return Poll::Ready(Err(H1Error::BodyLength));
                            }
                            left -= n;
                        }
                        self.wdata = data;
                    }
                    Err(frame) => {
                        if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                            ended = true;
                            self.wbuf.extend_from_slice(b"0\r\n");
                            encode_fields(&mut self.wbuf, &trailers);
                            self.wbuf.extend_from_slice(b"\r\n");
                        }
                    }
                }
            }
        })
        .await
    }

    /// Reads until a final response head is parsed (1xx interim answers are skipped).
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        expect: Expect,
    ) -> Poll<Result<Response<Reading>, H1Error>> {
        loop {
            if !self.rbuf.is_empty() {
                if let Some(resp) = parse_head(&mut self.rbuf, expect.head, expect.upgrade)? {
                    return Poll::Ready(Ok(resp));
                }
            }
            let got = self.rbuf.len();
            let n = ready!(self.poll_fill(cx, READ_CHUNK))?;
            if n == 0 {
                return Poll::Ready(Err(if got == 0 {
                    H1Error::ClosedBeforeHead
                } else {
                    H1Error::Framing("connection closed inside the response head")
                }));
            }
        }
    }

    /// Reads into `rbuf` (at least `want` bytes of room); the number of bytes read.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        self.rbuf.reserve(want.max(READ_CHUNK));
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }
}

enum Added {
    None,
    Length(u64),
    Chunked,
}

#[derive(Clone, Copy)]
struct Expect {
    head: bool,
    upgrade: bool,
}

fn encode_fields(w: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        w.extend_from_slice(name.as_str().as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(value.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
}

/// Where each field of a parsed block lies in it: name start/end, value start/end.
type Spans = [(u32, u32, u32, u32); MAX_HEADERS];

/// Builds a header map from `block` (frozen, so values share it) and the spans found in it.
fn fields(block: &Bytes, spans: &[(u32, u32, u32, u32)]) -> Result<HeaderMap, H1Error> {
    let mut map = HeaderMap::with_capacity(spans.len());
    for &(a, b, c, d) in spans {
        let name =
            HeaderName::from_bytes(&block[a as usize..b as usize]).map_err(|_| H1Error::Field)?;
        let value = HeaderValue::from_maybe_shared(block.slice(c as usize..d as usize))
            .map_err(|_| H1Error::Field)?;
        map.append(name, value);
    }
    Ok(map)
}

fn span_of(base: &[u8], part: &[u8]) -> (u32, u32) {
    // Both lie in one buffer of at most MAX_HEAD bytes (checked by the callers).
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    (start as u32, (start + part.len()) as u32)
}

/// Parses a response head at the front of `buf`, skipping (consuming) 1xx interim
/// responses other than 101. `Ok(None)`: incomplete, more bytes needed. On success the
/// head's bytes are consumed and the response's body says how to read the rest.
/// `head_request`: the request was `HEAD`; `upgrade`: it asked for an upgrade.
pub fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
) -> Result<Option<Response<Reading>>, H1Error> {
    loop {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut spans: Spans = [(0, 0, 0, 0); MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let window = &buf[..buf.len().min(MAX_HEAD)];
        let config = httparse::ParserConfig::default();
        let status =
            match config.parse_response_with_uninit_headers(&mut parsed, window, &mut headers) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => {
                    if buf.len() >= MAX_HEAD {
                        return Err(H1Error::HeadTooLarge);
                    }
                    return Ok(None);
                }
                Err(httparse::Error::TooManyHeaders) => return Err(H1Error::HeadTooLarge),
                Err(e) => return Err(H1Error::Parse(e)),
            };
        let len = status;
        let code = parsed.code.unwrap_or(0);
        let version = parsed.version.unwrap_or(1);
        let count = parsed.headers.len();
        for (slot, h) in spans.iter_mut().zip(parsed.headers.iter()) {
            let (a, b) = span_of(window, h.name.as_bytes());
            let (c, d) = span_of(window, h.value);
            *slot = (a, b, c, d);
        }
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
        let headers = fields(&block, &spans[..count])?;
        let reading = Reading::for_response(status, version, head_request, &headers)?;
        let mut resp = Response::new(reading);
        *resp.status_mut() = status;
        *resp.version_mut() = if version == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        *resp.headers_mut() = headers;
        return Ok(Some(resp));
    }
}

/// Whether `Connection` says `close` and whether it says `keep-alive`.
fn connection_options(headers: &HeaderMap) -> (bool, bool) {
    let (mut close, mut keep_alive) = (false, false);
    for v in headers.get_all(header::CONNECTION) {
        for o in v.as_bytes().split(|&b| b == b',') {
            let o = o.trim_ascii();
            close |= o.eq_ignore_ascii_case(b"close");
            keep_alive |= o.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    (close, keep_alive)
}

/// How a response body is read, and whether its connection may serve another exchange.
#[derive(Debug)]
pub struct Reading {
    state: State,
    /// The connection may be reused after this body (HTTP/1.1 without `Connection:
    /// close`, framed, nothing extra received).
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// Before a chunk-size line.
    Size,
    /// Bytes left of a chunk.
    Chunk(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// The trailer section after the last chunk.
    Trailers,
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
    fn for_response(
        status: StatusCode,
        version: u8,
        head_request: bool,
        headers: &HeaderMap,
    ) -> Result<Reading, H1Error> {
        let (close, keep_alive) = connection_options(headers);
        let mut keep = !close && (version == 1 || keep_alive);
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // The connection now carries the upgraded protocol.
            return Ok(Reading {
                state: State::Done,
                keep: false,
            });
        }
        let te = headers.contains_key(header::TRANSFER_ENCODING);
        let lengths = headers.get_all(header::CONTENT_LENGTH);
        let mut length: Option<u64> = None;
        for v in lengths.iter() {
            for part in v.as_bytes().split(|&b| b == b',') {
                let part = part.trim_ascii();
                if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
                    return Err(H1Error::Framing("invalid Content-Length"));
                }
                let n = std::str::from_utf8(part)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(H1Error::Framing("invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(H1Error::Framing("differing Content-Length values"));
                }
                length = Some(n);
            }
        }
        let bodyless = head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let state = if bodyless {
            State::Done
        } else if te {
            if length.is_some() {
                return Err(H1Error::Framing("Transfer-Encoding with Content-Length"));
            }
            let last = headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|c| !c.is_empty());
            if last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) && version == 1 {
                State::Size
            } else {
                keep = false;
                State::Eof
            }
        } else {
            match length {
                Some(0) => State::Done,
                Some(n) => State::Length(n),
                None => {
                    keep = false;
                    State::Eof
                }
            }
        };
        Ok(Reading { state, keep })
    }

    /// True once the body is complete (or there is none).
    pub fn is_end(&self) -> bool {
        self.state == State::Done
    }

    /// True when the connection may be reused once the body is complete.
    pub fn keep_alive(&self) -> bool {
        self.keep
    }

    /// The exact remaining length when known.
    pub fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    fn want(&self) -> usize {
        match self.state {
            State::Length(n) | State::Chunk(n) => (n.min(READ_MAX as u64) as usize).max(READ_CHUNK),
            State::Eof => READ_MAX / 4,
            _ => READ_CHUNK,
        }
    }

    /// Decodes the next step of the body from the front of `buf`, consuming what it
    /// uses.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length(left) | State::Chunk(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let take = (buf.len() as u64).min(left);
                    let data = buf.split_to(take as usize).freeze();
                    let rest = left - take;
                    self.state = match (self.state, rest) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), r) => State::Length(r),
                        (_, 0) => State::ChunkEnd,
                        (_, r) => State::Chunk(r),
                    };
                    return Ok(Decoded::Data(data));
                }
                State::Eof => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::Size => {
                    let Some(nl) = memchr::memchr(b'\n', buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(H1Error::Chunk("chunk-size line too long"));
                        }
                        return Ok(Decoded::More);
                    };
                    if nl == 0 || buf[nl - 1] != b'\r' {
                        return Err(H1Error::Chunk("chunk-size line without CRLF"));
                    }
                    let size = chunk_size(&buf[..nl - 1])?;
                    buf.advance(nl + 1);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Chunk(size)
                    };
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(H1Error::Chunk("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    if buf.len() >= 2 && &buf[..2] == b"\r\n" {
                        buf.advance(2);
                        self.state = State::Done;
                        return Ok(Decoded::End);
                    }
                    let window = &buf[..buf.len().min(MAX_HEAD)];
                    let Some(end) = memchr::memmem::find(window, b"\r\n\r\n") else {
                        if buf.len() >= MAX_HEAD {
                            return Err(H1Error::HeadTooLarge);
                        }
                        if buf.len() >= 2 && buf[0] == b'\r' && buf[1] != b'\n' {
                            return Err(H1Error::Chunk("malformed trailer section"));
                        }
                        return Ok(Decoded::More);
                    };
                    let len = end + 4;
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut spans: Spans = [(0, 0, 0, 0); MAX_HEADERS];
                    let count = match httparse::parse_headers(&window[..len], &mut headers) {
                        Ok(httparse::Status::Complete((_, hs))) => {
                            for (slot, h) in spans.iter_mut().zip(hs.iter()) {
                                let (a, b) = span_of(window, h.name.as_bytes());
                                let (c, d) = span_of(window, h.value);
                                *slot = (a, b, c, d);
                            }
                            hs.len()
                        }
                        Ok(httparse::Status::Partial) => {
                            return Err(H1Error::Chunk("malformed trailer section"))
                        }
                        Err(httparse::Error::TooManyHeaders) => return Err(H1Error::HeadTooLarge),
                        Err(e) => return Err(H1Error::Parse(e)),
                    };
                    let block = buf.split_to(len).freeze();
                    let map = fields(&block, &spans[..count])?;
                    self.state = State::Done;
                    return Ok(Decoded::Trailers(map));
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

/// The hex size of a chunk-size line (without CRLF), extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(H1Error::Chunk("no chunk size"));
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') {
        return Err(H1Error::Chunk("invalid chunk size"));
    }
    let hex = line[..digits].trim_ascii_start();
    let hex = match hex.iter().position(|&b| b != b'0') {
        Some(i) => &hex[i..],
        None => return Ok(0),
    };
    if hex.len() > 15 {
        return Err(H1Error::Chunk("chunk size too large"));
    }
    Ok(hex.iter().fold(0u64, |n, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        n * 16 + u64::from(d)
    }))
}

/// A response body read from an upstream HTTP/1.1 connection. Once read to the end, the
/// connection goes back to where it is kept (if it may be reused).
pub struct H1Body {
    conn: Option<Box<H1Conn>>,
    reading: Reading,
    home: Option<Returner>,
}

impl H1Body {
    /// Reads `reading`'s body from `conn`; `home` takes the connection back at the end.
    pub fn new(conn: Box<H1Conn>, reading: Reading, home: Option<Returner>) -> H1Body {
        let mut body = H1Body {
            conn: Some(conn),
            reading,
            home,
        };
        if body.reading.is_end() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        self.reading.state = State::Done;
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.reading.keep && conn.rbuf.is_empty() {
            if let Some(home) = self.home.take() {
                let mut conn = conn;
                if conn.rbuf.capacity() > READ_MAX {
                    // A large body grew the buffer: an idle connection keeps none.
                    conn.rbuf = BytesMut::new();
                }
                home.give_back(conn);
            }
        }
    }

    fn fail(&mut self) {
        self.conn = None;
        self.home = None;
        self.reading.state = State::Done;
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let step = match this.reading.decode(&mut conn.rbuf) {
                Ok(Decoded::More) => match conn.poll_fill(cx, this.reading.want()) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => this.reading.at_eof(),
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(e)) => Err(e.into()),
                },
                other => other,
            };
            match step {
                Ok(Decoded::Data(d)) => {
                    if this.reading.is_end() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Decoded::Trailers(t)) => {
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::More) => continue,
                Err(e) => {
                    this.fail();
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        self.reading.size_hint()
    }
}

/// An upgraded upstream connection: the bytes that came after the 101 head first, then
/// the connection itself.
pub struct Upgraded {
    pre: Bytes,
    io: Io,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
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
        let keep = resp.body().keep_alive() && buf.is_empty();
        Ok((
            resp.status().as_u16(),
            pairs(resp.headers()),
            body,
            trailers,
            keep,
        ))
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
            prop_assert_eq!(&whole.1, &as_pairs(&fields));
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
}
