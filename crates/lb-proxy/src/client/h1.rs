//! lb-proxy's HTTP/1 engine: one client connection, request after request.
//!
//! Each head is parsed with the codec ([`parse`](crate::client::parse); a head it
//! refuses is answered `400` or `431` and the connection closed, through
//! [`ClientIo::refuse`]) and handed to the proxy ([`proxy::handle`](crate::proxy::handle));
//! its body, if any, is read off the connection as the request asks for it
//! ([`Pump`]); the answer is written ([`write`](crate::client::write)), and the next
//! request (pipelined bytes first) follows on the same connection. Bodies (length or
//! chunked, with trailers), `Expect: 100-continue`, HTTP/1.0 (keep-alive when asked),
//! absolute-form targets and upgrades (the connection runs the tunnel after the 101) are
//! all served here; only the HTTP/2 preface hands the connection to hyper
//! ([`Ended::Handoff`]).
//!
//! It keeps no buffer while a connection waits for its next request: a read lands in a
//! per-thread space and the head's bytes are copied into this thread's shared buffer
//! ([`slab`](crate::request::slab)), so an idle keep-alive connection holds no buffer
//! and a request allocates none for its head. Timeouts are the connection layer's
//! ([`ClientIo`]), told where the engine is (busy, reading a body, idle, a tunnel).

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use crate::client::ctx::{Ctx, Drain, Ended};
use crate::client::io::ClientIo;
use crate::client::parse::{take_request, Started, Taken};
use crate::client::pump::Pump;
use crate::client::write::{encode_response, send_body, write_last, Asked};
use crate::http1;

/// One read takes at most this much (into the thread's [`SPACE`]; only a head's bytes are
/// kept).
const READ_CHUNK: usize = 4096;

/// One connection under the engine: its stream, its listener, and what the engine
/// keeps between requests: the bytes read and not yet taken by a request (a connection
/// waiting for its next request holds no other buffer), and where the wait for the
/// next head is.
///
/// The connection's driver ([`serve_connection`](crate::client::serve_connection)) asks
/// it for the next request ([`Engine::poll_next_request`], a poll function, so the wait
/// keeps no future of its own beside the driver's) and has it answered
/// ([`Engine::answer`]), request after request.
pub(crate) struct Engine {
    io: ClientIo,
    drain: Drain,
    buf: Bytes,
    /// No request was taken yet (the bytes may still be the HTTP/2 preface).
    first: bool,
    wait: Wait,
}

/// Where [`Engine::poll_next_request`] is between its polls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The bytes in `buf` (if any) are to be parsed.
    Parse,
    /// They were, and are not a whole head yet: read more first.
    Read,
    /// The head was refused: its answer goes out through the next reads, which then
    /// discard input until they fail.
    Refused,
}

impl Engine {
    /// A new connection's engine.
    pub(crate) fn new(io: ClientIo, drain: Drain) -> Engine {
        Engine {
            io,
            drain,
            buf: Bytes::new(),
            first: true,
            wait: Wait::Parse,
        }
    }

    /// Reads until the next request's head is complete (pipelined bytes first). `Err`:
    /// the connection ended (closed, refused, drained), or it speaks HTTP/2
    /// ([`Ended::Handoff`]: see [`Engine::into_h2`]).
    pub(crate) fn poll_next_request(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Started, Ended>> {
        let Engine {
            io,
            drain,
            buf,
            first,
            wait,
        } = self;
        loop {
            if *wait == Wait::Refused {
                ready!(poll_discard(io, cx));
                return Poll::Ready(Err(Ended::Closed));
            }
            if *wait == Wait::Parse && !buf.is_empty() {
                if *first && !crate::client::sniff::cannot_be_h2(buf) {
                    if http1::h2c_preface(buf) == http1::Status::Complete(true) {
                        return Poll::Ready(Err(Ended::Handoff));
                    }
                } else {
                    let ctx = Ctx {
                        info: io.info(),
                        rt: &drain.listener().rt,
                    };
                    match take_request(buf, &ctx) {
                        Taken::Request(req) => return Poll::Ready(Ok(req)),
                        Taken::Partial => {}
                        Taken::Refused(reason) => {
                            io.refuse(reason);
                            *wait = Wait::Refused;
                            continue;
                        }
                    }
                }
            }
            *wait = Wait::Read;
            // A connection accepted just as the drain starts has not sent its first
            // request yet; it is answered (with `Connection: close`), not closed as idle:
            // its client never saw an idle connection to retry on (header_timeout still
            // bounds it).
            let between = !*first && buf.is_empty();
            match ready!(poll_read_more(io, buf, between, drain, cx)) {
                Read::Data => *wait = Wait::Parse,
                // The client closed (inside a head cut short, nobody is left to answer),
                // a read failed, or the listener drains.
                Read::Eof | Read::Failed | Read::Drained => return Poll::Ready(Err(Ended::Closed)),
            }
        }
    }

    /// Answers `req` (see [`answer`]); true when the connection stays open for the next
    /// request. Boxed (the connection keeps no room for an answer between requests), and
    /// made in its box (`proxy::boxed_in_place!`).
    pub(crate) fn answer(
        &mut self,
        req: Started,
    ) -> Pin<Box<impl Future<Output = bool> + Send + '_>> {
        self.first = false;
        self.wait = Wait::Parse;
        crate::proxy::boxed_in_place!(answer(&mut self.io, req, &mut self.buf, &self.drain))
    }

