//! Active probes: the [`Checker`] trait and the TCP checker.
//!
//! A checker answers one question, "is this address healthy right now?", with `Ok(())` or
//! a [`CheckError`] saying why not. It keeps no state between probes (the
//! [`HealthState`](super::HealthState) does) and opens a fresh connection every time, so a
//! probe sees what a new client would see. Every provided checker bounds the whole probe
//! (connect, handshake, request, response head) by its `timeout`; the
//! [`HealthMonitor`](super::HealthMonitor) bounds it again, so a custom checker that forgets
//! cannot stall its backend's loop.
//!
//! Checkers are trait objects (they run on a timer, not per request): implement
//! [`Checker`] to probe something else (a gRPC health service, a Redis `PING`, ...).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::settings::{CheckKind, HealthSettings, ProbeOptions};
use crate::proxy_protocol::{Header, Version};

/// A boxed, sendable future (keeps [`Checker`] dyn-compatible).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A shareable error source.
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Why a probe failed. Cheap to clone (sources are shared), so it travels in
/// [`HealthEvent`](super::HealthEvent)s.
///
/// Every variant counts the same towards `fall` (one failed probe); the variant only says
/// why, in logs (`kind` field) and events. A custom [`Checker`] picks the closest one, or
/// [`CheckError::Other`] with its own label.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The TCP connection was refused, reset or unreachable.
    #[error("connect failed: {0}")]
    Connect(#[source] Arc<io::Error>),
    /// The probe did not finish within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The backend answered with another status than expected.
    #[error("status {got}, expected {expected}")]
    Status {
        /// The status received.
        got: u16,
        /// The status the settings expect.
        expected: u16,
    },
    /// The backend did not speak HTTP/1.1 properly (or closed before answering).
    #[error("HTTP exchange failed: {0}")]
    Protocol(#[source] Source),
    /// The TLS handshake failed (certificate, name, protocol).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] Source),
    /// A custom probe's own failure (a Redis `PING` answered `-LOADING`, a gRPC health
    /// service answered `NOT_SERVING`, ...), with a short label for logs.
    #[error("{kind} probe failed: {source}")]
    Other {
        /// A short machine-readable label (`redis`, `grpc`, ...), shown as `kind`.
        kind: &'static str,
        /// What went wrong.
        #[source]
        source: Source,
    },
}

impl CheckError {
    /// A custom probe's failure: `CheckError::other("redis", "answered -LOADING")`.
    pub fn other(
        kind: &'static str,
        reason: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> CheckError {
        CheckError::Other {
            kind,
            source: Arc::from(reason.into()),
        }
    }

    /// A short machine-readable label: `connect`, `timeout`, `status`, `protocol`, `tls`,
    /// or a custom probe's own label.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckError::Connect(_) => "connect",
            CheckError::Timeout(_) => "timeout",
            CheckError::Status { .. } => "status",
            CheckError::Protocol(_) => "protocol",
            CheckError::Tls(_) => "tls",
            CheckError::Other { kind, .. } => kind,
        }
    }
}

/// Why a checker could not be built from its settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckerError {
    /// The probe kind needs a cargo feature this build lacks (`http` or `tls`).
    #[error("{kind} health checks need lb-core's `{feature}` feature")]
    Unsupported {
        /// The probe kind.
        kind: &'static str,
        /// The missing feature.
        feature: &'static str,
    },
    /// The CA file could not be read or parsed.
    #[error("health check CA file {path:?}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        reason: Source,
    },
    /// The CA file (or the system bundle) holds no usable certificate.
    #[error("no trusted root certificate found in {0:?}")]
    NoRoots(Vec<PathBuf>),
    /// `sni` is not a valid DNS name or IP address.
    #[error("health check sni {0:?} is not a valid server name")]
    BadSni(String),
    /// The TLS client configuration was refused.
    #[error("health check TLS setup: {0}")]
    Tls(#[source] Source),
}

