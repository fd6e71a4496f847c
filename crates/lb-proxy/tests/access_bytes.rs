//! The `lb-proxy` binary counts the request body bytes it forwards: the access log's
//! `bytes_in` (text and JSON) for chunked and `Content-Length` bodies, and the backend's
//! bytes-in figure of `GET /api/v1/stats`; and the access log's `request_id` is the
//! `X-Request-Id` the backend received, on the fast path (GET) and hyper's (POST).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lb_test_support::shell::*;

const BIN: &str = env!("CARGO_BIN_EXE_lb-proxy");

/// What a [`Seen`] backend received: each request's `X-Request-Id` and body length.
type Seen = Arc<Mutex<Vec<(String, usize)>>>;

/// An HTTP/1.1 backend on a thread that frames `Content-Length` and chunked bodies
/// itself, records what it got, and answers `200` with `ok`.
fn recording_backend() -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = l.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = s2.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                while let Some(got) = read_request(&mut r) {
                    seen.lock().expect("lock").push(got);
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// One request's `X-Request-Id` and body length, or `None` at the end or on a framing
/// it does not know.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, usize)> {
    let (mut id, mut length, mut chunked) = (String::new(), 0usize, false);
    let mut first = true;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            if first {
                continue;
            }
            break;
        }
        first = false;
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("x-request-id:") {
            id = line[line.len() - v.len()..].trim().to_owned();
        } else if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        } else if let Some(v) = lower.strip_prefix("transfer-encoding:") {
            chunked = v.trim() == "chunked";
        }
    }
    if !chunked {
        let mut body = vec![0; length];
        r.read_exact(&mut body).ok()?;
        return Some((id, length));
    }
    let mut total = 0;
    loop {
        let mut size = String::new();
        r.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if n == 0 {
            // Trailers, then the blank line.
            loop {
                let mut t = String::new();
                r.read_line(&mut t).ok()?;
                if t.trim_end().is_empty() {
                    return Some((id, total));
                }
            }
        }
        let mut data = vec![0; n + 2];
        r.read_exact(&mut data).ok()?;
        total += n;
    }
}

/// A chunked request of `sizes` chunks of `x`, and the body's size.
fn chunked_post(path: &str, sizes: &[usize]) -> (String, usize) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: web.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    for n in sizes {
        req.push_str(&format!("{n:x}\r\n{}\r\n", "x".repeat(*n)));
    }
    req.push_str("0\r\n\r\n");
    (req, sizes.iter().sum())
}

fn sized_post(path: &str, n: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: web.test\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n{}",
        "y".repeat(n)
    )
}

/// The body of an HTTP/1.1 answer read to its end, de-chunked when it is chunked.
fn body_of(answer: &str) -> String {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let (mut out, mut rest) = (String::new(), body);
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
        if n == 0 {
            return out;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
}

/// The bytes-in figure of the pool's only backend in `GET /api/v1/stats`.
fn stats_bytes_in(admin: u16) -> u64 {
    let answer = http(
        admin,
        "GET /api/v1/stats HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let v: serde_json::Value = serde_json::from_str(&body_of(&answer)).expect("stats JSON");
    let pools = v["pools"].as_array().expect("pools");
    let web = pools
        .iter()
        .find(|p| p["name"] == "web")
        .unwrap_or_else(|| panic!("no pool web in {v}"));
    web["backends"][0]["bytes_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("no bytes_in in {web}"))
}

#[test]
fn text_log_and_stats_count_request_bodies_and_log_the_forwarded_id() {
    let dir = tmpdir("bytes-text");
    let (backend, seen) = recording_backend();
    let (listen, admin) = (free_port(), free_port());
    let log = dir.join("access.log");
    let cfg = dir.join("lb.toml");
    let mut p = serve(
        BIN,
        &cfg,
        (listen, admin),
        backend,
        "[log]\naccess = \"access.log\"",
        "",
    );
    wait_listening(admin);
    let before = stats_bytes_in(admin);

    let (chunked, chunked_len) = chunked_post("/chunked", &[1000, 2345, 7]);
    let answer = http(listen, &chunked);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = http(listen, &sized_post("/sized", 5000));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // No body: the fast path, with an id the proxy makes.
    let answer = http(
        listen,
        "GET /get HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let lines = wait_lines(&log, 3);
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].1, chunked_len);
    assert_eq!(got[1].1, 5000);
    let by_path = |path: &str| {
        lines
            .iter()
            .map(|l| text_fields(l))
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}: {lines:?}"))
    };
    let fields = [by_path("/chunked"), by_path("/sized"), by_path("/get")];
    assert_eq!(
        fields[0]["bytes_in"],
        chunked_len.to_string(),
        "{:?}",
        fields[0]
    );
    assert_eq!(fields[1]["bytes_in"], "5000", "{:?}", fields[1]);
    assert_eq!(fields[2]["bytes_in"], "0", "{:?}", fields[2]);
    // The id the backend received is the one logged, made by the proxy on both paths.
    for (f, (id, _)) in fields.iter().zip(&got) {
        assert_eq!(id.len(), 32, "a generated id: {got:?}");
        assert_eq!(&f["request_id"], id, "{f:?}");
    }
    assert_ne!(got[0].0, got[1].0, "one id per request");

    let after = stats_bytes_in(admin);
    assert_eq!(
        after - before,
        (chunked_len + 5000) as u64,
        "the backend's bytes in grew by the bodies forwarded"
    );

    assert_eq!(term(&mut p), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_log_counts_a_chunked_body_and_logs_the_forwarded_id() {
    let dir = tmpdir("bytes-json");
    let (backend, seen) = recording_backend();
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

    let (chunked, chunked_len) = chunked_post("/chunked", &[16384, 1, 4000]);
    let answer = http(listen, &chunked);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = http(listen, &sized_post("/sized", 700));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let lines = wait_lines(&log, 2);
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].1, chunked_len);
    let by_path = |path: &str| -> serde_json::Value {
        lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
            .find(|v| v["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}: {lines:?}"))
    };
    let v = [by_path("/chunked"), by_path("/sized")];
    assert_eq!(v[0]["bytes_in"], chunked_len as u64, "{}", v[0]);
    assert_eq!(v[0]["request_id"], got[0].0.as_str(), "{}", v[0]);
    assert_eq!(v[1]["bytes_in"], 700, "{}", v[1]);
    assert_eq!(v[1]["request_id"], got[1].0.as_str(), "{}", v[1]);
    assert_eq!(got[0].0.len(), 32, "{got:?}");

    assert_eq!(term(&mut p), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
