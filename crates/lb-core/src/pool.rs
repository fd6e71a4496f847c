//! Pools: a named, dynamic set of backends, published as immutable snapshots.
//!
//! Readers on the request path call [`Pool::snapshot`] (an `arc-swap` load: no lock) and
//! then [`Snapshot::select`], which walks the strategy's preference order, skips backends
//! that are down, draining, ejected, full or over their bounded-load cap, and hands out a
//! [`Lease`] that counts the request as active until it is dropped. A pick takes no lock
//! and allocates nothing.
//!
//! Writers (admin API, discovery, reload) call [`Pool::apply`] with a [`Change`]; the pool
//! builds the new members *and* the strategy table together and swaps them in as one
//! snapshot. Backends that stay keep their [`BackendState`] (health, active count,
//! ejection, slow-start age). Health changes and drains only flip atomics and rebuild
//! nothing.
//!
//! Share a pool as an `Arc<Pool>`: request handlers, the health monitor and discovery
//! sources all hold it. [`Pool::subscribe`] (feature `runtime`) wakes a task on every
//! published change.
//!
//! ## The request path, with fallback
//! Keep the snapshot in a local for the whole request (a [`Selection`] borrows it), try
//! the candidates in order, report each attempt's [`Outcome`] so a failing backend gets
//! ejected, and let each [`Lease`] drop when its attempt ends:
//!
//! ```
//! use std::sync::Arc;
//! use lb_core::{Backend, Change, Outcome, Pool, PoolSettings, StrategyKind};
//!
//! # fn send(addr: std::net::SocketAddr, _key: &str) -> Result<String, ()> {
//! #     if addr.port() == 7002 { Err(()) } else { Ok(format!("answer from {addr}")) }
//! # }
//! /// Sends `key` to its shard, or to the next one in its preference order.
//! fn get(pool: &Pool, key: &str) -> Option<String> {
//!     let snap = pool.snapshot();
//!     for lease in snap.select(key.as_bytes()) {
//!         match send(lease.addr(), key) {
//!             Ok(answer) => {
//!                 lease.report(Outcome::Success);
//!                 return Some(answer);
//!             }
//!             // Counts towards ejection (`OutlierSettings`); the loop tries the next one.
//!             Err(()) => lease.report(Outcome::Failure),
//!         }
//!     }
//!     None // every backend is down, draining, ejected or full
//! }
//!
//! let shards = ["shard-a", "shard-b", "shard-c"]
//!     .iter()
//!     .zip(7001..)
//!     .map(|(id, port)| Backend::new(([127, 0, 0, 1], port).into()).with_id(*id))
//!     .collect();
//! let pool = Arc::new(Pool::new("shards", PoolSettings::with_strategy(StrategyKind::Consistent), shards)?);
//! // 127.0.0.1:7002 fails in `send` above: its keys are answered by their next shard.
//! for i in 0..20 {
//!     assert!(get(&pool, &format!("user:{i}")).is_some());
//! }
//!
//! // Run-time changes: placement follows the id, so remove by looking the id up.
//! let addr = pool.snapshot().members().iter().find(|m| m.backend().id() == "shard-b").map(|m| m.backend().addr());
//! pool.apply(Change::Remove(addr.ok_or("no shard-b")?))?;
//! pool.apply(Change::Add(Backend::new(([127, 0, 0, 1], 7004).into()).with_id("shard-d")))?;
//! assert_eq!(pool.snapshot().members().len(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The repository's `examples/shard_router.rs` is the same as an HTTP service, and
//! the `tower` module (feature `tower`) wraps one attempt of it as a tower layer.
//!
//! Sticky sessions: every snapshot also holds its members' [`hash::sticky_id`] values,
//! sorted, so [`Snapshot::lease_sticky`] finds the backend a cookie names by binary search
//! (no lock, no allocation) and leases it if it is usable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::backend::{Backend, BackendState, BackendStatus};
use crate::clock;
use crate::error::PoolError;
use crate::hash;
use crate::metrics::PoolStats;
use crate::outlier::{self, Outcome, OutlierSettings};
use crate::select::{Candidates, Loads, Node, Params, PickInput, StrategyKind, Table};

