//! The `lb-proxy` binary as an operator runs it: `--check FILE` and `--config FILE --check`,
//! `--help`, `--version`, `--pid-file`, and the access log (`[log]`) in text and JSON,
//! written when each request ends, reopened on SIGHUP; SIGTERM drains and exits 0.

use std::collections::BTreeMap;

use lb_test_support::shell::*;

const BIN: &str = env!("CARGO_BIN_EXE_lb-proxy");

#[test]
fn flags_check_help_version() {
    let dir = tmpdir("proxy-flags");
    let good = config(&dir, 1, 2, "127.0.0.1:3", "");
    flags(BIN, "lb-proxy", env!("CARGO_PKG_VERSION"), &good, &dir);
}

#[test]
fn access_log_text_pid_file_reopen_and_drain() {
    let dir = tmpdir("proxy-text");
    let backend = backend();
    let (listen, admin) = (free_port(), free_port());
    let log = dir.join("access.log");
    let cfg = config(
        &dir,
        listen,
        admin,
        backend,
        "[log]\naccess = \"access.log\"",
    );
    let pid_file = dir.join("lb-proxy.pid");
    let mut p = start_with_pid_file(BIN, &cfg, &pid_file, listen);

    let answer = http(
        listen,
        "POST /upload?x=1 HTTP/1.1\r\nhost: web.test\r\nuser-agent: test agent/1\r\n\
         x-request-id: req-42\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = http(
        listen,
        "GET /none HTTP/1.1\r\nhost: nowhere.test\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let lines = wait_lines(&log, 2);
    let post = text_fields(&lines[0]);
    assert_eq!(
        post.keys().cloned().collect::<Vec<_>>(),
        sorted(&ACCESS_FIELDS),
        "{}",
        lines[0]
    );
    assert!(lines[0].starts_with("time="), "{}", lines[0]);
    assert!(is_rfc3339_utc(&post["time"]), "{}", post["time"]);
    assert!(post["client"].starts_with("127.0.0.1:"));
    assert_eq!(post["method"], "POST");
    assert_eq!(post["host"], "web.test");
    assert_eq!(post["path"], "/upload");
    assert_eq!(post["status"], "200");
    assert_eq!(post["bytes_in"], "5");
    assert_eq!(post["bytes_out"], BACKEND_BODY.len().to_string());
    assert!(post["duration_ms"].parse::<u64>().is_ok());
    assert_eq!(post["pool"], "web");
    assert_eq!(post["backend"], backend.to_string());
    assert_eq!(post["tries"], "1");
    assert_eq!(post["error"], "");
    assert_eq!(post["request_id"], "req-42");
    assert_eq!(post["user_agent"], "test agent/1");
    let miss = text_fields(&lines[1]);
    assert_eq!(miss["status"], "404");
    assert_eq!(miss["error"], "unknown-host");
    assert_eq!(miss["pool"], "");
    assert_eq!(miss["backend"], "");
    assert_eq!(miss["request_id"].len(), 0, "no request reached a backend");

    // Rotation: rename, SIGHUP, new lines in a new file of the configured name.
    rotate(&p, &dir);
    let answer = http(
        listen,
        "GET /after HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let new = wait_lines(&log, 1);
    assert_eq!(text_fields(&new[0])["path"], "/after");
    let old = std::fs::read_to_string(dir.join("access.log.1")).expect("old");
    assert!(!old.contains("path=/after"), "{old}");
    // A generated request id is logged when the client sent none.
    assert_eq!(text_fields(&new[0])["request_id"].len(), 32, "{}", new[0]);

    // SIGTERM: drain, exit 0, the pid file removed.
    assert_eq!(term(&mut p), Some(0));
    assert!(!pid_file.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn access_log_json_and_bytes_of_a_streamed_response() {
    let dir = tmpdir("proxy-json");
    let backend = backend();
    let (listen, admin) = (free_port(), free_port());
    let log = dir.join("access.json");
    let cfg = dir.join("lb.toml");
    let mut p = serve(
        BIN,
        &cfg,
        (listen, admin),
        backend,
        &format!("[log]\naccess = \"{}\"\nformat = \"json\"", log.display()),
        "",
    );
    let body = "x".repeat(3000);
    let answer = http(
        listen,
        &format!(
            "PUT /big HTTP/1.1\r\nhost: web.test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let lines = wait_lines(&log, 1);
    let v: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    let keys: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(v.clone()).expect("an object");
    assert_eq!(
        keys.keys().cloned().collect::<Vec<_>>(),
        sorted(&ACCESS_FIELDS)
    );
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes_in"], 3000);
    assert_eq!(v["bytes_out"], BACKEND_BODY.len() as u64);
    assert_eq!(v["pool"], "web");
    assert_eq!(v["error"], "");
    assert!(is_rfc3339_utc(v["time"].as_str().expect("time")));
    assert_eq!(term(&mut p), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
