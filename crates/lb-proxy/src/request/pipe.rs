//! A client's HTTP/1 request body, read by the connection and handed to the request.
//!
//! The connection ([`h1`](crate::client::h1)) owns the client stream and reads the body off
//! it with the codec; the request's handling ([`proxy`](crate::proxy)) owns the body
//! as a [`PipeBody`] and sends it upstream. Between them is one [`Pipe`]: a slot for one
//! frame, the body's end, and the two wakers. The connection reads only when the body
//! asks for more (nothing is read ahead, so memory per body is one frame), and `Expect:
//! 100-continue` is answered then, as hyper's server does.
//!
//! Both sides usually run in the connection's own task (an HTTP/1 backend's exchange is
//! polled inside the request's future), so a wake-up from one side to the other is
//! skipped when it would wake the task that is running: the connection polls the
//! request again itself. An HTTP/2 backend's body is polled by hyper's connection task;
//! then each side wakes the other.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::error::{BodyError, ClientBodyError};

/// Where the body stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// More frames may come.
    Open,
    /// Read to its end (the last frame may still be in the slot).
    Done,
    /// Broken: the handling gets this error.
    Failed(ClientBodyError),
}

#[derive(Debug)]
struct State {
    frame: Option<Frame<Bytes>>,
    end: End,
    /// The body was polled and found the slot empty: the connection should read.
    wanted: bool,
    /// The body's exact bytes still to come, when it has a length.
    left: Option<u64>,
    /// The body's waker, while it waits.
    reader: Option<Waker>,
    /// The connection's waker, while it waits for the body to ask.
    driver: Option<Waker>,
    /// The body was dropped: nobody reads the rest.
    dropped: bool,
}

/// The shared slot between a connection and its request's body (see the module docs).
#[derive(Debug)]
pub(crate) struct Pipe(Mutex<State>);

impl Pipe {
    /// A pipe for a body of `length` bytes, or of unknown length (chunked).
    pub(crate) fn new(length: Option<u64>) -> Arc<Pipe> {
        Arc::new(Pipe(Mutex::new(State {
            frame: None,
            end: End::Open,
            wanted: false,
            left: length,
            reader: None,
            driver: None,
            dropped: false,
        })))
    }

    /// The body for the request's handling.
    pub(crate) fn body(self: &Arc<Self>) -> PipeBody {
        PipeBody(Arc::clone(self))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole: a panic elsewhere cannot leave it torn.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the body asked for a frame the connection should now read; otherwise
    /// the connection's waker is kept, to be woken when it asks.
    pub(crate) fn wants(&self, cx: &Context<'_>) -> bool {
        let mut s = self.lock();
        if s.wanted && s.frame.is_none() && s.end == End::Open && !s.dropped {
            return true;
        }
        if s.end == End::Open && !s.dropped {
            match &s.driver {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.driver = Some(cx.waker().clone()),
            }
        }
        false
    }

    /// True once nobody will read the rest of the body.
    #[cfg(test)]
    pub(crate) fn is_dropped(&self) -> bool {
        self.lock().dropped
    }

    /// Hands a frame to the body; `last`: the body ends with it.
    pub(crate) fn put(&self, frame: Frame<Bytes>, last: bool, cx: &Context<'_>) {
        let mut s = self.lock();
        if let (Some(left), Some(d)) = (s.left.as_mut(), frame.data_ref()) {
            *left = left.saturating_sub(d.len() as u64);
        }
        s.frame = Some(frame);
        s.wanted = false;
        if last {
            s.end = End::Done;
        }
        wake_reader(s, cx);
    }

    /// Ends the body: read whole, or failed with `error`.
    pub(crate) fn finish(&self, error: Option<ClientBodyError>, cx: &Context<'_>) {
        let mut s = self.lock();
        s.end = match error {
            None => End::Done,
            Some(e) => End::Failed(e),
        };
        s.wanted = false;
        wake_reader(s, cx);
    }
}

/// Wakes the body's task unless it is the one running (`cx`), which polls it next.
fn wake_reader(mut s: MutexGuard<'_, State>, cx: &Context<'_>) {
    let reader = s.reader.take();
    drop(s);
    if let Some(w) = reader {
        if !w.will_wake(cx.waker()) {
            w.wake();
        }
    }
}

/// A client's request body as the request's handling reads it.
#[derive(Debug)]
pub struct PipeBody(Arc<Pipe>);

impl Body for PipeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut s = self.0.lock();
        if let Some(f) = s.frame.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        match s.end {
            End::Done => return Poll::Ready(None),
            End::Failed(e) => return Poll::Ready(Some(Err(BodyError::Client(e)))),
            End::Open => {}
        }
        s.wanted = true;
        match &s.reader {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.reader = Some(cx.waker().clone()),
        }
        let driver = s.driver.take();
        drop(s);
        if let Some(w) = driver {
            if !w.will_wake(cx.waker()) {
                w.wake();
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = self.0.lock();
        s.frame.is_none() && s.end == End::Done
    }

    fn size_hint(&self) -> SizeHint {
        let s = self.0.lock();
        let pending = s
            .frame
            .as_ref()
            .and_then(|f| f.data_ref())
            .map_or(0, |d| d.len() as u64);
        match s.left {
            Some(n) => SizeHint::with_exact(n + pending),
            None => SizeHint::default(),
        }
    }
}

impl Drop for PipeBody {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.dropped = true;
        s.frame = None;
        let driver = s.driver.take();
        drop(s);
        // The connection stops waiting to be asked (it is polled by its own task anyway
        // when this runs there).
        if let Some(w) = driver {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_test_support::waker::counting as waker;
    use std::pin::Pin;

    #[test]
    fn frames_pass_one_at_a_time_and_the_end_follows() {
        let pipe = Pipe::new(Some(5));
        let mut body = pipe.body();
        let (rw, reader) = waker();
        let (dw, driver) = waker();
        let (mut rcx, dcx) = (Context::from_waker(&rw), Context::from_waker(&dw));
        assert!(!pipe.wants(&dcx), "nothing asked yet");
        assert!(Pin::new(&mut body).poll_frame(&mut rcx).is_pending());
        assert_eq!(driver.count(), 1, "the connection is woken");
        assert!(pipe.wants(&dcx));
        pipe.put(Frame::data(Bytes::from_static(b"hel")), false, &dcx);
        assert_eq!(reader.count(), 1, "the body is woken");
        assert_eq!(body.size_hint().exact(), Some(5));
        let Poll::Ready(Some(Ok(f))) = Pin::new(&mut body).poll_frame(&mut rcx) else {
            panic!("a frame");
        };
        assert_eq!(f.into_data().ok(), Some(Bytes::from_static(b"hel")));
        assert_eq!(body.size_hint().exact(), Some(2));
        pipe.put(Frame::data(Bytes::from_static(b"lo")), true, &dcx);
        assert!(!pipe.wants(&dcx), "the body is over");
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut rcx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(body.is_end_stream());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut rcx),
            Poll::Ready(None)
        ));
    }

    #[test]
    fn a_failure_reaches_the_body_and_a_drop_reaches_the_connection() {
        let pipe = Pipe::new(None);
        let mut body = pipe.body();
        let (w, _) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        pipe.finish(Some(ClientBodyError::Framing), &cx);
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Err(BodyError::Client(ClientBodyError::Framing))))
        ));
        assert!(!pipe.is_dropped());
        drop(body);
        assert!(pipe.is_dropped());
        assert!(!pipe.wants(&cx));
    }
}
