//! The admin API over TLS (`[admin] tls`), spoken to by the `lb` binary with `--cacert`:
//! certificates made by openssl (a CA and a server certificate it signs), a real handshake
//! on loopback; a wrong CA, no CA, and the wrong scheme each fail with a message that says
//! what to do. Plain HTTP keeps working when `tls` is not set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{admin, admin_tls, lb, pool};
use lb_core::admin::AdminTls;
use lb_core::config::{AdminConfig, CertKey, TlsFiles, TlsVersion};
use lb_core::StrategyKind;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lb-admin-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and, when `server`, a certificate it signs for 127.0.0.1 and localhost
/// (`cert.pem`, `key.pem`), in `dir`.
fn make_ca(dir: &Path, server: bool) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=lb test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &ca);
    if !server {
        return;
    }
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend([
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
    ]);
    openssl(dir, &req);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "cert.pem",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn tls_of(dir: &Path) -> AdminTls {
    let config = AdminConfig {
        tls: Some(TlsFiles {
            certs: vec![CertKey {
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
            }],
            min_version: TlsVersion::Tls12,
        }),
        ..AdminConfig::default()
    };
    AdminTls::load(&config)
        .expect("certificates load")
        .expect("tls is set")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_speaks_https_with_cacert() {
    let dir = scratch("ok");
    make_ca(&dir, true);
    let web = pool("web", StrategyKind::RoundRobin, &["127.0.0.1:19001"]);
    let a = admin_tls(vec![web], Some("s3cret"), Some(tls_of(&dir))).await;
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().expect("utf-8 path");
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}", a.addr.port());
        let r = lb(
            &[
                "pools", "--admin", &url, "--cacert", ca, "--token", "s3cret",
            ],
            &[],
        )
        .await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.out.lines().any(|l| l.starts_with("web ")), "{}", r.out);
    }
    // LB_CACERT does the same; the token is still checked over TLS.
    let url = format!("https://127.0.0.1:{}", a.addr.port());
    let r = lb(&["pool", "web", "--admin", &url], &[("LB_CACERT", ca)]).await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.err.contains("HTTP 401"), "{}", r.err);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_scheme_fails_clearly() {
    let dir = scratch("wrong");
    make_ca(&dir, true);
    let other = scratch("other-ca");
    make_ca(&other, false);
    let web = pool("web", StrategyKind::RoundRobin, &["127.0.0.1:19001"]);
    let a = admin_tls(vec![web.clone()], None, Some(tls_of(&dir))).await;
    let url = format!("https://127.0.0.1:{}", a.addr.port());
    let wrong = other.join("ca.pem");
    let r = lb(
        &[
            "pools",
            "--admin",
            &url,
            "--cacert",
            wrong.to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.err.contains("TLS handshake with"), "{}", r.err);
    assert!(
        r.err.contains("not signed by a CA trusted here"),
        "{}",
        r.err
    );
    assert!(r.err.contains("--cacert FILE"), "{}", r.err);
    // The system roots do not know the test CA either.
    let r = lb(&["pools", "--admin", &url], &[]).await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.err.contains("--cacert"), "{}", r.err);
    // Plain HTTP to the TLS port gets no answer, and a hint.
    let plain = format!("http://127.0.0.1:{}", a.addr.port());
    let r = lb(&["pools", "--admin", &plain], &[]).await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.err.contains("use an https:// URL"), "{}", r.err);
    // A CA file that is not one is named.
    let bogus = dir.join("ext.cnf");
    let r = lb(
        &[
            "pools",
            "--admin",
            &url,
            "--cacert",
            bogus.to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.err.contains("--cacert") && r.err.contains("ext.cnf"),
        "{}",
        r.err
    );

    // Without [admin] tls the API stays plain HTTP, and https:// to it says so.
    let b = admin(vec![web], None).await;
    let r = lb(&["pools", "--admin", &b.url()], &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = lb(
        &[
            "pools",
            "--admin",
            &format!("https://127.0.0.1:{}", b.addr.port()),
            "--cacert",
            dir.join("ca.pem").to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.err.contains("does not speak TLS"), "{}", r.err);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}
