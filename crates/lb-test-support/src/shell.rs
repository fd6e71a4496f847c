//! Running a server binary (lb-proxy or lb-sni) as an operator does, for the command-line,
//! access-log and upgrade tests of both crates: its config written to a temp dir, the
//! process started with a pid file, signalled and waited for, loopback backends and load
//! loops to aim at it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What [`backend`] answers.
pub const BACKEND_BODY: &str = "hello from the backend\n";

const T: Duration = Duration::from_secs(15);

/// A fresh `lb-shell-NAME-PID` directory under the system temp dir (the test removes it
/// when it passes; a failed test leaves it to look at).
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

/// Spawns `cmd`, trying again for up to a second while exec(2) fails with ETXTBSY: a test
/// that has just written a binary (an upgrade test's [`install`]) can find it "busy" when
/// another test thread forked at that moment, since the forked child holds a copy of the
/// write descriptor until its own exec closes it.
fn spawn(cmd: &mut Command) -> Child {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawn: {e:?}"),
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
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(config)
            .arg("--pid-file")
            .arg(pid_file)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut cmd);
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

    /// Starts `bin` with `--config` (and `--pid-file` when given), its output discarded.
    pub fn start(bin: &str, config: &Path, pid_file: Option<&Path>) -> Proc {
        let mut c = Command::new(bin);
        c.arg("--config").arg(config);
        if let Some(p) = pid_file {
            c.arg("--pid-file").arg(p);
        }
        c.env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Proc(spawn(&mut c))
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Sends it `sig` (`TERM`, `HUP`, `USR2`, …) with kill(1).
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

/// Polls `f` every 20 ms until it holds; panics naming `what` after 15 s.
pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until something accepts connections on loopback `port`.
pub fn wait_listening(port: u16) {
    wait_for(
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the listener",
    );
}

/// The pid a pid file names, if it exists and holds one.
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

/// The fields of lb-proxy's access-log line (SPEC's list, plus `request_id` and
/// `user_agent`).
pub const ACCESS_FIELDS: [&str; 15] = [
    "time",
    "client",
    "method",
    "host",
    "path",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "pool",
    "backend",
    "tries",
    "error",
    "request_id",
    "user_agent",
];

/// `keys` as owned strings, sorted (to compare with a map's keys).
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

/// `--help`, `--version` (which must print `NAME VERSION`), `--check FILE`,
/// `--config FILE --check`, and their failures.
pub fn flags(bin: &str, name: &str, version: &str, good: &Path, dir: &Path) {
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
        format!("{name} {version}")
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
    /// Requests (or exchanges) answered as expected.
    pub ok: std::sync::atomic::AtomicU64,
    /// Requests that failed.
    pub errors: std::sync::atomic::AtomicU64,
    /// Requests sent on a kept-alive connection the server had just closed as idle (no
    /// byte of answer), sent again on a new connection as HTTP clients do.
    pub resent: std::sync::atomic::AtomicU64,
    /// What the first failures said.
    pub messages: std::sync::Mutex<Vec<String>>,
}

impl Load {
    /// Counts a failure; keeps what it said among the first 20.
    pub fn fail(&self, what: String) {
        self.errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = self.messages.lock().expect("messages");
        if m.len() < 20 {
            m.push(what);
        }
    }

    /// [`Load::ok`] now.
    pub fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`Load::errors`] now.
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

/// A config at `path` for either binary: the admin API on `admin`, `log` (a `[log]`
/// section or nothing), one listener on `listen` with `listener_extra` lines (lb-sni's
/// `protocol = "http"`, or nothing), and host `web.test` routed to a pool of `backend`.
pub fn write_config(
    path: &Path,
    listen: u16,
    admin: u16,
    backend: impl std::fmt::Display,
    log: &str,
    listener_extra: &str,
) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n{log}\n[[listener]]\nlisten = \"127.0.0.1:{listen}\"\n\
             {listener_extra}[pool.web]\nbackends = [\"{backend}\"]\n[[route]]\nhost = \"web.test\"\npool = \"web\"\n"
        ),
    )
    .expect("write config");
    path.to_path_buf()
}

/// An lb-proxy config `dir/lb.toml` (see [`write_config`]).
pub fn config(
    dir: &Path,
    listen: u16,
    admin: u16,
    backend: impl std::fmt::Display,
    log: &str,
) -> PathBuf {
    write_config(&dir.join("lb.toml"), listen, admin, backend, log, "")
}

/// Starts `bin` on `cfg` with `pid_file`, and waits until it listens on `listen` and the
/// pid file names it.
pub fn start_with_pid_file(bin: &str, cfg: &Path, pid_file: &Path, listen: u16) -> Proc {
    let p = Proc::start(bin, cfg, Some(pid_file));
    wait_listening(listen);
    wait_for(
        || read_pid(pid_file) == Some(p.id()),
        "the pid file names the process",
    );
    p
}

/// Log rotation as logrotate does it: `dir/access.log` renamed to `access.log.1`, SIGHUP
/// sent, and the wait until the process has opened a new `access.log`.
pub fn rotate(p: &Proc, dir: &Path) {
    let log = dir.join("access.log");
    std::fs::rename(&log, dir.join("access.log.1")).expect("rename");
    p.signal("HUP");
    wait_for(|| log.exists(), "the access log reopened");
}

