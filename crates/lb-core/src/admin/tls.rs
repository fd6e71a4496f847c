//! HTTPS for the admin API (`[admin] tls = { cert, key }`): a handshake wrapped around each
//! accepted stream, so it composes with whatever loop accepts the connections.
//!
//! The certificates are loaded with [`certs::server_config`](crate::certs::server_config)
//! (the terminating listeners' loader) at start and on every reload, and only `http/1.1`
//! is offered by ALPN: the admin API speaks HTTP/1.1, so a browser must not pick h2.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{handle, AdminState};
use crate::config::AdminConfig;
use crate::server::Shutdown;

/// A client has this long to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin API's TLS server settings, built from `[admin] tls`.
pub struct AdminTls {
    #[cfg(feature = "tls")]
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminTls")
    }
}

/// Why `[admin] tls` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminTlsError {
    /// A certificate or key file could not be loaded.
    #[cfg(feature = "tls")]
    #[error("[admin] tls: {0}")]
    Cert(#[from] crate::certs::CertError),
    /// This build of lb-core has no TLS (feature `tls`).
    #[error("[admin] tls is set, but this build has no TLS support (lb-core feature `tls`)")]
    NotBuilt,
}

impl AdminTls {
    /// Loads `config.tls` (reading the files now); `None` when the admin API is plain HTTP.
    pub fn load(config: &AdminConfig) -> Result<Option<AdminTls>, AdminTlsError> {
        let Some(files) = &config.tls else {
            return Ok(None);
        };
        #[cfg(feature = "tls")]
        {
            let mut server = (*crate::certs::server_config(files)?).clone();
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Some(AdminTls {
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            }))
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = files;
            Err(AdminTlsError::NotBuilt)
        }
    }
}

/// Serves one accepted admin connection: over TLS when `[admin] tls` is set (a failed or
/// slow handshake closes it), else plain HTTP/1.1.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<AdminState>,
    stop: Shutdown,
) {
    #[cfg(feature = "tls")]
    if let Some(tls) = state.tls() {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
            Ok(Ok(s)) => serve_io(s, peer, state, stop).await,
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, error = %e, "admin TLS handshake failed")
            }
            Err(_) => tracing::debug!(client = %peer, "admin TLS handshake timed out"),
        }
        return;
    }
    serve_io(stream, peer, state, stop).await
}

/// HTTP/1.1 with keep-alive on any byte stream.
async fn serve_io<S>(io: S, peer: SocketAddr, state: Arc<AdminState>, mut stop: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    // On drain: the request in flight is answered, then the connection closes.
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.stopped() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(client = %peer, error = %e, "admin connection ended");
    }
}
