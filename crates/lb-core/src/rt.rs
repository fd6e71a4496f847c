//! The tokio runtime for a `threads` setting, shared by every binary of lb.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Workers of the runtime [`runtime`] built last (0: none built).
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// A tokio runtime for `threads` workers: `1` gives a current-thread runtime (tasks wake
/// each other without cross-thread hand-offs; the benchmark setting), `0` one worker per
/// core (`std::thread::available_parallelism`, which follows CPU affinity and cgroup
/// quotas), any other number that many.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let n = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
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

/// The worker threads serving connections, for the `lb_worker_threads` gauge: those of the
/// runtime [`runtime`] built, else (an embedder's own runtime) those of the runtime this is
/// called on, else 0.
pub fn worker_threads() -> usize {
    match WORKERS.load(Ordering::Relaxed) {
        0 => tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_workers()),
        n => n,
    }
}
