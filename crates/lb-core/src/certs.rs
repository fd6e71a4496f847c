//! Server certificates for TLS termination: PEM pairs loaded and checked, chosen by SNI.
//!
//! [`load`] reads one certificate chain and its private key and checks that they belong
//! together; config validation calls it so that `--check` and a reload name the file and
//! what is wrong with it. [`server_config`] builds the rustls server config of a listener:
//! every pair of its `tls` section behind a [`SniResolver`], ALPN `h2` and `http/1.1`, and
//! the listener's `min_version`, with session tickets and a session cache for resumption.
//!
//! The resolver indexes the DNS names of each certificate's subject alternative names:
//! an exact name wins over a wildcard (`*.example.com` covers one label under
//! `example.com`, as in RFC 6125), an earlier pair wins over a later one, and a hello
//! without SNI or with a name no certificate covers gets the first pair (like nginx's
//! default server). Choosing costs two hash lookups and no allocation.
//!
//! ```no_run
//! use std::path::PathBuf;
//! use lb_core::certs;
//! use lb_core::config::{CertKey, TlsFiles, TlsVersion};
//!
//! let files = TlsFiles {
//!     certs: vec![CertKey { cert: PathBuf::from("site.pem"), key: PathBuf::from("site.key") }],
//!     min_version: TlsVersion::Tls12,
//! };
//! let config = certs::server_config(&files)?;
//! let acceptor = tokio_rustls::TlsAcceptor::from(config);
//! # Ok::<(), certs::CertError>(())
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertKey, TlsFiles, TlsVersion};

/// Why a certificate pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate file has no PEM certificate, or a malformed one.
    #[error("{path}: no usable certificate: {reason} (expected a PEM file with -----BEGIN CERTIFICATE-----)")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// The key file has no PEM private key, or a malformed one.
    #[error("{path}: no usable private key: {reason} (expected a PEM PKCS#8, PKCS#1 or SEC1 key)")]
    Key {
        /// The file.
        path: PathBuf,
        /// What the PEM reader or the crypto provider said.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{key} is not the private key of the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate could not be parsed as X.509.
    #[error("{path}: the certificate does not parse: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What webpki said.
        reason: String,
    },
    /// rustls refused the settings (not expected with valid pairs).
    #[error("TLS settings: {0}")]
    Settings(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key and checks that the key is the
/// certificate's.
pub fn load(pair: &CertKey) -> Result<CertifiedKey, CertError> {
    load_with(pair, &provider())
}

fn load_with(
    pair: &CertKey,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, CertError> {
    let cert_err = |reason: String| CertError::Certificate {
        path: pair.cert.clone(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&pair.cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("the file holds no certificate".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| CertError::Key {
        path: pair.key.clone(),
        reason: e.to_string(),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::Key {
            path: pair.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::Mismatch {
                cert: pair.cert.clone(),
                key: pair.key.clone(),
            })
        }
        // The provider cannot tell (no public key exposed): accept, as rustls does.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(CertError::Parse {
            path: pair.cert.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Chooses a listener's certificate by the hello's SNI (see the [module docs](self)).
#[derive(Debug)]
pub struct SniResolver {
    pairs: Vec<Arc<CertifiedKey>>,
    /// Lower-case exact names → index into `pairs`.
    exact: HashMap<Box<str>, usize>,
    /// `*.suffix` → index, keyed by the lower-case suffix.
    wildcard: HashMap<Box<str>, usize>,
}

impl SniResolver {
    /// Indexes `pairs` (at least one; the first is the default) by their certificates'
    /// DNS names.
    pub fn new(pairs: Vec<(PathBuf, CertifiedKey)>) -> Result<SniResolver, CertError> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut out = Vec::with_capacity(pairs.len());
        for (i, (path, pair)) in pairs.into_iter().enumerate() {
            let parse_err = |e: webpki::Error| CertError::Parse {
                path: path.clone(),
                reason: format!("{e:?}"),
            };
            // `load` refused empty chains.
            let Some(leaf) = pair.cert.first() else {
                return Err(parse_err(webpki::Error::BadDer));
            };
            let ee = webpki::EndEntityCert::try_from(leaf).map_err(parse_err)?;
            for name in ee.valid_dns_names() {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.into()).or_insert(i),
                    None => exact.entry(name.into_boxed_str()).or_insert(i),
                };
            }
            out.push(Arc::new(pair));
        }
        if out.is_empty() {
            return Err(CertError::Settings("no certificate".to_owned()));
        }
        Ok(SniResolver {
            pairs: out,
            exact,
            wildcard,
        })
    }

    /// The pair for a server name (any case); the first pair when none covers it.
    pub fn choose(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let index = server_name.and_then(|n| self.lookup(n)).unwrap_or(0);
        &self.pairs[index]
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        // Names are at most 253 bytes; longer ones match nothing.
        let mut buf = [0u8; 253];
        let lower = buf.get_mut(..name.len())?;
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let lower = std::str::from_utf8(lower).ok()?;
        let lower = lower.strip_suffix('.').unwrap_or(lower);
        if let Some(&i) = self.exact.get(lower) {
            return Some(i);
        }
        let (_, parent) = lower.split_once('.')?;
        self.wildcard.get(parent).copied()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(hello.server_name()).clone())
    }
}

/// ALPN protocols a terminating listener offers, in preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The rustls server config of a terminating listener: its pairs chosen by SNI, ALPN `h2`
/// and `http/1.1`, TLS 1.3 and (unless `min_version = "1.3"`) 1.2.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, CertError> {
    let provider = provider();
    let mut pairs = Vec::with_capacity(files.certs.len());
    for pair in &files.certs {
        pairs.push((pair.cert.clone(), load_with(pair, &provider)?));
    }
    let resolver = SniResolver::new(pairs)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match files.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| CertError::Settings(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Session tickets, as nginx and HAProxy issue by default: a returning client resumes
    // without a full handshake. The key rotates by itself (every 6 h) and is new per
    // config generation, so a reload costs resumptions, not connections.
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| CertError::Settings(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Loads every pair of `files`, for validation: the first error.
pub fn check(files: &TlsFiles) -> Result<(), (usize, CertError)> {
    let provider = provider();
    for (i, pair) in files.certs.iter().enumerate() {
        load_with(pair, &provider).map_err(|e| (i, e))?;
    }
    Ok(())
}
