//! Resolvers: from a name (a tenant host, an SNI) to the endpoints that serve it.
//!
//! [`Resolver`] is the extension point: implement it to ask your own directory. The
//! provided ones are [`StaticResolver`] (a fixed map), [`HttpResolver`] (an HTTP/JSON
//! directory) and [`RespResolver`] (a Redis-protocol `GET name`). Wrap any of them in
//! [`Cached`] for TTLs, negative caching, stale-if-error, a size bound and single-flight.
//! [`testing::check_resolver`] checks your own implementation against the trait's contract.

mod cached;
#[cfg(feature = "http")]
mod http;
mod resp;
mod static_map;
pub mod testing;

pub use cached::{Answered, CacheSettings, CacheStats, Cached, Lookup, LookupFuture};
#[cfg(feature = "http")]
pub use http::{percent_encode, HttpResolver, TemplateError, MAX_BODY as HTTP_MAX_BODY};
pub use resp::{RespResolver, RespUrlError};
pub use static_map::StaticResolver;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future (resolvers are trait objects; they run per cache miss only).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a directory says about a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The endpoints serving the name (never empty).
    Found(Arc<[SocketAddr]>),
    /// The directory knows the name does not exist (cached for `negative_ttl`).
    NotFound,
}

/// Why a directory could not answer. Never "not found": that is [`Resolution::NotFound`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No answer within the timeout.
    #[error("directory timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The directory could not be reached or failed (connect error, 5xx, RESP error).
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The directory answered something we cannot use.
    #[error("bad directory answer: {0}")]
    BadAnswer(String),
}

/// Maps a name to a [`Resolution`]: the extension point for your own directory.
///
/// # Contract
/// - **Names** arrive normalised (lower case, no port, no trailing dot, a valid DNS
///   name; see [`name`](crate::name)).
/// - **Answers**: `Ok(Resolution::Found(endpoints))` with at least one endpoint, or
///   `Ok(Resolution::NotFound)` when the directory *knows* the name does not exist
///   ([`Cached`] keeps that for `negative_ttl`; lb-proxy answers 404). An
///   `Err` means the directory could not answer: [`ResolveError::Unavailable`] (down,
///   refused, 5xx), [`ResolveError::Timeout`] or [`ResolveError::BadAnswer`] (an answer you
///   cannot use). [`Cached`] serves a stale answer for `stale_ttl` on any error, and the
///   proxies answer `502 directory-unavailable` when there is none. Never answer an error
///   for "not found", nor `NotFound` for "could not ask".
/// - **Timeouts**: bound your own call and answer [`ResolveError::Timeout`]; [`Cached`]
///   does not add a deadline of its own.
/// - **Cancellation**: the future may be dropped at any `.await` (the client went away).
///   [`Cached`] runs one lookup per name at a time (single-flight) and lets waiters share
///   it, so a dropped caller never leaves a half-done entry.
/// - **Cost**: called per cache miss, not per request; it may allocate and take locks.
///
/// [`testing::check_resolver`] runs these rules against your implementation.
///
/// ```
/// use std::collections::HashMap;
/// use std::net::SocketAddr;
/// use std::sync::{Arc, RwLock};
/// use lb_core::resolve::{BoxFuture, Resolution, ResolveError, Resolver};
///
/// /// Tenants → endpoints, updated by another task.
/// #[derive(Default)]
/// struct Tenants(RwLock<HashMap<String, Arc<[SocketAddr]>>>);
///
/// impl Resolver for Tenants {
///     fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
///         let table = self.0.read().map_err(|_| ResolveError::Unavailable("poisoned".into()));
///         let answer = table.map(|t| match t.get(name) {
///             Some(eps) if !eps.is_empty() => Resolution::Found(eps.clone()),
///             _ => Resolution::NotFound,
///         });
///         Box::pin(std::future::ready(answer))
///     }
/// }
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// Looks `name` up.
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>>;
}

impl<R: Resolver + ?Sized> Resolver for Arc<R> {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        (**self).resolve(name)
    }
}

impl<R: Resolver + ?Sized> Resolver for Box<R> {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        (**self).resolve(name)
    }
}

/// Parses an endpoint as given by a directory: `ip:port` or `[v6]:port`.
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, ResolveError> {
    s.trim()
        .parse()
        .map_err(|_| ResolveError::BadAnswer(format!("{s:?} is not an ip:port endpoint")))
}