/// How a pool picks and protects its backends.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PoolSettings {
    /// The selection strategy. Default `round-robin`.
    pub strategy: StrategyKind,
    /// Strategy build parameters (`vnodes`).
    pub params: Params,
    /// `consistent-bounded`: load cap factor (default 1.25, must be ≥ 1).
    pub bound: f64,
    /// Ramp-up window for new or recovered backends (round-robin, random, least-conn only).
    pub slow_start: Duration,
    /// Active requests per backend at most (0 = unlimited).
    pub max_conns_per_backend: u32,
    /// Passive outlier detection.
    pub outlier: OutlierSettings,
    /// Health of a newly added backend before its first check (`initial = "up"`).
    pub initial_up: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            strategy: StrategyKind::RoundRobin,
            params: Params::default(),
            bound: 1.25,
            slow_start: Duration::ZERO,
            max_conns_per_backend: 0,
            outlier: OutlierSettings::default(),
            initial_up: true,
        }
    }
}

impl PoolSettings {
    /// Settings with the given strategy and every other value at its default.
    pub fn with_strategy(strategy: StrategyKind) -> PoolSettings {
        PoolSettings {
            strategy,
            ..PoolSettings::default()
        }
    }
}

/// A membership change, as emitted by the admin API and discovery sources.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Replace the whole membership (file reload, DNS answer, Redis resync).
    Reset(Vec<Backend>),
    /// Add one backend.
    Add(Backend),
    /// Remove one backend; its in-flight requests finish on their leases.
    Remove(SocketAddr),
    /// Reweight and/or drain (`Some(true)`) or un-drain (`Some(false)`) one backend.
    Update {
        /// The backend.
        addr: SocketAddr,
        /// New weight (0..=256), if any.
        weight: Option<u32>,
        /// New drain flag, if any.
        draining: Option<bool>,
    },
}

/// State shared by every snapshot of one pool.
#[derive(Debug, Default)]
struct PoolShared {
    /// Leases alive across the pool (bounded-load total).
    total_active: AtomicU64,
}

/// A named, dynamic set of backends with its selection strategy.
#[derive(Debug)]
pub struct Pool {
    name: Arc<str>,
    settings: Arc<PoolSettings>,
    current: ArcSwap<Snapshot>,
    shared: Arc<PoolShared>,
    writer: Mutex<()>,
    version: AtomicU64,
    stats: Arc<PoolStats>,
    #[cfg(feature = "runtime")]
    changed: tokio::sync::watch::Sender<u64>,
}

impl Pool {
    /// Creates a pool. Backends listed here are settled: they start without slow start
    /// and, unless `settings.initial_up` is false, up.
    pub fn new(
        name: impl Into<Arc<str>>,
        settings: PoolSettings,
        backends: Vec<Backend>,
    ) -> Result<Pool, PoolError> {
        Pool::with_stats(name, settings, backends, Arc::default())
    }

