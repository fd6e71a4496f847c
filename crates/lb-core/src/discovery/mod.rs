//! Discovery: where a pool's membership comes from, and where admin writes go.
//!
//! Every pool has one [`Source`]. `static` pools take admin writes directly; sources that
//! own membership (`file`, `dns`) refuse them with [`WriteError::Conflict`]; a shared store
//! (`redis`) takes writes and lets every instance of the fleet follow. Sources publish
//! through [`Pool::apply`] (a [`Change::Reset`] built off the request path and swapped in
//! as one snapshot), so a membership update never blocks requests.
//!
//! [`start()`] is the one entry point the binaries use: it turns a pool's validated
//! `discovery` setting into a running source. Your own registry plugs in by implementing
//! [`Source`] (see its contract) and publishing with [`publish`]; [`testing::check_source`]
//! checks it.
//!
//! | kind | membership | updates | admin writes |
//! |---|---|---|---|
//! | `static` | the config's `backends` | reload only | applied locally |
//! | `file` | a JSON or TOML file ([`parse_backends`]) | polled every second; a bad or half-written file is logged and ignored | 409 |
//! | `dns` | A/AAAA on a port, or SRV (weights, priorities → backups) | re-resolved when the answer's TTL ends, clamped to `min_ttl`..`max_ttl` | 409 |
//! | `redis` | a hash `addr → weight` | `<key>:events` pub/sub, plus a full re-read every `resync` | `HSET`/`HDEL` + `PUBLISH`; 503 while unreachable |
//!
//! ## Lifecycle
//! Each non-static source runs one background task that owns the loop. It stops when the
//! returned source is dropped, when [`Source::stop`] is called, or when its pool is dropped.
//! A failing source never empties a pool: every error (unreadable file, DNS failure,
//! Redis down) is logged and the last good membership stays. The `file` source reads the
//! file once before [`start()`] returns; `dns` and `redis` make their first sync in the
//! background right after (on loopback within milliseconds), and until it succeeds the
//! pool keeps the membership it was created with; [`wait_ready`] waits for it, bounded.
use std::sync::Arc;
use std::time::SystemTime;

use crate::pool::{Change, Pool};
use crate::{Backend, PoolError};

#[cfg(feature = "discovery")]
mod dns;
#[cfg(feature = "discovery")]
mod file;
#[cfg(feature = "discovery")]
mod redis;
#[cfg(feature = "discovery")]
mod start;
pub mod testing;

#[cfg(feature = "discovery")]
pub use dns::{DnsSettings, DnsSource};
#[cfg(feature = "discovery")]
pub use file::{parse_backends, EntryError, FileError, FileFormat, FileSource};
#[cfg(feature = "discovery")]
pub use redis::{RedisSettings, RedisSource};
#[cfg(feature = "discovery")]
pub use start::{start, start_with, DiscoveryError, Options};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The kind of a membership source, as shown by the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceKind {
    /// The config's `backends` list; admin writes apply locally.
    Static,
    /// A watched file.
    File,
    /// DNS A/AAAA/SRV records.
    Dns,
    /// A Redis hash shared by a fleet.
    Redis,
    /// An embedder's own source, by the name it shows in the admin API.
    Custom(&'static str),
}

impl SourceKind {
    /// `static`, `file`, `dns`, `redis`, or a custom source's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Static => "static",
            SourceKind::File => "file",
            SourceKind::Dns => "dns",
            SourceKind::Redis => "redis",
            SourceKind::Custom(name) => name,
        }
    }
}

