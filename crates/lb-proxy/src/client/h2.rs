//! HTTP/2 from clients (h2c prior knowledge, or ALPN h2) through hyper's server. Each
//! request holds an [`InFlight`] guard until its response is out, so the connection
//! layer knows when the connection is idle. What only HTTP/2 needs (the preface's bytes
//! read already, the streams in flight) is here, in this path's own future, not in
//! every connection's [`ClientIo`].

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::client::ctx::Drain;
use crate::client::io::ClientIo;
use crate::proxy;
use crate::request::body::InBody;
use crate::stream::{read_first, write_through};

/// hyper's HTTP/2 server for a connection the HTTP/1 engine found speaking it.
/// `preface`: the bytes the HTTP/1 engine read already (the preface, and any after it).
pub(crate) async fn serve(mut io: ClientIo, preface: Bytes, mut drain: Drain) {
    io.switch_to_h2();
    let listener = drain.listener().clone();
    let rt = listener.rt.clone();
    let info = io.info().clone();
    let client = info.client;
    let shared = Arc::new(Shared::default());
    let io = H2Io {
        io,
        stash: preface,
        streams: shared.clone(),
        seen: u32::MAX,
    };
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = shared.enter();
        let rt = rt.load_full();
        // A copy and, only behind trusted proxies, one reference count.
        let info = info.clone();
        async move {
            let resp = proxy::handle(rt, info, req.map(|b| Some(InBody::H2(b))), None).await;
            // hyper encodes from the header map: the fields kept as bytes go into it.
            let (mut parts, body) = resp.into_parts();
            if let Some(raw) = body.raw_fields() {
                raw.append_to(&mut parts.headers);
            }
            let resp = hyper::Response::from_parts(parts, body);
            Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked::new(b, guard)))
        }
    });
    let conn = listener.h2.serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.wait() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(client = %client, error = %e, "client connection ended");
    }
}

/// The client stream under hyper: the bytes read already first, and the idle timer told
/// whenever the streams in flight change.
struct H2Io {
    io: ClientIo,
    /// Bytes read by the HTTP/1 engine, handed out before the stream is read again.
    stash: Bytes,
    streams: Arc<Shared>,
    /// `streams` when the connection layer was last told.
    seen: u32,
}

impl AsyncRead for H2Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if read_first(&mut this.stash, buf) {
            return Poll::Ready(Ok(()));
        }
        let now = this.streams.load();
        if now != this.seen {
            this.seen = now;
            this.io.h2_streams(now);
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for H2Io {
    write_through!(io);

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// HTTP/2 requests in flight on a connection, which its timer reads (an HTTP/2
/// connection with no stream open is idle). One per connection, shared with every
/// [`InFlight`] guard.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    state: AtomicU32,
}

impl Shared {
    /// Marks a request in flight until the guard is dropped (with its response body).
    pub(crate) fn enter(self: &Arc<Self>) -> InFlight {
        self.state.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn load(&self) -> u32 {
        self.state.load(Ordering::Relaxed)
    }
}

/// An HTTP/2 request in flight: from the service call until its response body is dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Shared>);

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
    pub(crate) fn new(inner: B, guard: InFlight) -> Self {
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
