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

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Method, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

mod parse;
mod upgraded;

pub(crate) use upgraded::Upgraded;

use parse::State;
pub(crate) use parse::{parse_head, Decoded, RawFields, Reading};

use super::{Head, Returner};
use crate::error::H1Error;
use crate::request::body::ReqBody;

pub(crate) use crate::error::MAX_HEAD;
/// Most fields in a response head (or trailer block).
pub(crate) const MAX_HEADERS: usize = 100;
/// What the read buffer starts with, and the least it grows by.
const READ_CHUNK: usize = 4096;
/// The most one read asks for while a large body streams.
const READ_MAX: usize = 64 * 1024;
/// A write buffer grown past this (a huge head) is released after the exchange.
const WRITE_KEEP: usize = 16 * 1024;
/// A failed exchange; `body` is the request's body back when none of its bytes were
/// written.
pub struct SendError {
    /// What failed.
    pub error: H1Error,
    /// The unsent request's body.
    pub body: Option<ReqBody>,
}

/// The connection's byte stream: plain TCP or TLS over TCP.
pub(crate) type Io = crate::stream::UpstreamStream;

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
    /// The response-head timer, made with the connection's first exchange and re-armed
    /// lazily (see [`H1Conn::send`]).
    timer: Option<Pin<Box<Sleep>>>,
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
            timer: None,
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

    /// Sends a request (`head` and `body`) and reads the response head within `timeout`
    /// ([`H1Error::Timeout`] after it). The head is encoded from the borrowed fields, so a
    /// request that may be retried needs no copy of them. The body comes back in the
    /// error when none of the request's bytes were written.
    ///
    /// The connection keeps one timer for all its exchanges. It is re-armed only when it
    /// is set later than the deadline; an earlier setting (an earlier exchange's deadline)
    /// is left alone, and when it fires before the deadline it is moved on then. So an
    /// exchange on a pooled connection registers no timer: with a 60 s response timeout
    /// the timer is moved about once a minute per connection, not per request.
    #[allow(clippy::manual_async_fn)] // not an `async fn`: see `forward::handle_request`
    pub fn send<'a>(
        &'a mut self,
        head: Head<'a>,
        body: ReqBody,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Reading>, SendError>> + Send + 'a {
        async move {
            let mut deadline = Instant::now() + timeout;
            let mut timer = match self.timer.take() {
                Some(mut t) => {
                    if t.deadline() > deadline {
                        t.as_mut().reset(deadline);
                    }
                    t
                }
                None => Box::pin(tokio::time::sleep_until(deadline)),
            };
            // While the client's body is still being sent, the backend waits on the
            // client: the response timeout runs again from the body's end (a client that
            // stalls its body is bounded by its own timer, and never blamed on the backend).
            let uploading = AtomicBool::new(false);
            let result = {
                let mut exchange = std::pin::pin!(self.exchange(head, body, &uploading));
                let mut was_uploading = false;
                poll_fn(|cx| {
                    if let Poll::Ready(r) = exchange.as_mut().poll(cx) {
                        return Poll::Ready(r);
                    }
                    let now_uploading = uploading.load(Ordering::Relaxed);
                    if was_uploading && !now_uploading {
                        // The body is out: the backend has `timeout` from now.
                        deadline = Instant::now() + timeout;
                        timer.as_mut().reset(deadline);
                    }
                    was_uploading = now_uploading;
                    while timer.as_mut().poll(cx).is_ready() {
                        if uploading.load(Ordering::Relaxed) {
                            deadline = Instant::now() + timeout;
                        } else if Instant::now() >= deadline {
                            return Poll::Ready(Err(SendError {
                                error: H1Error::Timeout,
                                body: None,
                            }));
                        }
                        timer.as_mut().reset(deadline);
                    }
                    Poll::Pending
                })
                .await
            };
            self.timer = Some(timer);
            result
        }
    }

    /// The exchange of [`H1Conn::send`], without its deadline.
    #[allow(clippy::manual_async_fn)] // not an `async fn`: see `forward::handle_request`
    fn exchange<'a>(
        &'a mut self,
        head: Head<'a>,
        body: ReqBody,
        uploading: &'a AtomicBool,
    ) -> impl Future<Output = Result<Response<Reading>, SendError>> + Send + 'a {
        async move {
            let expect = Expect {
                head: *head.method == Method::HEAD,
                upgrade: head.upgrade,
            };
            let out = self.encode_head(head, &body);
            if let ReqBody::Full { data: Some(d), .. } = &body {
                if matches!(out, Out::Done) {
                    self.wdata = d.clone();
                }
            }
            let mut written = 0usize;
            if let Err(e) = poll_fn(|cx| self.poll_write_out(cx, &mut written)).await {
                self.reset_out();
                return Err(SendError {
                    error: e.into(),
                    body: (written == 0).then_some(body),
                });
            }
            // A kept body went out with the head, not through `poll_frame`.
            if let ReqBody::Full {
                data: Some(d),
                meter,
            } = &body
            {
                meter.count(d.len() as u64);
            }
            let fail = |error| SendError { error, body: None };
            let mut early = None;
            if !matches!(out, Out::Done) {
                uploading.store(true, Ordering::Relaxed);
                let streamed = self.stream_body(body, out, expect).await;
                uploading.store(false, Ordering::Relaxed);
                early = streamed.map_err(fail)?;
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
    }

    fn reset_out(&mut self) {
        self.wbuf.clear();
        self.wpos = 0;
        self.wdata = Bytes::new();
        self.wtail = b"";
    }

    /// Writes the request head into `wbuf`, adding the framing header it needs.
    fn encode_head(&mut self, head: Head<'_>, body: &ReqBody) -> Out {
        // As hyper's client does: a known length is sent as is; a stream without one is
        // chunked, except for methods that (almost) never carry a body.
        let (out, add) = match body {
            ReqBody::Empty => (Out::Done, Added::None),
            ReqBody::Full { data, .. } => {
                let n = data.as_ref().map_or(0, |d| d.len() as u64);
                (
                    Out::Done,
                    if head.length.is_some() {
                        Added::None
                    } else {
                        Added::Length(n)
                    },
                )
            }
            ReqBody::Stream { .. } => match head.length {
                Some(n) => (Out::Length(n), Added::None),
                None if matches!(*head.method, Method::GET | Method::HEAD | Method::CONNECT) => {
                    (Out::Done, Added::None)
                }
                None => (Out::Chunked, Added::Chunked),
            },
        };
        let w = &mut self.wbuf;
        w.clear();
        self.wpos = 0;
        w.extend_from_slice(head.method.as_str().as_bytes());
        w.push(b' ');
        let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
        w.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        head.fields.write(w);
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
            let mut n = if self.wdata.is_empty() && self.wtail.is_empty() {
                // Most requests are a head alone: write(2), not a writev(2) of empty parts.
                ready!(Pin::new(&mut self.io).poll_write(cx, head))?
            } else {
                let bufs = [
                    IoSlice::new(head),
                    IoSlice::new(&self.wdata),
                    IoSlice::new(self.wtail),
                ];
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &bufs))?
            };
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
        let mut st = Streaming {
            chunked: matches!(out, Out::Chunked),
            left: match out {
                Out::Length(n) => n,
                _ => 0,
            },
            ended: false,
            written: 0,
        };
        poll_fn(|cx| match self.poll_send_body(cx, &mut body, &mut st) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(None)),
            // Waiting (on the client's body or the socket), or the write failed: the
            // backend may have answered (and stopped reading) before the body is all
            // sent. Looked for only then, not at every step.
            sending => match self.poll_head(cx, expect) {
                Poll::Ready(Ok(r)) => Poll::Ready(Ok(Some(r))),
                Poll::Ready(Err(e)) if sending.is_pending() => Poll::Ready(Err(e)),
                _ => sending.map(|r| r.map(|()| None)),
            },
        })
        .await
    }

    /// Sends the body's frames as they come, until it ended and all is written.
    fn poll_send_body(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut ReqBody,
        st: &mut Streaming,
    ) -> Poll<Result<(), H1Error>> {
        loop {
            ready!(self.poll_write_out(cx, &mut st.written))?;
            if st.ended {
                return Poll::Ready(Ok(()));
            }
            // What TLS holds back goes out before the body is waited for (a no-op on
            // TCP), so the backend is never left waiting on buffered bytes.
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            let frame = match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => {
                    st.ended = true;
                    if st.chunked {
                        self.wbuf.extend_from_slice(b"0\r\n\r\n");
                    } else if st.left > 0 {
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
                    if st.chunked {
                        // Writing to a Vec cannot fail.
                        let _ = write!(self.wbuf, "{:x}\r\n", data.len());
                        self.wtail = b"\r\n";
                    } else {
                        let n = data.len() as u64;
                        if n > st.left {
                            return Poll::Ready(Err(H1Error::BodyLength));
                        }
                        st.left -= n;
                    }
                    self.wdata = data;
                }
                Err(frame) => {
                    if let (true, Ok(trailers)) = (st.chunked, frame.into_trailers()) {
                        st.ended = true;
                        self.wbuf.extend_from_slice(b"0\r\n");
                        crate::request::fields::write_map(&mut self.wbuf, &trailers);
                        self.wbuf.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
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

/// Where a streamed request body stands.
struct Streaming {
    chunked: bool,
    /// Bytes of a `Content-Length` body still to send.
    left: u64,
    ended: bool,
    written: usize,
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
        // Nothing to read (HEAD, 204, 304, length 0): the connection goes back now. One
        // that is not reused (a 101's, which the tunnel takes) stays until the body goes.
        if body.reading.is_end() && body.reading.keep {
            body.finish();
        }
        body
    }

    /// The response's fields as they came, when its head kept them that way.
    pub fn raw_fields(&self) -> Option<&RawFields> {
        self.reading.raw.as_ref()
    }

    /// The connection after a `101`, for the tunnel; `None` once the body gave it up.
    pub fn into_upgraded(self) -> Option<Upgraded> {
        self.conn.map(|c| c.into_upgraded())
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
