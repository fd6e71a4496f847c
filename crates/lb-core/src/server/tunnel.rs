//! Byte splicing between a client and a backend: lb-sni's routed connections and
//! lb-proxy's upgraded (WebSocket) connections.
//!
//! Each direction reads into a buffer and writes it out; when one side ends its stream
//! (EOF), the other side's write half is shut down and the other direction goes on until it
//! ends too (TCP half-close, as TLS close_notify and HTTP/1.0 bodies need). A reset or
//! error on either side ends both. The whole tunnel is closed once no byte has moved either
//! way for `idle` (one timer per tunnel, re-armed only when it fires).
//!
//! Memory: a direction holds its [`BUFFER`] only while data flows. After a short read (the
//! stream had less than a buffer's worth) the buffer goes back to the allocator. A read
//! half that can wait for readiness without reading (a TCP socket, see [`TunnelRead`])
//! then holds no buffer at all while idle; any other stream (an upgraded HTTP connection,
//! a TLS stream) waits in a small scratch array that lives in the tunnel's future.
//!
//! Two plain TCP sockets go through [`splice_tcp`] instead: the same rules, but once a
//! direction carries data in bulk its bytes move through a pipe with splice(2) and never
//! enter user space (see its docs).
//!
//! ```no_run
//! # async fn demo(mut client: tokio::net::TcpStream, mut backend: tokio::net::TcpStream) {
//! use std::sync::atomic::AtomicU64;
//! use std::time::Duration;
//! use lb_core::server::tunnel::{splice, End};
//!
//! let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
//! match splice(client.split(), backend.split(), Duration::from_secs(60), &up, &down).await {
//!     End::Closed(moved) => println!("{} bytes up, {} down", moved.up, moved.down),
//!     End::Idle(_) => println!("idle timeout"),
//!     End::Error(_, e) => println!("failed: {e}"),
//! }
//! # }
//! ```

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

mod tcp;

pub use tcp::{splice_tcp, try_recv, PIPE_BYTES};

/// Bytes per read while data flows.
pub const BUFFER: usize = 32 * 1024;

/// Bytes of the scratch array a direction reads into while idle, for read halves that
/// cannot wait for readiness without reading.
pub const SCRATCH: usize = 2 * 1024;

/// Bytes moved by a tunnel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Client → backend.
    pub up: u64,
    /// Backend → client.
    pub down: u64,
    /// Of `up + down`, the bytes that went through a pipe with splice(2) without being
    /// copied through user space ([`splice_tcp`] only).
    pub spliced: u64,
}

/// How a tunnel ended.
#[derive(Debug)]
pub enum End {
    /// Both directions reached EOF.
    Closed(Moved),
    /// No byte moved for the idle timeout.
    Idle(Moved),
    /// A read or write failed (reset, broken pipe).
    Error(Moved, io::Error),
}

/// The read half of one side of a tunnel.
///
/// Implemented for a borrowed TCP read half (which waits for readiness without a buffer)
/// and for [`tokio::io::ReadHalf`] of any stream (which cannot, and reads idle traffic
/// into a [`SCRATCH`]-byte array instead).
pub trait TunnelRead: AsyncRead + Unpin + Send {
    /// What an idle direction reads into: `[u8; 0]` when
    /// [`wait_readable`](Self::wait_readable) can wait without reading.
    type Scratch: AsMut<[u8]> + Default + Send;

    /// Waits until a read would not block, without reading; `Ok(false)` at once when this
    /// stream cannot tell (reads then go through [`Scratch`](Self::Scratch) first).
    fn wait_readable(&self) -> impl Future<Output = io::Result<bool>> + Send;
}

impl TunnelRead for tokio::net::tcp::ReadHalf<'_> {
    type Scratch = [u8; 0];

    async fn wait_readable(&self) -> io::Result<bool> {
        self.as_ref().readable().await.map(|()| true)
    }
}

