//! The tokio runtime for a `threads` setting, shared by every binary of lb.

/// A tokio runtime for `threads` workers: `1` gives a current-thread runtime (tasks wake
/// each other without cross-thread hand-offs; the benchmark setting), `0` one worker per
/// core, any other number that many.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b
    };
    b.enable_all().build()
}
