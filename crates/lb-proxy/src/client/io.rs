//! The client connection's byte stream: its timeouts and its canned answers.
//!
//! [`ClientIo`] wraps the accepted stream (plain TCP or TLS). The connection's driver
//! ([`h1`](crate::client::h1)) says where it is, and this layer keeps the one timer that
//! goes with it:
//!
//! | where | timer | on expiry |
//! |---|---|---|
//! | a new connection, no byte yet | `header_timeout` from accept | `408 header-timeout`, close |
//! | between requests, no byte yet | `idle_timeout` | close silently (like nginx) |
//! | inside a head | `header_timeout` from its first byte | `408 header-timeout`, close |
//! | a request in flight ([`ClientIo::busy`]) | none (the request's own timers) | |
//! | reading its body ([`ClientIo::body`]) | `idle_timeout` without a byte | the read fails (`408`) |
//! | HTTP/2 (h2c) with no stream open | `idle_timeout` | close |
//! | a tunnel (after a 101) | none (the tunnel's own idle timer) | |
//!
//! A head is "started" by the first byte read while idle; a response's end
//! ([`ClientIo::response_done`]) makes the connection idle again. The timer is re-armed
//! only when the new deadline is earlier than the armed one: a later deadline is picked
//! up when the armed one fires. It is polled only when a read would block, never per read.
//!
//! A connection refused with a canned answer ([`ClientIo::refuse`]: 400, 408, 431, each
//! with `x-lb-error`) writes it on its next read, shuts its write side and drains input
//! for at most [`LINGER`] (so the client reads the answer instead of a reset), then its
//! reads fail. [`ClientIo::linger`] does the same after an answer the driver wrote.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use lb_core::metrics::{Reason, ReasonCounters};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::proxy::conn::ConnInfo;
use crate::stream::{write_through, ClientStream};

/// How long a connection refused with a canned answer keeps draining input before it is
/// dropped, so the client can read the answer.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Reads in a row discarded while draining before yielding to other tasks.
const DRAIN_READS: usize = 16;

/// The canned answer for `reason` (408, 431 or 400), with `x-lb-error`, closing.
pub(crate) fn canned(reason: Reason) -> &'static [u8] {
    match reason {
        Reason::HeaderTimeout => b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nx-lb-error: header-timeout\r\ncontent-length: 15\r\nconnection: close\r\n\r\nheader-timeout\n",
        Reason::HeaderTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\nx-lb-error: header-too-large\r\ncontent-length: 17\r\nconnection: close\r\n\r\nheader-too-large\n",
        _ => b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nx-lb-error: bad-request\r\ncontent-length: 12\r\nconnection: close\r\n\r\nbad-request\n",
    }
}

/// Where the connection is, as its driver says (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Accepted, no byte yet.
    First,
    /// Between requests, no byte of the next one yet.
    Idle,
    /// Inside a request head.
    Head,
    /// A request in flight, or a tunnel: no timer here.
    Busy,
    /// A request body being read: `idle_timeout` without a byte of it.
    Body,
    /// HTTP/2: idle while no stream is open.
    H2,
}

/// Closing after a canned answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    /// Open.
    No,
    /// Writing the answer; this many bytes are out.
    Answer(Reason, u16),
    /// Write side shut; discarding input until EOF or the linger deadline.
    Linger,
    /// Done: reads fail.
    Done,
}

/// The client stream with its timer and the facts about the connection. See the module
/// docs.
pub(crate) struct ClientIo {
    io: ClientStream,
    timer: Pin<Box<Sleep>>,
    /// The waker the armed timer was polled with.
    timer_waker: Option<Waker>,
    /// The deadline the current state wants.
    deadline: Option<Instant>,
    /// Facts about the connection (its `idle` is the listener's `idle_timeout`).
    info: ConnInfo,
    /// The whole request head within this, from its first byte (or from accept).
    header_timeout: Duration,
    errors: Arc<ReasonCounters>,
    /// The timer is set (to its deadline) since it last fired.
    armed: bool,
    wait: Wait,
    /// A tunnel: writes are plain and shutdown half-closes.
    tunnel: bool,
    closing: Closing,
}

impl ClientIo {
    /// Wraps an accepted client stream; `header_timeout` runs from now.
    pub(crate) fn new(
        io: ClientStream,
        info: ConnInfo,
        header_timeout: Duration,
        errors: Arc<ReasonCounters>,
    ) -> ClientIo {
        let deadline = Instant::now() + header_timeout;
        ClientIo {
            io,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            timer_waker: None,
            deadline: Some(deadline),
            info,
            header_timeout,
            errors,
            armed: true,
            wait: Wait::First,
            tunnel: false,
            closing: Closing::No,
        }
    }

