//! Opening one upstream connection: TCP, the PROXY header, TLS, then our own HTTP/1.1
//! client ([`H1Conn`], driven by the request's task) or hyper's HTTP/2 handshake (with the
//! connection driven by a task of its own).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lb_core::config::{PoolConfig, ProxyProtocol, UpstreamProtocol};
use lb_core::proxy_protocol::{self, Header};
use lb_core::tls::ClientTlsError;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::h1::{H1Conn, Io};
use super::Origin;
use crate::error::{BodyError, H1Error};
use crate::request::body::ReqBody;
use lb_core::metrics::Reason;

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed.
    #[error("connect to {addr}: {source}")]
    Io {
        /// The backend.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// TCP connect (with the PROXY header and the TLS handshake) did not finish in time.
    #[error("connect to {addr} timed out after {after:?}")]
    Timeout {
        /// The backend.
        addr: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// The PROXY protocol header could not be written.
    #[error("PROXY header to {addr}: {source}")]
    ProxyHeader {
        /// The backend.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The TLS handshake failed (certificate, name, protocol).
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        /// The backend.
        addr: SocketAddr,
        /// rustls' error, as tokio-rustls reports it.
        source: io::Error,
    },
    /// The HTTP/2 handshake failed.
    #[error("handshake with {addr}: {source}")]
    Handshake {
        /// The backend.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// A request sender on one upstream connection.
pub(crate) enum Sender {
    /// HTTP/1.1: the connection itself, one exchange at a time.
    H1(Box<H1Conn>),
    /// HTTP/2: a handle on a multiplexed connection (cloning it shares the connection).
    H2(http2::SendRequest<ReqBody>),
}

/// An exchange that failed; the request's body comes back when the request never left.
pub struct SendFailed {
    /// What failed.
    pub error: Box<dyn std::error::Error + Send + Sync>,
    /// The unsent request's body.
    pub body: Option<ReqBody>,
    /// No response head came by the deadline.
    pub timed_out: bool,
}

impl SendFailed {
    /// Why the exchange failed when the client, not the backend, is to blame: its
    /// request body was malformed, shorter than announced or reset (`400`), or over
    /// `max_body_bytes` (`413`). Such a failure is never reported against the backend.
    pub fn client_fault(&self) -> Option<Reason> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*self.error);
        while let Some(e) = cause {
            if let Some(h1) = e.downcast_ref::<H1Error>() {
                match h1 {
                    H1Error::BodyLength => return Some(Reason::BadRequest),
                    H1Error::Body(b) => return Some(body_fault(b)),
                    _ => {}
                }
            }
            if let Some(b) = e.downcast_ref::<BodyError>() {
                return Some(body_fault(b));
            }
            cause = e.source();
        }
        None
    }
}

/// The client's reason for a failed request body.
pub(crate) fn body_fault(e: &BodyError) -> Reason {
    match e {
        BodyError::TooLarge(_) => Reason::BodyTooLarge,
        // A client that stops sending its body: the client's timeout (408), as nginx's
        // `client_body_timeout`.
        BodyError::Client(crate::error::ClientBodyError::Stalled) => Reason::HeaderTimeout,
        _ => Reason::BadRequest,
    }
}

impl Sender {
    /// True when the connection is known to be gone (HTTP/2; an idle HTTP/1.1
    /// connection is checked when it is taken from its pool).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Sender::H1(_) => false,
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// True when the connection can take a request now.
    pub(super) async fn ready(&mut self) -> bool {
        match self {
            Sender::H1(c) => c.idle_usable(),
            Sender::H2(s) => s.ready().await.is_ok(),
        }
    }

    /// Another handle on an HTTP/2 connection; `None` for HTTP/1.1 (not shareable).
    pub(super) fn share(&self) -> Option<Sender> {
        match self {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Sender::H2(s.clone())),
        }
    }
}

/// How connections to a pool's backends are made.
pub(super) struct Link {
    pub(super) protocol: UpstreamProtocol,
    pub(super) tls: Option<TlsLink>,
    pub(super) proxy_protocol: Option<proxy_protocol::Version>,
}

