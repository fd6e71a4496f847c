//! Errors of pool membership operations.

use std::net::SocketAddr;

/// Why a membership change was refused. The pool is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A weight outside 0..=256.
    #[error("weight {0} is out of range: expected 0 (drain) to 256")]
    BadWeight(u32),
    /// The address is already a member.
    #[error("backend {0} is already in the pool")]
    Duplicate(SocketAddr),
    /// Another member already uses this placement id.
    #[error("backend id {0:?} is already used by another backend of the pool")]
    DuplicateId(String),
    /// No member has this address.
    #[error("backend {0} is not in the pool")]
    UnknownBackend(SocketAddr),
}
