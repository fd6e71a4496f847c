//! Discovery: where a pool's membership comes from, and where admin writes go.
//!
//! Every pool has one [`Source`]. `static` pools take admin writes directly; sources that
//! own membership (`file`, `dns`) refuse them with [`WriteError::Conflict`]; a shared store
//! (`redis`) takes writes and lets every instance of the fleet follow. Sources publish
//! through [`Pool::apply`], so a membership update never blocks requests.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::pool::{Change, Pool};
use crate::PoolError;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The kind of a membership source, as shown by the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The config's `backends` list; admin writes apply locally.
    Static,
    /// A watched file.
    File,
    /// DNS A/AAAA/SRV records.
    Dns,
    /// A Redis hash shared by a fleet.
    Redis,
}

impl SourceKind {
    /// `static`, `file`, `dns` or `redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Static => "static",
            SourceKind::File => "file",
            SourceKind::Dns => "dns",
            SourceKind::Redis => "redis",
        }
    }
}

/// Why an admin write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

/// A pool's membership source.
pub trait Source: Send + Sync + 'static {
    /// What kind of source this is.
    fn kind(&self) -> SourceKind;
    /// When membership was last read from the source (`None` for static pools).
    fn last_sync(&self) -> Option<SystemTime>;
    /// Applies an admin write (through the source, when it owns membership).
    fn write<'a>(&'a self, pool: &'a Pool, change: Change)
        -> BoxFuture<'a, Result<(), WriteError>>;
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

/// Records the time of the last successful sync, for sources that have one.
#[derive(Debug, Default)]
pub struct SyncClock(Mutex<Option<SystemTime>>);

impl SyncClock {
    /// Marks a successful sync now.
    pub fn mark(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(SystemTime::now());
    }
    /// The last successful sync.
    pub fn get(&self) -> Option<SystemTime> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
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