pub(super) struct TlsLink {
    connector: TlsConnector,
    /// `sni`, or `None` for the backend's IP address.
    name: Option<ServerName<'static>>,
}

impl Link {
    /// Plain HTTP/1.1 (directories).
    pub(super) fn plain() -> Link {
        Link {
            protocol: UpstreamProtocol::Http1,
            tls: None,
            proxy_protocol: None,
        }
    }

    /// As a pool's config says: `protocol`, `tls` (reads the CA file now) and
    /// `proxy_protocol`.
    pub(super) fn for_pool(cfg: &PoolConfig) -> Result<Link, ClientTlsError> {
        let tls = match &cfg.tls {
            None => None,
            Some(t) => {
                let alpn: &[u8] = match cfg.protocol {
                    UpstreamProtocol::Http1 => b"http/1.1",
                    UpstreamProtocol::H2 => b"h2",
                };
                let config = lb_core::tls::client_config(t.verify, t.ca.as_deref(), &[alpn])?;
                let name = t
                    .sni
                    .as_deref()
                    .and_then(|s| ServerName::try_from(s.to_owned()).ok());
                Some(TlsLink {
                    connector: TlsConnector::from(Arc::new(config)),
                    name,
                })
            }
        };
        let proxy_protocol = cfg.proxy_protocol.map(|v| match v {
            ProxyProtocol::V1 => proxy_protocol::Version::V1,
            ProxyProtocol::V2 => proxy_protocol::Version::V2,
        });
        Ok(Link {
            protocol: cfg.protocol,
            tls,
            proxy_protocol,
        })
    }

    /// TCP, then the PROXY header, then TLS, all within `timeout`; then hyper's
    /// handshake for the pool's protocol.
    pub(super) async fn connect(
        &self,
        addr: SocketAddr,
        origin: &Origin<'_>,
        timeout: Duration,
    ) -> Result<Sender, ConnectError> {
        let connecting = async {
            let mut stream = TcpStream::connect(addr)
                .await
                .map_err(|source| ConnectError::Io { addr, source })?;
            let _ = stream.set_nodelay(true);
            if let Some(version) = self.proxy_protocol {
                let header = Header {
                    version,
                    src: origin.client,
                    dst: origin.local,
                }
                .encode();
                stream
                    .write_all(header.as_bytes())
                    .await
                    .map_err(|source| ConnectError::ProxyHeader { addr, source })?;
            }
            match &self.tls {
                None => Ok(Io::Plain(stream)),
                Some(tls) => {
                    let name = tls
                        .name
                        .clone()
                        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
                    let stream = tls
                        .connector
                        .connect(name, stream)
                        .await
                        .map_err(|source| ConnectError::Tls { addr, source })?;
                    Ok(Io::Tls(Box::new(stream)))
                }
            }
        };
        let stream = match tokio::time::timeout(timeout, connecting).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ConnectError::Timeout {
                    addr,
                    after: timeout,
                })
            }
        };
        handshake(stream, self.protocol, addr).await
    }
}

/// Never happens: kept as an error rather than a panic.
pub(super) fn unreachable_h1(
    addr: SocketAddr,
) -> Result<http2::SendRequest<ReqBody>, ConnectError> {
    Err(ConnectError::Io {
        addr,
        source: io::Error::other("HTTP/1.1 connection on an h2 pool"),
    })
}

/// Our HTTP/1.1 client on `io` (nothing to exchange first), or hyper's HTTP/2 handshake
/// with the connection driven by a task of its own.
async fn handshake(
    io: Io,
    protocol: UpstreamProtocol,
    addr: SocketAddr,
) -> Result<Sender, ConnectError> {
    match protocol {
        UpstreamProtocol::Http1 => Ok(Sender::H1(Box::new(H1Conn::new(io)))),
        UpstreamProtocol::H2 => match io {
            Io::Plain(s) => handshake_h2(s, addr).await,
            Io::Tls(s) => handshake_h2(*s, addr).await,
        },
    }
}

async fn handshake_h2<I>(io: I, addr: SocketAddr) -> Result<Sender, ConnectError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(io)
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(backend = %addr, error = %e, "upstream h2 connection ended");
        }
    });
    Ok(Sender::H2(sender))
}
