//! A tower [`Layer`] that picks a backend from a [`Pool`] for every request (feature
//! `tower`).
//!
//! [`PoolLayer`] wraps any service that talks to *one* backend. For each request it takes
//! the pool's current snapshot, computes the request's key with your function, leases the
//! first usable backend in the strategy's preference order, and calls the inner service
//! with a [`Routed`] request: your request plus the [`Chosen`] backend. When the response
//! future completes, the layer classifies the result ([`Classify`]; by default `Ok` is a
//! [`Outcome::Success`] and `Err` a [`Outcome::Failure`]), reports it to passive health
//! ([`Lease::report`]) and releases the lease, so the backend's active count covers the
//! whole request. A response future dropped before it completes (the caller went away)
//! releases the lease without reporting anything: a client's cancellation never counts
//! against a backend.
//!
//! The pick is the request path's: no lock, no allocation. One request is one attempt;
//! "try the next candidate" belongs to a retry policy above this layer (a retry picks
//! again: a hashing strategy picks the same backend until health or ejection takes it
//! out, a round-robin pool moves on).
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::task::{Context, Poll};
//! use lb_core::tower::{Layer, PoolLayer, Routed, Service};
//! use lb_core::{Backend, Pool, PoolSettings, StrategyKind};
//!
//! /// The inner service: here it just names the backend it was given.
//! #[derive(Clone)]
//! struct Echo;
//! impl Service<Routed<String>> for Echo {
//!     type Response = String;
//!     type Error = Infallible;
//!     type Future = std::future::Ready<Result<String, Infallible>>;
//!     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
//!         Poll::Ready(Ok(()))
//!     }
//!     fn call(&mut self, req: Routed<String>) -> Self::Future {
//!         std::future::ready(Ok(format!("{} -> {}", req.request, req.backend.addr())))
//!     }
//! }
//!
//! let backends = vec![Backend::new("127.0.0.1:7001".parse().unwrap())];
//! let pool = Arc::new(Pool::new("cache", PoolSettings::with_strategy(StrategyKind::Maglev), backends).unwrap());
//! let mut svc = PoolLayer::new(pool, |key: &String| key.as_bytes()).layer(Echo);
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let answer = rt.block_on(svc.call("user:42".to_owned())).unwrap();
//! assert_eq!(answer, "user:42 -> 127.0.0.1:7001");
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use tower_layer::Layer;
pub use tower_service::Service;

use crate::outlier::Outcome;
use crate::pool::{Chosen, Lease, Pool};

/// The request key: a function from a request to the bytes the strategy hashes.
/// Any `Fn(&Req) -> &[u8]` closure is one; strategies that use no key ignore it.
pub trait RequestKey<Req> {
    /// The key bytes of `req` (borrowed from it).
    fn key<'r>(&self, req: &'r Req) -> &'r [u8];
}

impl<Req, F> RequestKey<Req> for F
where
    F: for<'r> Fn(&'r Req) -> &'r [u8],
{
    fn key<'r>(&self, req: &'r Req) -> &'r [u8] {
        self(req)
    }
}

/// No key (round-robin, random and least-conn pools).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKey;

impl<Req> RequestKey<Req> for NoKey {
    fn key<'r>(&self, _req: &'r Req) -> &'r [u8] {
        &[]
    }
}

/// Decides whether a finished call counts for or against the backend.
pub trait Classify<Resp, E> {
    /// The outcome of one call.
    fn classify(&self, result: &Result<Resp, E>) -> Outcome;
}

