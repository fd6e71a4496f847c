//! A request's body as it goes upstream: nothing, kept bytes (replayable), or the
//! client's stream, counted as it passes.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use lb_core::backend::BackendState;
use pin_project_lite::pin_project;

use crate::error::BodyError;
use crate::request::pipe::PipeBody;

/// A client's request body: from the HTTP/1 connection, or an HTTP/2 stream.
#[derive(Debug)]
pub enum InBody {
    /// A body that came whole with its head (a `Content-Length` body read in the same
    /// read): its bytes; `None` once taken.
    Whole(Option<Bytes>),
    /// Read by the HTTP/1 connection as the request asks for it (see its pipe).
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
            InBody::Whole(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            InBody::H1(b) => Pin::new(b).poll_frame(cx),
            InBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InBody::Whole(data) => data.is_none(),
            InBody::H1(b) => b.is_end_stream(),
            InBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            InBody::Whole(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
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

/// The request body bytes forwarded: known when the body was read whole (kept for
/// replay, counted once however many attempts send it), or counted as it streams.
pub enum BytesIn {
    /// A body read whole before it was sent (or none: 0).
    Known(u64),
    /// A streamed body, counted by its [`Meter`] frame by frame.
    Counted(Arc<AtomicU64>),
}

impl BytesIn {
    /// The bytes forwarded so far.
    pub fn get(&self) -> u64 {
        match self {
            BytesIn::Known(n) => *n,
            BytesIn::Counted(c) => c.load(Ordering::Relaxed),
        }
    }
}
