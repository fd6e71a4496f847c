//! Byte splicing between the client and the backend once a connection is routed.
//!
//! Each direction reads into a buffer and writes it out; when one side ends its stream
//! (EOF), the other side's write half is shut down and the other direction goes on until it
//! ends too (TCP half-close, as TLS close_notify and HTTP/1.0 bodies need). A reset or
//! error on either side ends both. The whole tunnel is closed once no byte has moved either
//! way for `idle` (one timer per tunnel, re-armed only when it fires).
//!
//! Memory: a direction holds its buffer only while data flows. After a short read (the
//! socket had less than a buffer's worth, so tokio has cleared its readiness) the buffer
//! goes back to the allocator, and an idle tunnel holds no buffer at all.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes per read while data flows.
pub const BUFFER: usize = 32 * 1024;

/// Bytes moved by a tunnel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Client → backend.
    pub up: u64,
    /// Backend → client.
    pub down: u64,
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

/// Splices `client` and `upstream` until both directions end, one fails, or `idle`
/// passes without a byte. `up_total`/`down_total` are shared counters (`lb_bytes_total`)
/// added to as bytes move.
pub async fn splice(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    idle: Duration,
    up_total: &AtomicU64,
    down_total: &AtomicU64,
) -> End {
    let start = Instant::now();
    // Milliseconds since `start` of the last byte moved either way.
    let last = AtomicU64::new(0);
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let (cr, cw) = client.split();
    let (ur, uw) = upstream.split();
    let both = async {
        tokio::try_join!(
            pipe(cr, uw, start, &last, &up, up_total),
            pipe(ur, cw, start, &last, &down, down_total)
        )
    };
    let moved = |up: &AtomicU64, down: &AtomicU64| Moved {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
    };
    tokio::select! {
        r = both => match r {
            Ok(_) => End::Closed(moved(&up, &down)),
            Err(e) => End::Error(moved(&up, &down), e),
        },
        _ = watchdog(start, &last, idle) => End::Idle(moved(&up, &down)),
    }
}

async fn watchdog(start: Instant, last: &AtomicU64, idle: Duration) {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX).max(1);
    loop {
        let deadline =
            start + Duration::from_millis(last.load(Ordering::Relaxed).saturating_add(idle_ms));
        tokio::time::sleep_until(deadline).await;
        let since = start.elapsed().as_millis() as u64;
        if since.saturating_sub(last.load(Ordering::Relaxed)) >= idle_ms {
            return;
        }
    }
}

async fn pipe(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    start: Instant,
    last: &AtomicU64,
    moved: &AtomicU64,
    total: &AtomicU64,
) -> io::Result<()> {
    let mut buf: Option<Vec<u8>> = None;
    loop {
        if buf.is_none() {
            // Wait for data before taking a buffer, so an idle direction holds none.
            from.as_ref().readable().await?;
        }
        // Reads go into spare capacity: the buffer is never zeroed.
        let b = buf.get_or_insert_with(|| Vec::with_capacity(BUFFER));
        let n = from.read_buf(b).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        to.write_all(b).await?;
        b.clear();
        moved.fetch_add(n as u64, Ordering::Relaxed);
        total.fetch_add(n as u64, Ordering::Relaxed);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        if n < BUFFER {
            buf = None;
        }
    }
}
