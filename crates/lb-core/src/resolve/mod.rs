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

pub use cached::{
    Answer, Answered, CacheSettings, CacheStats, Cached, Directed, EndpointPools, Lookup,
    LookupFuture, Routing, Unrouted,
};
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
///
/// More kinds of answer may come, so a `match` needs a catch-all arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// The endpoints serving the name (never empty).
    Found(Arc<[SocketAddr]>),
    /// The directory knows the name does not exist (cached for `negative_ttl`).
    NotFound,
    /// The name is served by this pool of the config, exactly as a route naming it
    /// would be (a host → pod directory). A name the config has no pool for is cached
    /// for `negative_ttl` and answered as a bad answer by the binaries.
    Pool(Arc<str>),
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

/// Reads a directory's text answer (a RESP value, or an HTTP `text/plain` body),
/// trimmed: `pool:NAME` names a pool; otherwise one `h:p` or several separated by commas
/// and/or spaces. With `bare_pool` (`bare = "pool"`), a single word without `:` names a
/// pool too (`pod0`), as a host → pod directory answers.
///
/// ```
/// use lb_core::resolve::{parse_text_answer, Resolution};
///
/// assert_eq!(parse_text_answer(" pool:pod0\n", false), Ok(Resolution::Pool("pod0".into())));
/// assert_eq!(parse_text_answer("pod0", true), Ok(Resolution::Pool("pod0".into())));
/// assert!(parse_text_answer("pod0", false).is_err());
/// assert!(matches!(parse_text_answer("127.0.0.1:1, 127.0.0.1:2", true), Ok(Resolution::Found(e)) if e.len() == 2));
/// ```
pub fn parse_text_answer(text: &str, bare_pool: bool) -> Result<Resolution, ResolveError> {
    let text = text.trim();
    if let Some(name) = text.strip_prefix("pool:") {
        return pool_answer(name.trim());
    }
    if bare_pool && !text.is_empty() && !text.contains([':', ',', ' ']) {
        return pool_answer(text);
    }
    let endpoints = text
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(parse_endpoint)
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(ResolveError::BadAnswer("empty endpoint list".into()));
    }
    Ok(Resolution::Found(Arc::from(endpoints)))
}

/// A pool-name answer, if `name` can be a pool's name (letters, digits, `-`, `_`, `.`).
pub(crate) fn pool_answer(name: &str) -> Result<Resolution, ResolveError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(ResolveError::BadAnswer(format!(
            "{name:?} is not a pool name"
        )));
    }
    Ok(Resolution::Pool(Arc::from(name)))
}

/// Parses an endpoint as given by a directory: `ip:port` or `[v6]:port`.
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, ResolveError> {
    s.trim()
        .parse()
        .map_err(|_| ResolveError::BadAnswer(format!("{s:?} is not an ip:port endpoint")))
}
