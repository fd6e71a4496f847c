//! An upstream connection after a `101`: the bytes read after its head first, then the
//! connection itself, for the tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stream::{read_first, write_through, UpstreamStream as Io};

/// An upgraded upstream connection: the bytes that came after the 101 head first, then
/// the connection itself.
pub struct Upgraded {
    pub(super) pre: Bytes,
    pub(super) io: Io,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if read_first(&mut this.pre, buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    write_through!(io);

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Upgraded {
    /// True on plain TCP (see [`Upgraded::tcp`]).
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self.io, crate::stream::MaybeTls::Plain(_))
    }

    /// The bytes read after the 101, and the plain TCP socket, to splice the tunnel;
    /// `None` on TLS (the bytes then stay first in line for reads).
    pub(crate) fn tcp(&mut self) -> Option<(Bytes, &tokio::net::TcpStream)> {
        match &self.io {
            crate::stream::MaybeTls::Plain(s) => Some((std::mem::take(&mut self.pre), s)),
            crate::stream::MaybeTls::Tls(_) => None,
        }
    }
}
