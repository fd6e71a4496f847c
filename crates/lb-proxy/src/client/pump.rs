//! A request body read off the client connection as its handling asks for it (see
//! [`pipe`](crate::request::pipe)), with `Expect: 100-continue` answered first.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::Frame;
use tokio::io::AsyncWrite;

use crate::client::io::ClientIo;
use crate::error::ClientBodyError;
use crate::request::pipe::Pipe;
use crate::upstream::h1::{Decoded, Reading};

/// A request body being read off the connection for its handling.
pub(crate) struct Pump {
    pipe: Arc<Pipe>,
    reading: Reading,
    /// Bytes read and not yet decoded (the body's, then maybe a next request's).
    buf: BytesMut,
    /// `Expect: 100-continue` not yet answered: how much of the interim answer is out.
    cont: Option<usize>,
    /// The body broke (it is over too, without being read to its end).
    failed: bool,
}

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The most a read for a request body asks for.
const BODY_READ: usize = 16 * 1024;

impl Pump {
    pub(crate) fn new(body: BodyStart, after_head: Bytes) -> Pump {
        Pump {
            pipe: body.pipe,
            reading: body.reading,
            buf: BytesMut::from(&after_head[..]),
            // Bytes of the body already here: the client did not wait for the answer.
            cont: (body.expect_continue && after_head.is_empty()).then_some(0),
            failed: false,
        }
    }

    /// Reads and hands over the next frame when the body asks for one. `Ready` when it
    /// made progress (the caller polls the handling again), `Pending` when it waits for
    /// the body to ask or for the client's bytes.
    pub(crate) fn poll(&mut self, io: &mut ClientIo, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_over() || !self.pipe.wants(cx) {
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
                    self.pipe.put(Frame::data(d), self.reading.is_end(), cx);
                    return Poll::Ready(());
                }
                Ok(Decoded::Trailers(t)) => {
                    self.pipe.put(Frame::trailers(t), true, cx);
                    return Poll::Ready(());
                }
                Ok(Decoded::End) => {
                    self.pipe.finish(None, cx);
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
        self.failed = true;
        Poll::Ready(())
    }

    /// Read to its end, or broken: nothing more to read.
    fn is_over(&self) -> bool {
        self.failed || self.reading.is_end()
    }

    /// The bytes after a body read whole (a next request's), or `None` when it was not.
    pub(crate) fn finish(self) -> Option<Bytes> {
        (!self.failed && self.reading.is_end()).then(|| self.buf.freeze())
    }
}

/// A request body as parsed with its head: how to read it, and its pipe.
pub(crate) struct BodyStart {
    pub(crate) pipe: Arc<Pipe>,
    pub(crate) reading: Reading,
    pub(crate) expect_continue: bool,
}
