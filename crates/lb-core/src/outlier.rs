//! Passive outlier detection: real traffic ejects a failing backend for a while.
//!
//! The proxy reports each attempt's [`Outcome`] on its [`Lease`](crate::pool::Lease). After
//! `consecutive_errors` failures in a row (connect errors, resets, 5xx) the backend is
//! ejected for `base_ejection × n`, where `n` counts its ejections so far (capped at 10×),
//! so a backend that keeps failing stays out longer. A success resets the run of errors.
//! Ejection never takes out more than `max_ejected` of the pool's backends, with at least
//! one always allowed and never all of them: a pool that is failing everywhere keeps
//! sending traffic rather than answering 503 on local observations alone.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backend::BackendState;
use crate::clock;

/// Outcome of one attempt against a backend, as seen by the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered (any status the pool does not count as failure).
    Success,
    /// Connect error, reset, timeout, or a 5xx the pool counts as failure.
    Failure,
}

/// Passive ejection settings (`outlier = { ... }` in a pool).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct OutlierSettings {
    /// Failures in a row that eject a backend; 0 disables ejection. Default 5.
    pub consecutive_errors: u32,
    /// First ejection time; grows linearly with repeat ejections (max 10×). Default 30 s.
    pub base_ejection: Duration,
    /// Largest share of the pool ejected at once (0.0–1.0). Default 0.5.
    pub max_ejected: f64,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            consecutive_errors: 5,
            base_ejection: Duration::from_secs(30),
            max_ejected: 0.5,
        }
    }
}

impl OutlierSettings {
    /// How many of `members` backends may be ejected at once: at least one, never all.
    pub fn max_ejectable(&self, members: usize) -> usize {
        if members <= 1 {
            return 0;
        }
        let share = (self.max_ejected.clamp(0.0, 1.0) * members as f64).floor() as usize;
        share.max(1).min(members - 1)
    }
}

/// Records a failure; returns `true` when it ejected the backend.
///
/// `ejected_now` is how many of the pool's `members` are ejected at `now` (the caller
/// counts them; this only runs on a failure path).
pub(crate) fn record_failure(
    state: &BackendState,
    settings: &OutlierSettings,
    now: u64,
    ejected_now: impl FnOnce() -> usize,
    members: usize,
) -> bool {
    state.count_failure();
    if settings.consecutive_errors == 0 {
        return false;
    }
    let errors = state.consecutive_errors.fetch_add(1, Ordering::AcqRel) + 1;
    if errors < settings.consecutive_errors || state.is_ejected(now) {
        return false;
    }
    if ejected_now() >= settings.max_ejectable(members) {
        return false;
    }
    let n = state
        .ejections
        .fetch_add(1, Ordering::AcqRel)
        .saturating_add(1)
        .min(10);
    let until =
        now.saturating_add(clock::dur_nanos(settings.base_ejection).saturating_mul(u64::from(n)));
    state.ejected_until.store(until, Ordering::Release);
    state.consecutive_errors.store(0, Ordering::Release);
    state.watch().mark();
    tracing::warn!(
        ejection = n,
        secs = (until - now) / 1_000_000_000,
        "backend ejected by outlier detection"
    );
    true
}

/// Records a success: the run of errors ends.
#[inline]
pub(crate) fn record_success(state: &BackendState) {
    if state.consecutive_errors.load(Ordering::Relaxed) != 0 {
        state.consecutive_errors.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_ejectable_is_at_least_one_never_all() {
        let s = OutlierSettings::default();
        assert_eq!(s.max_ejectable(1), 0);
        assert_eq!(s.max_ejectable(2), 1);
        assert_eq!(s.max_ejectable(10), 5);
        let none = OutlierSettings {
            max_ejected: 0.0,
            ..s
        };
        assert_eq!(none.max_ejectable(10), 1);
        let all = OutlierSettings {
            max_ejected: 1.0,
            ..s
        };
        assert_eq!(all.max_ejectable(10), 9);
    }

    #[test]
    fn ejects_after_consecutive_errors_and_grows() {
        let s = OutlierSettings {
            consecutive_errors: 3,
            base_ejection: Duration::from_secs(1),
            max_ejected: 0.5,
        };
        let st = BackendState::new(true);
        let now = 1_000;
        assert!(!record_failure(&st, &s, now, || 0, 4));
        assert!(!record_failure(&st, &s, now, || 0, 4));
        record_success(&st);
        assert!(!record_failure(&st, &s, now, || 0, 4));
        assert!(!record_failure(&st, &s, now, || 0, 4));
        assert!(record_failure(&st, &s, now, || 0, 4));
        assert!(st.is_ejected(now + 999_999_999));
        assert!(!st.is_ejected(now + 1_000_000_000));
        // Second ejection lasts twice as long.
        let later = now + 2_000_000_000;
        for _ in 0..2 {
            assert!(!record_failure(&st, &s, later, || 0, 4));
        }
        assert!(record_failure(&st, &s, later, || 0, 4));
        assert!(st.is_ejected(later + 1_999_999_999));
        assert!(!st.is_ejected(later + 2_000_000_000));
    }

    #[test]
    fn never_ejects_past_the_share() {
        let s = OutlierSettings {
            consecutive_errors: 1,
            ..Default::default()
        };
        let st = BackendState::new(true);
        assert!(!record_failure(&st, &s, 10, || 1, 2));
        assert!(!st.is_ejected(10));
        let off = OutlierSettings {
            consecutive_errors: 0,
            ..s
        };
        assert!(!record_failure(&st, &off, 10, || 0, 2));
    }
}
