//! The client connection layer under hyper: header and idle timeouts, head limits and
//! request-smuggling checks on the bytes as they arrive.
//!
//! [`ClientIo`] wraps the accepted `TcpStream`. It feeds every byte read to a
//! [`Tracker`], which knows whether the stream is between requests,
//! in a head or in a body, and learns from the service (through [`Shared`]) whether a
//! request is in flight. From those it keeps one timer:
//!
//! | where | timer | on expiry |
//! |---|---|---|
//! | a new connection, no byte yet | `header_timeout` from accept | `408 header-timeout`, close |
//! | between requests, no byte yet | `idle_timeout` | close silently (like nginx) |
//! | inside a head | `header_timeout` from its first byte | `408 header-timeout`, close |
//! | a request in flight | none | |
//! | a body the service no longer waits for | `idle_timeout` | close |
//! | HTTP/2 (h2c) with no stream open | `idle_timeout` | close |
//! | upgraded (101, CONNECT) | none | |
//!
//! The deadline is recomputed only when that state changes (about three clock reads per
//! request), and the timer is re-armed only when the new deadline is earlier than the
//! armed one: a later deadline is picked up when the armed one fires. The timer is polled
//! only when a read would block, never per read.
//!
//! A head over `max_header_bytes` (431), with more than [`MAX_HEADERS`](crate::head::MAX_HEADERS)
//! header lines (431), or with both `Content-Length` and `Transfer-Encoding` (400) never
//! reaches hyper: its bytes are withheld, a canned response with `x-lb-error` is written
//! straight to the socket once no response is being written, the write side is shut and
//! the input drained for at most [`LINGER`] (so the client reads the answer instead of a
//! reset), then the read fails and hyper drops the connection.
//!
//! Heads hyper itself refuses (a malformed request line, differing `Content-Length`
//! values, an unknown transfer coding) get hyper's automatic 400; that answer is
//! recognised on the write side (a response head written while every response the
//! service made is already out) and replaced by ours with `x-lb-error`.
//!
//! hyper's own `header_read_timeout` is set, with [`NeverTimer`] as hyper's timer: with a
//! header timeout configured, hyper polls the read side again when a response ends
//! (which is when this layer arms its idle timer), and the timer's sleeps never fire and
//! cost nothing, so hyper neither allocates nor registers a timer per request.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use lb_core::metrics::{Reason, ReasonCounters};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::head::{Phase, Tracker, Violation};
use crate::stream::ClientStream;

/// How long a connection refused with a canned answer keeps draining input before it is
/// dropped, so the client can read the answer.
pub const LINGER: Duration = Duration::from_secs(2);

/// Reads in a row discarded while draining before yielding to other tasks.
const DRAIN_READS: usize = 16;

const UPGRADED: u32 = 1 << 31;

/// What the service tells the connection: requests in flight, whether the connection
/// was upgraded, and how many requests reached the service. One per connection, shared
/// with every [`InFlight`] guard.
#[derive(Debug, Default)]
pub struct Shared {
    state: AtomicU32,
    calls: AtomicU32,
}