/// One active probe of one address: the extension point for health checks.
///
/// # Contract
/// - **Answer**: `Ok(())` means "send traffic here"; any `Err` is one failed probe. One
///   answer never flips a backend alone: the [`HealthState`](super::HealthState) takes it
///   down after `fall` failures in a row and up after `rise` successes.
/// - **No state between probes**: open a fresh connection (or otherwise see what a new
///   client would see); the monitor may call `check` for many addresses at once, from
///   several tasks, so `&self` must be shareable.
/// - **Timeouts**: bound the whole probe yourself and answer [`CheckError::Timeout`]. The
///   [`HealthMonitor`](super::HealthMonitor) also wraps every call in the pool's `timeout`
///   and counts expiry as a failure, so a checker that hangs costs one failed probe, never
///   a stuck loop.
/// - **Cancellation**: the future may be dropped at any `.await` (timeout, backend
///   removed, monitor stopped). Hold nothing that needs cleanup beyond `Drop`.
/// - **Addresses**: `addr` is the address to probe (the backend's, or its health `port`
///   override), never a name.
///
/// [`testing::check_checker`](super::testing::check_checker) runs these rules against
/// your implementation with real loopback sockets.
///
/// ```
/// use std::net::SocketAddr;
/// use lb_core::health::{BoxFuture, CheckError, Checker};
///
/// /// Healthy when the port accepts a connection and sends a banner starting with "OK".
/// struct Banner;
///
/// impl Checker for Banner {
///     fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>> {
///         Box::pin(async move {
///             use tokio::io::AsyncReadExt;
///             let mut s = tokio::net::TcpStream::connect(addr)
///                 .await
///                 .map_err(|e| CheckError::Connect(e.into()))?;
///             let mut buf = [0u8; 2];
///             s.read_exact(&mut buf).await.map_err(|e| CheckError::other("banner", e))?;
///             if &buf == b"OK" { Ok(()) } else { Err(CheckError::other("banner", "no OK banner")) }
///         })
///     }
/// }
/// ```
pub trait Checker: Send + Sync + 'static {
    /// Probes `addr` once: `Ok(())` when healthy.
    fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>>;
}

impl<C: Checker + ?Sized> Checker for Arc<C> {
    fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>> {
        (**self).check(addr)
    }
}

/// Runs `probe` with a deadline, turning expiry into [`CheckError::Timeout`].
pub(crate) async fn bounded<F>(timeout: Duration, probe: F) -> Result<(), CheckError>
where
    F: Future<Output = Result<(), CheckError>>,
{
    match tokio::time::timeout(timeout, probe).await {
        Ok(result) => result,
        Err(_) => Err(CheckError::Timeout(timeout)),
    }
}

/// Opens a TCP connection with no Nagle delay, and writes a PROXY header naming it first
/// when `proxy` is set.
pub(crate) async fn connect(
    addr: SocketAddr,
    proxy: Option<Version>,
) -> Result<TcpStream, CheckError> {
    let connect_err = |e: io::Error| CheckError::Connect(Arc::new(e));
    let mut stream = TcpStream::connect(addr).await.map_err(connect_err)?;
    // A probe writes one small request; a failure to set the option changes nothing.
    let _ = stream.set_nodelay(true);
    if let Some(version) = proxy {
        let src = stream.local_addr().map_err(connect_err)?;
        let header = Header {
            version,
            src,
            dst: addr,
        }
        .encode();
        stream
            .write_all(header.as_bytes())
            .await
            .map_err(connect_err)?;
    }
    Ok(stream)
}

/// Healthy when a TCP connection to the address is accepted within the timeout (and,
/// with a PROXY header to send, when the header could be written).
#[derive(Clone, Debug)]
pub struct TcpChecker {
    timeout: Duration,
    proxy: Option<Version>,
}

impl TcpChecker {
    /// A TCP connect probe bounded by `timeout`.
    pub fn new(timeout: Duration) -> TcpChecker {
        TcpChecker {
            timeout,
            proxy: None,
        }
    }

    /// Sends a PROXY header of this version first on each probe connection.
    pub fn with_proxy_protocol(mut self, version: Option<Version>) -> TcpChecker {
        self.proxy = version;
        self
    }
}

impl Checker for TcpChecker {
    fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>> {
        Box::pin(bounded(self.timeout, async move {
            connect(addr, self.proxy).await.map(drop)
        }))
    }
}

/// The checker for a pool's settings: `Ok(None)` for `kind = "none"`.
///
/// HTTPS checkers load their CA file here, so a missing or empty file is reported once at
/// setup rather than as a failing probe.
pub fn checker_for(settings: &HealthSettings) -> Result<Option<Arc<dyn Checker>>, CheckerError> {
    let timeout = settings.timeout;
    let probe: ProbeOptions = settings.probe;
    let checker: Arc<dyn Checker> = match &settings.kind {
        CheckKind::None => return Ok(None),
        CheckKind::Tcp => {
            Arc::new(TcpChecker::new(timeout).with_proxy_protocol(probe.proxy_protocol))
        }
        #[cfg(feature = "http")]
        CheckKind::Http { path, expect } => Arc::new(
            super::http::HttpChecker::new(path.clone(), *expect, timeout).with_options(probe),
        ),
        #[cfg(not(feature = "http"))]
        CheckKind::Http { .. } => {
            return Err(CheckerError::Unsupported {
                kind: "http",
                feature: "http",
            })
        }
        #[cfg(feature = "tls")]
        CheckKind::Https {
            path,
            expect,
            sni,
            verify,
            ca,
        } => Arc::new(super::tls::HttpsChecker::with_options(
            path.clone(),
            *expect,
            sni.clone(),
            *verify,
            ca.as_deref(),
            timeout,
            probe,
        )?),
        #[cfg(not(feature = "tls"))]
        CheckKind::Https { .. } => {
            return Err(CheckerError::Unsupported {
                kind: "https",
                feature: "tls",
            })
        }
    };
    Ok(Some(checker))
}
