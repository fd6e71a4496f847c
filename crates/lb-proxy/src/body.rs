//! Body types: what goes upstream and what comes back to the client, without boxing.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use lb_core::backend::BackendState;
use lb_core::{Lease, Outcome};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::access::{BytesIn, Record};
use crate::pipe::{ClientBodyError, PipeBody};
use crate::upgrade::Switch;
use crate::upstream::h1::{H1Body, H1Error, RawFields};

/// Errors of proxied bodies.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The peer's body failed (reset, malformed chunk).
    #[error("body: {0}")]
    Hyper(#[from] hyper::Error),
    /// An upstream HTTP/1.1 body failed (reset, truncated, malformed chunk).
    #[error("upstream body: {0}")]
    Upstream(#[from] H1Error),
    /// The request body exceeded `max_body_bytes`.
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    /// No bytes moved for `idle_timeout`.
    #[error("body stalled for {0:?}")]
    Stalled(Duration),
    /// The client's HTTP/1 body broke (read by the connection, see [`crate::pipe`]).
    #[error("request body: {0}")]
    Client(#[from] ClientBodyError),
}

/// A client's request body: from the HTTP/1 connection, or an HTTP/2 stream.
#[derive(Debug)]
pub enum InBody {
    /// Read by the HTTP/1 connection ([`crate::pipe`]).
    H1(PipeBody),
    /// An HTTP/2 request stream.
    H2(Incoming),
}

impl Body for InBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            InBody::H1(b) => Pin::new(b).poll_frame(cx),
            InBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InBody::H1(b) => b.is_end_stream(),
            InBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            InBody::H1(b) => b.size_hint(),
            InBody::H2(b) => b.size_hint(),
        }
    }
}

/// Where a request body's bytes are counted as they go upstream: the backend's bytes-in
/// figure (the stats page), and the access-log record's (only with a log on, and only
/// for a streamed body: a kept body's size is known when it is read).
#[derive(Default)]
pub struct Meter {
    /// The backend of the current attempt (a reference count, set per attempt).
    pub backend: Option<Arc<BackendState>>,
    /// The access-log record's count of request body bytes forwarded.
    pub logged: Option<Arc<AtomicU64>>,
}

impl Meter {
    /// Counts `n` body bytes handed to the upstream side.
    pub fn count(&self, n: u64) {
        if let Some(b) = &self.backend {
            b.watch().add_bytes(n, 0);
        }
        if let Some(l) = &self.logged {
            l.fetch_add(n, Ordering::Relaxed);
        }
    }
}

