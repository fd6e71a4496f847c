//! The tunnel between two plain TCP sockets: splice(2) through a pipe once data flows in
//! bulk, a user-space copy before that and wherever a pipe cannot be had.
//!
//! Each direction starts as the generic tunnel does: it waits for readiness without a
//! buffer, reads into a [`BUFFER`]-byte buffer and writes it out. A read that fills the
//! buffer means bulk data: the direction then creates its pipe (once; it keeps it for the
//! tunnel's life) and from there moves bytes socket → pipe → socket with splice(2), which
//! never copies them through user space. Short exchanges (a TLS handshake, a keep-alive
//! request) therefore cost no pipe at all: no `pipe2`, no `close`. When the pipe cannot be
//! created (`EMFILE`, `ENFILE`, ...) the direction keeps copying; the connection never
//! fails for it.
//!
//! The pipe is a buffer: it is filled only while empty and then drained completely before
//! the next fill. That keeps both `EAGAIN`s unambiguous: filling an empty pipe can only
//! block on the source socket, draining bytes that are known to be in the pipe only on the
//! destination socket, so each is reported to tokio as that socket's readiness (through
//! [`TcpStream::try_io`]) and never as the other's. The bytes in the pipe are tracked and
//! counted when they reach the destination, so none is lost, duplicated or counted before
//! it is delivered. At EOF the pipe is empty (it was drained before the read that saw
//! EOF), and the destination's write half is shut down, as in the generic tunnel.
//!
//! Memory: a pipe holds pages only while bytes are in it, at most its capacity (64 KiB by
//! default on Linux, [`PIPE_BYTES`]); an idle direction holds neither buffer nor pages.
//!
//! A write into a socket whose peer has gone may raise `SIGPIPE` from splice(2) as from
//! `write(2)`; Rust programs ignore `SIGPIPE` by default, and the write fails with `EPIPE`.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Counts, Dir, End, Flow, BUFFER};

/// Bytes asked of one splice(2) into an empty pipe: Linux's default pipe capacity.
/// Raising it (`F_SETPIPE_SZ`) would cost a syscall per pipe and more pinned pages per
/// direction; a larger pipe is only worth it once measured.
pub const PIPE_BYTES: usize = 64 * 1024;

/// [`splice`](super::splice) for two plain TCP sockets: the same half-close, idle timeout
/// and counting (`up_total`/`down_total`, client → backend and back, added to as bytes are
/// delivered), with bulk data moved by splice(2): a direction copies through a
/// [`BUFFER`]-byte buffer until a read fills it, then takes a pipe (kept for the tunnel)
/// and moves its bytes socket → pipe → socket without copying them through user space. A
/// short exchange costs no pipe; when none can be created (`EMFILE`, ...) the direction
/// keeps copying. [`Moved::spliced`](super::Moved::spliced) counts the bytes that went
/// through pipes.
///
/// When both directions reach EOF, the side that ended last is not shut down: the caller
/// closes (drops) both sockets once this returns, and that close sends its FIN.
///
/// ```no_run
/// # async fn demo(client: tokio::net::TcpStream, backend: tokio::net::TcpStream) {
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
/// use std::time::Duration;
/// use lb_core::server::tunnel::{splice_tcp, End};
///
/// let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
/// if let End::Closed(m) = splice_tcp(&client, &backend, Duration::from_secs(60), &up, &down).await {
///     println!("{} bytes up, {} down, {} of them spliced", m.up, m.down, m.spliced);
/// }
/// # }
/// ```
pub async fn splice_tcp(
    client: &TcpStream,
    upstream: &TcpStream,
    idle: Duration,
    up_total: &AtomicU64,
    down_total: &AtomicU64,
) -> End {
    let flow = Flow::new(up_total, down_total);
    let ended = AtomicBool::new(false);
    let both = async {
        tokio::try_join!(
            direction(client, upstream, flow.counts(Dir::Up), &ended),
            direction(upstream, client, flow.counts(Dir::Down), &ended)
        )
    };
    flow.run(both, idle).await
}

