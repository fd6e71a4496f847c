//! HTTPS probes: the HTTP probe over a rustls client (ring provider).
//!
//! The server name sent and verified is `sni` when set, else the backend's IP address
//! (verified against the certificate's IP SANs; no SNI is sent for an IP). With
//! `verify = true` the chain is checked against the roots of `ca` (a PEM file), or against
//! the system bundle (`SSL_CERT_FILE`, then the usual Debian/Red Hat/Alpine/macOS paths)
//! when there is no `ca`. With `verify = false` any certificate is accepted, but the
//! handshake signatures are still checked, so the peer must hold the key of the
//! certificate it shows: the probe proves the backend speaks TLS, not who it is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use super::check::{bounded, connect, BoxFuture, CheckError, Checker, CheckerError, Source};
use super::http::{get, normalize_path};

/// Where the system's trusted roots usually are, after `SSL_CERT_FILE`.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Healthy when `GET path` over TLS answers `expect` within the timeout.
#[derive(Clone)]
pub struct HttpsChecker {
    path: String,
    expect: u16,
    sni: Option<ServerName<'static>>,
    host: Option<String>,
    connector: TlsConnector,
    timeout: Duration,
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CheckerError::Tls(Arc::new(e)))?;
        let mut config = if verify {
            builder
                .with_root_certificates(roots(ca)?)
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
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
        })
    }
}

impl Checker for HttpsChecker {
    fn check<'a>(&'a self, addr: SocketAddr) -> BoxFuture<'a, Result<(), CheckError>> {
        Box::pin(bounded(self.timeout, async move {
            let stream = connect(addr).await?;
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
            get(tls, &self.path, &host, self.expect).await
        }))
    }
}

/// The trusted roots: `ca`'s certificates, or the first system bundle that has some.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, CheckerError> {
    let mut store = RootCertStore::empty();
    let candidates: Vec<PathBuf> = match ca {
        Some(path) => vec![path.to_owned()],
        None => std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
            .collect(),
    };
    for path in &candidates {
        if ca.is_none() && !path.is_file() {
            continue;
        }
        let iter = CertificateDer::pem_file_iter(path).map_err(|e| CheckerError::Ca {
            path: path.clone(),
            reason: Arc::new(e),
        })?;
        for cert in iter {
            let cert = cert.map_err(|e| CheckerError::Ca {
                path: path.clone(),
                reason: Arc::new(e),
            })?;
            // A bundle may hold certificates webpki cannot use as anchors; skip those.
            let _ = store.add(cert);
        }
        if !store.is_empty() {
            return Ok(store);
        }
    }
    Err(CheckerError::NoRoots(candidates))
}

/// `verify = false`: any certificate, but genuine handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