pin_project! {
    /// A request body sent upstream: nothing, replayable bytes, or the client's stream.
    /// Its data bytes are counted ([`Meter`]) as they are handed to the upstream side.
    #[project = ReqProj]
    pub enum ReqBody {
        /// No body.
        Empty,
        /// A buffered body (kept for replay on retry); `None` once sent.
        Full { data: Option<Bytes>, meter: Meter },
        /// The client's body, streamed with a size limit.
        Stream { #[pin] inner: InBody, seen: u64, limit: u64, meter: Meter },
    }
}

impl ReqBody {
    /// A replayable copy of a buffered body.
    pub fn full(data: Bytes) -> ReqBody {
        if data.is_empty() {
            ReqBody::Empty
        } else {
            ReqBody::Full {
                data: Some(data),
                meter: Meter::default(),
            }
        }
    }

    /// How the access log learns the request body bytes forwarded: a kept body's size
    /// now (counted once however many attempts send it), a streamed body's count as its
    /// frames go upstream (one shared counter, made only with a log on).
    pub fn count_for_log(&mut self) -> BytesIn {
        match self {
            ReqBody::Empty => BytesIn::Known(0),
            ReqBody::Full { data, .. } => {
                BytesIn::Known(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ReqBody::Stream { meter, .. } => {
                let counted = Arc::new(AtomicU64::new(0));
                meter.logged = Some(Arc::clone(&counted));
                BytesIn::Counted(counted)
            }
        }
    }

    /// Counts the bytes sent from now on as the bytes in of `backend` (the attempt's).
    pub fn count_to(&mut self, backend: &Arc<BackendState>) {
        match self {
            ReqBody::Empty => {}
            ReqBody::Full { meter, .. } | ReqBody::Stream { meter, .. } => {
                meter.backend = Some(Arc::clone(backend));
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ReqProj::Empty => Poll::Ready(None),
            ReqProj::Full { data, meter } => Poll::Ready(data.take().map(|d| {
                meter.count(d.len() as u64);
                Ok(Frame::data(d))
            })),
            ReqProj::Stream {
                inner,
                seen,
                limit,
                meter,
            } => match inner.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        *seen += d.len() as u64;
                        if *limit > 0 && *seen > *limit {
                            return Poll::Ready(Some(Err(BodyError::TooLarge(*limit))));
                        }
                        meter.count(d.len() as u64);
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full { data, .. } => data.is_none(),
            ReqBody::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ReqBody::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

/// A backend's response body: read by our HTTP/1.1 client, or hyper's HTTP/2 stream.
pub enum UpstreamBody {
    /// From an HTTP/1.1 connection (which goes back to its pool at the end).
    H1(H1Body),
    /// From an HTTP/2 stream.
    H2(Incoming),
}

impl UpstreamBody {
    /// The backend's fields as they came (HTTP/1.1 heads that fit, see [`RawFields`]);
    /// they are then not in the response's header map.
    pub fn raw_fields(&self) -> Option<&RawFields> {
        match self {
            UpstreamBody::H1(b) => b.raw_fields(),
            UpstreamBody::H2(_) => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
            UpstreamBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(b) => b.is_end_stream(),
            UpstreamBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(b) => b.size_hint(),
            UpstreamBody::H2(b) => b.size_hint(),
        }
    }
}

pin_project! {
    /// A response body to the client: a local answer, or the upstream's stream.
    #[project = RespProj]
    pub enum RespBody {
        /// Made here (errors, admin-style answers).
        Local { data: Option<Bytes>, access: Option<Box<Record>> },
        /// A 101's: no body; the client's connection takes the tunnel after the head.
        Switched { tunnel: Option<Box<Switch>>, access: Option<Box<Record>> },
        /// Relayed from a backend. Holds the lease (active count) until the body ends;
        /// an HTTP/1.1 body gives its connection back itself.
        Upstream {
            inner: UpstreamBody,
            // Made when the body first has to wait: most bodies never do (they are in the
            // read buffer with their head), and a timer costs a clock read and a handle.
            stall: Option<Pin<Box<Sleep>>>,
            idle: Duration,
            // Frames arrived since the stall timer was last armed.
            progressed: bool,
            lease: Option<Lease>,
            // The access-log line, written when the body is dropped (sent or failed).
            access: Option<Box<Record>>,
        },
    }
}

impl RespBody {
    /// A local body.
    pub fn local(data: impl Into<Bytes>) -> RespBody {
        RespBody::Local {
            data: Some(data.into()),
            access: None,
        }
    }

    /// A 101's body: the tunnel to run once the head is written ([`RespBody::take_switch`]).
    pub fn switched(tunnel: Box<Switch>) -> RespBody {
        RespBody::Switched {
            tunnel: Some(tunnel),
            access: None,
        }
    }

    /// The tunnel of a 101 (once).
    pub fn take_switch(&mut self) -> Option<Box<Switch>> {
        match self {
            RespBody::Switched { tunnel, .. } => tunnel.take(),
            _ => None,
        }
    }

    /// Carries the exchange's access-log `record`, counting the body bytes that pass; the
    /// line is written when the body is dropped.
    pub fn log_at_end(&mut self, record: Box<Record>) {
        match self {
            RespBody::Local { access, .. }
            | RespBody::Upstream { access, .. }
            | RespBody::Switched { access, .. } => *access = Some(record),
        }
    }

    /// Relays `inner`, keeping `lease` until the end.
    pub fn upstream(inner: UpstreamBody, idle: Duration, mut lease: Option<Lease>) -> RespBody {
        if inner.is_end_stream() {
            // No body will be polled (HEAD, 204, 304, length 0): the exchange is over now.
            lease.take();
        }
        RespBody::Upstream {
            inner,
            stall: None,
            idle,
            progressed: false,
            lease,
            access: None,
        }
    }

    /// The backend's fields as they came, not in the response's header map (see
    /// [`RawFields`]): the client side writes them from their bytes, or adds them to the
    /// map ([`RawFields::append_to`]) where it needs one.
    pub fn raw_fields(&self) -> Option<&RawFields> {
        match self {
            RespBody::Upstream { inner, .. } => inner.raw_fields(),
            RespBody::Local { .. } | RespBody::Switched { .. } => None,
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            RespProj::Switched { .. } => Poll::Ready(None),
            RespProj::Local { data, access } => Poll::Ready(data.take().map(|d| {
                if let Some(a) = access {
                    a.bytes_out += d.len() as u64;
                }
                Ok(Frame::data(d))
            })),
            RespProj::Upstream {
                inner,
                stall,
                idle,
                progressed,
                lease,
                access,
            } => match Pin::new(&mut *inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if let (Some(a), Some(d)) = (access.as_mut(), f.data_ref()) {
                        a.bytes_out += d.len() as u64;
                    }
                    // Progress: the stall deadline moves when the body next waits.
                    *progressed = true;
                    if let (Some(l), Some(d)) = (lease.as_ref(), f.data_ref()) {
                        // Response body bytes, per backend, for the stats page.
                        l.member().state().watch().add_bytes(0, d.len() as u64);
                    }
                    // A sized body is complete after its last frame and hyper's server
                    // will not poll again, so the exchange ends here, not at `None`.
                    if inner.is_end_stream() {
                        lease.take();
                    }
                    Poll::Ready(Some(Ok(f)))
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(l) = lease.take() {
                        l.report(Outcome::Failure);
                    }
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    lease.take();
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    if idle.is_zero() {
                        return Poll::Pending;
                    }
                    // The first wait, or a wait after progress: `idle` from now (the
                    // deadline only moves later, which the timer does without
                    // re-registering).
                    let fresh = stall.is_none();
                    let timer = stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(*idle)));
                    if *progressed && !fresh {
                        timer.as_mut().reset(Instant::now() + *idle);
                    }
                    *progressed = false;
                    match timer.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            // The body is dropped, and an HTTP/1.1 connection with it.
                            lease.take();
                            Poll::Ready(Some(Err(BodyError::Stalled(*idle))))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Local { data, .. } => data.is_none(),
            RespBody::Switched { .. } => true,
            RespBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Local { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RespBody::Switched { .. } => SizeHint::with_exact(0),
            RespBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
