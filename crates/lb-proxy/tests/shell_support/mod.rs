//! Running a server binary (lb-proxy or lb-sni) as an operator does, for the command-line
//! and access-log tests of both crates (lb-sni includes this file by path).
#![allow(unreachable_pub)] // helpers `pub` for the test files that include this module
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

/// A TCP backend that echoes every byte.
pub fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().expect("clone");
                let mut w = s;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    addr
}

/// Bytes of the `/slow` answer, sent in [`SLOW_CHUNKS`] pieces 100 ms apart.
pub const SLOW_BYTES: usize = 30 * 4096;
/// Pieces of the `/slow` answer.
pub const SLOW_CHUNKS: usize = 30;

fn serve_backend(s: TcpStream) {
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        let mut first = String::new();
        let mut upgrade = false;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if first.is_empty() {
                first = line.clone();
            }
            if line == "\r\n" {
                break;
            }
            let l = line.to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            upgrade |= l.starts_with("upgrade:");
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if upgrade {
            // A WebSocket-like upgrade: 101, then every byte echoed until EOF.
            let _ = w.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            );
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if first.contains(" /slow") {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {SLOW_BYTES}\r\n\r\n");
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            let piece = vec![b's'; SLOW_BYTES / SLOW_CHUNKS];
            for _ in 0..SLOW_CHUNKS {
                std::thread::sleep(Duration::from_millis(100));
                if w.write_all(&piece).is_err() {
                    return;
                }
            }
            continue;
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

/// Process-log lines (stderr) of a binary and of the processes it starts (they share it).
pub type Lines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl Proc {
    /// Starts `bin` with `--config` and `--pid-file`, collecting its stderr lines.
    pub fn start_logged(bin: &Path, config: &Path, pid_file: &Path) -> (Proc, Lines) {
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("--pid-file")
            .arg(pid_file)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let err = child.stderr.take().expect("stderr");
        let lines = Lines::default();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().expect("lines").push(line);
            }
        });
        (Proc(child), lines)
    }

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

/// Sends `sig` to any process by pid (one this test started, directly or through an upgrade).
pub fn signal_pid(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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

/// The binary to test: `$LB_TEST_BIN_DIR/NAME` when set (the release binaries for the
/// upgrade tests), else cargo's build of it.
pub fn binary(name: &str, cargo_built: &str) -> PathBuf {
    match std::env::var_os("LB_TEST_BIN_DIR") {
        Some(d) => PathBuf::from(d).join(name),
        None => PathBuf::from(cargo_built),
    }
}

/// True once `pid` has exited (gone, or a zombie nobody reaped yet).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Replaces `exe` by a fresh copy of `from` the way a package manager does (a new file
/// renamed over it), so the running process's `/proc/self/exe` names a deleted file.
pub fn install(from: &Path, exe: &Path) {
    let tmp = exe.with_extension("new");
    std::fs::copy(from, &tmp).expect("copy the binary");
    std::fs::rename(&tmp, exe).expect("install the binary");
}

/// Counters of a load loop.
#[derive(Default)]
pub struct Load {
    pub ok: std::sync::atomic::AtomicU64,
    pub errors: std::sync::atomic::AtomicU64,
    /// Requests sent on a kept-alive connection the server had just closed as idle (no
    /// byte of answer), sent again on a new connection as HTTP clients do.
    pub resent: std::sync::atomic::AtomicU64,
    pub messages: std::sync::Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = self.messages.lock().expect("messages");
        if m.len() < 20 {
            m.push(what);
        }
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(std::sync::atomic::Ordering::Relaxed)
    }
}

enum Fail {
    /// Closed before any byte of the answer.
    NoAnswer,
    Other(String),
}

