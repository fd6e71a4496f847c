//! Zero-downtime binary upgrade of `lb-proxy` under load: the executable is replaced and
//! SIGUSR2 sent, twice in a row; keep-alive clients, a client opening a connection per
//! request, a long download and an open WebSocket see no refused connection and no failed
//! request; the download and the WebSocket finish on the old process; the pid file names
//! the new one; the old one exits 0. And a new process that cannot start (broken config)
//! leaves the old one serving, saying why.
//!
//! Against the release binaries: `cargo build --release -j2 -p lb-proxy` then
//! `LB_TEST_BIN_DIR=/work/target/release cargo test -j2 -p lb-proxy --test upgrade -- --nocapture`
//! (without `LB_TEST_BIN_DIR`, cargo's debug build is used).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_test_support::shell::*;

fn setup(name: &str) -> Upgradable {
    let exe = env!("CARGO_BIN_EXE_lb-proxy");
    Upgradable::new(name, "lb-proxy", exe, "lb.toml", backend())
}

/// A download of `/slow`: its whole length, read slowly.
fn download(port: u16) -> std::thread::JoinHandle<Result<usize, String>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(b"GET /slow HTTP/1.1\r\nhost: web.test\r\n\r\n")
        .expect("write");
    std::thread::spawn(move || {
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let mut len = 0;
        loop {
            line.clear();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok(body.len())
    })
}

/// An upgraded (WebSocket) connection through the proxy, after its 101.
fn websocket(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nhost: web.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    )
    .expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("101 head");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn echo(ws: &mut TcpStream, msg: &[u8]) {
    ws.write_all(msg).expect("websocket write");
    let mut back = vec![0u8; msg.len()];
    ws.read_exact(&mut back).expect("websocket echo");
    assert_eq!(back, msg);
}

#[test]
fn upgrade_twice_under_load_loses_nothing() {
    let u = setup("upgrade");
    let (dir, exe, port) = (&u.dir, &u.exe, u.listen);
    let pid_file = dir.join("lb-proxy.pid");
    let _stop = StopNamed(&pid_file);
    let (mut first, lines) = u.start(&pid_file);

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let mut clients = Vec::new();
    for keep_alive in [true, true, false, false] {
        let (stop, load) = (stop.clone(), load.clone());
        clients.push(std::thread::spawn(move || {
            if keep_alive {
                keep_alive_client(port, &stop, &load)
            } else {
                new_connection_client(port, &stop, &load)
            }
        }));
    }
    wait_for(|| load.ok() > 50, "load flowing");

    // First upgrade, with a download and a WebSocket in flight on the old process.
    let download = download(port);
    let mut ws = websocket(port);
    echo(&mut ws, b"before");
    let built = binary("lb-proxy", env!("CARGO_BIN_EXE_lb-proxy"));
    install(&built, exe);
    let before = load.ok();
    let t0 = Instant::now();
    first.signal("USR2");
    let second = next_pid(&pid_file, first.id());
    // Both still open, on the old process: it is draining, not gone.
    echo(&mut ws, b"after the upgrade");
    assert!(
        !gone(first.id()),
        "the old process left with a WebSocket open"
    );
    drop(ws);
    assert_eq!(download.join().expect("download thread"), Ok(SLOW_BYTES));
    assert_eq!(
        first.wait(Duration::from_secs(35)),
        Some(0),
        "old process exit code"
    );
    let during = load.ok() - before;
    println!(
        "first upgrade: {during} requests from SIGUSR2 to the old process's exit ({:?}), errors {}, resent on a closed idle keep-alive connection {}",
        t0.elapsed(),
        load.errors(),
        load.resent.load(Ordering::Relaxed)
    );

    // Second upgrade, of the process the first one started.
    let (third, during2) = upgrade_again(&built, exe, &pid_file, second, &load);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    println!(
        "second upgrade: {during2} requests until the old process exited; total {} requests, errors {}, resent {}",
        load.ok(),
        load.errors(),
        load.resent.load(Ordering::Relaxed)
    );
    let log = lines.lock().expect("lines").join("\n");
    assert_eq!(
        load.errors(),
        0,
        "{:?}\n{log}",
        load.messages.lock().expect("messages")
    );
    assert!(during > 0 && during2 > 0);
    assert!(log.contains("upgrade: the new process serves"), "{log}");
    assert!(!gone(third));
    assert_eq!(read_pid(&pid_file), Some(third));
    assert!(signal_pid(third, "TERM"));
    wait_for(|| gone(third), "the last process to exit");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let u = setup("upgrade-broken");
    let (dir, exe, cfg, port) = (&u.dir, &u.exe, &u.cfg, u.listen);
    let pid_file = dir.join("lb-proxy.pid");
    let _stop = StopNamed(&pid_file);
    let (mut p, lines) = u.start(&pid_file);
    let good = u.break_config();
    install(&binary("lb-proxy", env!("CARGO_BIN_EXE_lb-proxy")), exe);
    p.signal("USR2");
    wait_logged(
        &lines,
        "upgrade failed",
        "the old process to say the upgrade failed",
    );
    let log = lines.lock().expect("lines").join("\n");
    assert!(log.contains("exited"), "{log}");
    assert!(
        log.contains("unknown strategy \"nope\""),
        "the new process says why: {log}"
    );
    assert_eq!(read_pid(&pid_file), Some(p.id()));
    let answer = http(
        port,
        "GET / HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Fixed, the next SIGUSR2 upgrades.
    std::fs::write(cfg, good).expect("fix");
    p.signal("USR2");
    let new = next_pid(&pid_file, p.id());
    assert_eq!(p.wait(Duration::from_secs(35)), Some(0));
    let answer = http(
        port,
        "GET / HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(signal_pid(new, "TERM"));
    wait_for(|| gone(new), "the new process to exit");
    let _ = std::fs::remove_dir_all(dir);
}

/// systemd socket activation (`systemd-socket-activate`, as a `.socket` unit does): the
/// listener and the admin API serve on the sockets systemd made (binding them again would
/// fail: systemd holds them), and SIGUSR2 hands them on as usual.
#[test]
fn socket_activation_then_upgrade() {
    let u = setup("socket-activation");
    let (dir, exe, cfg, port) = (&u.dir, &u.exe, &u.cfg, u.listen);
    let admin = {
        let text = std::fs::read_to_string(cfg).expect("read");
        let at = text.find("listen = \"127.0.0.1:").expect("admin listen") + 20;
        text[at..at + text[at..].find('"').expect("quote")]
            .parse::<u16>()
            .expect("port")
    };
    let pid_file = dir.join("lb-proxy.pid");
    let mut activator = std::process::Command::new("systemd-socket-activate")
        .args([
            "-l",
            &format!("127.0.0.1:{port}"),
            "-l",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(["-E", "NO_COLOR=1"])
        .arg(exe)
        .arg("--config")
        .arg(cfg)
        .arg("--pid-file")
        .arg(&pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    let _stop = StopNamed(&pid_file);
    wait_listening(port);
    // The first connection starts the service, which answers it.
    let answer = http(
        port,
        "GET / HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let health = http(
        admin,
        "GET /healthz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // systemd-socket-activate execs the service in its own process.
    wait_for(
        || read_pid(&pid_file) == Some(activator.id()),
        "the pid file",
    );
    assert!(signal_pid(activator.id(), "USR2"));
    let new = next_pid(&pid_file, activator.id());
    let answer = http(
        port,
        "GET / HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = activator.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(signal_pid(new, "TERM"));
    wait_for(|| gone(new), "the new process to exit");
    let _ = std::fs::remove_dir_all(dir);
}