impl<T: AsyncRead + Send> TunnelRead for tokio::io::ReadHalf<T> {
    type Scratch = Scratch;

    fn wait_readable(&self) -> impl Future<Output = io::Result<bool>> + Send {
        std::future::ready(Ok(false))
    }
}

/// The [`SCRATCH`]-byte array an idle direction of a generic stream reads into.
#[derive(Debug)]
pub struct Scratch([u8; SCRATCH]);

impl Default for Scratch {
    fn default() -> Self {
        Scratch([0; SCRATCH])
    }
}

impl AsMut<[u8]> for Scratch {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// Splices `client` and `upstream` (each a read half and a write half) until both
/// directions end, one fails, or `idle` passes without a byte. `up_total`/`down_total`
/// are shared counters added to as bytes move (client → backend, backend → client).
pub async fn splice<CR, CW, UR, UW>(
    client: (CR, CW),
    upstream: (UR, UW),
    idle: Duration,
    up_total: &AtomicU64,
    down_total: &AtomicU64,
) -> End
where
    CR: TunnelRead,
    UR: TunnelRead,
    CW: AsyncWrite + Unpin + Send,
    UW: AsyncWrite + Unpin + Send,
{
    let flow = Flow::new(up_total, down_total);
    let (cr, cw) = client;
    let (ur, uw) = upstream;
    let both = async {
        tokio::try_join!(
            pipe(cr, uw, flow.counts(Dir::Up)),
            pipe(ur, cw, flow.counts(Dir::Down))
        )
    };
    flow.run(both, idle).await
}

/// One direction of a tunnel.
#[derive(Debug, Clone, Copy)]
enum Dir {
    /// Client → backend.
    Up,
    /// Backend → client.
    Down,
}

/// What a tunnel counts: its own bytes each way and when one last moved, beside the
/// shared totals.
struct Flow<'a> {
    start: Instant,
    /// Milliseconds since `start` of the last byte moved either way.
    last: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
    spliced: AtomicU64,
    up_total: &'a AtomicU64,
    down_total: &'a AtomicU64,
}

impl<'a> Flow<'a> {
    fn new(up_total: &'a AtomicU64, down_total: &'a AtomicU64) -> Self {
        Flow {
            start: Instant::now(),
            last: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            spliced: AtomicU64::new(0),
            up_total,
            down_total,
        }
    }

    fn counts(&self, dir: Dir) -> Counts<'_> {
        let (moved, total) = match dir {
            Dir::Up => (&self.up, self.up_total),
            Dir::Down => (&self.down, self.down_total),
        };
        Counts {
            flow: self,
            moved,
            total,
        }
    }

    fn moved(&self) -> Moved {
        Moved {
            up: self.up.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
            spliced: self.spliced.load(Ordering::Relaxed),
        }
    }

    /// Runs both directions until they end, one fails, or `idle` passes without a byte.
    async fn run<F>(&self, both: F, idle: Duration) -> End
    where
        F: Future<Output = io::Result<((), ())>>,
    {
        tokio::select! {
            r = both => match r {
                Ok(_) => End::Closed(self.moved()),
                Err(e) => End::Error(self.moved(), e),
            },
            _ = self.watchdog(idle) => End::Idle(self.moved()),
        }
    }

    async fn watchdog(&self, idle: Duration) {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX).max(1);
        loop {
            let last = self.last.load(Ordering::Relaxed);
            let deadline = self.start + Duration::from_millis(last.saturating_add(idle_ms));
            tokio::time::sleep_until(deadline).await;
            let since = self.start.elapsed().as_millis() as u64;
            if since.saturating_sub(self.last.load(Ordering::Relaxed)) >= idle_ms {
                return;
            }
        }
    }
}

/// The counters of one direction.
#[derive(Clone, Copy)]
struct Counts<'a> {
    flow: &'a Flow<'a>,
    moved: &'a AtomicU64,
    total: &'a AtomicU64,
}

