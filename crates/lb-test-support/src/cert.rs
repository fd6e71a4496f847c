//! Self-signed certificates (ECDSA P-256, PEM) made by the `openssl` command line, which
//! `.ci/run` installs. (The workspace has no certificate-making crate in its lock file; the
//! tests have always used `openssl`, and one copy of the call now lives here.)

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dir::TempDir;

/// A self-signed certificate and its key, in a temp dir removed on drop.
#[derive(Debug)]
pub struct Cert {
    /// The directory holding both files.
    pub dir: TempDir,
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// A self-signed certificate for `names`: the first is the subject's CN, and every name is
/// a subjectAltName (`IP:` for an IP address, `DNS:` otherwise). Not a CA
/// (`basicConstraints=critical,CA:FALSE`), valid two days.
///
/// # Panics
/// If `names` is empty, or `openssl` is missing or fails.
pub fn self_signed(names: &[&str]) -> Cert {
    let first = names.first().expect("a certificate needs a name");
    let dir = TempDir::new(&format!("cert-{}", first.trim_start_matches("*.")));
    let (cert, key) = write_self_signed(&dir, names);
    Cert { dir, cert, key }
}

/// Writes a self-signed certificate for `names` (as [`self_signed`]) to `dir/cert.pem` and
/// its key to `dir/key.pem`, replacing what is there; returns both paths.
///
/// # Panics
/// If `names` is empty, or `openssl` is missing or fails.
pub fn write_self_signed(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    write_pem(&cert, &key, names);
    (cert, key)
}

/// Writes a self-signed certificate for `names` (as [`self_signed`]) to `cert` and its key
/// to `key`.
///
/// # Panics
/// If `names` is empty, or `openssl` is missing or fails.
pub fn write_pem(cert: &Path, key: &Path, names: &[&str]) {
    let first = names.first().expect("a certificate needs a name");
    let san: Vec<String> = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(_) => format!("IP:{n}"),
            Err(_) => format!("DNS:{n}"),
        })
        .collect();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={first}")])
        .args(["-addext", &format!("subjectAltName={}", san.join(","))])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
