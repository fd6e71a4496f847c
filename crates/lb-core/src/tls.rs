//! TLS client settings shared by HTTPS health probes and lb-proxy's upstream connections
//! (feature `tls`, rustls with the ring provider).
//!
//! [`client_config`] builds one rustls [`ClientConfig`] from a pool's `tls` settings:
//! - `verify = true`: the chain is checked against the roots of `ca` (a PEM file), or,
//!   without `ca`, against the system bundle (`SSL_CERT_FILE`, then the usual
//!   Debian/Red Hat/Alpine/macOS paths); see [`roots`].
//! - `verify = false`: any certificate is accepted, but the handshake signatures are
//!   still checked, so the peer must hold the key of the certificate it shows: the
//!   connection proves the backend speaks TLS, not who it is.
//!
//! The name sent and verified is chosen per connection by [`server_name`]: the configured
//! `sni`, else the backend's IP address (verified against the certificate's IP SANs; no
//! SNI extension is sent for an IP).
//!
//! The CA file is read when the config is built, never per connection.
//!
//! ```
//! use lb_core::tls::{client_config, server_name};
//!
//! let config = client_config(false, None, &[b"h2"]).unwrap();
//! assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
//! let ip = "127.0.0.1".parse().unwrap();
//! assert_eq!(server_name(None, ip).to_str(), "127.0.0.1");
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Where the system's trusted roots usually are, after `SSL_CERT_FILE`.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A shareable error source.
type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Why a TLS client configuration could not be built.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The CA file could not be read or parsed.
    #[error("CA file {path:?}: {reason}")]
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
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Rustls(#[source] Source),
}

/// The crypto provider used everywhere in lb: rustls' ring provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration: verification as described in the [module docs](self), no client
/// certificate, and `alpn` offered in order (empty: no ALPN extension). Reads `ca` now.
pub fn client_config(
    verify: bool,
    ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, ClientTlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientTlsError::Rustls(Arc::new(e)))?;
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
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The name to send and verify: `sni` when it is a valid server name, else `ip`.
///
/// Config validation only accepts a valid DNS name (or IP text) for `sni`, so the fallback
/// is for callers that skip it.
pub fn server_name(sni: Option<&str>, ip: IpAddr) -> ServerName<'static> {
    sni.and_then(|s| ServerName::try_from(s.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(ip.into()))
}

/// The trusted roots: `ca`'s certificates, or the first system bundle that has some.
pub fn roots(ca: Option<&Path>) -> Result<RootCertStore, ClientTlsError> {
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
        let iter = CertificateDer::pem_file_iter(path).map_err(|e| ClientTlsError::Ca {
            path: path.clone(),
            reason: Arc::new(e),
        })?;
        for cert in iter {
            let cert = cert.map_err(|e| ClientTlsError::Ca {
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
    Err(ClientTlsError::NoRoots(candidates))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let missing = Path::new("/nonexistent/lb-ca.pem");
        match roots(Some(missing)) {
            Err(ClientTlsError::Ca { path, .. }) => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
        let empty = std::env::temp_dir().join(format!("lb-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, b"not a certificate\n").unwrap();
        let got = roots(Some(&empty));
        let _ = std::fs::remove_file(&empty);
        assert!(matches!(got, Err(ClientTlsError::NoRoots(_))), "{got:?}");
    }

    #[test]
    fn sni_wins_over_the_address() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(server_name(Some("api.test"), ip).to_str(), "api.test");
        assert_eq!(server_name(None, ip).to_str(), "10.0.0.1");
    }
}
