//! A connection's byte stream, plain TCP or TLS over TCP: a client's (TLS terminated
//! here, [`ClientStream`]) or a backend's (upstream TLS, [`UpstreamStream`]).

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Plain TCP, or TLS over TCP. The TLS state (a few KB of rustls buffers) is boxed so a
/// plain connection does not carry its size.
pub enum MaybeTls<T> {
    /// Cleartext.
    Plain(TcpStream),
    /// TLS, handshake done.
    Tls(Box<T>),
}

/// A client connection.
///
/// A plain one starts [`ClientStream::Fresh`]: accepted non-blocking and not registered
/// with the runtime's poller. Its first read and its writes are tried on the socket
/// directly; the first call that would block, or a second read, registers it (one
/// `epoll_ctl`), and from then on it is a tokio `TcpStream`. A client that sends its
/// request with the connection and asks to close after the answer (the usual short-lived
/// client) is served without the poller ever seeing its socket: two `epoll_ctl` calls
/// (add, then delete at close) less per connection, as HAProxy's speculative reads do.
/// (Only one read is tried directly: such a read must zero its buffer first, where
/// tokio's reads into uninitialised memory.)
pub(crate) enum ClientStream {
    /// Not registered yet.
    Fresh {
        /// The socket (`None` once registering failed).
        sock: Option<std::net::TcpStream>,
        /// Its one direct read was made.
        read: bool,
    },
    /// Registered with the poller: plain TCP, or TLS (the server side of rustls).
    Ready(Registered),
}

/// A client stream registered with the poller.
type Registered = MaybeTls<tokio_rustls::server::TlsStream<TcpStream>>;

impl ClientStream {
    /// A TLS connection, handshake done.
    pub(crate) fn tls(s: tokio_rustls::server::TlsStream<TcpStream>) -> ClientStream {
        ClientStream::Ready(MaybeTls::Tls(Box::new(s)))
    }

    /// A plain connection already registered with the poller.
    pub(crate) fn plain(s: TcpStream) -> ClientStream {
        ClientStream::Ready(MaybeTls::Plain(s))
    }

    /// True for a cleartext stream (where h2c may be spoken, and a shutdown is only a FIN).
    pub(crate) fn is_plain(&self) -> bool {
        match self {
            ClientStream::Fresh { .. } => true,
            ClientStream::Ready(s) => s.is_plain(),
        }
    }

    /// The plain TCP socket (registered with the poller first), for splicing a tunnel;
    /// `None` for TLS.
    pub(crate) fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self.register().ok()? {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(_) => None,
        }
    }

    /// Registers a fresh socket with the poller (a no-op once registered).
    fn register(&mut self) -> io::Result<&mut Registered> {
        if let ClientStream::Fresh { sock, .. } = self {
            let s = sock.take().ok_or_else(unregistered)?;
            *self = ClientStream::Ready(MaybeTls::Plain(TcpStream::from_std(s)?));
        }
        match self {
            ClientStream::Ready(s) => Ok(s),
            ClientStream::Fresh { .. } => Err(unregistered()),
        }
    }

    /// Sends some of `buf` with `MSG_MORE` on plain TCP (the bytes wait for more, or for
    /// the FIN of [`ClientStream::shutdown_write`]); TLS writes as usual.
    pub(crate) fn poll_send_more(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_either(
            cx,
            |s| send_more(s, buf),
            |s, cx| match s.get_mut() {
                MaybeTls::Plain(s) => loop {
                    ready!(s.poll_write_ready(cx))?;
                    let sent = s.try_io(tokio::io::Interest::WRITABLE, || send_more(&*s, buf));
                    match sent {
                        // Readiness was cleared: wait for the next.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        other => return Poll::Ready(other),
                    }
                },
                tls => Pin::new(tls).poll_write(cx, buf),
            },
        )
    }

    /// Shuts the write side of plain TCP at once (the FIN; nothing for TLS).
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        let shut = |fd| Ok(rustix::net::shutdown(fd, rustix::net::Shutdown::Write)?);
        match self {
            ClientStream::Fresh { sock: Some(s), .. } => shut(s.as_fd()),
            ClientStream::Ready(MaybeTls::Plain(s)) => shut(s.as_fd()),
            _ => Ok(()),
        }
    }

    /// A write: `fresh` on a fresh socket, else (or once that would block) `ready` on the
    /// registered stream (the one place that decides between them for every write).
    #[inline]
    fn poll_either<R>(
        &mut self,
        cx: &mut Context<'_>,
        fresh: impl FnMut(&std::net::TcpStream) -> io::Result<R>,
        ready: impl FnOnce(Pin<&mut Registered>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if let ClientStream::Fresh { sock, .. } = self {
            if let Some(r) = try_fresh(sock, fresh) {
                return Poll::Ready(r);
            }
        }
        ready(Pin::new(self.register()?), cx)
    }
}

