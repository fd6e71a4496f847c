//! The client side of HTTP/1.1 for the common request, without hyper.
//!
//! Most requests through a load balancer are the same shape: HTTP/1.1, a method and an
//! origin-form path, no body, no upgrade. This module serves those itself: it parses the
//! head with the codec ([`http1`]; a head it refuses is answered `400` or `431` and the
//! connection closed, through [`ClientIo::refuse`]), keeps the fields in the head's bytes
//! ([`RawHead`]; a head that does not fit gets a header map whose values share those
//! bytes), hands the request to
//! [`forward`], and writes the response head and body to
//! the socket, the head and a small first body frame in one write. It keeps no buffer
//! while a connection waits for its next request: a read lands in a per-thread space and the
//! head's bytes are copied into this thread's shared buffer ([`slab`](crate::slab)), so
//! an idle keep-alive connection holds no buffer and a request allocates none for its
//! head.
//!
//! Anything else goes to hyper for the rest of the connection ([`Ended::Handoff`]): the
//! bytes read so far are put back into [`ClientIo`] and hyper-util's server reads them
//! first. That covers request bodies (`Content-Length` other than `0`,
//! `Transfer-Encoding`, `Expect`), upgrades and `CONNECT`, `TE: trailers`, HTTP/1.0,
//! absolute-form and `*` targets, targets the `http` types refuse (hyper then answers
//! them as before, and [`conn`](crate::conn) swaps in its `x-lb-error` answer), heads
//! with more than [`MAX_FIELDS`] fields, and h2c prior knowledge.
//!
//! Timeouts and head limits stay in [`ClientIo`] (408, 431, the smuggling 400, idle
//! close): this module reads through it and marks each request in flight with
//! [`Shared::enter`], as hyper's service does.
//!
//! The response follows hyper's rules for a server: `Content-Length` as given, else the
//! body's exact size, else `Transfer-Encoding: chunked`; no body for `HEAD`, 204 and 304;
//! a `Date` field when the response has none. Trailers are not sent (a client that asks
//! for them with `TE: trailers` is served by hyper). When the client sent
//! `Connection: close`, or the listener is draining, the response says
//! `connection: close` and the connection closes after it. A body that fails or ends
//! short of its length ends the connection (the response is truncated, never padded).

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use hyper::body::Body;
use hyper::body::Frame;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use lb_core::metrics::Reason;
use lb_core::server::Shutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::body::{InBody, RespBody};
use crate::conn::ClientIo;
use crate::fields::RawHead;
use crate::forward::{self, ConnInfo};
use crate::headers::field_map;
use crate::http1::{self, fields::decimal_length};
use crate::pipe::{ClientBodyError, Pipe};
use crate::state::Runtime;
use crate::upstream::h1::{Decoded, RawFields, Reading};

/// The most header fields of a request head (more: `431 header-too-large`).
pub const MAX_FIELDS: usize = 100;

/// One read takes at most this much (into the thread's [`SPACE`]; only a head's bytes are
/// kept).
const READ_CHUNK: usize = 4096;

/// Body bytes up to this size are copied behind the head (or the chunk line before them)
/// and go out in one write; larger frames are written from where they are.
const COALESCE: usize = 16 * 1024;

/// How serving a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The connection is done: closed by the client, by a timeout, after
    /// `Connection: close`, on a drain, or on an error.
    Closed,
    /// A request this module does not serve: its bytes (and any after them) are back in
    /// the [`ClientIo`], for hyper.
    Handoff,
}

/// The listener's drain signal as one connection sees it.
pub struct Drain(Shutdown);

impl Drain {
    /// Watches the listener's stop signal.
    pub fn new(shutdown: Shutdown) -> Drain {
        Drain(shutdown)
    }

    /// True once the listener drains (an atomic load).
    pub fn is_draining(&self) -> bool {
        self.0.is_stopping()
    }

    /// Resolves when the listener drains.
    pub async fn wait(&mut self) {
        self.0.stopped().await;
    }

    /// A future of its own that resolves when the listener drains. Polled once, it
    /// registers the task's waker (tokio's `Notify` takes a lock to do so, and again on
    /// every later poll); after that the task is woken on a drain and
    /// [`Drain::is_draining`] tells, so a connection takes that lock once, not per request.
    fn signalled(&self) -> impl Future<Output = ()> + use<> {
        let mut rx = self.0.clone();
        async move { rx.stopped().await }
    }
}