    /// After [`Ended::Handoff`]: the stream, its listener, and the bytes read so far
    /// (the HTTP/2 preface and any after it), for hyper.
    pub(crate) fn into_h2(self) -> (ClientIo, Drain, Bytes) {
        (self.io, self.drain, self.buf)
    }
}

/// Answers one request: drives its handling while its body is read, then writes the
/// response (or runs the tunnel after a 101). True when the connection stays open for
/// the next request, whose bytes (if any came already) are left in `buf`.
#[inline(never)] // made in its box (see `proxy::boxed_in_place`)
async fn answer(io: &mut ClientIo, req: Started, buf: &mut Bytes, drain: &Drain) -> bool {
    io.busy();
    let Started {
        mut handling,
        head_request,
        close,
        http10,
        trailers,
        body,
    } = req;
    let mut body = body.map(|pipe| {
        io.body();
        Pump::new(pipe, std::mem::take(buf))
    });
    let mut resp = match body.as_mut() {
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
    // A body not read to its end (the answer came first, or it broke) leaves bytes that
    // cannot be told from a next request: the connection closes after this.
    let unread = match body.map(Pump::finish) {
        None => false,
        Some(Some(rest)) => {
            *buf = rest;
            false
        }
        Some(None) => true,
    };
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
        if io.write_all(&out.head).await.is_ok() && io.flush().await.is_ok() {
            io.tunnel();
            // Boxed: the tunnel's state (two scratch buffers) is only for upgraded
            // connections, not in every connection's future.
            let early = std::mem::take(buf);
            if switch.is_plain() {
                if let Some(tcp) = io.tcp() {
                    Box::pin(switch.run_tcp(tcp, early)).await;
                    return false;
                }
            }
            Box::pin(switch.run(io, early)).await;
        }
        return false;
    }
    let sent = match out.body {
        None if out.last => write_last(io, &out.head).await.is_ok(),
        None => io.write_all(&out.head).await.is_ok(),
        Some((body, framing, trailers)) => {
            let body = pin!(body);
            send_body(io, out.head, body, framing, trailers, out.last).await
        }
    };
    io.response_done();
    if io.flush().await.is_err() {
        return false;
    }
    if sent && unread {
        // The client may still be sending the body: read it away for a while, so that
        // closing does not reset the connection under the answer.
        io.linger();
        poll_fn(|cx| poll_discard(io, cx)).await;
    }
    sent && !out.last
}

/// Reads and discards until the connection fails or ends (a refused or lingering
/// connection's reads fail once its answer is out and the linger time is over).
fn poll_discard(io: &mut ClientIo, cx: &mut Context<'_>) -> Poll<()> {
    SPACE.with_borrow_mut(|space| loop {
        let mut rb = ReadBuf::new(&mut space[..]);
        match ready!(Pin::new(&mut *io).poll_read(cx, &mut rb)) {
            Ok(()) if !rb.filled().is_empty() => {}
            _ => return Poll::Ready(()),
        }
    })
}

enum Read {
    Data,
    Eof,
    Failed,
    Drained,
}

/// Reads once more into `buf`. While `idle` (between requests) a drain ends the wait.
fn poll_read_more(
    io: &mut ClientIo,
    buf: &mut Bytes,
    idle: bool,
    drain: &mut Drain,
    cx: &mut Context<'_>,
) -> Poll<Read> {
    SPACE.with_borrow_mut(|space| {
        // The thread's read space: the bytes are copied out only when they arrive, so a
        // connection waiting for its next request holds no buffer.
        let mut rb = ReadBuf::new(&mut space[..]);
        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Read::Eof),
            Poll::Ready(Ok(())) => {
                *buf = if buf.is_empty() {
                    // The usual case: a whole head, cut from the shared buffer.
                    crate::request::slab::copy(&[rb.filled()])
                } else {
                    let mut joined = BytesMut::with_capacity(buf.len() + rb.filled().len());
                    joined.extend_from_slice(buf);
                    joined.extend_from_slice(rb.filled());
                    joined.freeze()
                };
                Poll::Ready(Read::Data)
            }
            Poll::Ready(Err(_)) => Poll::Ready(Read::Failed),
            Poll::Pending if idle && drain.drained(cx) => Poll::Ready(Read::Drained),
            Poll::Pending => Poll::Pending,
        }
    })
}

thread_local! {
    /// Where [`poll_read_more`] and [`poll_discard`] read, one per thread. Initialised
    /// once: a fresh socket's first read goes through `std::io::Read`, which needs
    /// initialised memory, and a buffer on the stack would be zeroed at every read.
    /// Borrowed only for `poll_read` calls inside them, which read the socket and call
    /// nothing that reads into it again, so the borrow cannot be taken twice
    /// (`with_borrow_mut` would panic).
    static SPACE: RefCell<[u8; READ_CHUNK]> = const { RefCell::new([0; READ_CHUNK]) };
}
