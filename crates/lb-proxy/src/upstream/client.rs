//! The upstream connections of one client connection, for PROXY protocol pools: each
//! starts with that client's header, so it may serve no other client.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{lock, Sender, Upstreams};

/// Most idle connections one client connection keeps.
const MAX_IDLE_PER_CLIENT: usize = 16;

/// The idle connections of one client connection to the backends of PROXY protocol pools:
/// each starts with that client's header, so no other client may use it. Dropped, and
/// the connections with it, when the client connection and its last response end.
#[derive(Default)]
pub struct ClientSlot {
    conns: Mutex<Vec<Pinned>>,
}

impl std::fmt::Debug for ClientSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSlot")
            .field("conns", &lock(&self.conns).len())
            .finish()
    }
}

struct Pinned {
    owner: Weak<Upstreams>,
    addr: SocketAddr,
    sender: Sender,
    since: Instant,
}

impl ClientSlot {
    /// A usable connection of `owner` to `addr`: HTTP/1.1 ones are taken out, HTTP/2
    /// ones shared. Stale and closed entries are dropped on the way.
    pub(super) fn take(
        &self,
        owner: &Weak<Upstreams>,
        addr: SocketAddr,
        idle: Duration,
    ) -> Option<Sender> {
        let now = Instant::now();
        let mut conns = lock(&self.conns);
        conns.retain(|p| !p.sender.is_closed() && now.duration_since(p.since) < idle);
        let i = conns
            .iter()
            .position(|p| p.addr == addr && Weak::ptr_eq(&p.owner, owner))?;
        match conns[i].sender.share() {
            Some(shared) => {
                conns[i].since = now;
                Some(shared)
            }
            None => Some(conns.swap_remove(i).sender),
        }
    }

    pub(super) fn put(&self, owner: Weak<Upstreams>, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut conns = lock(&self.conns);
        if conns.len() < MAX_IDLE_PER_CLIENT {
            conns.push(Pinned {
                owner,
                addr,
                sender,
                since: Instant::now(),
            });
        }
    }
}

/// The client connection a request came on, as upstream connections need it.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The client's address (the PROXY header's source).
    pub client: SocketAddr,
    /// The listener's address the client connected to (the PROXY header's destination).
    pub local: SocketAddr,
    /// Where that connection keeps its PROXY protocol upstream connections; `None` when
    /// it has none (no such pool when it was accepted): they are then used once.
    pub slot: Option<&'a Arc<ClientSlot>>,
}