/// The first line of `log` containing `needle`, once there is one.
pub fn wait_for_line(log: &Path, needle: &str) -> String {
    let mut found = String::new();
    wait_for(
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            match text.lines().find(|l| l.contains(needle)) {
                Some(l) => {
                    found = l.to_owned();
                    true
                }
                None => false,
            }
        },
        needle,
    );
    found
}

/// What an upgrade test runs: `dir/bin/NAME`, a copy of the binary to test that the test
/// replaces, and a config (`dir/CONFIG_NAME`, the access log off) routing `web.test` to
/// `backend`.
#[derive(Debug)]
pub struct Upgradable {
    /// The test's directory ([`tmpdir`]).
    pub dir: PathBuf,
    /// The installed copy of the binary.
    pub exe: PathBuf,
    /// Its config.
    pub cfg: PathBuf,
    /// Its listener's port.
    pub listen: u16,
}

impl Upgradable {
    /// Installs `name` ([`binary`] of `cargo_built`) in a fresh `dir/bin/` and writes its
    /// config as `config_name`.
    pub fn new(
        test: &str,
        name: &str,
        cargo_built: &str,
        config_name: &str,
        backend: SocketAddr,
    ) -> Upgradable {
        let dir = tmpdir(test);
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        let exe = dir.join("bin").join(name);
        install(&binary(name, cargo_built), &exe);
        let (listen, admin) = (free_port(), free_port());
        let log = "[log]\naccess = \"off\"";
        let cfg = write_config(&dir.join(config_name), listen, admin, backend, log, "");
        Upgradable {
            dir,
            exe,
            cfg,
            listen,
        }
    }

    /// Starts the installed binary with `--pid-file PID_FILE`, its log collected, and waits
    /// until it listens and the pid file names it.
    pub fn start(&self, pid_file: &Path) -> (Proc, Lines) {
        let (p, lines) = Proc::start_logged(&self.exe, &self.cfg, pid_file);
        wait_listening(self.listen);
        wait_for(|| read_pid(pid_file) == Some(p.id()), "the pid file");
        (p, lines)
    }

    /// Writes a config the new process refuses (an unknown strategy); returns the good one.
    pub fn break_config(&self) -> String {
        let good = std::fs::read_to_string(&self.cfg).expect("read");
        std::fs::write(
            &self.cfg,
            good.replace("[pool.web]", "[pool.web]\nstrategy = \"nope\""),
        )
        .expect("break");
        good
    }
}

/// Waits until the pid file names a process other than `old`; returns it.
pub fn next_pid(pid_file: &Path, old: u32) -> u32 {
    let mut new = 0;
    wait_for(
        || {
            new = read_pid(pid_file).unwrap_or(old);
            new != old
        },
        "the pid file to name the new process",
    );
    new
}

/// Waits until a line of `lines` contains `needle`.
pub fn wait_logged(lines: &Lines, needle: &str, what: &str) {
    wait_for(
        || {
            lines
                .lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains(needle))
        },
        what,
    );
}

/// Writes a config at `cfg` ([`write_config`], the listener on `ports.0`, the admin API on
/// `ports.1`), starts `bin` on it without a pid file, and waits until it listens.
pub fn serve(
    bin: &str,
    cfg: &Path,
    ports: (u16, u16),
    backend: impl std::fmt::Display,
    log: &str,
    listener_extra: &str,
) -> Proc {
    let (listen, admin) = ports;
    write_config(cfg, listen, admin, backend, log, listener_extra);
    let p = Proc::start(bin, cfg, None);
    wait_listening(listen);
    p
}

/// SIGTERM (drain, then exit), and the exit code once it exits within 35 s.
pub fn term(p: &mut Proc) -> Option<i32> {
    p.signal("TERM");
    p.wait(Duration::from_secs(35))
}

/// The lines a child writes to its stdout and stderr (both piped), as they come, from two
/// reader threads.
///
/// # Panics
/// If either stream was not piped or was already taken.
pub fn output_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    for r in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    rx
}

/// The backend addresses, sorted, of a pool as the admin API's `GET /api/v1/pools/{pool}`
/// shows it (`body`: the JSON answer).
///
/// # Panics
/// If `body` is not that JSON.
pub fn pool_members(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    let mut m: Vec<String> = v["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["addr"].as_str().unwrap_or("").to_owned())
        .collect();
    m.sort();
    m
}

/// The second upgrade of the upgrade tests, under the same `load`: `exe` replaced by a
/// fresh copy of `built` again and SIGUSR2 sent to `second` (the process the first
/// upgrade started); waits until the pid file names a third process, `second` has
/// exited, and the third has answered 50 more. Returns the third's pid and what `load`
/// counted from SIGUSR2 to the second's exit.
pub fn upgrade_again(
    built: &Path,
    exe: &Path,
    pid_file: &Path,
    second: u32,
    load: &Load,
) -> (u32, u64) {
    install(built, exe);
    let before = load.ok();
    assert!(signal_pid(second, "USR2"), "SIGUSR2 to {second}");
    let third = next_pid(pid_file, second);
    wait_for(|| gone(second), "the second process to exit");
    let during = load.ok() - before;
    wait_for(
        || load.ok() > before + during + 50,
        "load on the third process",
    );
    (third, during)
}
