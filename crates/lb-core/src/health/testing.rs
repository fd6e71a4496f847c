//! Contract checks for your own [`Checker`]: run them from your tests.
//!
//! ```
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! use std::time::Duration;
//! use lb_core::health::{testing, TcpChecker};
//!
//! let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let checker = TcpChecker::new(Duration::from_secs(1));
//! testing::check_checker(&checker, up.local_addr().unwrap(), Duration::from_secs(2))
//!     .await
//!     .unwrap();
//! # });
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use super::check::{CheckError, Checker};
use crate::futures::{join_all, poll_once};

/// A rule of the [`Checker`] contract that an implementation broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// The probe of a healthy address failed.
    #[error("probe of the healthy address {addr} failed: {error}")]
    HealthyFailed {
        /// The address.
        addr: SocketAddr,
        /// The checker's answer.
        error: CheckError,
    },
    /// The probe of a closed port (connection refused) said healthy.
    #[error("probe of the closed port {0} said healthy")]
    ClosedPassed(SocketAddr),
    /// A probe did not finish within the bound given to the check.
    #[error("probe of {addr} still running after {within:?}: bound your probes")]
    Hung {
        /// The address.
        addr: SocketAddr,
        /// The bound.
        within: Duration,
    },
    /// The scratch socket for the closed-port probe could not be set up.
    #[error("cannot set up a closed loopback port: {0}")]
    Setup(std::io::Error),
}

/// Checks `checker` against the [`Checker`] contract, with real loopback sockets:
///
/// 1. a probe of `healthy` (an address your test serves) answers `Ok` within `within`;
/// 2. a probe of a closed loopback port answers `Err` within `within`;
/// 3. a probe dropped half-way (cancellation) leaves the checker working: `healthy` is
///    still `Ok` afterwards, and so is a probe after a failure (no state between probes);
/// 4. eight concurrent probes of `healthy` all answer `Ok`.
///
/// Must be called within a tokio runtime.
pub async fn check_checker<C: Checker + ?Sized>(
    checker: &C,
    healthy: SocketAddr,
    within: Duration,
) -> Result<(), ContractError> {
    let probe = |addr: SocketAddr| async move {
        tokio::time::timeout(within, checker.check(addr))
            .await
            .map_err(|_| ContractError::Hung { addr, within })
    };
    let expect_ok = |addr: SocketAddr, r: Result<(), CheckError>| {
        r.map_err(|error| ContractError::HealthyFailed { addr, error })
    };
    expect_ok(healthy, probe(healthy).await?)?;
    let closed = closed_port().await.map_err(ContractError::Setup)?;
    if probe(closed).await?.is_ok() {
        return Err(ContractError::ClosedPassed(closed));
    }
    expect_ok(healthy, probe(healthy).await?)?;
    // Cancellation: poll a probe once, then drop it.
    {
        let mut fut = checker.check(healthy);
        let _ = poll_once(&mut fut).await;
    }
    expect_ok(healthy, probe(healthy).await?)?;
    let results = join_all((0..8).map(|_| probe(healthy))).await;
    for r in results {
        expect_ok(healthy, r?)?;
    }
    Ok(())
}

/// A loopback port that refuses connections (bound, then released).
async fn closed_port() -> std::io::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(addr)
}