/// A connection's registration for the drain signal (see [`Drain::signalled`]).
struct Listening<F> {
    signal: F,
    registered: bool,
}

impl<F: Future<Output = ()>> Listening<Pin<&mut F>> {
    /// True when the listener drains; the first call registers the task's waker.
    fn drained(&mut self, drain: &Drain, cx: &mut std::task::Context<'_>) -> bool {
        if drain.is_draining() {
            return true;
        }
        if self.registered {
            return false;
        }
        self.registered = true;
        self.signal.as_mut().poll(cx).is_ready()
    }
}

/// What a connection needs to serve requests.
pub struct Ctx<'a> {
    /// Facts about the client connection, copied into each request.
    pub info: &'a ConnInfo,
    /// The running configuration, loaded per request.
    pub rt: &'a ArcSwap<Runtime>,
}

/// Serves requests on `io` until the connection ends, or until it turns out to speak
/// HTTP/2 (h2c prior knowledge): then its bytes are back in `io`, for hyper.
pub async fn serve(io: &mut ClientIo, ctx: &Ctx<'_>, drain: &Drain) -> Ended {
    // Bytes read and not yet taken by a request.
    let mut buf = Bytes::new();
    let mut listening = Listening {
        signal: pin!(drain.signalled()),
        registered: false,
    };
    let mut first = true;
    loop {
        let req = loop {
            if !buf.is_empty() {
                if first && !crate::sniff::cannot_be_h2(&buf) {
                    if http1::h2c_preface(&buf) == http1::Status::Complete(true) {
                        io.into_h2(buf);
                        return Ended::Handoff;
                    }
                } else {
                    match take_request(&mut buf, ctx) {
                        Taken::Request(req) => break req,
                        Taken::Partial => {}
                        // The answer is written by the next read, which then fails.
                        Taken::Refused(reason) => {
                            io.refuse(reason);
                            drain_to_close(io).await;
                            return Ended::Closed;
                        }
                    }
                }
            }
            // A connection accepted just as the drain starts has not sent its first request
            // yet; it is answered (with `Connection: close`), not closed as idle: its client
            // never saw an idle connection to retry on (header_timeout still bounds it).
            let between = !first && buf.is_empty();
            match read_more(io, &mut buf, between, drain, &mut listening).await {
                Read::Data => {}
                Read::Eof if buf.is_empty() => return Ended::Closed,
                // A head cut short by the client's close: nobody to answer.
                Read::Eof | Read::Failed | Read::Drained => return Ended::Closed,
            }
        };
        first = false;
        io.busy();
        let Started {
            handling,
            head_request,
            close,
            http10,
            trailers,
            body,
        } = req;
        let mut handling = handling;
        let mut body = body.map(|pipe| {
            io.body();
            Pump::new(pipe, std::mem::take(&mut buf))
        });
        let resp = match body.as_mut() {
            None => handling.as_mut().await,
            Some(pump) => {
                poll_fn(|cx| loop {
                    if let Poll::Ready(r) = handling.as_mut().poll(cx) {
                        return Poll::Ready(r);
                    }
                    if pump.poll(io, cx).is_pending() {
                        return Poll::Pending;
                    }
                })
                .await
            }
        };
        drop(handling);
        // A body not read to its end (the answer came first, or it broke) leaves bytes
        // that cannot be told from a next request: the connection closes after this.
        let unread = match body {
            None => false,
            Some(pump) => match pump.finish() {
                Some(rest) => {
                    buf = rest;
                    false
                }
                None => true,
            },
        };
        let mut resp = resp;
        let switch = resp.body_mut().take_switch();
        let asked = Asked {
            head_request,
            close: close || unread || drain.is_draining(),
            http10,
            trailers,
        };
        // Encoded before any await, so the response's parts are not kept in this
        // connection's future; only the body is, pinned here while it is sent.
        let out = encode_response(resp, asked);
        if let Some(switch) = switch {
            if io.write_all(&out.head).await.is_err() || io.flush().await.is_err() {
                return Ended::Closed;
            }
            io.tunnel();
            switch.run(io, std::mem::take(&mut buf)).await;
            return Ended::Closed;
        }
        let sent = match out.body {
            None if out.last => write_last(io, &out.head).await.is_ok(),
            None => io.write_all(&out.head).await.is_ok(),
            Some((body, framing, trailers)) => {
                let body = pin!(body);
                send_body(io, out.head, body, framing, trailers, out.last).await
            }
        };
        let kept = sent && !out.last;
        io.response_done();
        if io.flush().await.is_err() {
            return Ended::Closed;
        }
        if !kept {
            if sent && unread {
                // The client may still be sending the body: read it away for a while, so
                // that closing does not reset the connection under the answer.
                io.linger();
                drain_to_close(io).await;
            }
            return Ended::Closed;
        }
    }
}

