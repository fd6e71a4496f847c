//! HTTPS probes: the HTTP probe over a rustls client built by [`crate::tls`].
//!
//! The server name sent and verified is `sni` when set, else the backend's IP address
//! (verified against the certificate's IP SANs; no SNI is sent for an IP). With
//! `verify = true` the chain is checked against the roots of `ca` (a PEM file), or against
//! the system bundle (`SSL_CERT_FILE`, then the usual Debian/Red Hat/Alpine/macOS paths)
//! when there is no `ca`. With `verify = false` any certificate is accepted, but the
//! handshake signatures are still checked, so the peer must hold the key of the
//! certificate it shows: the probe proves the backend speaks TLS, not who it is.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::check::{bounded, connect, BoxFuture, CheckError, Checker, CheckerError, Source};
use super::http::{get, normalize_path};
use super::settings::ProbeOptions;
use crate::tls::{client_config, ClientTlsError};

/// Healthy when `GET path` over TLS answers `expect` within the timeout.
#[derive(Clone)]
pub struct HttpsChecker {
    path: String,
    expect: u16,
    sni: Option<ServerName<'static>>,
    host: Option<String>,
    connector: TlsConnector,
    timeout: Duration,
    probe: ProbeOptions,
}

impl std::fmt::Debug for HttpsChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsChecker")
            .field("path", &self.path)
            .field("expect", &self.expect)
            .field("sni", &self.sni)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpsChecker {
    /// A probe of `path` expecting `expect`, with the given server name, verification and
    /// trusted roots (see the [module docs](self)). Reads the CA file now.
    pub fn new(
        path: impl Into<String>,
        expect: u16,
        sni: Option<String>,
        verify: bool,
        ca: Option<&Path>,
        timeout: Duration,
    ) -> Result<HttpsChecker, CheckerError> {
        Self::with_options(
            path,
            expect,
            sni,
            verify,
            ca,
            timeout,
            ProbeOptions::default(),
        )
    }

    /// Like [`HttpsChecker::new`], sending a PROXY header before the handshake and/or
    /// speaking HTTP/2 (ALPN `h2` only) as `probe` says.
    pub fn with_options(
        path: impl Into<String>,
        expect: u16,
        sni: Option<String>,
        verify: bool,
        ca: Option<&Path>,
        timeout: Duration,
        probe: ProbeOptions,
    ) -> Result<HttpsChecker, CheckerError> {
        let alpn: &[&[u8]] = if probe.http2 {
            &[b"h2"]
        } else {
            &[b"http/1.1"]
        };
        let config = client_config(verify, ca, alpn)?;
        let server_name = sni
            .as_ref()
            .map(|s| ServerName::try_from(s.clone()).map_err(|_| CheckerError::BadSni(s.clone())))
            .transpose()?;
        Ok(HttpsChecker {
            path: normalize_path(path.into()),
            expect,
            sni: server_name,
            host: sni,
            connector: TlsConnector::from(Arc::new(config)),
            timeout,
            probe,
        })
    }
}

impl Checker for HttpsChecker {
    fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>> {
        Box::pin(bounded(self.timeout, async move {
            let stream = connect(addr, self.probe.proxy_protocol).await?;
            let name = match &self.sni {
                Some(name) => name.clone(),
                None => ServerName::IpAddress(addr.ip().into()),
            };
            let tls = self
                .connector
                .connect(name, stream)
                .await
                .map_err(|e| CheckError::Tls(Arc::new(e) as Source))?;
            let host = match &self.host {
                Some(h) => h.clone(),
                None => addr.to_string(),
            };
            let h2 = self.probe.http2.then_some("https");
            get(tls, &self.path, &host, self.expect, h2).await
        }))
    }
}

impl From<ClientTlsError> for CheckerError {
    fn from(e: ClientTlsError) -> CheckerError {
        match e {
            ClientTlsError::Ca { path, reason } => CheckerError::Ca { path, reason },
            ClientTlsError::NoRoots(paths) => CheckerError::NoRoots(paths),
            ClientTlsError::Rustls(source) => CheckerError::Tls(source),
        }
    }
}
