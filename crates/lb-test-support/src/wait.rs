//! Polling a condition under a deadline (every 20 ms): for state that changes in the
//! background (health, discovery, reloads). The deadline is a functional timeout, never a
//! speed assertion.

use std::future::Future;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds or `within` has passed; whether it held (checked once more
/// at the deadline).
pub async fn until(within: Duration, cond: impl FnMut() -> bool) -> bool {
    until_timed(within, cond).await.is_some()
}

/// As [`until`], returning how long it took for `cond` to hold, or `None` if it never did.
pub async fn until_timed(within: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if cond() {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(EVERY).await;
    }
    cond().then(|| t0.elapsed())
}

/// Polls the asynchronous condition `f` until it is true or `within` has passed; whether it
/// became true.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(EVERY).await;
    }
    f().await
}
