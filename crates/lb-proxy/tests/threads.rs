//! `threads = 0` runs one worker per core, `threads = 2` two and `1` one: the binary's
//! `lb_worker_threads` gauge in `/metrics` says so.

use std::process::{Command, Stdio};

use lb_test_support::threads::{free_ports, gauge, metrics, Proc};

fn workers_with(threads: usize) -> f64 {
    // One binary at a time: two tests choosing ports at once could choose the same ones.
    static ONE: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut runs = ONE.lock().unwrap_or_else(|p| p.into_inner());
    *runs += 1;
    let dir =
        std::env::temp_dir().join(format!("lb-proxy-threads-{}-{}", std::process::id(), *runs));
    std::fs::create_dir_all(&dir).expect("dir");
    let (admin, listen) = free_ports();
    let config = format!(
        "threads = {threads}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[[listener]]\nlisten = \"127.0.0.1:{listen}\"\n[pool.p]\nbackends = [\"127.0.0.1:1\"]\n[[route]]\nhost = \"x.test\"\npool = \"p\"\n"
    );
    let path = dir.join("proxy.toml");
    std::fs::write(&path, config).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_lb-proxy"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start lb-proxy");
    let mut p = Proc(child);
    let n = gauge(&metrics(admin, &mut p));
    drop(p);
    let _ = std::fs::remove_dir_all(dir);
    n
}

#[test]
fn threads_zero_runs_one_worker_per_core_two_two_and_one_one() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(workers_with(0), cores as f64);
    assert_eq!(workers_with(2), 2.0);
    assert_eq!(workers_with(1), 1.0);
}
