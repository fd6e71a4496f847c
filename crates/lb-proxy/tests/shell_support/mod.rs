//! Running a server binary (lb-proxy or lb-sni) as an operator does, for the command-line
//! and access-log tests of both crates (lb-sni includes this file by path).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What [`backend`] answers.
pub const BACKEND_BODY: &str = "hello from the backend\n";

const T: Duration = Duration::from_secs(15);

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lb-shell-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// A port nothing listens on now (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An HTTP/1.1 backend on a thread: reads a head and its `content-length` body, answers
/// [`BACKEND_BODY`], keeps the connection.
pub fn backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve_backend(s));
        }
    });
    addr
}

fn serve_backend(s: TcpStream) {
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            let l = line.to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{BACKEND_BODY}",
            BACKEND_BODY.len()
        );
        if w.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A running binary; killed when dropped if still running.
pub struct Proc(Child);

impl Proc {
    pub fn start(bin: &str, config: &Path, pid_file: Option<&Path>) -> Proc {
        let mut c = Command::new(bin);
        c.arg("--config").arg(config);
        if let Some(p) = pid_file {
            c.arg("--pid-file").arg(p);
        }
        let child = c
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Proc(child)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// The exit code, once it exits within `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(st) = self.0.try_wait().expect("try_wait") {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_listening(port: u16) {
    wait_for(
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the listener",
    );
}

pub fn read_pid(f: &Path) -> Option<u32> {
    std::fs::read_to_string(f).ok()?.trim().parse().ok()
}

/// Sends `request` whole and reads until the server closes.
pub fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(T)).expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The first `n` lines of `file`, once it has them.
pub fn wait_lines(file: &Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    wait_for(
        || {
            lines = std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            lines.len() >= n
        },
        &format!("{n} lines in {}", file.display()),
    );
    lines
}

/// The `key=value` fields of a text line; quoted values are JSON strings.
pub fn text_fields(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = line;
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("no '=' in {rest:?}"));
        let key = rest[..eq].to_owned();
        rest = &rest[eq + 1..];
        let value = if rest.starts_with('"') {
            let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            let v = de.next().expect("a quoted value").expect("a JSON string");
            rest = &rest[de.byte_offset()..];
            v
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let v = rest[..end].to_owned();
            rest = &rest[end..];
            v
        };
        rest = rest.strip_prefix(' ').unwrap_or(rest);
        assert!(out.insert(key.clone(), value).is_none(), "{key} twice");
    }
    out
}

pub fn sorted(keys: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    v.sort();
    v
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn is_rfc3339_utc(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && t[..4].parse::<u32>().is_ok_and(|y| y >= 2024)
}

/// `--help`, `--version`, `--check FILE`, `--config FILE --check`, and their failures.
pub fn flags(bin: &str, name: &str, good: &Path, dir: &Path) {
    let run = |args: &[&str]| Command::new(bin).args(args).output().expect("run");
    let g = good.to_str().expect("utf-8 path");

    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for want in [
        "--config <FILE>",
        "--check [<FILE>]",
        "--pid-file <FILE>",
        "--version",
        "Examples:",
        &format!("{name} --check "),
    ] {
        assert!(text.contains(want), "--help lacks {want:?}:\n{text}");
    }
    let v = run(&["--version"]);
    assert_eq!(v.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("{name} {}", env!("CARGO_PKG_VERSION"))
    );

    for args in [
        vec!["--check", g],
        vec!["--config", g, "--check"],
        vec!["--check", "--config", g],
    ] {
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{g}: ok")
        );
    }
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[log]\naccess = \"stdout\"\nformat = \"xml\"\n").expect("write");
    let b = bad.to_str().expect("utf-8");
    for args in [vec!["--check", b], vec!["--config", b, "--check"]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.toml") && err.contains("log.format") && err.contains("xml"),
            "{err}"
        );
    }
    let out = run(&["--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--check needs a FILE"));
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config FILE is required"));
    assert_eq!(run(&["--bogus"]).status.code(), Some(2));
}
