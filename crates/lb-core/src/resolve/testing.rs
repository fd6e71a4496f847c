//! Contract checks for your own [`Resolver`]: run them from your tests.
//!
//! ```
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! use std::time::Duration;
//! use lb_core::resolve::{testing, StaticResolver};
//!
//! let r = StaticResolver::new([("a.example".to_owned(), vec!["127.0.0.1:80".parse().unwrap()])]);
//! testing::check_resolver(&r, "a.example", "nope.example", Duration::from_secs(1))
//!     .await
//!     .unwrap();
//! # });
//! ```

use std::time::Duration;

use super::{Resolution, ResolveError, Resolver};
use crate::futures::{join_all, poll_once};

/// A rule of the [`Resolver`] contract that an implementation broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// A known name was not found, or failed.
    #[error("{name:?} should be found, got {got:?}")]
    KnownNotFound {
        /// The name.
        name: String,
        /// The answer.
        got: Result<Resolution, ResolveError>,
    },
    /// `Found` with no endpoint (answer `NotFound` instead).
    #[error("{0:?} was found with no endpoint: answer NotFound instead")]
    EmptyFound(String),
    /// An unknown name answered something other than `Ok(NotFound)`.
    #[error("{name:?} should be Ok(NotFound), got {got:?}")]
    UnknownNotNotFound {
        /// The name.
        name: String,
        /// The answer.
        got: Result<Resolution, ResolveError>,
    },
    /// A call did not finish within the bound.
    #[error("resolving {name:?} still running after {within:?}: bound your calls")]
    Hung {
        /// The name.
        name: String,
        /// The bound.
        within: Duration,
    },
    /// Asking again (after a cancelled call, or concurrently) changed the answer.
    #[error("{name:?} answered {first:?}, then {again:?}")]
    Unstable {
        /// The name.
        name: String,
        /// The first answer.
        first: Resolution,
        /// The later one.
        again: Resolution,
    },
}

/// Checks `resolver` against the [`Resolver`] contract:
///
/// 1. `known` (a name your test's directory serves) is `Ok(Found)` with at least one
///    endpoint, within `within`;
/// 2. `unknown` (a name it does not have) is `Ok(NotFound)`, not an error;
/// 3. a call dropped after its first poll (cancellation) leaves the resolver working: the
///    next call answers the same;
/// 4. eight concurrent calls for `known` all answer the same.
///
/// Both names must be normalised (lower case, no port). Must be called within a tokio
/// runtime.
pub async fn check_resolver<R: Resolver + ?Sized>(
    resolver: &R,
    known: &str,
    unknown: &str,
    within: Duration,
) -> Result<(), ContractError> {
    let ask = |name: &str| {
        let name = name.to_owned();
        async move {
            match tokio::time::timeout(within, resolver.resolve(&name)).await {
                Ok(r) => Ok(r),
                Err(_) => Err(ContractError::Hung { name, within }),
            }
        }
    };
    let first = match ask(known).await? {
        Ok(Resolution::Found(eps)) if eps.is_empty() => {
            return Err(ContractError::EmptyFound(known.to_owned()))
        }
        Ok(found @ Resolution::Found(_)) => found,
        got => {
            return Err(ContractError::KnownNotFound {
                name: known.to_owned(),
                got,
            })
        }
    };
    match ask(unknown).await? {
        Ok(Resolution::NotFound) => {}
        got => {
            return Err(ContractError::UnknownNotNotFound {
                name: unknown.to_owned(),
                got,
            })
        }
    }
    {
        let mut fut = resolver.resolve(known);
        let _ = poll_once(&mut fut).await;
    }
    let same = |again: Result<Resolution, ResolveError>| match again {
        Ok(a) if a == first => Ok(()),
        Ok(a) => Err(ContractError::Unstable {
            name: known.to_owned(),
            first: first.clone(),
            again: a,
        }),
        Err(e) => Err(ContractError::KnownNotFound {
            name: known.to_owned(),
            got: Err(e),
        }),
    };
    same(ask(known).await?)?;
    for r in join_all((0..8).map(|_| ask(known))).await {
        same(r?)?;
    }
    Ok(())
}
