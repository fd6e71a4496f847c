//! What a client connection's driver needs: the running configuration, the facts about
//! the connection, and the listener's drain signal.

use std::future::Future;
use std::pin::Pin;

use arc_swap::ArcSwap;
use lb_core::server::Shutdown;

use crate::proxy::conn::ConnInfo;
use crate::state::Runtime;

/// How serving a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The connection is done: closed by the client, by a timeout, after
    /// `Connection: close`, on a drain, or on an error.
    Closed,
    /// A request this module does not serve: its bytes (and any after them) are back in
    /// the [`ClientIo`], for hyper.
    Handoff,
}

/// The listener's drain signal as one connection sees it.
pub(crate) struct Drain(Shutdown);

impl Drain {
    /// Watches the listener's stop signal.
    pub(crate) fn new(shutdown: Shutdown) -> Drain {
        Drain(shutdown)
    }

    /// True once the listener drains (an atomic load).
    pub(crate) fn is_draining(&self) -> bool {
        self.0.is_stopping()
    }

    /// Resolves when the listener drains.
    pub(crate) async fn wait(&mut self) {
        self.0.stopped().await;
    }

    /// A future of its own that resolves when the listener drains. Polled once, it
    /// registers the task's waker (tokio's `Notify` takes a lock to do so, and again on
    /// every later poll); after that the task is woken on a drain and
    /// [`Drain::is_draining`] tells, so a connection takes that lock once, not per request.
    pub(crate) fn signalled(&self) -> impl Future<Output = ()> + use<> {
        let mut rx = self.0.clone();
        async move { rx.stopped().await }
    }
}

/// A connection's registration for the drain signal (see [`Drain::signalled`]).
pub(crate) struct Listening<F> {
    pub(crate) signal: F,
    pub(crate) registered: bool,
}

impl<F: Future<Output = ()>> Listening<Pin<&mut F>> {
    /// True when the listener drains; the first call registers the task's waker.
    pub(crate) fn drained(&mut self, drain: &Drain, cx: &mut std::task::Context<'_>) -> bool {
        if drain.is_draining() {
            return true;
        }
        if self.registered {
            return false;
        }
        self.registered = true;
        self.signal.as_mut().poll(cx).is_ready()
    }
}

/// What a connection needs to serve requests.
pub(crate) struct Ctx<'a> {
    /// Facts about the client connection, copied into each request.
    pub info: &'a ConnInfo,
    /// The running configuration, loaded per request.
    pub rt: &'a ArcSwap<Runtime>,
}
