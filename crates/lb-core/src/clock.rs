//! A monotonic clock as nanoseconds since a process-wide epoch, so instants fit in atomics.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the process epoch (monotonic; never 0 after the first call).
#[inline]
pub fn now_nanos() -> u64 {
    to_nanos(Instant::now())
}

/// Converts an `Instant` to nanoseconds since the process epoch (saturating at 1).
#[inline]
pub fn to_nanos(t: Instant) -> u64 {
    (t.saturating_duration_since(epoch()).as_nanos() as u64).max(1)
}

/// Converts a duration to whole nanoseconds, saturating.
#[inline]
pub fn dur_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