    /// The facts about the connection, copied into each request.
    pub(crate) fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// A request head is complete: its request is in flight, and no timer runs here
    /// until [`ClientIo::response_done`].
    pub(crate) fn busy(&mut self) {
        self.wait = Wait::Busy;
        self.deadline = None;
    }

    /// The request's body is being read: a read that waits `idle_timeout` without a
    /// byte of it fails with [`io::ErrorKind::TimedOut`] (the client stalled).
    pub(crate) fn body(&mut self) {
        self.wait = Wait::Body;
        self.deadline = None;
    }

    /// A response went out: the connection is idle (`idle_timeout`) until the next
    /// head's first byte (then `header_timeout`).
    pub(crate) fn response_done(&mut self) {
        self.wait = Wait::Idle;
        self.deadline = Some(Instant::now() + self.info.idle);
    }

    /// The connection became a tunnel (after a 101): its own idle timer bounds it.
    pub(crate) fn tunnel(&mut self) {
        self.busy();
        self.tunnel = true;
    }

    /// The plain TCP socket under a tunnel (see [`ClientIo::tunnel`]), to splice it;
    /// `None` on TLS.
    pub(crate) fn tcp(&mut self) -> Option<&mut tokio::net::TcpStream> {
        self.io.tcp()
    }

    /// The connection speaks HTTP/2 from here: idle (`idle_timeout`, then a clean end)
    /// whenever [`ClientIo::h2_streams`] says no stream is open.
    pub(crate) fn switch_to_h2(&mut self) {
        self.wait = Wait::H2;
    }

    /// HTTP/2: `open` streams are in flight now; with none the idle timer runs.
    pub(crate) fn h2_streams(&mut self, open: u32) {
        self.deadline = (open == 0).then(|| Instant::now() + self.info.idle);
    }

    /// After the last response to a request whose body was left unread: reads discard
    /// input for at most [`LINGER`] (so closing does not reset the connection under the
    /// answer), then fail.
    pub(crate) fn linger(&mut self) {
        let until = Instant::now() + LINGER;
        self.timer.as_mut().reset(until);
        self.armed = true;
        self.timer_waker = None;
        self.closing = Closing::Linger;
    }

    /// Refuses the connection with `reason`'s canned answer: the next read writes it,
    /// shuts the write side and drains input for at most [`LINGER`], then fails.
    pub(crate) fn refuse(&mut self, reason: Reason) {
        self.count_refusal(reason, "refused before routing");
        self.closing = Closing::Answer(reason, 0);
    }

    /// Counts a refused head and logs it as an access line saying `what` refused it.
    fn count_refusal(&self, reason: Reason, what: &'static str) {
        self.errors.inc(reason);
        tracing::info!(
            target: "lb::access",
            client = %self.info.client,
            status = reason.status(),
            error = reason.as_str(),
            "{what}"
        );
    }

    /// Writes some of `buf`, part of the last bytes this connection sends (it closes right
    /// after; [`ClientIo::end_last`] follows the last of them).
    ///
    /// On plain TCP the bytes are queued with `MSG_MORE` and [`ClientIo::end_last`] shuts
    /// the write side, so the FIN leaves in the same segment as the response's last bytes:
    /// one segment less per closed connection, and one acknowledgement less to take from
    /// the client. The bytes leave when the FIN does, as early as a plain write would send
    /// them. A tunnel and our own canned answers take the usual write, and TLS does in
    /// [`ClientStream::poll_send_more`](crate::stream::ClientStream::poll_send_more).
    /// (A poll function, so that the connection's future keeps no readiness future.)
    pub(crate) fn poll_write_last(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.last_with_fin() {
            return Pin::new(self).poll_write(cx, buf);
        }
        self.io.poll_send_more(cx, buf)
    }

    /// Sends the FIN after [`ClientIo::poll_write_last`] (plain TCP; nothing for TLS).
    pub(crate) fn end_last(&mut self) -> io::Result<()> {
        if !self.last_with_fin() {
            return Ok(());
        }
        self.io.shutdown_write()
    }