/// Reads and discards until the connection fails or ends (a refused or lingering
/// connection's reads fail once its answer is out and the linger time is over).
async fn drain_to_close(io: &mut ClientIo) {
    let mut sink = [0u8; 512];
    while let Ok(n) = io.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

/// A request body being read off the connection for its handling (see [`crate::pipe`]).
struct Pump {
    pipe: Arc<Pipe>,
    reading: Reading,
    /// Bytes read and not yet decoded (the body's, then maybe a next request's).
    buf: BytesMut,
    /// `Expect: 100-continue` not yet answered: how much of the interim answer is out.
    cont: Option<usize>,
    /// The body was read to its end, or failed.
    done: bool,
    failed: bool,
}

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The most a read for a request body asks for.
const BODY_READ: usize = 16 * 1024;

impl Pump {
    fn new(body: BodyStart, after_head: Bytes) -> Pump {
        Pump {
            pipe: body.pipe,
            reading: body.reading,
            buf: BytesMut::from(&after_head[..]),
            // Bytes of the body already here: the client did not wait for the answer.
            cont: (body.expect_continue && after_head.is_empty()).then_some(0),
            done: false,
            failed: false,
        }
    }

    /// Reads and hands over the next frame when the body asks for one. `Ready` when it
    /// made progress (the caller polls the handling again), `Pending` when it waits for
    /// the body to ask or for the client's bytes.
    fn poll(&mut self, io: &mut ClientIo, cx: &mut Context<'_>) -> Poll<()> {
        if self.done || !self.pipe.wants(cx) {
            return Poll::Pending;
        }
        if let Some(pos) = self.cont {
            // Answered the first time the body is read, as hyper's server does.
            match Pin::new(&mut *io).poll_write(cx, &CONTINUE[pos..]) {
                Poll::Ready(Ok(n)) if n > 0 && pos + n < CONTINUE.len() => {
                    self.cont = Some(pos + n);
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) if n > 0 => self.cont = None,
                Poll::Ready(_) => return self.fail(ClientBodyError::Io, cx),
                Poll::Pending => return Poll::Pending,
            }
        }
        loop {
            match self.reading.decode(&mut self.buf) {
                Ok(Decoded::Data(d)) => {
                    let last = self.reading.is_end();
                    self.pipe.put(Frame::data(d), last, cx);
                    self.done = last;
                    return Poll::Ready(());
                }
                Ok(Decoded::Trailers(t)) => {
                    self.pipe.put(Frame::trailers(t), true, cx);
                    self.done = true;
                    return Poll::Ready(());
                }
                Ok(Decoded::End) => {
                    self.pipe.finish(None, cx);
                    self.done = true;
                    return Poll::Ready(());
                }
                Ok(Decoded::More) => {}
                Err(_) => return self.fail(ClientBodyError::Framing, cx),
            }
            self.buf.reserve(self.reading.want().min(BODY_READ));
            match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => return self.fail(ClientBodyError::Truncated, cx),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    return self.fail(ClientBodyError::Stalled, cx)
                }
                Poll::Ready(Err(_)) => return self.fail(ClientBodyError::Io, cx),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn fail(&mut self, e: ClientBodyError, cx: &Context<'_>) -> Poll<()> {
        self.pipe.finish(Some(e), cx);
        self.done = true;
        self.failed = true;
        Poll::Ready(())
    }

    /// The bytes after a body read whole (a next request's), or `None` when it was not.
    fn finish(self) -> Option<Bytes> {
        if !self.done || self.failed || !self.reading.is_end() {
            return None;
        }
        Some(self.buf.freeze())
    }
}

/// A request body as parsed with its head: how to read it, and its pipe.
struct BodyStart {
    pipe: Arc<Pipe>,
    reading: Reading,
    expect_continue: bool,
}

/// A parsed request, its handling started (boxed, not yet polled: the parsed request
/// moves into its box once instead of travelling back through the callers).
struct Started {
    handling: forward::Handling,
    head_request: bool,
    /// The connection closes after it (asked by the client, or HTTP/1.0 without
    /// `keep-alive`).
    close: bool,
    /// An HTTP/1.0 client: no chunked response; `keep-alive` said when kept.
    http10: bool,
    /// The client accepts trailers (`TE: trailers`).
    trailers: bool,
    /// The request's body, read as its handling asks for it.
    body: Option<BodyStart>,
}

enum Taken {
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
fn take_request(buf: &mut Bytes, ctx: &Ctx<'_>) -> Taken {
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
    let mut trailers = false;
    // Fields the kept-bytes path leaves to the header map's path.
    let mut special = false;
    for h in head.fields.iter() {
        let name = h.name.as_bytes();
        match name.len() {
            2 if name.eq_ignore_ascii_case(b"te") => {
                special = true;
                trailers |= h
                    .value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
            }
            6 if name.eq_ignore_ascii_case(b"expect") => special = true,
            7 if name.eq_ignore_ascii_case(b"upgrade") => special = true,
            _ => {}
        }
    }
    let body = match head.body {
        http1::Body::Empty | http1::Body::Close => None,
        b => Some(BodyStart {
            pipe: Pipe::new(match b {
                http1::Body::Length(n) => Some(n),
                _ => None,
            }),
            reading: Reading::for_request(b),
            expect_continue: head.expect_continue,
        }),
    };
    let mut request = Request::new(body.as_ref().map(|b| InBody::H1(b.pipe.body())));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let head_request = request.method() == Method::HEAD;
    let close = !head.keep_alive;
    let usual =
        !http10 && !special && !head.upgrade && matches!(head.form, http1::Target::Origin(_));
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
        handling: forward::handle(ctx.rt.load_full(), ctx.info.clone(), request, raw),
        head_request,
        close,
        http10,
        trailers,
        body,
    };
    (Taken::Request(started), len)
}

enum Read {
    Data,
    Eof,
    Failed,
    Drained,
}

/// Reads once more into `buf`. While `idle` (between requests) a drain ends the wait.
async fn read_more<F: Future<Output = ()>>(
    io: &mut ClientIo,
    buf: &mut Bytes,
    idle: bool,
    drain: &Drain,
    listening: &mut Listening<Pin<&mut F>>,
) -> Read {
    poll_fn(|cx| {
        SPACE.with_borrow_mut(|space| {
            // The thread's read space: the bytes are copied out only when they arrive, so a
            // connection waiting for its next request holds no buffer.
            let mut rb = ReadBuf::new(&mut space[..]);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Read::Eof),
                Poll::Ready(Ok(())) => {
                    *buf = if buf.is_empty() {
                        // The usual case: a whole head, cut from the shared buffer.
                        crate::slab::copy(&[rb.filled()])
                    } else {
                        let mut joined = BytesMut::with_capacity(buf.len() + rb.filled().len());
                        joined.extend_from_slice(buf);
                        joined.extend_from_slice(rb.filled());
                        joined.freeze()
                    };
                    Poll::Ready(Read::Data)
                }
                Poll::Ready(Err(_)) => Poll::Ready(Read::Failed),
                Poll::Pending if idle && listening.drained(drain, cx) => Poll::Ready(Read::Drained),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

thread_local! {
    /// Where [`read_more`] reads, one per thread. Initialised once: a fresh socket's first
    /// read goes through `std::io::Read`, which needs initialised memory, and a buffer on
    /// the stack would be zeroed at every read. Borrowed only for one `poll_read` inside
    /// `read_more`, which reads the socket and calls nothing that reads into it again, so
    /// the borrow cannot be taken twice (`with_borrow_mut` would panic).
    static SPACE: RefCell<[u8; READ_CHUNK]> = const { RefCell::new([0; READ_CHUNK]) };
}

/// How a response body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Exactly this many bytes (none for `HEAD`, 204, 304).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    Close,
}

/// A response encoded for the wire.
struct Encoded {
    /// The status line and fields.
    head: Vec<u8>,
    /// The body to send after the head, and its framing (none for `HEAD`, 204, 304 and
    /// empty bodies, which are dropped here).
    body: Option<(RespBody, Framing, Trailers)>,
    /// The connection closes after this response.
    last: bool,
}

/// The trailers a response may send: the names its `Trailer` field declares, when the
/// client accepts trailers (`TE: trailers`) and the body is chunked (as hyper's server).
#[derive(Default)]
struct Trailers(Option<Bytes>);

impl Trailers {
    fn allows(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|declared| {
            declared
                .split(|&b| b == b',')
                .any(|n| n.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        })
    }
}

/// What the client side says of the request a response answers.
#[derive(Clone, Copy)]
struct Asked {
    head_request: bool,
    /// The connection closes after this response.
    close: bool,
    http10: bool,
    /// The client accepts trailers.
    trailers: bool,
}

/// Encodes `resp`'s head (see the module docs for the rules).
fn encode_response(resp: Response<RespBody>, asked: Asked) -> Encoded {
    let (parts, body) = resp.into_parts();
    // The status line, `date`, `content-length` and `connection` fit in 128 bytes.
    let raw = body.raw_fields().map_or(0, RawFields::bytes_len);
    let mut head = Vec::with_capacity(128 + raw + parts.headers.len() * 48);
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        // The tunnel follows (`RespBody::take_switch`): the fields as they are.
        head.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in &parts.headers {
            write_field(&mut head, name.as_str().as_bytes(), value.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        return Encoded {
            head,
            body: None,
            last: false,
        };
    }
    let mut asked = asked;
    match encode_head(&mut head, parts.status, &parts.headers, &body, &mut asked) {
        Some(Framing::Length(0)) => Encoded {
            head,
            body: None,
            last: asked.close,
        },
        Some(framing) => {
            let trailers = if asked.trailers && framing == Framing::Chunked {
                let declared = match body.raw_fields() {
                    Some(raw) => raw.value(b"trailer").map(Bytes::copy_from_slice),
                    None => parts
                        .headers
                        .get(header::TRAILER)
                        .map(|v| Bytes::copy_from_slice(v.as_bytes())),
                };
                Trailers(declared)
            } else {
                Trailers::default()
            };
            Encoded {
                head,
                body: Some((body, framing, trailers)),
                last: asked.close || framing == Framing::Close,
            }
        }
        // hyper answers a 1xx from the service, which it cannot send, with a 500.
        None => Encoded {
            head: b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .to_vec(),
            body: None,
            last: true,
        },
    }
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Encodes the status line and fields of a response (see the module docs for the rules);
/// `None` for a 1xx status, which is not sent. A `Connection: close` among the fields,
/// or a body that runs to the connection's end, sets `asked.close`.
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &RespBody,
    asked: &mut Asked,
) -> Option<Framing> {
    if status.is_informational() {
        return None;
    }
    let head_request = asked.head_request;
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let no_body = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    // What the body says of itself: nothing left, or an exact size.
    let ended = body.is_end_stream();
    let exact = if ended {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let mut framing = None;
    let mut date = false;
    let mut connection = false;
    if let Some(raw) = body.raw_fields() {
        // The backend's fields from their bytes; none of them is hop-by-hop.
        raw.write(out);
        date = raw.has_date;
        if raw.has_length {
            // Its value is what the body reads to (a 204 or 304 with a length has a map).
            framing = Some(Framing::Length(exact.unwrap_or(0)));
        }
    }
    for (name, value) in headers {
        match *name {
            header::CONTENT_LENGTH => {
                if framing.is_some() {
                    continue;
                }
                if ended && !head_request && value.as_bytes() != b"0" {
                    // A length with no body to send: hyper leaves the field out too.
                    continue;
                }
                let Some(n) = decimal_length(value.as_bytes()) else {
                    continue;
                };
                framing = Some(Framing::Length(n));
            }
            header::TRANSFER_ENCODING => {
                if framing.is_some() || head_request || no_body || asked.http10 {
                    continue;
                }
                framing = Some(Framing::Chunked);
                if !value.as_bytes().ends_with(b"chunked") {
                    out.extend_from_slice(b"transfer-encoding: ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b", chunked\r\n");
                    continue;
                }
            }
            header::CONNECTION => {
                connection = true;
                if value.as_bytes().eq_ignore_ascii_case(b"close") {
                    asked.close = true;
                }
            }
            header::DATE => date = true,
            _ => {}
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let framing = match framing {
        Some(f) => f,
        None if no_body => Framing::Length(0),
        None => match exact {
            Some(n) => {
                if !(head_request && n == 0) {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
            None if head_request => Framing::Length(0),
            // HTTP/1.0 has no chunked coding: the body runs to the connection's end.
            None if asked.http10 => {
                asked.close = true;
                Framing::Close
            }
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
        },
    };
    if !connection {
        if asked.close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if asked.http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(if head_request || no_body {
        Framing::Length(0)
    } else {
        framing
    })
}

/// Writes the head in `out` and the body after it; true when the body was sent whole.
/// `last`: the connection closes after it (see [`write_last`]).
async fn send_body(
    io: &mut ClientIo,
    mut out: Vec<u8>,
    mut body: Pin<&mut RespBody>,
    framing: Framing,
    trailers: Trailers,
    last: bool,
) -> bool {
    let mut left = match framing {
        Framing::Length(n) => n,
        Framing::Chunked | Framing::Close => u64::MAX,
    };
    let mut sent_trailers = false;
    loop {
        // Take a frame that is ready; if none is, send what is pending, then wait.
        let next = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(next) => next,
            Poll::Pending => {
                if !out.is_empty() {
                    if io.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                }
                if io.flush().await.is_err() {
                    return false;
                }
                poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let data = match next {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers: sent when declared and accepted (see `Trailers`).
                    if let (Framing::Chunked, Ok(map)) = (framing, frame.into_trailers()) {
                        out.extend_from_slice(b"0\r\n");
                        for (name, value) in &map {
                            if trailers.allows(name.as_str()) {
                                write_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
                            }
                        }
                        out.extend_from_slice(b"\r\n");
                        sent_trailers = true;
                    }
                    continue;
                }
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed: connection closed");
                let _ = write_out(io, &out, &[]).await;
                return false;
            }
            None => break,
        };
        if data.is_empty() || sent_trailers {
            continue;
        }
        match framing {
            Framing::Length(_) => {
                if data.len() as u64 > left {
                    tracing::debug!("response body longer than its length: connection closed");
                    let _ = write_out(io, &out, &[]).await;
                    return false;
                }
                left -= data.len() as u64;
            }
            Framing::Chunked => {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{:x}\r\n", data.len());
            }
            Framing::Close => {}
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            // Small frames that keep coming (a fast backend's small chunks) are gathered
            // up to a bound, then written: the backend waits on the client, not on memory.
            if out.len() >= COALESCE && left != 0 {
                if write_out(io, &out, &[]).await.is_err() {
                    return false;
                }
                out.clear();
            }
        } else {
            if write_out(io, &out, &data).await.is_err() {
                return false;
            }
            out.clear();
            if framing == Framing::Chunked {
                // The chunk's CRLF goes out with whatever follows it.
                out.extend_from_slice(b"\r\n");
            }
        }
        if left == 0 {
            break;
        }
    }
    match framing {
        Framing::Chunked if !sent_trailers => out.extend_from_slice(b"0\r\n\r\n"),
        Framing::Length(_) if left != 0 => {
            tracing::debug!(
                missing = left,
                "response body shorter than its length: connection closed"
            );
            let _ = write_out(io, &out, &[]).await;
            return false;
        }
        _ => {}
    }
    if last {
        return write_last(io, &out).await.is_ok();
    }
    write_out(io, &out, &[]).await.is_ok()
}

/// Writes `buf`, the last bytes of a connection that closes after them, and sends the
/// FIN with them where it can (see [`ClientIo::poll_write_last`]).
async fn write_last(io: &mut ClientIo, buf: &[u8]) -> io::Result<()> {
    let mut rest = buf;
    while !rest.is_empty() {
        let n = poll_fn(|cx| io.poll_write_last(cx, rest)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        rest = &rest[n..];
    }
    io.end_last()
}

/// Writes `a` then `b`, in one vectored write where the stream takes one.
async fn write_out(io: &mut ClientIo, a: &[u8], b: &[u8]) -> io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let n = poll_fn(|cx| {
            if a.is_empty() {
                return Pin::new(&mut *io).poll_write(cx, b);
            }
            if b.is_empty() || !io.is_write_vectored() {
                return Pin::new(&mut *io).poll_write(cx, a);
            }
            Pin::new(&mut *io).poll_write_vectored(cx, &[io::IoSlice::new(a), io::IoSlice::new(b)])
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

/// The `Date` value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// `Sun, 06 Nov 1994 08:49:37 GMT`.
    const LEN: usize = 29;

    thread_local! {
        static CACHED: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
    }

    /// Appends the current date in IMF-fixdate form.
    pub(crate) fn extend(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                let text = httpdate::fmt_http_date(now);
                if text.len() != LEN {
                    // Years past 9999 only.
                    out.extend_from_slice(text.as_bytes());
                    return;
                }
                c.1.copy_from_slice(text.as_bytes());
                c.0 = secs;
            }
            out.extend_from_slice(&c.1);
        });
    }
}