impl Shared {
    /// Marks a request in flight until the guard is dropped (with its response body).
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.state.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn load(&self) -> u32 {
        self.state.load(Ordering::Relaxed)
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// A request in flight: from the service call until its response body is dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Shared>);

impl InFlight {
    /// The response switches protocols (101, or 2xx to CONNECT): the bytes that follow
    /// are no longer HTTP/1 framing.
    pub fn upgraded(&self) {
        self.0.state.fetch_or(UPGRADED, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// A response body that keeps its request [`InFlight`] until hyper drops it.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        guard: InFlight,
    }
}

impl<B> Tracked<B> {
    /// Wraps `inner`, holding `guard` for as long as the body lives.
    pub fn new(inner: B, guard: InFlight) -> Self {
        Tracked { inner, guard }
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The timeouts and limits of one listener, as the connection layer needs them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Whole request head within this, from its first byte (or from accept).
    pub header_timeout: Duration,
    /// Between requests with no byte of the next one.
    pub idle_timeout: Duration,
    /// Request heads over this many bytes get 431.
    pub max_header_bytes: usize,
}

impl Limits {
    /// hyper's `header_read_timeout`, above anything this layer waits for (it never fires:
    /// see [`NeverTimer`]).
    pub fn hyper_header_timeout(&self) -> Duration {
        self.idle_timeout + self.header_timeout + Duration::from_secs(1)
    }
}

/// hyper's timer for HTTP/1.1 client connections: every sleep stays pending forever.
///
/// This layer owns the connection's timeouts; hyper's header timeout is configured only
/// for its side effect (a read poll when a response ends, see the module docs). A tokio
/// sleep there would cost an allocation and a timer-wheel registration per request; this
/// one is a zero-sized box, which allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct NeverTimer {
    /// What `now` answers: hyper only adds the header timeout to it for a deadline this
    /// timer ignores, so no clock is read per request.
    epoch: std::time::Instant,
}

impl NeverTimer {
    /// A timer whose sleeps never end.
    pub fn new() -> NeverTimer {
        NeverTimer {
            epoch: std::time::Instant::now(),
        }
    }
}

impl Default for NeverTimer {
    fn default() -> Self {
        NeverTimer::new()
    }
}

/// The sleep of [`NeverTimer`].
struct Never;

impl Future for Never {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl hyper::rt::Sleep for Never {}

impl hyper::rt::Timer for NeverTimer {
    fn sleep(&self, _: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Never)
    }

    fn sleep_until(&self, _: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Never)
    }

    fn now(&self) -> std::time::Instant {
        self.epoch
    }

    fn reset(&self, _: &mut Pin<Box<dyn hyper::rt::Sleep>>, _: std::time::Instant) {}
}

/// The canned answer for `reason` (408, 431 or 400), with `x-lb-error`, closing.
pub fn canned(reason: Reason) -> &'static [u8] {
    match reason {
        Reason::HeaderTimeout => b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nx-lb-error: header-timeout\r\ncontent-length: 15\r\nconnection: close\r\n\r\nheader-timeout\n",
        Reason::HeaderTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\nx-lb-error: header-too-large\r\ncontent-length: 17\r\nconnection: close\r\n\r\nheader-too-large\n",
        _ => b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nx-lb-error: bad-request\r\ncontent-length: 12\r\nconnection: close\r\n\r\nbad-request\n",
    }
}

/// Closing after a canned answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    /// Open.
    No,
    /// Writing the answer; `usize` bytes are out.
    Answer(Reason, usize),
    /// Write side shut; discarding input until EOF or the linger deadline.
    Linger,
    /// Done: reads fail so hyper drops the connection.
    Done,
    /// hyper is writing its own 400/431 for a head it could not parse: our answer (with
    /// `x-lb-error`) goes out instead; `usize` bytes are out.
    Replacing(Reason, usize),
    /// Replaced: hyper's further writes are dropped, reads fail.
    Replaced,
}

/// The client stream as hyper sees it. See the module docs.
pub struct ClientIo {
    io: ClientStream,
    /// The next read is hyper-util's HTTP/2 version probe after [`ClientIo::unread`] put
    /// back bytes that cannot be the preface: it gets an empty read (see
    /// [`sniff`](crate::sniff)).
    probe: bool,
    /// Bytes put back by [`ClientIo::unread`] (already seen by the head checks), handed
    /// out before the socket is read again.
    stash: Bytes,
    timer: Pin<Box<Sleep>>,
    /// The deadline the timer is set to, if it was set since it last fired.
    armed: Option<Instant>,
    /// The waker the armed timer was polled with.
    timer_waker: Option<Waker>,
    /// The deadline the current state wants, and what expiry means.
    deadline: Option<Instant>,
    on_expiry: Expiry,
    tracker: Tracker,
    shared: Arc<Shared>,
    /// The `Shared` value and tracker position the deadline was computed for.
    seen: u32,
    phase: Phase,
    heads: u32,
    /// A refused head waiting for the response in flight to finish.
    pending: Option<Reason>,
    /// hyper wrote and has not flushed since.
    dirty: bool,
    /// `Shared::calls` when a flush last completed with no request in flight: while it
    /// is still current, every response the service made is out, so a response head
    /// hyper writes now is its own answer to a head it could not parse.
    flushed: u32,
    closing: Closing,
    /// A chunked body's framing broke: reads fail from here on (see [`Tracker::body_broken`]).
    broken: bool,
    limits: Limits,
    errors: Arc<ReasonCounters>,
    client: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// Close without a word.
    Silent,
    /// Answer 408.
    HeaderTimeout,
}

