//! The health monitor: one probe loop per backend, following the pool's membership.
//!
//! [`HealthMonitor::spawn`] starts a supervisor task that owns one probe task per member.
//! The supervisor wakes on every membership change ([`Pool::subscribe`]), compares the new
//! snapshot with the tasks it runs (by address *and* by the identity of the member's
//! [`BackendState`]), starts tasks for new members and aborts those of removed ones.
//!
//! A probe task loops: probe (bounded by `timeout`), feed the result to its
//! [`HealthState`], and on a transition flip [`BackendState::set_healthy`] (one atomic: the
//! request path never waits and nothing is rebuilt), log it and publish a [`HealthEvent`].
//! Probes start `interval ± jitter` apart, so a dead backend leaves rotation within
//! `fall × interval + interval + timeout` (plus jitter) of its last good answer. Each
//! backend has its own task, so a backend that hangs until the timeout never delays the
//! probes of another. The first probe runs promptly (within `jitter × interval`).
//!
//! Lifecycle: tasks hold only weak references to the pool and to their backend's state and
//! stop when either is gone or the member left the pool; everything stops on the shutdown
//! future, on [`HealthMonitor::stop`], or when the monitor is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::check::{CheckError, Checker};
use super::settings::HealthSettings;
use super::state::{HealthState, Transition};
use crate::backend::BackendState;
use crate::hash;
use crate::pool::Pool;

/// Transitions kept for slow subscribers before they start missing some.
const EVENT_CAPACITY: usize = 256;

/// The shortest pause between two probes of one backend, whatever the settings say.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// A health transition of one backend.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HealthEvent {
    /// The pool's name.
    pub pool: Arc<str>,
    /// The backend's address (not the probed port, when `port` overrides it).
    pub addr: SocketAddr,
    /// The new health: true when the backend came up.
    pub up: bool,
    /// The failure of the probe that took it down (`None` when it came up).
    pub reason: Option<CheckError>,
}

/// Active health checking of one pool. Dropping it stops every probe.
#[derive(Debug)]
pub struct HealthMonitor {
    events: broadcast::Sender<HealthEvent>,
    supervisor: JoinHandle<()>,
}

