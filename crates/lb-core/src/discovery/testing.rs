//! Contract checks for your own membership [`Source`]: run them from your tests.
//!
//! ```
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! use std::time::Duration;
//! use lb_core::discovery::{testing, StaticSource};
//! use lb_core::{Backend, Pool, PoolSettings};
//!
//! let addr = "127.0.0.1:7001".parse().unwrap();
//! let pool = Pool::new("p", PoolSettings::default(), vec![Backend::new(addr)]).unwrap();
//! testing::check_source(&StaticSource, &pool, &[addr], Duration::from_secs(1)).await.unwrap();
//! # });
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Source, SourceKind, WriteError};
use crate::pool::{Change, Pool};
use crate::Backend;

/// A rule of the [`Source`] contract that an implementation broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// `ready()` did not resolve in time.
    #[error("ready() did not resolve within {0:?}")]
    NotReady(Duration),
    /// A source that reads something had no `last_sync` once ready.
    #[error("ready, but last_sync() is None")]
    NoLastSync,
    /// Once ready, the pool did not hold the registry's membership.
    #[error("once ready the pool holds {got:?}, expected {expected:?}")]
    Membership {
        /// Addresses in the pool.
        got: BTreeSet<SocketAddr>,
        /// Addresses expected.
        expected: BTreeSet<SocketAddr>,
    },
    /// An accepted admin write did not show in the pool in time.
    #[error("write {change:?} was accepted but the pool did not follow within {within:?}")]
    WriteNotApplied {
        /// The change.
        change: Change,
        /// The bound.
        within: Duration,
    },
    /// A refused admin write changed the pool anyway.
    #[error("write {change:?} was refused ({error}) but the pool changed")]
    RefusedButChanged {
        /// The change.
        change: Change,
        /// The refusal.
        error: WriteError,
    },
    /// A write of a fresh address was refused as a pool error (a duplicate?).
    #[error("write {change:?} of a fresh address failed with a pool error: {error}")]
    PoolRefused {
        /// The change.
        change: Change,
        /// The refusal.
        error: WriteError,
    },
    /// `stop()` changed the pool's membership.
    #[error("stop() changed the pool's membership")]
    StopEmptied,
}

/// Checks `source`, which feeds `pool`, against the [`Source`] contract:
///
/// 1. `ready()` resolves within `within`, and then `last_sync()` is set (except for
///    [`SourceKind::Static`]) and the pool holds exactly `expected` (the addresses your
///    test's registry holds);
/// 2. an admin write adding a fresh address either shows in the pool within `within`
///    (then removing it does too), or is refused with `Conflict`, `Unavailable` or
///    `Unsupported` and leaves the pool unchanged;
/// 3. `stop()`, called twice, keeps the pool's membership.
///
/// Must be called within a tokio runtime.
pub async fn check_source<S: Source + ?Sized>(
    source: &S,
    pool: &Pool,
    expected: &[SocketAddr],
    within: Duration,
) -> Result<(), ContractError> {
    tokio::time::timeout(within, source.ready())
        .await
        .map_err(|_| ContractError::NotReady(within))?;
    if source.kind() != SourceKind::Static && source.last_sync().is_none() {
        return Err(ContractError::NoLastSync);
    }
    let expected: BTreeSet<SocketAddr> = expected.iter().copied().collect();
    let got = addrs(pool);
    if got != expected {
        return Err(ContractError::Membership { got, expected });
    }
    let fresh = fresh_addr(&got);
    write_rule(
        source,
        pool,
        Change::Add(Backend::new(fresh)),
        within,
        |s| s.contains(&fresh),
    )
    .await?;
    if addrs(pool).contains(&fresh) {
        write_rule(source, pool, Change::Remove(fresh), within, |s| {
            !s.contains(&fresh)
        })
        .await?;
    }
    let before = addrs(pool);
    source.stop();
    source.stop();
    if addrs(pool) != before {
        return Err(ContractError::StopEmptied);
    }
    Ok(())
}

/// One admin write: applied (eventually) or refused without effect.
async fn write_rule<S: Source + ?Sized>(
    source: &S,
    pool: &Pool,
    change: Change,
    within: Duration,
    applied: impl Fn(&BTreeSet<SocketAddr>) -> bool,
) -> Result<(), ContractError> {
    let before = addrs(pool);
    match source.write(pool, change.clone()).await {
        Ok(()) => {
            let deadline = tokio::time::Instant::now() + within;
            while !applied(&addrs(pool)) {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ContractError::WriteNotApplied { change, within });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        }
        Err(error @ WriteError::Pool(_)) => Err(ContractError::PoolRefused { change, error }),
        Err(error) if addrs(pool) != before => {
            Err(ContractError::RefusedButChanged { change, error })
        }
        Err(_) => Ok(()),
    }
}

fn addrs(pool: &Pool) -> BTreeSet<SocketAddr> {
    pool.snapshot()
        .members()
        .iter()
        .map(|m| m.backend().addr())
        .collect()
}

/// An address the pool does not hold (TEST-NET-1, which nothing routes to).
fn fresh_addr(taken: &BTreeSet<SocketAddr>) -> SocketAddr {
    (1..=u16::MAX)
        .map(|port| SocketAddr::from(([192, 0, 2, 1], port)))
        .find(|a| !taken.contains(a))
        .unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 2], 1)))
}
