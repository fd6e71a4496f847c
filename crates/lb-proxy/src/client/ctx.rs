//! What a client connection's driver needs: what the connections of its listener share
//! (the running configuration, hyper's HTTP/2 settings, the drain signal), reached
//! through one reference, and the facts about the connection.
//!
//! The drain: a connection waiting between requests (or HTTP/2) must close as soon as
//! its listener drains, so it is woken by the signal. Each waiting connection keeps one
//! slot in its [`Listener`]'s list (a waker, 16 bytes) instead of a future of its own on
//! the signal (tokio's `watch` and `Notify` futures, 160 bytes in every connection's
//! future); the listener wakes them all once on the stop.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use arc_swap::ArcSwap;
use hyper::server::conn::http2;
use hyper_util::rt::TokioExecutor;
use lb_core::server::Shutdown;

use crate::proxy::conn::ConnInfo;
use crate::state::Runtime;

/// How serving a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The connection is done: closed by the client, by a timeout, after
    /// `Connection: close`, on a drain, or on an error.
    Closed,
    /// The connection speaks HTTP/2: hyper takes it, with the bytes read so far.
    Handoff,
}

/// What the connections of one listener (one accept loop) share: the running
/// configuration, hyper's HTTP/2 settings, and the drain signal with the connections
/// waiting for it.
pub(crate) struct Listener {
    /// The running configuration, loaded per request.
    pub(crate) rt: Arc<ArcSwap<Runtime>>,
    /// hyper's HTTP/2 server, for the connections that speak it.
    pub(crate) h2: http2::Builder<TokioExecutor>,
    shutdown: Shutdown,
    waiting: Mutex<Waiting>,
}

/// The wakers of the connections waiting for the drain, one slot each.
#[derive(Default)]
struct Waiting {
    slots: Vec<Slot>,
    /// The first free slot (`slots.len()` when none is).
    free: usize,
}

enum Slot {
    /// Free; the next free one.
    Free(usize),
    Taken(Waker),
}

impl Listener {
    /// Watches the listener's stop signal; [`Listener::wake_on_stop`] must run beside
    /// the listener's accept loop.
    pub(crate) fn new(
        rt: Arc<ArcSwap<Runtime>>,
        h2: http2::Builder<TokioExecutor>,
        shutdown: Shutdown,
    ) -> Arc<Listener> {
        Arc::new(Listener {
            rt,
            h2,
            shutdown,
            waiting: Mutex::default(),
        })
    }

    /// Waits for the stop, then wakes every waiting connection (each then sees
    /// [`Drain::is_draining`]). Connections that wait later see the stop at once.
    pub(crate) async fn wake_on_stop(&self) {
        self.shutdown.clone().wait().await;
        for slot in &self.lock().slots {
            if let Slot::Taken(w) = slot {
                w.wake_by_ref();
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One connection's reference to its [`Listener`], and its slot in the listener's drain
/// list once it waits for the drain.
pub(crate) struct Drain {
    list: Arc<Listener>,
    /// Its slot in `list` once it waits (see [`Drain::drained`]); [`NONE`] before.
    slot: usize,
}

/// No slot taken.
const NONE: usize = usize::MAX;

impl Drain {
    /// A connection of `list`'s listener.
    pub(crate) fn new(list: Arc<Listener>) -> Drain {
        Drain { list, slot: NONE }
    }

    /// What the listener's connections share.
    pub(crate) fn listener(&self) -> &Arc<Listener> {
        &self.list
    }

    /// True once the listener drains (an atomic load).
    pub(crate) fn is_draining(&self) -> bool {
        self.list.shutdown.is_stopping()
    }

    /// True when the listener drains. The first call registers the task's waker (one
    /// lock); after that the task is woken on the drain, so a connection takes that lock
    /// once, not per request.
    pub(crate) fn drained(&mut self, cx: &mut Context<'_>) -> bool {
        if self.is_draining() {
            return true;
        }
        if self.slot != NONE {
            return false;
        }
        {
            let mut w = self.list.lock();
            let waker = Slot::Taken(cx.waker().clone());
            self.slot = w.free;
            if w.free == w.slots.len() {
                w.slots.push(waker);
                w.free = w.slots.len();
            } else if let Slot::Free(next) = std::mem::replace(&mut w.slots[self.slot], waker) {
                w.free = next;
            }
        }
        // A stop between the first check and the registration woke nobody here.
        self.is_draining()
    }

    /// Resolves when the listener drains.
    pub(crate) async fn wait(&mut self) {
        poll_fn(|cx| match self.drained(cx) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await;
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if self.slot == NONE {
            return;
        }
        let mut w = self.list.lock();
        let free = w.free;
        w.slots[self.slot] = Slot::Free(free);
        w.free = self.slot;
    }
}

/// What a connection needs to serve requests.
pub(crate) struct Ctx<'a> {
    /// Facts about the client connection, copied into each request.
    pub info: &'a ConnInfo,
    /// The running configuration, loaded per request.
    pub rt: &'a ArcSwap<Runtime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots are reused after a connection ends, each waiting connection is woken once
    /// on the stop, and one that waits after it sees the stop at once.
    #[tokio::test]
    async fn waiting_connections_are_woken_on_the_stop() {
        let (stop, shutdown) = Shutdown::new();
        let list = Listener::new(
            Arc::new(ArcSwap::from_pointee(Runtime::for_tests())),
            http2::Builder::new(TokioExecutor::new()),
            shutdown,
        );
        let (waker, count) = lb_test_support::waker::counting();
        let mut cx = Context::from_waker(&waker);
        let mut a = Drain::new(list.clone());
        let mut b = Drain::new(list.clone());
        assert!(!a.drained(&mut cx) && !b.drained(&mut cx));
        assert!(!a.drained(&mut cx), "registered once");
        drop(a);
        let mut c = Drain::new(list.clone());
        assert!(!c.drained(&mut cx));
        assert_eq!(
            list.lock().slots.len(),
            2,
            "the ended connection's slot is reused"
        );
        let woken = tokio::spawn({
            let list = list.clone();
            async move { list.wake_on_stop().await }
        });
        stop.send(true).expect("send");
        woken.await.expect("join");
        assert_eq!(count.count(), 2);
        assert!(b.drained(&mut cx) && c.drained(&mut cx));
        let mut late = Drain::new(list);
        assert!(late.is_draining() && late.drained(&mut cx));
    }
}