    /// Like [`new`](Self::new), counting into `stats`, which other pools may share: the
    /// endpoint pools of one directory count retries (and hold the retry budget) together.
    pub fn with_stats(
        name: impl Into<Arc<str>>,
        settings: PoolSettings,
        backends: Vec<Backend>,
        stats: Arc<PoolStats>,
    ) -> Result<Pool, PoolError> {
        let settings = Arc::new(settings);
        let shared = Arc::new(PoolShared::default());
        let members = backends
            .into_iter()
            .map(|b| {
                let state = Arc::new(BackendState::new(settings.initial_up));
                state.settle();
                Member { backend: b, state }
            })
            .collect();
        let snap = Snapshot::build(members, settings.clone(), shared.clone(), 1)?;
        Ok(Pool {
            name: name.into(),
            settings,
            current: ArcSwap::from_pointee(snap),
            shared,
            writer: Mutex::new(()),
            version: AtomicU64::new(1),
            stats,
            #[cfg(feature = "runtime")]
            changed: tokio::sync::watch::Sender::new(1),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// The current snapshot (lock-free; one atomic reference count).
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Request statistics (durations, retries) for metrics.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Requests in flight across the pool.
    pub fn active(&self) -> u64 {
        self.shared.total_active.load(Ordering::Relaxed)
    }

    /// Notified with the new version after every published membership change.
    #[cfg(feature = "runtime")]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Applies a membership change, publishing a new snapshot (members and table together).
    ///
    /// Builds run on the caller's thread, never on the request path; writers are
    /// serialised so no change is lost. On error nothing changes.
    pub fn apply(&self, change: Change) -> Result<(), PoolError> {
        // A poisoned lock only means another writer panicked mid-build; the published
        // snapshot is still the last good one, so carry on.
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current.load_full();
        let mut members: Vec<Member> = old.members.to_vec();
        match change {
            Change::Reset(backends) => {
                // Backends that stay keep their live state (looked up by address once).
                let mut kept: HashMap<SocketAddr, Arc<BackendState>> = old
                    .members
                    .iter()
                    .map(|m| (m.backend.addr(), m.state.clone()))
                    .collect();
                members = backends
                    .into_iter()
                    .map(|b| {
                        let state = kept.remove(&b.addr()).unwrap_or_else(|| {
                            Arc::new(BackendState::new(self.settings.initial_up))
                        });
                        Member { backend: b, state }
                    })
                    .collect();
            }
            Change::Add(b) => {
                if old.member(b.addr()).is_some() {
                    return Err(PoolError::Duplicate(b.addr()));
                }
                let state = Arc::new(BackendState::new(self.settings.initial_up));
                members.push(Member { backend: b, state });
            }
            Change::Remove(addr) => {
                let before = members.len();
                members.retain(|m| m.backend.addr() != addr);
                if members.len() == before {
                    return Err(PoolError::UnknownBackend(addr));
                }
            }
            Change::Update {
                addr,
                weight,
                draining,
            } => {
                let m = members
                    .iter_mut()
                    .find(|m| m.backend.addr() == addr)
                    .ok_or(PoolError::UnknownBackend(addr))?;
                let weight = weight.map(crate::backend::check_weight).transpose()?;
                if let Some(d) = draining {
                    // Draining flips an atomic; nothing to rebuild for it.
                    m.state.set_draining(d);
                }
                match weight {
                    Some(w) if w != m.backend.weight() => {
                        m.backend = m.backend.clone().with_weight(u32::from(w))?;
                    }
                    _ => return Ok(()),
                }
            }
        }
        let version = self.version.fetch_add(1, Ordering::AcqRel) + 1;
        let snap = Snapshot::build(members, self.settings.clone(), self.shared.clone(), version)?;
        self.current.store(Arc::new(snap));
        #[cfg(feature = "runtime")]
        self.changed.send_replace(version);
        Ok(())
    }
}

/// One backend of a snapshot: what was declared, and its shared live state.
#[derive(Clone, Debug)]
pub struct Member {
    backend: Backend,
    state: Arc<BackendState>,
}

impl Member {
    /// The declared backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Its live state.
    pub fn state(&self) -> &Arc<BackendState> {
        &self.state
    }

    /// Operator-facing status at clock time `now`.
    pub fn status(&self, now: u64) -> BackendStatus {
        self.state.status(self.backend.weight(), now)
    }
}

/// One placement group (primaries, or backups): its table and node → member mapping.
#[derive(Debug)]
struct Group {
    table: Table,
    /// Node index → member index.
    members: Box<[u32]>,
    /// Node index → state (least-conn reads loads through this).
    states: Box<[Arc<BackendState>]>,
    /// Weight per node and their total (bounded-load shares).
    weights: Box<[u32]>,
    total_weight: u64,
}

impl Loads for [Arc<BackendState>] {
    #[inline]
    fn active(&self, index: usize) -> u64 {
        self.get(index).map_or(0, |s| s.active())
    }
}

impl Group {
    fn build(members: &[Member], backup: bool, kind: StrategyKind, params: &Params) -> Group {
        let mut nodes = Vec::new();
        let mut idx = Vec::new();
        let mut states = Vec::new();
        let mut weights = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if m.backend.is_backup() != backup || m.backend.weight() == 0 {
                continue;
            }
            let w = u32::from(m.backend.weight());
            nodes.push(Node {
                id_hash: kind.hash_id(m.backend.id()),
                weight: w,
            });
            idx.push(i as u32);
            states.push(m.state.clone());
            weights.push(w);
        }
        let total_weight = weights.iter().map(|&w| u64::from(w)).sum();
        Group {
            table: Table::build(kind, &nodes, params),
            members: idx.into(),
            states: states.into(),
            weights: weights.into(),
            total_weight,
        }
    }
}

/// An immutable view of a pool: members, their states and the strategy tables, published
/// together.
#[derive(Debug)]
pub struct Snapshot {
    members: Box<[Member]>,
    /// `(sticky_id(id), member index)`, sorted by hash.
    sticky: Box<[(u64, u32)]>,
    primary: Group,
    backup: Group,
    settings: Arc<PoolSettings>,
    shared: Arc<PoolShared>,
    version: u64,
}

impl Snapshot {
    fn build(
        members: Vec<Member>,
        settings: Arc<PoolSettings>,
        shared: Arc<PoolShared>,
        version: u64,
    ) -> Result<Snapshot, PoolError> {
        // Hash sets, not a pairwise scan: publishing stays O(n) at thousands of members.
        let mut addrs = std::collections::HashSet::with_capacity(members.len());
        let mut ids = std::collections::HashSet::with_capacity(members.len());
        for m in &members {
            if !addrs.insert(m.backend.addr()) {
                return Err(PoolError::Duplicate(m.backend.addr()));
            }
            if !ids.insert(m.backend.id()) {
                return Err(PoolError::DuplicateId(m.backend.id().to_owned()));
            }
        }
        let primary = Group::build(&members, false, settings.strategy, &settings.params);
        let backup = Group::build(&members, true, settings.strategy, &settings.params);
        let mut sticky: Vec<(u64, u32)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (hash::sticky_id(m.backend.id()), i as u32))
            .collect();
        sticky.sort_unstable();
        Ok(Snapshot {
            members: members.into(),
            sticky: sticky.into(),
            primary,
            backup,
            settings,
            shared,
            version,
        })
    }

    /// Members in declaration order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this address.
    pub fn member(&self, addr: SocketAddr) -> Option<&Member> {
        self.members.iter().find(|m| m.backend.addr() == addr)
    }

    /// Increases with every published change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The pool's settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Usable backends in preference order for a key, each handed out as a [`Lease`].
    ///
    /// `key` is the already-extracted request key (ignored by round-robin, random and
    /// least-conn). The first item is the pick; the next ones are the retry order.
    #[inline]
    pub fn select<'a>(self: &'a Arc<Self>, key: &[u8]) -> Selection<'a> {
        self.select_with(PickInput {
            key_hash: self.settings.strategy.hash_key(key),
            random: hash::thread_random(),
        })
    }

    /// Like [`select`](Self::select) with an explicit key hash and random word; the key
    /// hash must be the pool's [`StrategyKind::hash_key`] of the key.
    pub fn select_with<'a>(self: &'a Arc<Self>, input: PickInput) -> Selection<'a> {
        Selection {
            snap: self,
            group: &self.primary,
            iter: self.primary.table.candidates(input, &*self.primary.states),
            input,
            in_backup: false,
            rng: input.random,
            deferred: None,
            now: 0,
        }
    }

    /// Where `key` goes when every backend is usable and idle: the placement answer of
    /// `lb route` and `/api/v1/route`, ignoring health (`None` for an empty pool).
    pub fn route(&self, key: &[u8]) -> Option<&Member> {
        let input = PickInput {
            key_hash: self.settings.strategy.hash_key(key),
            random: 0,
        };
        let mut it = self
            .primary
            .table
            .candidates(input, &crate::select::NoLoads);
        let g = &self.primary;
        it.next().map(|n| &self.members[g.members[n] as usize])
    }

    /// The first usable member for `key` without leasing it (what [`select`](Self::select)
    /// would pick first, absent load limits).
    pub fn preferred(self: &Arc<Self>, key: &[u8]) -> Option<&Member> {
        let mut sel = self.select(key);
        sel.next_usable()
            .map(|(g, n)| &self.members[g.members[n] as usize])
    }

    /// The member whose [`hash::sticky_id`] is `sticky` (what a sticky cookie carries).
    pub fn sticky_member(&self, sticky: u64) -> Option<&Member> {
        let i = self.sticky_index(sticky)?;
        Some(&self.members[i])
    }

    fn sticky_index(&self, sticky: u64) -> Option<usize> {
        let at = self
            .sticky
            .binary_search_by_key(&sticky, |&(h, _)| h)
            .ok()?;
        Some(self.sticky[at].1 as usize)
    }

    /// Leases the member a sticky cookie names, if it is usable now: a primary (backups
    /// only get traffic through [`select`](Self::select)), weight above 0, up, not
    /// draining, not ejected, and under `max_conns_per_backend`. `None` means "pick as
    /// usual". Slow start and the bounded-load cap do not apply: the session stays.
    /// No lock, no allocation.
    pub fn lease_sticky(self: &Arc<Self>, sticky: u64) -> Option<Lease> {
        let i = self.sticky_index(sticky)?;
        let m = &self.members[i];
        let st = &m.state;
        if m.backend.is_backup()
            || m.backend.weight() == 0
            || !st.is_healthy()
            || st.is_draining()
            || (st.ejected_until.load(Ordering::Relaxed) != 0 && st.is_ejected(clock::now_nanos()))
        {
            return None;
        }
        if !st.try_acquire(u64::from(self.settings.max_conns_per_backend)) {
            return None;
        }
        self.shared.total_active.fetch_add(1, Ordering::AcqRel);
        Some(Lease {
            chosen: Chosen {
                snap: Arc::clone(self),
                member: i as u32,
            },
            started: clock::now_nanos(),
        })
    }

    fn ejected_count(&self, now: u64) -> usize {
        self.members
            .iter()
            .filter(|m| m.state.is_ejected(now))
            .count()
    }
}

