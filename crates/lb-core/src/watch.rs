//! What operators watch per backend beyond its state: since when it is in that state, the
//! last health check's result and why it failed, bytes relayed, and how long requests
//! held it. All atomics written where the event happens (the check error text, written
//! by the health checker only, sits behind an [`ArcSwapOption`]); read by the admin API.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::clock;
use crate::metrics::Histogram;

/// Per-backend figures for the stats page (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct Watch {
    /// Clock nanos of the last state change (health, drain, ejection); 0 = none yet.
    since: AtomicU64,
    /// Clock nanos of the last finished health check; 0 = never checked.
    check_at: AtomicU64,
    check_ok: AtomicBool,
    check_error: ArcSwapOption<String>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    held: Histogram,
}

/// The last health check of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastCheck {
    /// Clock nanos when it finished.
    pub at: u64,
    /// Whether it passed.
    pub ok: bool,
    /// Why it failed (`None` when it passed).
    pub error: Option<Arc<String>>,
}

impl Watch {
    /// Notes a state change now.
    #[inline]
    pub fn mark(&self) {
        self.since.store(clock::now_nanos(), Ordering::Relaxed);
    }

    /// Clock nanos of the last state change; 0 when there was none since the start.
    pub fn since(&self) -> u64 {
        self.since.load(Ordering::Relaxed)
    }

    /// Records a health check's result (`error` is `None` when it passed). Keeps the
    /// previous error text when the same error repeats, so a failing backend's checks do
    /// not allocate.
    pub fn record_check(&self, error: Option<&dyn std::fmt::Display>) {
        match error {
            None => {
                if self.check_error.load().is_some() {
                    self.check_error.store(None);
                }
                self.check_ok.store(true, Ordering::Relaxed);
            }
            Some(e) => {
                let text = e.to_string();
                if self.check_error.load().as_deref() != Some(&text) {
                    self.check_error.store(Some(Arc::new(text)));
                }
                self.check_ok.store(false, Ordering::Relaxed);
            }
        }
        self.check_at.store(clock::now_nanos(), Ordering::Relaxed);
    }

    /// The last health check, if any ran.
    pub fn last_check(&self) -> Option<LastCheck> {
        let at = self.check_at.load(Ordering::Relaxed);
        (at != 0).then(|| {
            let ok = self.check_ok.load(Ordering::Relaxed);
            LastCheck {
                at,
                ok,
                error: if ok {
                    None
                } else {
                    self.check_error.load_full()
                },
            }
        })
    }

    /// Counts bytes relayed: `to_backend` from clients, `from_backend` back to them.
    #[inline]
    pub fn add_bytes(&self, to_backend: u64, from_backend: u64) {
        if to_backend > 0 {
            self.bytes_in.fetch_add(to_backend, Ordering::Relaxed);
        }
        if from_backend > 0 {
            self.bytes_out.fetch_add(from_backend, Ordering::Relaxed);
        }
    }

    /// Bytes relayed so far: (to the backend, from the backend).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }

    /// Records how long a request (lb-proxy: to the end of its response body) or a
    /// connection (lb-sni, tunnels) held the backend.
    #[inline]
    pub fn observe_held(&self, d: Duration) {
        self.held.observe(d);
    }

    /// The histogram of [`observe_held`](Self::observe_held).
    pub fn held(&self) -> &Histogram {
        &self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_keep_the_last_error() {
        let w = Watch::default();
        assert_eq!(w.last_check(), None);
        w.record_check(Some(&"connection refused"));
        let c = w.last_check().unwrap_or_else(|| panic!("a check"));
        assert!(!c.ok);
        assert_eq!(
            c.error.as_deref().map(String::as_str),
            Some("connection refused")
        );
        let first = c.error;
        w.record_check(Some(&"connection refused"));
        // The same text is not stored again.
        assert!(Arc::ptr_eq(
            first.as_ref().unwrap_or_else(|| panic!("error")),
            w.last_check()
                .and_then(|c| c.error)
                .as_ref()
                .unwrap_or_else(|| panic!("error"))
        ));
        w.record_check(None);
        let c = w.last_check().unwrap_or_else(|| panic!("a check"));
        assert!(c.ok && c.error.is_none());
        w.add_bytes(3, 5);
        w.add_bytes(0, 1);
        assert_eq!(w.bytes(), (3, 6));
    }
}
