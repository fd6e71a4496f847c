//! The tokio runtime for a `threads` setting, shared by every binary of lb.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Workers of the runtime [`runtime`] built last (0: none built).
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// Per-listener worker threads under `LB_REUSEPORT=1` (0: off).
static REUSE_PORT: AtomicUsize = AtomicUsize::new(0);

/// The environment variable that turns on per-worker `SO_REUSEPORT` listeners, for
/// benchmarks (see [`reuse_port_workers`]).
pub const REUSE_PORT_ENV: &str = "LB_REUSEPORT";

/// A tokio runtime for `threads` workers: `1` gives a current-thread runtime (tasks wake
/// each other without cross-thread hand-offs; the benchmark setting), `0` one worker per
/// core (`std::thread::available_parallelism`, which follows CPU affinity and cgroup
/// quotas), any other number that many.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let n = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    if std::env::var_os(REUSE_PORT_ENV).is_some_and(|v| v == "1") {
        // The workers are the listeners' own threads; this runtime keeps the background
        // work (health checks, discovery, the admin API).
        REUSE_PORT.store(n, Ordering::Relaxed);
        WORKERS.store(n, Ordering::Relaxed);
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let rt = if n == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?
    };
    WORKERS.store(rt.metrics().num_workers(), Ordering::Relaxed);
    Ok(rt)
}

/// For benchmarks only: with `LB_REUSEPORT=1` in the environment when [`runtime`] built
/// the runtime, the number of threads each listener runs, one `SO_REUSEPORT` socket and
/// one single-threaded runtime each (`threads`; 0 = one per core), while the runtime
/// [`runtime`] returns is single-threaded and keeps the background work. `None` otherwise:
/// one socket per listener, served by that runtime's workers. Not a config setting: it
/// exists to measure one model against the other (benches/README.md).
pub fn reuse_port_workers() -> Option<usize> {
    match REUSE_PORT.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// The worker threads serving connections, for the `lb_worker_threads` gauge: those of the
/// runtime [`runtime`] built (per listener under [`reuse_port_workers`]), else (an embedder's own runtime) those of the runtime this is
/// called on, else 0.
pub fn worker_threads() -> usize {
    match WORKERS.load(Ordering::Relaxed) {
        0 => tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_workers()),
        n => n,
    }
}