/// The preference-order walk of one pick. Yields [`Lease`]s for usable backends.
pub struct Selection<'a> {
    snap: &'a Arc<Snapshot>,
    group: &'a Group,
    iter: Candidates<'a, [Arc<BackendState>]>,
    input: PickInput,
    in_backup: bool,
    rng: u64,
    /// A usable backend passed over by slow start, used if nothing else is left.
    deferred: Option<(bool, usize)>,
    now: u64,
}

impl<'a> Selection<'a> {
    #[inline]
    fn now(&mut self) -> u64 {
        if self.now == 0 {
            self.now = clock::now_nanos();
        }
        self.now
    }

    /// Next candidate (group, node) that is up, not draining and not ejected.
    fn next_usable(&mut self) -> Option<(&'a Group, usize)> {
        loop {
            let Some(n) = self.iter.next() else {
                if self.in_backup {
                    return None;
                }
                self.in_backup = true;
                self.group = &self.snap.backup;
                self.iter = self
                    .snap
                    .backup
                    .table
                    .candidates(self.input, &*self.snap.backup.states);
                continue;
            };
            let st = &self.group.states[n];
            if !st.is_healthy() || st.is_draining() {
                continue;
            }
            if st.ejected_until.load(Ordering::Relaxed) != 0 {
                let now = self.now();
                if st.is_ejected(now) {
                    continue;
                }
            }
            return Some((self.group, n));
        }
    }

