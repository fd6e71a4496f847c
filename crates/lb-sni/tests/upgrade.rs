//! Zero-downtime binary upgrade of `lb-sni` under load: the executable is replaced and
//! SIGUSR2 sent, twice in a row; clients opening a TLS connection (a ClientHello routed by
//! its SNI) per exchange see no refused connection and no failed exchange; a TLS
//! connection open across the upgrade keeps working on the old process until it closes;
//! the old process then exits 0 and the pid file names the new one. And a broken config
//! leaves the old process serving, saying why.
//!
//! Against the release binaries: `cargo build --release -j2 -p lb-sni` then
//! `LB_TEST_BIN_DIR=/work/target/release cargo test -j2 -p lb-sni --test upgrade -- --nocapture`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{build_handshake, reframe, server_name_ext};
use lb_test_support::shell::*;

fn hello() -> Vec<u8> {
    reframe(
        &build_handshake(Some(&[(0, server_name_ext(&[(0, b"web.test")]))])),
        &[],
    )
}

/// A routed connection: the hello sent and echoed back by the backend.
fn tls_connection(port: u16) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let h = hello();
    s.write_all(&h).map_err(|e| format!("write: {e}"))?;
    let mut back = vec![0u8; h.len()];
    s.read_exact(&mut back).map_err(|e| format!("echo: {e}"))?;
    if back != h {
        return Err("wrong echo".into());
    }
    Ok(s)
}

fn setup(name: &str) -> Upgradable {
    let exe = env!("CARGO_BIN_EXE_lb-sni");
    Upgradable::new(name, "lb-sni", exe, "sni.toml", echo_backend())
}

#[test]
fn upgrade_twice_under_load_loses_nothing() {
    let u = setup("sni-upgrade");
    let (dir, exe, port) = (&u.dir, &u.exe, u.listen);
    let pid_file = dir.join("lb-sni.pid");
    let _stop = StopNamed(&pid_file);
    let (mut first, lines) = u.start(&pid_file);

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (stop, load) = (stop.clone(), load.clone());
        clients.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match tls_connection(port) {
                    Ok(_) => {
                        load.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        load.errors.fetch_add(1, Ordering::Relaxed);
                        load.messages.lock().expect("messages").push(e);
                    }
                }
            }
        }));
    }
    wait_for(|| load.ok() > 50, "load flowing");

    let mut open = tls_connection(port).expect("a long connection");
    let built = binary("lb-sni", env!("CARGO_BIN_EXE_lb-sni"));
    install(&built, exe);
    let before = load.ok();
    let t0 = Instant::now();
    first.signal("USR2");
    let second = next_pid(&pid_file, first.id());
    // The connection opened before the upgrade still flows, on the old process.
    open.write_all(b"still there").expect("write");
    let mut back = [0u8; 11];
    open.read_exact(&mut back).expect("echo after the upgrade");
    assert_eq!(&back, b"still there");
    assert!(
        !gone(first.id()),
        "the old process left with a connection open"
    );
    drop(open);
    assert_eq!(
        first.wait(Duration::from_secs(35)),
        Some(0),
        "old process exit code"
    );
    let during = load.ok() - before;
    println!(
        "lb-sni first upgrade: {during} connections from SIGUSR2 to the old process's exit ({:?}), errors {}",
        t0.elapsed(),
        load.errors()
    );

    let (third, during2) = upgrade_again(&built, exe, &pid_file, second, &load);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    println!(
        "lb-sni second upgrade: {during2} connections until the old process exited; total {}, errors {}",
        load.ok(),
        load.errors()
    );
    let log = lines.lock().expect("lines").join("\n");
    assert_eq!(
        load.errors(),
        0,
        "{:?}\n{log}",
        load.messages.lock().expect("messages")
    );
    assert!(during > 0 && during2 > 0);
    assert_eq!(read_pid(&pid_file), Some(third));
    assert!(signal_pid(third, "TERM"));
    wait_for(|| gone(third), "the last process to exit");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let u = setup("sni-upgrade-broken");
    let (dir, port) = (&u.dir, u.listen);
    let pid_file = dir.join("lb-sni.pid");
    let _stop = StopNamed(&pid_file);
    let (mut p, lines) = u.start(&pid_file);
    u.break_config();
    p.signal("USR2");
    wait_logged(
        &lines,
        "upgrade failed",
        "the old process to say the upgrade failed",
    );
    let log = lines.lock().expect("lines").join("\n");
    assert!(
        log.contains("unknown strategy \"nope\""),
        "the new process says why: {log}"
    );
    assert_eq!(read_pid(&pid_file), Some(p.id()));
    tls_connection(port).expect("still serving");
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(35)), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}