/// `send(2)` with `MSG_MORE`: the bytes wait in the socket for more, or for the FIN.
fn send_more(s: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(s, buf, rustix::net::SendFlags::MORE)?)
}

fn unregistered() -> io::Error {
    io::Error::other("client socket could not be registered with the poller")
}

/// Runs `op` on a fresh socket; `None` when it would block (register and go on).
fn try_fresh<R>(
    s: &mut Option<std::net::TcpStream>,
    mut op: impl FnMut(&std::net::TcpStream) -> io::Result<R>,
) -> Option<io::Result<R>> {
    let s = s.as_ref()?;
    loop {
        match op(s) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            other => return Some(other),
        }
    }
}

impl AsyncRead for ClientStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let ClientStream::Fresh { sock, read } = this {
            if !*read {
                if let Some(r) = try_fresh(sock, |mut s| s.read(buf.initialize_unfilled())) {
                    *read = true;
                    return Poll::Ready(r.map(|n| buf.advance(n)));
                }
            }
        }
        Pin::new(this.register()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_either(cx, |mut s| s.write(buf), |s, cx| s.poll_write(cx, buf))
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_either(
            cx,
            |mut s| s.write_vectored(bufs),
            |s, cx| s.poll_write_vectored(cx, bufs),
        )
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Fresh { .. } => true,
            ClientStream::Ready(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Fresh { .. } => Poll::Ready(Ok(())),
            ClientStream::Ready(s) => Pin::new(s).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            this @ ClientStream::Fresh { .. } => Poll::Ready(this.shutdown_write()),
            ClientStream::Ready(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Inside an `impl AsyncWrite for` a wrapper: `poll_write`, `poll_write_vectored`,
/// `is_write_vectored` and `poll_flush` passed to the wrapper's field `$field` unchanged.
/// The impl writes `poll_shutdown` itself, which is where wrappers differ.
macro_rules! write_through {
    ($field:ident) => {
        #[inline]
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
        }

        #[inline]
        fn poll_write_vectored(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.get_mut().$field).poll_write_vectored(cx, bufs)
        }

        #[inline]
        fn is_write_vectored(&self) -> bool {
            self.$field.is_write_vectored()
        }

        #[inline]
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.get_mut().$field).poll_flush(cx)
        }
    };
}
pub(crate) use write_through;

/// A connection to a backend: TLS is the client side of rustls.
pub(crate) type UpstreamStream = MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;

/// Hands out bytes read from a stream earlier (and put back) before the stream is read
/// again: true when `pre` had some, which then went into `buf` (as much as fits).
pub(crate) fn read_first(pre: &mut bytes::Bytes, buf: &mut ReadBuf<'_>) -> bool {
    if pre.is_empty() {
        return false;
    }
    let n = pre.len().min(buf.remaining());
    buf.put_slice(&pre.split_to(n));
    true
}

impl<T> MaybeTls<T> {
    /// True for a cleartext stream (where h2c may be spoken, and a shutdown is only a FIN).
    pub fn is_plain(&self) -> bool {
        matches!(self, MaybeTls::Plain(_))
    }
}

impl UpstreamStream {
    /// The TCP connection under any TLS (for its readiness).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(s) => s.get_ref().0,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for MaybeTls<T> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<T> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
