//! The `lb-sni` binary as an operator runs it: `--check FILE` and `--config FILE --check`,
//! `--help`, `--version`, `--pid-file`, and the access log (`[log]`) in text and JSON, one
//! line per connection when it ends, reopened on SIGHUP; SIGTERM drains and exits 0.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lb_test_support::shell::*;

const BIN: &str = env!("CARGO_BIN_EXE_lb-sni");

const FIELDS: [&str; 10] = [
    "time",
    "client",
    "host",
    "alpn",
    "pool",
    "backend",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "error",
];

#[test]
fn flags_check_help_version() {
    let dir = tmpdir("sni-flags");
    let good = write_config(
        &dir.join("sni.toml"),
        1,
        2,
        "127.0.0.1:3",
        "",
        "protocol = \"http\"\n",
    );
    flags(BIN, "lb-sni", env!("CARGO_PKG_VERSION"), &good, &dir);
}

/// One connection: a request with a body, the answer read, then closed by the client.
fn exchange(port: u16, body: &str) -> (usize, String) {
    let req = format!(
        "POST /up HTTP/1.1\r\nhost: web.test\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(req.as_bytes()).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).ends_with(BACKEND_BODY) {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    (req.len(), String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn access_log_text_pid_file_reopen_and_drain() {
    let dir = tmpdir("sni-text");
    let backend = backend();
    let (listen, admin) = (free_port(), free_port());
    let log = dir.join("access.log");
    let cfg = write_config(
        &dir.join("sni.toml"),
        listen,
        admin,
        backend,
        "[log]\naccess = \"access.log\"",
        "protocol = \"http\"\n",
    );
    let pid_file = dir.join("lb-sni.pid");
    let mut p = start_with_pid_file(BIN, &cfg, &pid_file, listen);

    let (sent, got) = exchange(listen, "hello");
    // The probe connection of wait_listening may have logged a line first.
    wait_lines(&log, 1);
    let line = wait_for_line(&log, "host=web.test");
    let f = text_fields(&line);
    assert_eq!(
        f.keys().cloned().collect::<Vec<_>>(),
        sorted(&FIELDS),
        "{line}"
    );
    assert!(line.starts_with("time="));
    assert!(is_rfc3339_utc(&f["time"]));
    assert!(f["client"].starts_with("127.0.0.1:"));
    assert_eq!(f["host"], "web.test");
    assert_eq!(f["alpn"], "");
    assert_eq!(f["pool"], "web");
    assert_eq!(f["backend"], backend.to_string());
    assert_eq!(f["bytes_in"], sent.to_string());
    assert_eq!(f["bytes_out"], got.len().to_string());
    assert!(f["duration_ms"].parse::<u64>().is_ok());
    assert_eq!(f["error"], "");

    rotate(&p, &dir);
    exchange(listen, "again");
    let new = wait_lines(&log, 1);
    assert!(
        new.iter().all(|l| text_fields(l)["host"] == "web.test"),
        "{new:?}"
    );

    assert_eq!(term(&mut p), Some(0));
    assert!(!pid_file.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn access_log_json() {
    let dir = tmpdir("sni-json");
    let backend = backend();
    let (listen, admin) = (free_port(), free_port());
    let log = dir.join("access.json");
    let cfg = dir.join("sni.toml");
    let mut p = serve(
        BIN,
        &cfg,
        (listen, admin),
        backend,
        "[log]\naccess = \"access.json\"\nformat = \"json\"",
        "protocol = \"http\"\n",
    );
    let (sent, got) = exchange(listen, &"y".repeat(2000));
    let line = wait_for_line(&log, "\"web.test\"");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    let keys: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(v.clone()).expect("an object");
    assert_eq!(keys.keys().cloned().collect::<Vec<_>>(), sorted(&FIELDS));
    assert_eq!(v["bytes_in"], sent as u64);
    assert_eq!(v["bytes_out"], got.len() as u64);
    assert_eq!(v["pool"], "web");
    assert_eq!(v["error"], "");
    assert_eq!(term(&mut p), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TLS listener: the line names the `sni` and the offered `alpn`, and counts the hello
/// both ways (the backend echoes it).
#[test]
fn access_log_of_a_tls_connection() {
    use common::{alpn_ext, build_handshake, reframe, server_name_ext};
    let dir = tmpdir("sni-tls");
    let backend = echo_backend();
    let (listen, admin) = (free_port(), free_port());
    let log = dir.join("access.log");
    let cfg = dir.join("sni.toml");
    let log_section = "[log]\naccess = \"access.log\"";
    let mut p = serve(BIN, &cfg, (listen, admin), backend, log_section, "");
    let hello = reframe(
        &build_handshake(Some(&[
            (0, server_name_ext(&[(0, b"web.test")])),
            (16, alpn_ext(&[b"h2", b"http/1.1"])),
        ])),
        &[],
    );
    let mut s = TcpStream::connect(("127.0.0.1", listen)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&hello).expect("write");
    let mut back = vec![0u8; hello.len()];
    s.read_exact(&mut back).expect("echo");
    drop(s);
    let line = wait_for_line(&log, "sni=web.test");
    let f = text_fields(&line);
    let mut want: Vec<&str> = FIELDS
        .iter()
        .map(|k| if *k == "host" { "sni" } else { k })
        .collect();
    want.sort();
    assert_eq!(
        f.keys().map(String::as_str).collect::<Vec<_>>(),
        want,
        "{line}"
    );
    assert_eq!(f["alpn"], "h2,http/1.1");
    assert_eq!(f["pool"], "web");
    assert_eq!(f["backend"], backend.to_string());
    assert_eq!(f["bytes_in"], hello.len().to_string());
    assert_eq!(f["bytes_out"], hello.len().to_string());
    assert_eq!(f["error"], "");
    assert_eq!(term(&mut p), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
