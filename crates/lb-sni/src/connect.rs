//! The connection to a backend, opened with as few system calls as the job needs.
//!
//! `TCP_NODELAY` is set before `connect`, and the connect's outcome is not asked with
//! `getsockopt(SO_ERROR)` as tokio's `TcpStream::connect` does: the caller waits until
//! the socket is writable (connected or failed) and its first write, the preamble that
//! every connection sends, reports a refused or unreachable backend
//! ([`is_connect_error`]).

use std::io;
use std::net::SocketAddr;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use tokio::net::TcpStream;

/// Starts a non-blocking connect to `addr` with `TCP_NODELAY`; the stream is writable once
/// the connection is made or has failed.
pub(crate) fn start(addr: SocketAddr) -> io::Result<TcpStream> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    rustix::net::sockopt::set_tcp_nodelay(&fd, true)?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    TcpStream::from_std(std::net::TcpStream::from(fd))
}

/// True when a write failed because the connection was never made.
pub(crate) fn is_connect_error(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::TimedOut
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::AddrNotAvailable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A connection comes up with TCP_NODELAY; a port nobody listens on shows as a connect
    /// error on the first write.
    #[tokio::test]
    async fn connects_with_nodelay_and_a_refused_port_is_a_connect_error() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut up = start(addr).expect("start");
        up.writable().await.expect("writable");
        up.write_all(b"hi").await.expect("write");
        assert!(up.nodelay().expect("getsockopt"));
        let (_conn, _) = l.accept().await.expect("accept");

        drop(l);
        let mut up = start(addr).expect("start");
        up.writable().await.expect("writable");
        let e = up.write_all(b"hi").await.expect_err("refused");
        assert!(is_connect_error(&e), "{e:?}");
    }
}