impl ClientIo {
    /// Wraps an accepted client stream; `header_timeout` runs from now.
    pub fn new(
        io: ClientStream,
        client: SocketAddr,
        limits: Limits,
        shared: Arc<Shared>,
        errors: Arc<ReasonCounters>,
    ) -> ClientIo {
        let deadline = Instant::now() + limits.header_timeout;
        ClientIo {
            probe: false,
            stash: Bytes::new(),
            io,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            armed: Some(deadline),
            timer_waker: None,
            deadline: Some(deadline),
            on_expiry: Expiry::HeaderTimeout,
            tracker: Tracker::new(limits.max_header_bytes),
            shared,
            seen: 0,
            phase: Phase::Idle,
            heads: 0,
            pending: None,
            dirty: false,
            flushed: 0,
            closing: Closing::No,
            broken: false,
            limits,
            errors,
            client,
        }
    }
}

impl ClientIo {
    /// A response went out and no request is in flight: the idle (or next head's)
    /// timer starts now. hyper reads while a request is in flight, which tells this
    /// layer through [`Shared`]; [`front`](crate::front) does not, so it says so here.
    pub fn response_done(&mut self) {
        self.seen = self.shared.load();
        set_deadline(self);
    }

    /// Puts back `bytes` (already read, and already seen by the head checks) to be read
    /// again before the socket, for hyper after [`front`](crate::front) hands it a
    /// connection. When they cannot start the HTTP/2 preface, the first read after this
    /// (hyper-util's version probe) is empty, so `auto` picks HTTP/1 without replaying
    /// them and hyper's own first read gets them whole.
    pub fn unread(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.probe = crate::sniff::cannot_be_h2(&bytes);
        self.stash = bytes;
    }
}

impl ClientIo {
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
    pub fn poll_write_last(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if !self.last_with_fin() {
            return Pin::new(self).poll_write(cx, buf);
        }
        self.dirty = true;
        self.io.poll_send_more(cx, buf)
    }

    /// Sends the FIN after [`ClientIo::poll_write_last`] (plain TCP; nothing for TLS).
    pub fn end_last(&mut self) -> io::Result<()> {
        if !self.last_with_fin() {
            return Ok(());
        }
        self.io.shutdown_write()
    }