/// Moves `from`'s bytes to `to` until `from` ends, then shuts down `to`'s write half,
/// unless the other direction has `ended` already: the tunnel is over, and closing `to`
/// sends that FIN (its receive queue is empty, so the close is graceful), one `shutdown`
/// fewer per connection.
async fn direction(
    from: &TcpStream,
    to: &TcpStream,
    counts: Counts<'_>,
    ended: &AtomicBool,
) -> io::Result<()> {
    let mut buf: Option<Vec<u8>> = None;
    let mut pipe: Option<Pipe> = None;
    // False once a pipe could not be created: this direction copies from then on.
    let mut may_pipe = true;
    loop {
        if let Some(p) = &pipe {
            let n = p.fill(from).await?;
            if n == 0 {
                break;
            }
            p.drain(to, n, counts).await?;
            continue;
        }
        // Wait for data before taking a buffer, so an idle direction holds none.
        from.readable().await?;
        let b = buf.get_or_insert_with(|| Vec::with_capacity(BUFFER));
        let n = match try_recv(from, b) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        write_all(to, b).await?;
        b.clear();
        counts.add(n, false);
        if n < BUFFER {
            buf = None;
        } else if may_pipe {
            // A full buffer: bulk data. From here on it goes through a pipe.
            match Pipe::new() {
                Ok(p) => {
                    pipe = Some(p);
                    buf = None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for splice(2): copying instead");
                    may_pipe = false;
                }
            }
        }
    }
    if ended.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    shutdown_write(to)
}

/// Reads what `stream` has into `buf`'s spare capacity (reserve it first) with one
/// `recv(2)`, without waiting: `Ok(0)` at EOF, `WouldBlock` when nothing is there.
///
/// A short read (fewer bytes than there was room for) took everything the socket had, so
/// it also clears the socket's read readiness in tokio, as an `EAGAIN` would: the next wait
/// sleeps until new data arrives (epoll's next edge) instead of costing a `recv` that
/// fails with `EAGAIN`. Data arriving in between is not missed: tokio keeps the readiness
/// when an event came after the one this read consumed.
pub fn try_recv(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    use rustix::buffer::spare_capacity;
    use rustix::net::{recv, RecvFlags};
    let room = buf.capacity() - buf.len();
    if room == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no spare capacity",
        ));
    }
    let mut got = None;
    let r = stream.try_io(Interest::READABLE, || {
        let (n, _) = recv(stream, spare_capacity(buf), RecvFlags::empty())?;
        got = Some(n);
        if n > 0 && n < room {
            // Drained: tokio clears the readiness on WouldBlock; the bytes are in `got`.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match got {
        Some(n) => Ok(n),
        None => r,
    }
}

/// Writes all of `data` to `to`, waiting for writability as needed.
async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Passes EOF on: shuts down the write half (the read half stays open, TCP half-close).
fn shutdown_write(to: &TcpStream) -> io::Result<()> {
    rustix::net::shutdown(to, rustix::net::Shutdown::Write).map_err(io::Error::from)
}

/// The pipe of one direction: bytes move socket → `w` … `r` → socket.
struct Pipe {
    r: std::os::fd::OwnedFd,
    w: std::os::fd::OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Pipe { r, w })
    }

    /// Moves what `from` has (up to [`PIPE_BYTES`]) into the pipe, which must be empty:
    /// the bytes now in the pipe, 0 at EOF.
    async fn fill(&self, from: &TcpStream) -> io::Result<usize> {
        loop {
            from.readable().await?;
            // The pipe is empty, so EAGAIN can only mean `from` has nothing: `try_io`
            // clears its read readiness, and the next `readable` waits for more.
            let r = from.try_io(Interest::READABLE, || splice(from, &self.w, PIPE_BYTES));
            match r {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the `n` bytes in the pipe to `to`, counting them as they arrive.
    async fn drain(&self, to: &TcpStream, mut n: usize, counts: Counts<'_>) -> io::Result<()> {
        while n > 0 {
            to.writable().await?;
            // `n` bytes are in the pipe, so EAGAIN can only mean `to` is full.
            match to.try_io(Interest::WRITABLE, || splice(&self.r, to, n)) {
                // Unreachable while the pipe holds bytes; never spin on it.
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    n -= k;
                    counts.add(k, true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One non-blocking splice(2) of up to `len` bytes (`EAGAIN` as `WouldBlock`).
fn splice(
    from: impl std::os::fd::AsFd,
    to: impl std::os::fd::AsFd,
    len: usize,
) -> io::Result<usize> {
    use rustix::pipe::SpliceFlags;
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    Ok(rustix::pipe::splice(from, None, to, None, len, flags)?)
}
