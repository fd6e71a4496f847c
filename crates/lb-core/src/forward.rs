//! Trying the candidates: one request's attempts over a pool, with retries, the retry
//! budget and passive health, the same for every binary.
//!
//! [`Attempts`] walks a [`Snapshot`]: the backend a sticky cookie names first (when it is
//! usable), then the strategy's preference order without it, skipping backends that are
//! down, draining, ejected or full (the [`Selection`]'s rules). Each attempt ends with a
//! [`Verdict`] that says whose fault the outcome was:
//!
//! - [`Verdict::Served`]: the backend answered; passive health counts a success.
//! - [`Verdict::Backend`]: the backend failed ([`Failure`]: connect, reset, timeout or a
//!   5xx); passive health counts a failure, and the next candidate is handed out when
//!   - the protocol says the request can still go elsewhere (`replayable`: lb-proxy's HTTP
//!     rules, lb-sni's "nothing from the backend reached the client"),
//!   - `retry_on` lists the failure's class (`connect`, `reset`, `502`, `503`; a timeout
//!     is never retried: the backend may be working on it),
//!   - fewer than `retries` retries were made, and
//!   - the pool's retry budget has room: retries in flight at most
//!     `max(min_concurrent, ratio × active requests)` (Envoy's rule).
//! - [`Verdict::Client`]: the client caused it (a malformed or short body, a reset, a
//!   limit it broke). Nothing is reported against the backend and nothing is retried.
//!
//! Every retry handed out counts one in the pool's `lb_retries_total`. A pick takes no
//! lock and allocates nothing: the state is a [`Selection`] and a few words.
//!
//! ```
//! use lb_core::forward::{Attempts, Failure, RetryPolicy, Verdict};
//! use lb_core::select::PickInput;
//! use lb_core::{Backend, Pool, PoolSettings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backends = vec![Backend::new("127.0.0.1:19001".parse()?), Backend::new("127.0.0.1:19002".parse()?)];
//! let pool = Pool::new("web", PoolSettings::default(), backends)?;
//! let snap = pool.snapshot();
//! let policy = RetryPolicy::default();
//! let mut attempts = Attempts::new(&pool, &snap, PickInput::default(), &policy);
//! let first = attempts.first().ok_or("no backend")?;
//! // Connecting to it failed: the next candidate comes, counted as a retry.
//! let failed = Verdict::Backend { failure: Failure::Connect, replayable: true };
//! let second = attempts.report(&first, failed).ok_or("no retry")?;
//! assert_ne!(first.addr(), second.addr());
//! assert!(attempts.report(&second, Verdict::Served).is_none());
//! assert_eq!((attempts.tries(), pool.stats().retries.load(std::sync::atomic::Ordering::Relaxed)), (2, 1));
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::metrics::Reason;
use crate::outlier::Outcome;
use crate::pool::{Lease, Pool, Selection, Snapshot};
use crate::select::PickInput;

/// Which failures are retried (`retry_on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryOn {
    /// Connect failures (any request).
    pub connect: bool,
    /// Reset or EOF before any response byte (idempotent requests).
    pub reset: bool,
    /// A 502 answer (idempotent requests).
    pub status_502: bool,
    /// A 503 answer (idempotent requests).
    pub status_503: bool,
}

impl Default for RetryOn {
    /// `["connect", "reset"]`.
    fn default() -> Self {
        RetryOn {
            connect: true,
            reset: true,
            status_502: false,
            status_503: false,
        }
    }
}

impl RetryOn {
    /// True when `failure`'s class is listed. A timeout and a 5xx other than 502 and 503
    /// never are.
    pub fn allows(&self, failure: Failure) -> bool {
        match failure {
            Failure::Connect => self.connect,
            Failure::Reset => self.reset,
            Failure::Status(502) => self.status_502,
            Failure::Status(503) => self.status_503,
            Failure::Timeout | Failure::Status(_) => false,
        }
    }
}

/// Envoy's retry budget: retries in flight at most `max(min_concurrent, ratio × active)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    /// 0.0..=1.0. Default 0.2.
    pub ratio: f64,
    /// Default 3.
    pub min_concurrent: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            ratio: 0.2,
            min_concurrent: 3,
        }
    }
}

impl RetryBudget {
    /// Retries allowed in flight with `active` requests.
    pub fn allowed(&self, active: u64) -> u64 {
        let by_ratio = (self.ratio * active as f64).floor() as u64;
        by_ratio.max(u64::from(self.min_concurrent))
    }
}

/// How a request's failures are retried: `retries`, `retry_on` and `retry_budget` of a
/// pool (or of a `[resolver.X]` for the endpoints it answers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Further candidates tried after the first. Default 2.
    pub retries: u32,
    /// Which failures are retried. Default connect and reset.
    pub retry_on: RetryOn,
    /// Retries in flight per pool. Default ratio 0.2, at least 3.
    pub budget: RetryBudget,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 2,
            retry_on: RetryOn::default(),
            budget: RetryBudget::default(),
        }
    }
}

/// What went wrong with a backend (the `retry_on` classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No usable connection: refused, unreachable, connect timeout, TLS handshake, or a
    /// pooled connection found closed before any byte of the request left.
    Connect,
    /// The backend closed or reset before any response byte.
    Reset,
    /// No response (head) in time. Never retried: the backend may be working on it.
    Timeout,
    /// The backend answered with this 5xx status.
    Status(u16),
}