    /// Not a tunnel, not our canned answer (plain TCP or TLS is the stream's to tell).
    fn last_with_fin(&self) -> bool {
        self.closing == Closing::No && !self.tunnel
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "closed by lb-proxy")
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing != Closing::No {
            return poll_close(this, cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    match this.wait {
                        // The next head's first byte: `header_timeout` runs from the
                        // first wait for the rest of it (below), microseconds later. A
                        // head that came whole, as most do, sets no timer.
                        Wait::Idle => {
                            this.wait = Wait::Head;
                            this.deadline = None;
                        }
                        // Body bytes: the stall timer starts again at the next wait.
                        Wait::Body => this.deadline = None,
                        _ => {}
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.deadline.is_none() {
                    match this.wait {
                        Wait::Head => this.deadline = Some(Instant::now() + this.header_timeout),
                        Wait::Body => this.deadline = Some(Instant::now() + this.info.idle),
                        _ => {}
                    }
                }
                poll_timer(this, cx, buf)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

/// The read would block: wait on the timer too, re-arming it only when needed.
fn poll_timer(
    this: &mut ClientIo,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let Some(deadline) = this.deadline else {
        return Poll::Pending;
    };
    if !(this.armed && this.timer.deadline() <= deadline) {
        this.timer.as_mut().reset(deadline);
        this.armed = true;
        this.timer_waker = None;
    }
    if !timer_fired(this, cx) {
        return Poll::Pending;
    }
    this.armed = false;
    if Instant::now() < deadline {
        // The armed deadline was an earlier state's: wait for the current one.
        this.timer.as_mut().reset(deadline);
        this.armed = true;
        this.timer_waker = None;
        if !timer_fired(this, cx) {
            return Poll::Pending;
        }
    }
    this.deadline = None;
    match this.wait {
        Wait::First | Wait::Head => {
            this.refuse(Reason::HeaderTimeout);
            poll_close(this, cx, buf)
        }
        // Idle: the driver sees a clean end between requests (or streams) and closes.
        Wait::Idle | Wait::H2 => Poll::Ready(Ok(())),
        Wait::Body => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no request body byte within idle_timeout",
        ))),
        Wait::Busy => Poll::Pending,
    }
}

/// Whether the armed timer fired. It is polled (registering the task's waker) once per
/// arming; later checks read its state, unless the task's waker changed.
fn timer_fired(this: &mut ClientIo, cx: &mut Context<'_>) -> bool {
    if this
        .timer_waker
        .as_ref()
        .is_some_and(|w| w.will_wake(cx.waker()))
    {
        return this.timer.is_elapsed();
    }
    if this.timer.as_mut().poll(cx).is_ready() {
        return true;
    }
    this.timer_waker = Some(cx.waker().clone());
    false
}

/// Writes the canned answer, shuts the write side, drains input until EOF or [`LINGER`],
/// then fails reads.
fn poll_close(
    this: &mut ClientIo,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        match this.closing {
            Closing::No | Closing::Done => return Poll::Ready(Err(closed())),
            Closing::Answer(reason, pos) => {
                let bytes = canned(reason);
                let pos = usize::from(pos);
                if pos >= bytes.len() {
                    // Shutting down the write side of a TcpStream does not block.
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                    this.linger();
                    continue;
                }
                match Pin::new(&mut this.io).poll_write(cx, &bytes[pos..]) {
                    // The canned answers are far shorter than `u16::MAX` bytes.
                    Poll::Ready(Ok(n)) if n > 0 => {
                        let pos = u16::try_from(pos + n).unwrap_or(u16::MAX);
                        this.closing = Closing::Answer(reason, pos);
                    }
                    Poll::Ready(_) => this.closing = Closing::Done,
                    Poll::Pending => return Poll::Pending,
                }
            }
            Closing::Linger => {
                let before = buf.filled().len();
                for _ in 0..DRAIN_READS {
                    match Pin::new(&mut this.io).poll_read(cx, buf) {
                        Poll::Ready(Ok(())) if buf.filled().len() > before => {
                            buf.set_filled(before);
                        }
                        Poll::Ready(_) => {
                            this.closing = Closing::Done;
                            return Poll::Ready(Err(closed()));
                        }
                        Poll::Pending => {
                            if this.timer.as_mut().poll(cx).is_ready() {
                                this.closing = Closing::Done;
                                return Poll::Ready(Err(closed()));
                            }
                            return Poll::Pending;
                        }
                    }
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

impl AsyncWrite for ClientIo {
    write_through!(io);

    /// hyper shuts an HTTP/2 connection down just before dropping it, and closing a plain
    /// TCP socket sends the same FIN, so that `shutdown(2)` is skipped. TLS still sends
    /// its `close_notify`, and a tunnel really half-closes.
    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.io.is_plain() && !this.tunnel {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answers_are_well_formed() {
        for reason in [
            Reason::HeaderTimeout,
            Reason::HeaderTooLarge,
            Reason::BadRequest,
        ] {
            let text = std::str::from_utf8(canned(reason)).expect("ascii");
            let (head, body) = text.split_once("\r\n\r\n").expect("head end");
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", reason.status())));
            assert!(head.contains(&format!("\r\nx-lb-error: {}\r\n", reason.as_str())));
            assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
            assert_eq!(body, format!("{}\n", reason.as_str()));
        }
    }
}
