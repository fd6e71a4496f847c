//! The response to a client: made here (an error with `x-lb-error`), relayed from a
//! backend (its body streamed, with a stall timer and the backend's lease), or a 101
//! whose tunnel the client's connection runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use lb_core::metrics::Reason;
use lb_core::{Lease, Outcome};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::access::Record;
use crate::error::BodyError;
use crate::request::headers::X_LB_ERROR;
use crate::tunnel::Switch;
use crate::upstream::h1::RawFields;
use crate::upstream::UpstreamBody;

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
    pub(crate) fn local(data: impl Into<Bytes>) -> RespBody {
        RespBody::Local {
            data: Some(data.into()),
            access: None,
        }
    }

    /// A 101's body: the tunnel to run once the head is written ([`RespBody::take_switch`]).
    pub(crate) fn switched(tunnel: Box<Switch>) -> RespBody {
        RespBody::Switched {
            tunnel: Some(tunnel),
            access: None,
        }
    }

    /// The tunnel of a 101 (once).
    pub(crate) fn take_switch(&mut self) -> Option<Box<Switch>> {
        match self {
            RespBody::Switched { tunnel, .. } => tunnel.take(),
            _ => None,
        }
    }

    /// Carries the exchange's access-log `record`, counting the body bytes that pass; the
    /// line is written when the body is dropped.
    pub(crate) fn log_at_end(&mut self, record: Box<Record>) {
        match self {
            RespBody::Local { access, .. }
            | RespBody::Upstream { access, .. }
            | RespBody::Switched { access, .. } => *access = Some(record),
        }
    }

    /// Relays `inner`, keeping `lease` until the end.
    pub(crate) fn upstream(
        inner: UpstreamBody,
        idle: Duration,
        mut lease: Option<Lease>,
    ) -> RespBody {
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
    pub(crate) fn raw_fields(&self) -> Option<&RawFields> {
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

/// A response made by the proxy itself, with `x-lb-error`.
pub(crate) fn local_error(reason: Reason) -> Response<RespBody> {
    let mut r = Response::new(RespBody::local(format!("{}\n", reason.as_str())));
    *r.status_mut() = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(X_LB_ERROR, HeaderValue::from_static(reason.as_str()));
    if reason == Reason::NoHealthyBackend {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if reason == Reason::UnknownHost {
        *r.body_mut() = RespBody::local("app not found\n");
    }
    r
}
