//! The one accept loop of lb: every listener (lb-proxy's, lb-sni's, the admin API's, `lb
//! ring serve`'s) accepts and drains through [`accept_loop`].
//!
//! One drain behaviour: on [`Shutdown`] the loop stops accepting (the listening socket is
//! closed), each connection sees the same signal (to finish its in-flight work and close),
//! and the loop returns once every connection has ended; the caller bounds that wait with
//! its grace period.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// The stop signal of a listener (reload or shutdown), as its accept loop and each of its
/// connections see it. Stopped means: `true` was sent, or the sender is gone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A `Shutdown` and the sender that triggers it (send `true`, or drop it).
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// Waits until the listener is told to stop (or its owner is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// True once the stop was signalled: an atomic load, no lock (the signal only ever
    /// goes one way, so any change is the stop).
    pub fn is_stopping(&self) -> bool {
        self.0.has_changed().unwrap_or(true)
    }

    /// Waits for the stop without consuming `self`; returns at once if it was signalled
    /// before this `Shutdown` last waited.
    pub async fn stopped(&mut self) {
        if !self.is_stopping() {
            let _ = self.0.changed().await;
        }
    }
}

/// How a listener hands out connections. tokio's [`TcpListener`] gives registered
/// streams; a binary may accept its own way (lb-proxy takes non-blocking sockets that are
/// registered with the poller only when needed).
pub trait Accept: Send + 'static {
    /// An accepted connection.
    type Conn: Send + 'static;

    /// Waits for the next connection and its peer address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Conn = TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// Accepts connections from `listener` until `shutdown`, at most `max_connections` open at
/// once (at the limit it stops accepting until one ends), and runs `handle` for each in its
/// own task, keeping `active` up to date. `handle` gets the listener's [`Shutdown`] to clone
/// for connections that must finish their work and close when it drains. After `shutdown`
/// the listening socket is closed and the loop returns once every connection has ended
/// (the caller bounds that wait). Per connection: the accept itself, one task, no other
/// allocation or syscall.
pub async fn accept_loop<A, F, Fut>(
    listener: A,
    max_connections: usize,
    active: Arc<AtomicU64>,
    shutdown: Shutdown,
    mut handle: F,
) where
    A: Accept,
    F: FnMut(A::Conn, SocketAddr, &Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max = max_connections.clamp(1, u32::MAX as usize);
    let limit = Arc::new(Semaphore::new(max));
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        // At the limit, stop accepting until a connection ends.
        let permit = tokio::select! {
            _ = &mut stop => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (conn, peer) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        active.fetch_add(1, Ordering::Relaxed);
        let conn = handle(conn, peer, &shutdown);
        let active = active.clone();
        tokio::spawn(async move {
            conn.await;
            active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back means every connection has ended.
    // `max` fits in u32: clamped above.
    let _ = limit.acquire_many(max as u32).await;
}

/// [`accept_loop`] stopped by any future (`stop`) instead of a [`Shutdown`]: for servers
/// whose owner holds a plain future (the admin API embedded in a test, `lb ring serve`).
pub async fn accept_until<A, F, Fut>(
    listener: A,
    max_connections: usize,
    stop: impl Future<Output = ()>,
    handle: F,
) where
    A: Accept,
    F: FnMut(A::Conn, SocketAddr, &Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, shutdown) = Shutdown::new();
    let active = Arc::new(AtomicU64::new(0));
    let trigger = async move {
        stop.await;
        drop(tx);
    };
    tokio::join!(
        trigger,
        accept_loop(listener, max_connections, active, shutdown, handle)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// At the limit the loop stops accepting; a connection ending lets the next one in;
    /// on shutdown the loop waits for the open connection to finish its work.
    #[tokio::test]
    async fn limit_and_drain() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, shutdown) = Shutdown::new();
        let active = Arc::new(AtomicU64::new(0));
        let served = tokio::spawn(accept_loop(
            listener,
            1,
            active.clone(),
            shutdown,
            |mut s: TcpStream, _, sd: &Shutdown| {
                let mut sd = sd.clone();
                async move {
                    // Echo one byte per read until the client closes; on drain, answer
                    // the request in flight (one more byte) and close.
                    let mut b = [0u8; 1];
                    loop {
                        tokio::select! {
                            r = s.read(&mut b) => match r {
                                Ok(1) => { let _ = s.write_all(&b).await; }
                                _ => return,
                            },
                            _ = sd.stopped() => {
                                if let Ok(1) = s.read(&mut b).await {
                                    let _ = s.write_all(&b).await;
                                }
                                return;
                            }
                        }
                    }
                }
            },
        ));
        let mut a = TcpStream::connect(addr).await.expect("connect a");
        a.write_all(b"x").await.expect("write");
        let mut b1 = [0u8; 1];
        a.read_exact(&mut b1).await.expect("echo");
        assert_eq!(active.load(Ordering::Relaxed), 1);
        // The second connection waits in the kernel's queue: no echo while `a` is open.
        let mut b = TcpStream::connect(addr).await.expect("connect b");
        b.write_all(b"y").await.expect("write");
        let early = tokio::time::timeout(Duration::from_millis(300), b.read_exact(&mut b1)).await;
        assert!(early.is_err(), "accepted over the limit");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), b.read_exact(&mut b1))
            .await
            .expect("served after a slot freed")
            .expect("echo");
        assert_eq!(&b1, b"y");
        // Drain: the loop does not return while `b` is in flight.
        stop.send(true).expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !served.is_finished(),
            "returned before the connection ended"
        );
        b.write_all(b"z").await.expect("write");
        b.read_exact(&mut b1)
            .await
            .expect("answered while draining");
        assert_eq!(&b1, b"z");
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("drained")
            .expect("task");
        assert_eq!(active.load(Ordering::Relaxed), 0);
        // Not accepting any more: the listening socket is closed.
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