    /// Slow start: accept a recovering backend with probability elapsed / window.
    fn slow_start_accepts(&mut self, st: &BackendState) -> bool {
        let window = clock::dur_nanos(self.snap.settings.slow_start);
        if window == 0 || !self.snap.settings.strategy.supports_slow_start() {
            return true;
        }
        let since = st.up_since();
        if since == 0 {
            return true;
        }
        let elapsed = self.now().saturating_sub(since);
        if elapsed >= window {
            return true;
        }
        self.rng = hash::mix64(self.rng);
        // Scale to 1/1024ths to stay in integers; a fresh backend still gets ~1/1024.
        let accept = (elapsed.saturating_mul(1024) / window).max(1);
        (self.rng & 1023) < accept
    }

    fn lease(&self, group: &Group, n: usize) -> Option<Lease> {
        let st = &group.states[n];
        let settings = &self.snap.settings;
        let mut limit = u64::from(settings.max_conns_per_backend);
        if settings.strategy == StrategyKind::ConsistentBounded && group.total_weight > 0 {
            // cap = ceil(bound × (total active + 1) × weight share)
            let total = self.snap.shared.total_active.load(Ordering::Relaxed) + 1;
            let share = f64::from(group.weights[n]) / group.total_weight as f64;
            let cap = (settings.bound * total as f64 * share).ceil().max(1.0) as u64;
            limit = if limit == 0 { cap } else { limit.min(cap) };
        }
        if !st.try_acquire(limit) {
            return None;
        }
        self.snap.shared.total_active.fetch_add(1, Ordering::AcqRel);
        Some(Lease {
            chosen: Chosen {
                snap: Arc::clone(self.snap),
                member: group.members[n],
            },
            started: clock::now_nanos(),
        })
    }
}

