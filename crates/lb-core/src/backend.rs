//! Backends and their live state.
//!
//! A [`Backend`] is what the config or a discovery source says (address, weight, stable id,
//! backup flag, metadata); it is immutable. Its [`BackendState`] is what the balancer has
//! observed (health, admin drain, active requests, outlier ejection); it lives in atomics,
//! is shared by every snapshot that contains the backend, and survives membership rebuilds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock;
use crate::error::PoolError;
use crate::watch::Watch;

/// The largest backend weight; 0 means "drain".
pub const MAX_WEIGHT: u16 = 256;

/// A backend as declared: immutable, cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    addr: SocketAddr,
    id: Arc<str>,
    weight: u16,
    backup: bool,
    metadata: BTreeMap<String, String>,
}

impl Backend {
    /// A backend at `addr` with weight 1, id = the address, not a backup.
    pub fn new(addr: SocketAddr) -> Backend {
        Backend {
            addr,
            id: Arc::from(addr.to_string()),
            weight: 1,
            backup: false,
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the weight: 0 (drain) to [`MAX_WEIGHT`].
    pub fn with_weight(mut self, weight: u32) -> Result<Backend, PoolError> {
        self.weight = check_weight(weight)?;
        Ok(self)
    }

    /// Sets the stable identity used for hash placement (defaults to the address), so a
    /// backend that comes back on another address keeps its keys.
    pub fn with_id(mut self, id: impl Into<Arc<str>>) -> Backend {
        self.id = id.into();
        self
    }

    /// Marks the backend as a backup: it gets traffic only when no primary is usable.
    pub fn with_backup(mut self, backup: bool) -> Backend {
        self.backup = backup;
        self
    }

    /// Attaches a metadata entry (free-form labels: zone, version, ...).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Backend {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The address traffic goes to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The stable identity used for placement.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The weight (0 = draining).
    pub fn weight(&self) -> u16 {
        self.weight
    }

    /// True for backup backends.
    pub fn is_backup(&self) -> bool {
        self.backup
    }

    /// Free-form metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// One metadata value: `lease.backend().meta("zone")`.
    ///
    /// ```
    /// let b = lb_core::Backend::new("127.0.0.1:7001".parse().unwrap()).with_metadata("zone", "eu-1");
    /// assert_eq!(b.meta("zone"), Some("eu-1"));
    /// assert_eq!(b.meta("rack"), None);
    /// ```
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// Validates a weight: 0..=256.
pub fn check_weight(weight: u32) -> Result<u16, PoolError> {
    if weight > u32::from(MAX_WEIGHT) {
        return Err(PoolError::BadWeight(weight));
    }
    Ok(weight as u16)
}

/// A backend's state as shown to operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendStatus {
    /// Takes traffic.
    Up,
    /// Failed its health checks.
    Down,
    /// Drained by an operator (or weight 0): no new traffic, in-flight work finishes.
    Draining,
    /// Ejected for a while by passive outlier detection.
    Ejected,
}

impl BackendStatus {
    /// `up`, `down`, `draining` or `ejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendStatus::Up => "up",
            BackendStatus::Down => "down",
            BackendStatus::Draining => "draining",
            BackendStatus::Ejected => "ejected",
        }
    }
}

/// Live state of one backend, shared across snapshots. All fields are atomics.
#[derive(Debug)]
pub struct BackendState {
    healthy: AtomicBool,
    draining: AtomicBool,
    active: AtomicU64,
    /// Clock nanos when the backend last came up or was added (slow start).
    up_since: AtomicU64,
    pub(crate) consecutive_errors: AtomicU32,
    /// Clock nanos until which the backend is ejected; 0 = not ejected.
    pub(crate) ejected_until: AtomicU64,
    pub(crate) ejections: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Responses by status class 1xx..5xx.
    classes: [AtomicU64; 5],
    /// Since-when, last check, bytes and hold times, for the stats page.
    watch: Watch,
}

impl BackendState {
    /// Fresh state: healthy unless `initial_up` is false, not draining, idle.
    pub fn new(initial_up: bool) -> BackendState {
        BackendState {
            healthy: AtomicBool::new(initial_up),
            draining: AtomicBool::new(false),
            active: AtomicU64::new(0),
            up_since: AtomicU64::new(clock::now_nanos()),
            consecutive_errors: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            classes: Default::default(),
            watch: Watch::default(),
        }
    }

    /// Marks the backend as settled: no slow-start ramp (backends present at pool start).
    pub fn settle(&self) {
        self.up_since.store(0, Ordering::Relaxed);
    }

    /// The health view (set by the active checker).
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets health; returns the previous value. Coming up restarts the slow-start window.
    pub fn set_healthy(&self, up: bool) -> bool {
        let was = self.healthy.swap(up, Ordering::Relaxed);
        if up && !was {
            self.up_since.store(clock::now_nanos(), Ordering::Relaxed);
        }
        if up != was {
            self.watch.mark();
        }
        was
    }

    /// True while an operator drains the backend.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Drains (`true`) or un-drains the backend. Un-draining restarts slow start.
    pub fn set_draining(&self, draining: bool) {
        let was = self.draining.swap(draining, Ordering::Relaxed);
        if was && !draining {
            self.up_since.store(clock::now_nanos(), Ordering::Relaxed);
        }
        if was != draining {
            self.watch.mark();
        }
    }

    /// Requests (or connections) in flight.
    #[inline]
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// True while passive outlier detection ejects the backend at clock time `now`.
    #[inline]
    pub fn is_ejected(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now < until
    }

    /// Clock nanos of the last up transition (for slow start).
    #[inline]
    pub fn up_since(&self) -> u64 {
        self.up_since.load(Ordering::Relaxed)
    }

    /// Total requests started through leases.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Total failures reported.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Counts a response by its status class (1xx..5xx; others are ignored).
    #[inline]
    pub fn count_status(&self, status: u16) {
        if let Some(c) = self.classes.get(usize::from(status / 100).wrapping_sub(1)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Responses counted per class: index 0 is 1xx, 4 is 5xx.
    pub fn class_counts(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.classes[i].load(Ordering::Relaxed))
    }

    /// Since-when, last health check, bytes and hold times (the stats page's figures).
    #[inline]
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// Clock nanos since which the backend has had its current status at `now`: the last
    /// change of health, drain or ejection, or the end of an ejection that has run out.
    /// 0 when nothing changed since it was added.
    pub fn status_since(&self, now: u64) -> u64 {
        let since = self.watch.since();
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until != 0 && until <= now && until > since {
            until
        } else {
            since
        }
    }

    /// Times this backend has been ejected.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Increments `active` unless it is at `limit` (0 = unlimited). Atomic: two concurrent
    /// callers can never both pass the limit.
    #[inline]
    pub(crate) fn try_acquire(&self, limit: u64) -> bool {
        if limit == 0 {
            self.active.fetch_add(1, Ordering::AcqRel);
        } else {
            let mut cur = self.active.load(Ordering::Relaxed);
            loop {
                if cur >= limit {
                    return false;
                }
                match self.active.compare_exchange_weak(
                    cur,
                    cur + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        true
    }

    #[inline]
    pub(crate) fn release(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The status shown to operators at clock time `now`.
    pub fn status(&self, weight: u16, now: u64) -> BackendStatus {
        if self.is_draining() || weight == 0 {
            BackendStatus::Draining
        } else if !self.is_healthy() {
            BackendStatus::Down
        } else if self.is_ejected(now) {
            BackendStatus::Ejected
        } else {
            BackendStatus::Up
        }
    }
}