impl Counts<'_> {
    /// Counts `n` bytes delivered to the far side (`spliced`: through a pipe).
    fn add(&self, n: usize, spliced: bool) {
        let n = n as u64;
        self.moved.fetch_add(n, Ordering::Relaxed);
        self.total.fetch_add(n, Ordering::Relaxed);
        if spliced {
            self.flow.spliced.fetch_add(n, Ordering::Relaxed);
        }
        let now = self.flow.start.elapsed().as_millis() as u64;
        self.flow.last.store(now, Ordering::Relaxed);
    }
}

async fn pipe<R: TunnelRead, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    counts: Counts<'_>,
) -> io::Result<()> {
    let mut buf: Option<Vec<u8>> = None;
    let mut scratch = R::Scratch::default();
    loop {
        // Wait for data before taking a buffer, so an idle direction holds none.
        let waited = buf.is_some() || from.wait_readable().await?;
        let n = if !waited {
            let s = scratch.as_mut();
            let n = from.read(s).await?;
            if n > 0 {
                to.write_all(&s[..n]).await?;
                if n == s.len() {
                    // More is likely waiting: read it in bulk.
                    buf = Some(Vec::with_capacity(BUFFER));
                }
            }
            n
        } else {
            // Reads go into spare capacity: the buffer is never zeroed.
            let b = buf.get_or_insert_with(|| Vec::with_capacity(BUFFER));
            let n = from.read_buf(b).await?;
            to.write_all(b).await?;
            b.clear();
            if n < BUFFER {
                buf = None;
            }
            n
        };
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        counts.add(n, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (b, _) = l.accept().await.expect("accept");
        (a, b)
    }

    /// Bytes cross both ways; EOF from one side half-closes the other, the far direction
    /// goes on, and the tunnel ends once both are closed. Works for TCP halves and for
    /// generic split streams, with payloads larger than the scratch and the buffer.
    #[tokio::test]
    async fn splices_with_half_close_over_tcp_and_generic_halves() {
        let (mut client, client_end) = pair().await;
        let (backend_end, mut backend) = pair().await;
        let task = tokio::spawn(async move {
            let (mut c, mut b) = (client_end, backend_end);
            let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
            let end = splice(
                c.split(),
                tokio::io::split(&mut b),
                Duration::from_secs(5),
                &up,
                &down,
            )
            .await;
            (
                end,
                up.load(Ordering::Relaxed),
                down.load(Ordering::Relaxed),
            )
        });
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        client.write_all(&big).await.expect("write");
        let mut got = vec![0u8; big.len()];
        backend.read_exact(&mut got).await.expect("read");
        assert_eq!(got, big);
        backend.write_all(b"pong").await.expect("write");
        let mut four = [0u8; 4];
        client.read_exact(&mut four).await.expect("read");
        assert_eq!(&four, b"pong");
        // The client half-closes: the backend sees EOF, and can still answer.
        client.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        backend.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
        backend
            .write_all(b"late")
            .await
            .expect("write after half-close");
        backend.shutdown().await.expect("shutdown");
        let mut tail = Vec::new();
        client.read_to_end(&mut tail).await.expect("eof");
        assert_eq!(tail, b"late");
        let (end, up, down) = task.await.expect("join");
        assert!(
            matches!(end, End::Closed(m) if m.up == 100_000 && m.down == 8),
            "{end:?}"
        );
        assert_eq!((up, down), (100_000, 8));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tunnel_ends() {
        let (_client, client_end) = pair().await;
        let (backend_end, _backend) = pair().await;
        let (mut c, mut b) = (client_end, backend_end);
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let end = splice(
            tokio::io::split(&mut c),
            b.split(),
            Duration::from_millis(300),
            &up,
            &down,
        )
        .await;
        assert!(
            matches!(end, End::Idle(m) if m == Moved::default()),
            "{end:?}"
        );
    }
}