/// One GET on `s`; `Ok(true)` when the server said it closes the connection.
fn get_on(s: &mut BufReader<TcpStream>, close: bool) -> Result<bool, Fail> {
    let req = format!(
        "GET /load HTTP/1.1\r\nhost: web.test\r\n{}\r\n",
        if close { "connection: close\r\n" } else { "" }
    );
    s.get_mut()
        .write_all(req.as_bytes())
        .map_err(|_| Fail::NoAnswer)?;
    let mut line = String::new();
    match s.read_line(&mut line) {
        Ok(0) => return Err(Fail::NoAnswer),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(Fail::NoAnswer),
        Err(e) => return Err(Fail::Other(format!("status line: {e}"))),
        Ok(_) => {}
    }
    if !line.starts_with("HTTP/1.1 200") {
        return Err(Fail::Other(format!("status {line:?}")));
    }
    let (mut len, mut closing) = (0usize, false);
    loop {
        line.clear();
        if s.read_line(&mut line)
            .map_err(|e| Fail::Other(e.to_string()))?
            == 0
        {
            return Err(Fail::Other("closed in the head".into()));
        }
        if line == "\r\n" {
            break;
        }
        let l = line.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        closing |= l.starts_with("connection:") && l.contains("close");
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)
        .map_err(|e| Fail::Other(format!("body: {e}")))?;
    if body != BACKEND_BODY.as_bytes() {
        return Err(Fail::Other("wrong body".into()));
    }
    Ok(closing)
}

/// Keep-alive requests on one connection at a time until `stop`.
pub fn keep_alive_client(port: u16, stop: &std::sync::atomic::AtomicBool, load: &Load) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Relaxed) {
        let reused = conn.is_some();
        let s = match &mut conn {
            Some(s) => s,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(T));
                    conn.insert(BufReader::new(s))
                }
                Err(e) => {
                    load.fail(format!("keep-alive connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match get_on(s, false) {
            Ok(closing) => {
                load.ok.fetch_add(1, Relaxed);
                if closing {
                    conn = None;
                }
            }
            Err(Fail::NoAnswer) if reused => {
                load.resent.fetch_add(1, Relaxed);
                conn = None;
            }
            Err(Fail::NoAnswer) => {
                load.fail("no answer on a new connection".into());
                conn = None;
            }
            Err(Fail::Other(e)) => {
                load.fail(format!("keep-alive: {e}"));
                conn = None;
            }
        }
    }
}

/// One request per new connection until `stop`.
pub fn new_connection_client(port: u16, stop: &std::sync::atomic::AtomicBool, load: &Load) {
    use std::sync::atomic::Ordering::Relaxed;
    while !stop.load(Relaxed) {
        let s = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => s,
            Err(e) => {
                load.fail(format!("connect: {e}"));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = s.set_read_timeout(Some(T));
        match get_on(&mut BufReader::new(s), true) {
            Ok(_) => {
                load.ok.fetch_add(1, Relaxed);
            }
            Err(Fail::NoAnswer) => load.fail("no answer on a new connection".into()),
            Err(Fail::Other(e)) => load.fail(format!("new connection: {e}")),
        }
    }
}

/// Stops, when dropped (a test that failed half-way included), the process the pid file
/// names: one an upgrade started, which is no child of the test.
pub struct StopNamed<'a>(pub &'a Path);

impl Drop for StopNamed<'_> {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(self.0) {
            if !gone(pid) {
                signal_pid(pid, "KILL");
            }
        }
    }
}

/// An lb-proxy config in `dir`: the admin API on `admin`, `log` (a `[log]` section or
/// nothing), one listener on `listen`, and host `web.test` routed to a pool of `backend`.
pub fn config(
    dir: &Path,
    listen: u16,
    admin: u16,
    backend: impl std::fmt::Display,
    log: &str,
) -> PathBuf {
    let path = dir.join("lb.toml");
    std::fs::write(
        &path,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n{log}\n[[listener]]\nlisten = \"127.0.0.1:{listen}\"\n\
             [pool.web]\nbackends = [\"{backend}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n"
        ),
    )
    .expect("write config");
    path
}