/// Why an admin write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The pool refused the change (duplicate, unknown backend, bad weight).
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The source owns membership (file, dns): change it there.
    #[error("pool membership comes from {0}; change it there")]
    Conflict(&'static str),
    /// The shared store is unreachable.
    #[error("membership store unavailable: {0}")]
    Unavailable(String),
    /// The source cannot represent this change (for example an `id` or `backup` flag in a
    /// Redis pool, whose hash holds only `addr → weight`).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A pool's membership source: the extension point for your own service registry.
///
/// A source *feeds* a pool by calling [`publish`] (or [`Pool::apply`]) from its own
/// background task; this trait is how the rest of the system (admin API, reload, start-up)
/// talks to it. A custom source is a task that reads your registry and publishes, plus a
/// handle implementing `Source` that owns the task.
///
/// # Contract
/// - **Publishing**: build the whole membership off the request path and publish it with
///   [`publish`] (it skips identical answers, so a periodic resync rebuilds nothing). A
///   publish error ([`PoolError`]: duplicate address or id, bad weight) means that answer
///   was refused and the pool is unchanged: log it and keep the last good membership.
///   Never publish an empty list because the registry failed: a failing source keeps the
///   pool as it is.
/// - **`ready`** resolves after the first successful sync; [`wait_ready`] bounds it.
///   Cancel-safe: dropping the future changes nothing.
/// - **`last_sync`** is the time of the last successful read (`None` only for sources
///   that never read anything, like [`StaticSource`]).
/// - **`write`** applies an admin write: apply it to the pool (a local source), write it
///   through to the shared store (then the store's update reaches every instance), or
///   refuse it with [`WriteError::Conflict`] when the source owns membership,
///   [`WriteError::Unavailable`] when the store is unreachable, or
///   [`WriteError::Unsupported`] for a change it cannot represent. A refused write leaves
///   the pool unchanged. Bound the call; the admin API waits for it.
/// - **`stop`** ends the background task (idempotent; also on drop); the pool keeps its
///   membership.
///
/// [`testing::check_source`] runs these rules against your implementation.
pub trait Source: Send + Sync + 'static {
    /// What kind of source this is.
    fn kind(&self) -> SourceKind;
    /// When membership was last read from the source (`None` for static pools).
    fn last_sync(&self) -> Option<SystemTime>;
    /// Applies an admin write (through the source, when it owns membership).
    fn write<'a>(&'a self, pool: &'a Pool, change: Change)
        -> BoxFuture<'a, Result<(), WriteError>>;
    /// Stops the source's background task, if it has one (also done on drop). The pool
    /// keeps its membership. Used when a reload replaces the source.
    fn stop(&self) {}
    /// Resolves once the source has synced at least once (at once for static pools).
    fn ready(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The config's `backends` list: writes apply to the local pool.
#[derive(Debug, Default)]
pub struct StaticSource;

impl Source for StaticSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Static
    }
    fn last_sync(&self) -> Option<SystemTime> {
        None
    }
    fn write<'a>(
        &'a self,
        pool: &'a Pool,
        change: Change,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async move { pool.apply(change).map_err(WriteError::from) })
    }
}

/// Records the time of the last successful sync, for sources that have one, and wakes
/// whoever waits for the first one.
#[derive(Debug)]
pub struct SyncClock(tokio::sync::watch::Sender<Option<SystemTime>>);

impl Default for SyncClock {
    fn default() -> Self {
        SyncClock(tokio::sync::watch::Sender::new(None))
    }
}

impl SyncClock {
    /// Marks a successful sync now.
    pub fn mark(&self) {
        self.0.send_replace(Some(SystemTime::now()));
    }
    /// The last successful sync.
    pub fn get(&self) -> Option<SystemTime> {
        *self.0.borrow()
    }
    /// Resolves once a sync has succeeded (at once if one already has).
    pub fn synced(&self) -> BoxFuture<'_, ()> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // The sender lives in `self`, which outlives this future.
            let _ = rx.wait_for(Option::is_some).await;
        })
    }
}

/// Waits until every source has made its first sync, or `within` has passed; returns
/// the sources that have not (their pools keep the membership they started with and the
/// sources keep trying in the background). The binaries call this before serving, so a
/// restarted instance does not answer 503 while its Redis or DNS answer is on its way.
pub async fn wait_ready(
    sources: impl IntoIterator<Item = Arc<dyn Source>>,
    within: std::time::Duration,
) -> Vec<Arc<dyn Source>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut late = Vec::new();
    for s in sources {
        if tokio::time::timeout_at(deadline, s.ready()).await.is_err() {
            late.push(s);
        }
    }
    late
}

/// A pool with its source: what the admin API and the proxies hold.
#[derive(Clone)]
pub struct PoolHandle {
    /// The pool.
    pub pool: Arc<Pool>,
    /// Where its membership comes from.
    pub source: Arc<dyn Source>,
}

impl std::fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolHandle")
            .field("pool", &self.pool.name())
            .field("source", &self.source.kind())
            .finish()
    }
}

/// Publishes `backends` as the pool's whole membership, unless it already is exactly that
/// (same addresses, weights, ids and backup flags in the same order): a periodic resync
/// that finds nothing new rebuilds nothing. Returns whether a new snapshot was published.
pub fn publish(pool: &Pool, backends: Vec<Backend>) -> Result<bool, PoolError> {
    let snap = pool.snapshot();
    let same = snap.members().len() == backends.len()
        && snap
            .members()
            .iter()
            .zip(&backends)
            .all(|(m, b)| m.backend() == b);
    if same {
        return Ok(false);
    }
    pool.apply(Change::Reset(backends))?;
    Ok(true)
}

/// A stop signal for a background task: the task ends when [`Stopper::stop`] is called
/// or the `Stopper` is dropped.
#[cfg(feature = "discovery")]
#[derive(Debug)]
pub(crate) struct Stopper(tokio::sync::watch::Sender<bool>);

#[cfg(feature = "discovery")]
impl Stopper {
    pub(crate) fn new() -> (Stopper, tokio::sync::watch::Receiver<bool>) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (Stopper(tx), rx)
    }
    pub(crate) fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Resolves once the task should stop (stop called, or the `Stopper` dropped).
#[cfg(feature = "discovery")]
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    // `wait_for` errs when the sender is gone: that is a stop too.
    let _ = rx.wait_for(|s| *s).await;
}