    /// Not a tunnel, not our canned answer (plain TCP or TLS is the stream's to tell).
    fn last_with_fin(&self) -> bool {
        self.closing == Closing::No && self.shared.load() & UPGRADED == 0
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
        let shared = this.shared.load();
        if shared != this.seen {
            this.seen = shared;
            if shared & UPGRADED != 0 {
                this.tracker.set_opaque();
            }
            set_deadline(this);
        }
        if this.probe {
            this.probe = false;
            return Poll::Ready(Ok(()));
        }
        if this.broken {
            return Poll::Ready(Err(closed()));
        }
        if !this.stash.is_empty() {
            // Bytes before any refused head: the tracker has seen them.
            let n = this.stash.len().min(buf.remaining());
            buf.put_slice(&this.stash.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let in_flight = shared & !UPGRADED != 0;
        if let Some(reason) = this.pending {
            if !in_flight && !this.dirty {
                return refuse(this, cx, buf, reason);
            }
            return drain_pending(this, cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() == before {
                    return Poll::Ready(Ok(()));
                }
                if let Err(Violation { at, reason }) = this.tracker.feed(&buf.filled()[before..]) {
                    buf.set_filled(before + at);
                    if at == 0 && !in_flight && !this.dirty {
                        return refuse(this, cx, buf, reason);
                    }
                    // hyper gets the bytes before the refused head (they may complete
                    // earlier pipelined requests); the answer goes out once hyper has
                    // served those and no response is being written.
                    this.pending = Some(reason);
                    if at == 0 {
                        return drain_pending(this, cx, buf);
                    }
                    return Poll::Ready(Ok(()));
                }
                if let Some(at) = this.tracker.body_broken() {
                    // A body's framing broke (a bad chunk): the bytes before it go up,
                    // then reads fail, so the request's body fails and the service
                    // answers `400` (its head may have gone upstream: that connection is
                    // dropped), and the connection closes after it.
                    buf.set_filled(before + at);
                    this.broken = true;
                    if at == 0 {
                        return Poll::Ready(Err(closed()));
                    }
                    return Poll::Ready(Ok(()));
                }
                if this.tracker.phase() != this.phase || this.tracker.heads() != this.heads {
                    set_deadline(this);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => poll_timer(this, cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

/// A head was refused while a response is being written: discard further input (it
/// follows the refused head) until the response is done and hyper polls again.
fn drain_pending(
    this: &mut ClientIo,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    for _ in 0..DRAIN_READS {
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => buf.set_filled(before),
            other => return other,
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Recomputes the deadline after a change of phase, head or in-flight state.
fn set_deadline(this: &mut ClientIo) {
    let phase = this.tracker.phase();
    let new_head = this.tracker.heads() != this.heads || this.phase != Phase::Head;
    // The first head is due within header_timeout of accept.
    let first = this.tracker.heads() == 0;
    this.phase = phase;
    this.heads = this.tracker.heads();
    let in_flight = this.seen & !UPGRADED != 0;
    let (timeout, expiry) = match phase {
        // Upgraded, or framing hyper refuses (it closes the connection itself).
        Phase::Opaque if !is_h2(this) => {
            this.deadline = None;
            return;
        }
        _ if in_flight => {
            this.deadline = None;
            return;
        }
        _ if first => return,
        // HTTP/2 with no stream open is idle too.
        Phase::Idle | Phase::Body | Phase::Opaque => (this.limits.idle_timeout, Expiry::Silent),
        Phase::Head => {
            // Keep the running head deadline unless this head is new (or a response
            // just ended, which set it to None).
            if !new_head && this.deadline.is_some() && this.on_expiry == Expiry::HeaderTimeout {
                return;
            }
            (this.limits.header_timeout, Expiry::HeaderTimeout)
        }
    };
    this.deadline = Some(Instant::now() + timeout);
    this.on_expiry = expiry;
}

/// HTTP/2 with prior knowledge (not an upgraded HTTP/1 connection).
fn is_h2(this: &ClientIo) -> bool {
    this.tracker.phase() == Phase::Opaque
        && this.tracker.other_protocol()
        && this.seen & UPGRADED == 0
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
    if !matches!(this.armed, Some(a) if a <= deadline) {
        this.timer.as_mut().reset(deadline);
        this.armed = Some(deadline);
        this.timer_waker = None;
    }
    if !timer_fired(this, cx) {
        return Poll::Pending;
    }
    this.armed = None;
    if Instant::now() < deadline {
        // The armed deadline was an earlier state's: wait for the current one.
        this.timer.as_mut().reset(deadline);
        this.armed = Some(deadline);
        this.timer_waker = None;
        if !timer_fired(this, cx) {
            return Poll::Pending;
        }
    }
    expire(this, cx, buf)
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

fn expire(
    this: &mut ClientIo,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    this.deadline = None;
    match this.on_expiry {
        Expiry::HeaderTimeout if !this.dirty => refuse(this, cx, buf, Reason::HeaderTimeout),
        Expiry::HeaderTimeout => {
            this.errors.inc(Reason::HeaderTimeout);
            Poll::Ready(Err(closed()))
        }
        // Idle: hyper sees a clean EOF between requests (or streams) and closes.
        Expiry::Silent if this.tracker.phase() == Phase::Idle || is_h2(this) => Poll::Ready(Ok(())),
        Expiry::Silent => Poll::Ready(Err(closed())),
    }
}

/// Starts answering `reason` and closing.
fn refuse(
    this: &mut ClientIo,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    reason: Reason,
) -> Poll<io::Result<()>> {
    this.refuse(reason);
    poll_close(this, cx, buf)
}

impl ClientIo {
    /// After the last response to a request whose body was left unread: reads discard
    /// input for at most [`LINGER`] (so closing does not reset the connection under the
    /// answer), then fail.
    pub fn linger(&mut self) {
        let until = Instant::now() + LINGER;
        self.timer.as_mut().reset(until);
        self.armed = Some(until);
        self.timer_waker = None;
        self.closing = Closing::Linger;
    }

    /// Refuses the connection with `reason`'s canned answer (see [`ClientIo::linger`]
    /// for what follows it).
    pub fn refuse(&mut self, reason: Reason) {
        self.count_refusal(reason, "refused before routing");
        self.pending = None;
        self.closing = Closing::Answer(reason, 0);
    }
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
            Closing::No => return Poll::Ready(Err(closed())),
            Closing::Answer(reason, pos) => {
                let bytes = canned(reason);
                if pos >= bytes.len() {
                    // Shutting down the write side of a TcpStream does not block.
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                    let until = Instant::now() + LINGER;
                    this.timer.as_mut().reset(until);
                    this.armed = Some(until);
                    this.timer_waker = None;
                    this.closing = Closing::Linger;
                    continue;
                }
                match Pin::new(&mut this.io).poll_write(cx, &bytes[pos..]) {
                    Poll::Ready(Ok(n)) if n > 0 => this.closing = Closing::Answer(reason, pos + n),
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
            Closing::Done | Closing::Replacing(..) | Closing::Replaced => {
                return Poll::Ready(Err(closed()))
            }
        }
    }
}

impl ClientIo {
    /// hyper's own answer to a head it could not parse (400, or 431 for too many
    /// headers), recognised as a response head written while every response the service
    /// made is already out.
    fn own_error(&self, head: &[u8]) -> Option<Reason> {
        if self.closing != Closing::No
            || self.tracker.other_protocol()
            || self.shared.load() != 0
            || self.shared.calls() != self.flushed
        {
            return None;
        }
        let rest = head
            .strip_prefix(b"HTTP/1.1 ")
            .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
        match rest.get(..4)? {
            b"400 " => Some(Reason::BadRequest),
            b"431 " => Some(Reason::HeaderTooLarge),
            _ => None,
        }
    }

    /// Writes our answer in place of hyper's; reports hyper's `len` bytes as written.
    fn poll_replace(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        loop {
            match self.closing {
                Closing::Replacing(reason, pos) => {
                    let bytes = canned(reason);
                    if pos >= bytes.len() {
                        self.closing = Closing::Replaced;
                        continue;
                    }
                    match Pin::new(&mut self.io).poll_write(cx, &bytes[pos..]) {
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
                        }
                        Poll::Ready(Ok(n)) => self.closing = Closing::Replacing(reason, pos + n),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                _ => return Poll::Ready(Ok(len)),
            }
        }
    }

    fn start_replace(&mut self, reason: Reason) {
        self.count_refusal(reason, "refused by the HTTP parser");
        self.closing = Closing::Replacing(reason, 0);
    }

    /// Counts a refused head and logs it as an access line saying `what` refused it.
    fn count_refusal(&self, reason: Reason, what: &'static str) {
        self.errors.inc(reason);
        tracing::info!(
            target: "lb::access",
            client = %self.client,
            status = reason.status(),
            error = reason.as_str(),
            "{what}"
        );
    }
}

impl AsyncWrite for ClientIo {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.closing, Closing::Replacing(..) | Closing::Replaced) {
            return this.poll_replace(cx, buf.len());
        }
        if let Some(reason) = this.own_error(buf) {
            this.start_replace(reason);
            return this.poll_replace(cx, buf.len());
        }
        this.dirty = true;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.closing, Closing::Replacing(..) | Closing::Replaced) {
            let len = bufs.iter().map(|b| b.len()).sum();
            return this.poll_replace(cx, len);
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if let Some(reason) = this.own_error(first) {
            this.start_replace(reason);
            let len = bufs.iter().map(|b| b.len()).sum();
            return this.poll_replace(cx, len);
        }
        this.dirty = true;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.dirty = false;
            if this.shared.load() & !UPGRADED == 0 {
                this.flushed = this.shared.calls();
            }
        }
        r
    }

    /// hyper shuts a connection down just before dropping it, and closing a plain TCP
    /// socket sends the same FIN, so that `shutdown(2)` is skipped. TLS still sends its
    /// `close_notify`, and an upgraded connection (a tunnel) really half-closes.
    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.io.is_plain() && this.shared.load() & UPGRADED == 0 {
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