impl<Resp, E, F> Classify<Resp, E> for F
where
    F: Fn(&Result<Resp, E>) -> Outcome,
{
    fn classify(&self, result: &Result<Resp, E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: `Ok` is a success, `Err` a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrIsFailure;

impl<Resp, E> Classify<Resp, E> for ErrIsFailure {
    fn classify(&self, result: &Result<Resp, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// A request with the backend chosen for it: what the inner service receives.
#[derive(Debug)]
#[non_exhaustive]
pub struct Routed<Req> {
    /// The chosen backend (address, id, metadata).
    pub backend: Chosen,
    /// The caller's request.
    pub request: Req,
}

/// Why a [`PoolService`] call failed. An error whatever the inner error type is (a
/// `Box<dyn Error + Send + Sync>` too), so `?` works in the caller.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolServiceError<E> {
    /// No backend of the pool is usable (all down, draining, ejected or full).
    NoBackend {
        /// The pool's name.
        pool: Arc<str>,
    },
    /// The inner service failed.
    Inner(E),
}

impl<E: std::fmt::Display> std::fmt::Display for PoolServiceError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolServiceError::NoBackend { pool } => write!(f, "no usable backend in pool {pool}"),
            PoolServiceError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for PoolServiceError<E> {}

/// Picks a backend from a pool for every request: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct PoolLayer<K, C = ErrIsFailure> {
    pool: Arc<Pool>,
    name: Arc<str>,
    key: K,
    classify: C,
}

impl<K> PoolLayer<K> {
    /// A layer picking from `pool` by `key`, a closure from a request to the bytes to
    /// hash (`|req: &Req| req.key.as_bytes()`), counting `Err` as a failure.
    pub fn new<Req>(pool: Arc<Pool>, key: K) -> PoolLayer<K>
    where
        K: for<'r> Fn(&'r Req) -> &'r [u8],
    {
        PoolLayer::with_key(pool, key)
    }

    /// Like [`new`](Self::new) with any [`RequestKey`] (a type of your own).
    pub fn with_key(pool: Arc<Pool>, key: K) -> PoolLayer<K> {
        let name = Arc::from(pool.name());
        PoolLayer {
            pool,
            name,
            key,
            classify: ErrIsFailure,
        }
    }
}

impl PoolLayer<NoKey> {
    /// A layer for pools whose strategy uses no key (round-robin, random, least-conn).
    pub fn without_key(pool: Arc<Pool>) -> PoolLayer<NoKey> {
        PoolLayer::with_key(pool, NoKey)
    }
}

impl<K, C> PoolLayer<K, C> {
    /// Classifies results with `classify` instead (for example: a 5xx response is a
    /// failure too, a 4xx is the client's and a success for the backend).
    pub fn classify<C2>(self, classify: C2) -> PoolLayer<K, C2> {
        PoolLayer {
            pool: self.pool,
            name: self.name,
            key: self.key,
            classify,
        }
    }
}

impl<S, K: Clone, C: Clone> Layer<S> for PoolLayer<K, C> {
    type Service = PoolService<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        PoolService {
            inner,
            pool: self.pool.clone(),
            name: self.name.clone(),
            key: self.key.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The service of a [`PoolLayer`].
#[derive(Clone, Debug)]
pub struct PoolService<S, K, C = ErrIsFailure> {
    inner: S,
    pool: Arc<Pool>,
    name: Arc<str>,
    key: K,
    classify: C,
}

impl<S, K, C, Req> Service<Req> for PoolService<S, K, C>
where
    S: Service<Routed<Req>>,
    K: RequestKey<Req>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = PoolServiceError<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(PoolServiceError::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let snap = self.pool.snapshot();
        let Some(lease) = snap.select(self.key.key(&request)).next() else {
            return ResponseFuture {
                state: State::NoBackend {
                    pool: Some(self.name.clone()),
                },
            };
        };
        let backend = lease.chosen();
        let future = self.inner.call(Routed { backend, request });
        ResponseFuture {
            state: State::Called {
                future,
                lease: Some(lease),
                classify: self.classify.clone(),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`PoolService`]: holds the lease until the call ends.
    pub struct ResponseFuture<F, C> {
        #[pin]
        state: State<F, C>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, C> {
        NoBackend { pool: Option<Arc<str>> },
        Called {
            #[pin]
            future: F,
            lease: Option<Lease>,
            classify: C,
        },
    }
}

impl<F, C, Resp, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Resp, E>>,
    C: Classify<Resp, E>,
{
    type Output = Result<Resp, PoolServiceError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::NoBackend { pool } => Poll::Ready(Err(PoolServiceError::NoBackend {
                pool: pool.take().unwrap_or_else(|| Arc::from("")),
            })),
            StateProj::Called {
                future,
                lease,
                classify,
            } => {
                let result = std::task::ready!(future.poll(cx));
                if let Some(lease) = lease.take() {
                    lease.report(classify.classify(&result));
                    // Dropping the lease here ends the request's active count.
                }
                Poll::Ready(result.map_err(PoolServiceError::Inner))
            }
        }
    }
}