impl HealthMonitor {
    /// Starts checking every member of `pool` with `checker`, until `shutdown` completes,
    /// the pool is dropped, or the monitor is stopped or dropped.
    ///
    /// Members present now keep their current health as the starting point (so restarting
    /// the monitor on reload does not flap anything). Members added later start from
    /// `settings.initial_up`: with `false` they are marked down at once and need `rise`
    /// successes. Set [`PoolSettings::initial_up`](crate::PoolSettings::initial_up) to the
    /// same value so a new backend is never briefly up before its task starts.
    ///
    /// `checker` is the probe: `settings.kind` is not read here (it is what
    /// [`checker_for`](super::checker_for) builds a checker from), so a custom [`Checker`]
    /// comes with any kind. `settings` gives the timing, `rise`/`fall` and `port`.
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn<S>(
        pool: Arc<Pool>,
        settings: HealthSettings,
        checker: Arc<dyn Checker>,
        shutdown: S,
    ) -> HealthMonitor
    where
        S: Future + Send + 'static,
    {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let ctx = Arc::new(Context {
            pool: Arc::downgrade(&pool),
            name: Arc::from(pool.name()),
            settings,
            checker,
            events: events.clone(),
        });
        let changes = pool.subscribe();
        // Members present at spawn keep their health; later ones get `initial_up`.
        let mut probes = Probes::default();
        probes.sync(&ctx, &pool, false);
        drop(pool);
        let supervisor = tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => {}
                _ = follow(ctx, changes, probes) => {}
            }
            // Dropping `probes` here aborts every probe task.
        });
        HealthMonitor { events, supervisor }
    }

    /// A receiver of every transition from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.events.subscribe()
    }

    /// Stops every probe now (also done on drop).
    pub fn stop(&self) {
        self.supervisor.abort();
    }

    /// True once the monitor has stopped (shutdown, pool dropped, or [`stop`](Self::stop)).
    pub fn is_finished(&self) -> bool {
        self.supervisor.is_finished()
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

/// What every probe task of one monitor shares.
struct Context {
    pool: Weak<Pool>,
    name: Arc<str>,
    settings: HealthSettings,
    checker: Arc<dyn Checker>,
    events: broadcast::Sender<HealthEvent>,
}

/// A running probe task; aborted when dropped.
struct Probe {
    state: Weak<BackendState>,
    task: JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The probe tasks of one monitor, by backend address.
#[derive(Default)]
struct Probes(HashMap<SocketAddr, Probe>);

impl Probes {
    /// Makes the running tasks match the pool's current members.
    fn sync(&mut self, ctx: &Arc<Context>, pool: &Pool, apply_initial: bool) {
        let snap = pool.snapshot();
        // Tasks whose member left (or was replaced by a new state) stop.
        self.0.retain(|addr, probe| {
            snap.member(*addr)
                .is_some_and(|m| std::ptr::eq(probe.state.as_ptr(), Arc::as_ptr(m.state())))
        });
        for m in snap.members() {
            let addr = m.backend().addr();
            if self.0.contains_key(&addr) {
                continue;
            }
            let state = m.state();
            if apply_initial && !ctx.settings.initial_up {
                state.set_healthy(false);
            }
            let health = HealthState::new(ctx.settings.rise, ctx.settings.fall, state.is_healthy());
            let weak = Arc::downgrade(state);
            let task = tokio::spawn(probe_loop(ctx.clone(), addr, weak.clone(), health));
            self.0.insert(addr, Probe { state: weak, task });
        }
    }
}

/// The supervisor's loop: resync on every membership change until the pool is gone.
async fn follow(
    ctx: Arc<Context>,
    mut changes: tokio::sync::watch::Receiver<u64>,
    mut probes: Probes,
) {
    // The sender lives in the pool: an error means the pool was dropped.
    while changes.changed().await.is_ok() {
        let Some(pool) = ctx.pool.upgrade() else {
            break;
        };
        probes.sync(&ctx, &pool, true);
    }
    tracing::debug!(pool = %ctx.name, "health monitor stops: pool dropped");
}

/// True while `state` is still the state of `addr`'s member in the live pool.
fn still_member(ctx: &Context, addr: SocketAddr, state: &Arc<BackendState>) -> bool {
    let Some(pool) = ctx.pool.upgrade() else {
        return false;
    };
    let snap = pool.snapshot();
    snap.member(addr)
        .is_some_and(|m| Arc::ptr_eq(m.state(), state))
}

/// One backend's loop: probe, observe, flip on transitions, sleep.
async fn probe_loop(
    ctx: Arc<Context>,
    addr: SocketAddr,
    state: Weak<BackendState>,
    mut health: HealthState,
) {
    let settings = &ctx.settings;
    let target = settings.probe_addr(addr);
    let mut next = Instant::now() + settings.first_delay(hash::thread_random());
    loop {
        tokio::time::sleep_until(next).await;
        let started = Instant::now();
        match state.upgrade() {
            Some(st) if still_member(&ctx, addr, &st) => {}
            _ => break,
        }
        // Bound the probe again: a custom checker may not enforce the timeout itself.
        let result = match tokio::time::timeout(settings.timeout, ctx.checker.check(target)).await {
            Ok(r) => r,
            Err(_) => Err(CheckError::Timeout(settings.timeout)),
        };
        let Some(st) = state.upgrade() else { break };
        st.watch()
            .record_check(result.as_ref().err().map(|e| e as &dyn std::fmt::Display));
        let from = health.is_up();
        if let Some(t) = health.observe(result.is_ok()) {
            let up = t == Transition::Up;
            st.set_healthy(up);
            let reason = result.err();
            report(&ctx, addr, target, from, up, reason.as_ref());
            // No receiver is fine: events are for whoever listens.
            let _ = ctx.events.send(HealthEvent {
                pool: ctx.name.clone(),
                addr,
                up,
                reason,
            });
        } else if let Err(e) = &result {
            tracing::debug!(pool = %ctx.name, backend = %addr, error = %e, "health probe failed");
        }
        drop(st);
        let period = settings
            .jittered_interval(hash::thread_random())
            .max(MIN_PERIOD);
        next = (started + period).max(Instant::now());
    }
    tracing::debug!(pool = %ctx.name, backend = %addr, "health probe stops: backend left the pool");
}

fn label(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

/// Logs one transition.
fn report(
    ctx: &Context,
    addr: SocketAddr,
    target: SocketAddr,
    from: bool,
    up: bool,
    reason: Option<&CheckError>,
) {
    let (pool, from, to) = (&*ctx.name, label(from), label(up));
    match reason {
        Some(reason) => tracing::warn!(
            pool,
            backend = %addr,
            probe = %target,
            from,
            to,
            reason = %reason,
            kind = reason.kind(),
            "backend health changed"
        ),
        None => {
            tracing::info!(pool, backend = %addr, probe = %target, from, to, "backend health changed")
        }
    }
}