impl Iterator for Selection<'_> {
    type Item = Lease;

    fn next(&mut self) -> Option<Lease> {
        while let Some((g, n)) = self.next_usable() {
            if !self.slow_start_accepts(&g.states[n]) {
                if self.deferred.is_none() {
                    self.deferred = Some((self.in_backup, n));
                }
                continue;
            }
            if let Some(l) = self.lease(g, n) {
                return Some(l);
            }
        }
        let (backup, n) = self.deferred.take()?;
        let g = if backup {
            &self.snap.backup
        } else {
            &self.snap.primary
        };
        self.lease(g, n)
    }
}

/// A backend chosen for one request: counted as active until dropped.
#[derive(Debug)]
pub struct Lease {
    /// The member; the lease adds holding its request slot.
    chosen: Chosen,
    /// Clock nanos when it was taken: how long it is held feeds the stats page.
    started: u64,
}

impl Lease {
    /// The chosen member.
    #[inline]
    pub fn member(&self) -> &Member {
        self.chosen.member()
    }

    /// The chosen backend.
    #[inline]
    pub fn backend(&self) -> &Backend {
        self.chosen.backend()
    }

    /// The chosen backend's address.
    #[inline]
    pub fn addr(&self) -> SocketAddr {
        self.chosen.addr()
    }

    /// The chosen backend's [`hash::sticky_id`] (what a sticky cookie names it by).
    #[inline]
    pub fn sticky_id(&self) -> u64 {
        hash::sticky_id(self.member().backend.id())
    }

    /// The chosen member as a cheap handle (one reference count) that does not hold the
    /// request slot: hand it to code that needs the backend while the lease stays with
    /// whoever reports the outcome (the [`tower`](crate::tower) layer does this).
    #[inline]
    pub fn chosen(&self) -> Chosen {
        self.chosen.clone()
    }

    /// Feeds passive outlier detection with this attempt's outcome.
    pub fn report(&self, outcome: Outcome) {
        let m = self.member();
        match outcome {
            Outcome::Success => outlier::record_success(&m.state),
            Outcome::Failure => {
                let now = clock::now_nanos();
                let snap = &self.chosen.snap;
                if outlier::record_failure(
                    &m.state,
                    &snap.settings.outlier,
                    now,
                    || snap.ejected_count(now),
                    snap.members.len(),
                ) {
                    tracing::warn!(backend = %m.backend.addr(), "backend ejected");
                }
            }
        }
    }
}

/// The member a [`Lease`] chose, without the lease: see [`Lease::chosen`].
#[derive(Clone, Debug)]
pub struct Chosen {
    snap: Arc<Snapshot>,
    member: u32,
}

impl Chosen {
    /// The chosen member.
    #[inline]
    pub fn member(&self) -> &Member {
        &self.snap.members[self.member as usize]
    }

    /// The chosen backend (its metadata: [`Backend::meta`]).
    #[inline]
    pub fn backend(&self) -> &Backend {
        &self.member().backend
    }

    /// The chosen backend's address.
    #[inline]
    pub fn addr(&self) -> SocketAddr {
        self.member().backend.addr()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let held = clock::now_nanos().saturating_sub(self.started);
        self.member()
            .state
            .watch()
            .observe_held(std::time::Duration::from_nanos(held));
        self.member().state.release();
        self.chosen
            .snap
            .shared
            .total_active
            .fetch_sub(1, Ordering::AcqRel);
    }
}