impl Failure {
    /// The `x-lb-error` reason when this failure ends the request.
    pub fn reason(self) -> Reason {
        match self {
            Failure::Connect => Reason::UpstreamConnect,
            Failure::Reset | Failure::Status(_) => Reason::UpstreamReset,
            Failure::Timeout => Reason::UpstreamTimeout,
        }
    }
}

/// The outcome of one attempt, and whose fault it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The backend answered (a status the pool does not count as a failure).
    Served,
    /// The backend failed.
    Backend {
        /// What failed.
        failure: Failure,
        /// The protocol allows sending this request to another backend: nothing from
        /// this one reached the client, and the request can be sent again whole.
        replayable: bool,
    },
    /// The client caused the failure: never reported against the backend, never retried.
    Client,
}

/// One request's attempts over a pool snapshot; see the module docs.
pub struct Attempts<'a> {
    pool: &'a Pool,
    snap: &'a Arc<Snapshot>,
    selection: Selection<'a>,
    policy: &'a RetryPolicy,
    /// A sticky backend's lease, handed out first.
    pinned: Option<Lease>,
    /// Skipped in the preference order: it was tried first.
    pinned_addr: Option<SocketAddr>,
    tries: u32,
    /// This request holds one of the pool's retries in flight.
    retrying: bool,
}

impl std::fmt::Debug for Attempts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts")
            .field("pool", &self.pool.name())
            .field("tries", &self.tries)
            .field("retrying", &self.retrying)
            .finish()
    }
}

impl<'a> Attempts<'a> {
    /// The attempts of one request on `snap` (a snapshot of `pool`), in the preference
    /// order for `input`.
    pub fn new(
        pool: &'a Pool,
        snap: &'a Arc<Snapshot>,
        input: PickInput,
        policy: &'a RetryPolicy,
    ) -> Attempts<'a> {
        Attempts {
            pool,
            snap,
            selection: snap.select_with(input),
            policy,
            pinned: None,
            pinned_addr: None,
            tries: 0,
            retrying: false,
        }
    }

    /// Puts the backend whose [`hash::sticky_id`](crate::hash::sticky_id) is `sticky`
    /// first, when it is usable ([`Snapshot::lease_sticky`]); the preference order
    /// follows without it.
    pub fn sticky_first(mut self, sticky: Option<u64>) -> Attempts<'a> {
        self.pinned = sticky.and_then(|id| self.snap.lease_sticky(id));
        self.pinned_addr = self.pinned.as_ref().map(Lease::addr);
        self
    }

    /// The first backend to try; `None` when no backend is usable (`503
    /// no-healthy-backend`).
    pub fn first(&mut self) -> Option<Lease> {
        let lease = self.candidate()?;
        self.tries += 1;
        Some(lease)
    }

    /// Reports the attempt on `lease` to passive health (unless the client was at fault)
    /// and returns the next backend to try when this failure is retried (see the module
    /// docs); `None` ends the request with this attempt's outcome.
    pub fn report(&mut self, lease: &Lease, verdict: Verdict) -> Option<Lease> {
        match verdict {
            Verdict::Served => {
                lease.report(Outcome::Success);
                self.release();
                None
            }
            Verdict::Client => {
                self.release();
                None
            }
            Verdict::Backend {
                failure,
                replayable,
            } => {
                lease.report(Outcome::Failure);
                if !(replayable && self.policy.retry_on.allows(failure)) {
                    self.release();
                    return None;
                }
                let next = self.retry();
                if next.is_none() {
                    self.release();
                }
                next
            }
        }
    }

    /// True when a `failure` of the current attempt could still be retried: its class is
    /// in `retry_on` and `retries` are not used up (the budget is checked only when the
    /// retry is asked for). lb-sni waits for a backend's first bytes only then.
    pub fn may_retry(&self, failure: Failure) -> bool {
        self.policy.retry_on.allows(failure) && self.tries <= self.policy.retries
    }

    /// Attempts made so far (the access log's `tries`).
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// The pool the attempts are made on.
    pub fn pool(&self) -> &'a Pool {
        self.pool
    }

    /// The next candidate for a retry, within `retries` and the budget; counts it.
    fn retry(&mut self) -> Option<Lease> {
        if self.tries > self.policy.retries {
            return None;
        }
        let stats = self.pool.stats();
        if !self.retrying {
            let allowed = self.policy.budget.allowed(self.pool.active());
            if !try_take(&stats.retries_in_flight, allowed) {
                tracing::debug!(pool = self.pool.name(), "retry budget exhausted");
                return None;
            }
            self.retrying = true;
        }
        let lease = self.candidate()?;
        stats.retries.fetch_add(1, Ordering::Relaxed);
        self.tries += 1;
        Some(lease)
    }

    /// The pinned backend, else the next in preference order other than it.
    fn candidate(&mut self) -> Option<Lease> {
        if let Some(l) = self.pinned.take() {
            return Some(l);
        }
        let pinned = self.pinned_addr;
        self.selection.find(|l| Some(l.addr()) != pinned)
    }

    /// Gives back this request's retry slot, if it holds one.
    fn release(&mut self) {
        if std::mem::take(&mut self.retrying) {
            self.pool
                .stats()
                .retries_in_flight
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Attempts<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Takes one of `allowed` slots of `counter`; false when all are taken.
fn try_take(counter: &AtomicU64, allowed: u64) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < allowed).then_some(n + 1)
        })
        .is_ok()
}

#[cfg(test)]
mod tests;
