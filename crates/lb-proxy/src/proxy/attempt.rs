//! Trying the candidates for one request: lb-core's [`Attempts`] drives the order,
//! retries and health reports; this module sends the request to each candidate, says
//! what may be sent again and which answers are failures, and relays the answer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode, Uri, Version};
use lb_core::forward::{Attempts, Failure, RetryPolicy, Verdict};
use lb_core::hash;
use lb_core::metrics::Reason;
use lb_core::select::PickInput;
use lb_core::Lease;

use crate::proxy::conn::ConnInfo;
use crate::request::body::{Meter, ReqBody};
use crate::request::cookie;
use crate::request::fields::Fields;
use crate::request::headers::strip_keeping_upgrade;
use crate::response::{local_error, RespBody};
use crate::state::{DirectoryTarget, PoolTarget};
use crate::tunnel::{ClientUpgrade, Switch};
use crate::upstream::{Head, Origin, UpstreamBody, Upstreams};

/// What happened to a request, for the access log and metrics.
pub(crate) struct Handled {
    pub(crate) pool: Option<Arc<PoolTarget>>,
    pub(crate) backend: Option<SocketAddr>,
    pub(crate) tries: u32,
    pub(crate) error: Option<Reason>,
    /// The `X-Request-Id` made here when the client sent none (kept-bytes path).
    pub(crate) request_id: Option<[u8; 32]>,
    /// The `X-Request-Id` sent upstream on the header-map path (only with a log on).
    pub(crate) forwarded_id: Option<HeaderValue>,
    /// The request body bytes forwarded (only with a log on).
    pub(crate) bytes_in: crate::request::body::BytesIn,
}

pub(crate) struct Exchange<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    /// HTTP/1.1, or HTTP/2 for h2 pools.
    pub(crate) version: Version,
    /// The fields to send, kept for every attempt (an HTTP/1.1 request is encoded
    /// from them by reference).
    pub(crate) fields: Fields<'a>,
    pub(crate) idempotent: bool,
    pub(crate) replayable: bool,
    /// The client connection is TLS.
    pub(crate) tls: bool,
    /// An HTTP/1.1 upgrade request's client side, until a response is relayed.
    pub(crate) upgrade: Option<ClientUpgrade>,
    /// The request's `Content-Length` (its body's exact size).
    pub(crate) length: Option<u64>,
}

impl Exchange<'_> {
    /// The upstream request's head, borrowed for one attempt.
    fn head(&self) -> Head<'_> {
        Head {
            method: self.method,
            uri: self.uri,
            version: self.version,
            fields: &self.fields,
            upgrade: self.upgrade.is_some(),
            length: self.length,
        }
    }
}

/// A body for the next attempt: the replayable copy, or the stream if not yet sent.
fn take_body(body: &mut ReqBody) -> ReqBody {
    match body {
        ReqBody::Empty => ReqBody::Empty,
        ReqBody::Full { data, .. } => ReqBody::Full {
            data: data.clone(),
            meter: Meter::default(),
        },
        ReqBody::Stream { .. } => std::mem::replace(body, ReqBody::Empty),
    }
}

// Returned once per attempt and matched at once: boxing the response would cost an
// allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    Done(Response<UpstreamBody>),
    /// Failed before the request left: safe to retry anything; its body comes back.
    NotSent(Reason, ReqBody),
    /// Failed after sending: retry only if idempotent and replayable.
    Failed(Reason),
    TimedOut,
    /// The client's side failed (its body malformed, short, too large, or reset): its
    /// fault, never the backend's.
    ClientFault(Reason),
}

#[allow(clippy::manual_async_fn)] // not an `async fn`: see `handle_request`
fn attempt<'a>(
    upstreams: &'a Arc<Upstreams>,
    addr: SocketAddr,
    head: Head<'a>,
    body: ReqBody,
    timeout: Duration,
    client: &'a ConnInfo,
) -> impl Future<Output = Attempt> + Send + 'a {
    async move {
        let origin = Origin {
            client: client.client,
            local: client.local,
            slot: client.slot.as_ref(),
        };
        let conn = match upstreams.checkout(addr, &origin).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(backend = %addr, error = %e, "upstream connect failed");
                return Attempt::NotSent(Reason::UpstreamConnect, body);
            }
        };
        // The timeout covers the response head only: a streaming body (gRPC) is bounded by
        // the stall timer of its relay, not by this.
        // Inline: the request's future is boxed once per request and freed after it (an
        // idle connection holds none), so the send state (0.7 KB) costs no allocation of
        // its own.
        match conn.send(head, body, timeout).await {
            Ok(resp) => Attempt::Done(resp),
            Err(e) if e.timed_out => Attempt::TimedOut,
            Err(e) => {
                if let Some(reason) = e.client_fault() {
                    tracing::debug!(backend = %addr, error = %e.error, "the client's request body failed");
                    return Attempt::ClientFault(reason);
                }
                tracing::debug!(backend = %addr, error = %e.error, "upstream exchange failed");
                match e.body {
                    Some(body) => Attempt::NotSent(Reason::UpstreamReset, body),
                    None => Attempt::Failed(Reason::UpstreamReset),
                }
            }
        }
    }
}

/// The response to the client: the backend's, with its body streamed and the connection
/// going back to its pool at the end; for an upgrade request, a 101 starts the tunnel
/// and any other answer is relayed on a connection that is not pooled again.
fn relay(
    resp: Response<UpstreamBody>,
    idle: Duration,
    lease: Option<lb_core::Lease>,
    ex: &mut Exchange<'_>,
    backend: SocketAddr,
) -> Response<RespBody> {
    let upgrade = ex.upgrade.take();
    let (mut parts, body) = resp.into_parts();
    let switching = upgrade.is_some() && parts.status == StatusCode::SWITCHING_PROTOCOLS;
    strip_keeping_upgrade(&mut parts.headers, switching);
    let body = match (upgrade, body) {
        (Some(client), UpstreamBody::H1(b)) if switching => match b.into_upgraded() {
            Some(upstream) => {
                let switch = Switch::new(upstream, client, lease, backend);
                return Response::from_parts(parts, RespBody::switched(Box::new(switch)));
            }
            // A 101's body keeps its connection for the tunnel (`H1Body::new`).
            None => return local_error(Reason::UpstreamReset),
        },
        (_, body) => body,
    };
    Response::from_parts(parts, RespBody::upstream(body, idle, lease))
}

/// What [`forward`] tries: a pool with its retry policy, upstream connections and
/// timeouts.
pub(crate) struct Via<'a> {
    pool: &'a lb_core::Pool,
    retry: &'a RetryPolicy,
    upstreams: &'a Arc<Upstreams>,
    response_timeout: Duration,
    idle_timeout: Duration,
    sticky: Option<&'a str>,
}

impl<'a> Via<'a> {
    pub(crate) fn pool(p: &'a PoolTarget) -> Via<'a> {
        Via {
            pool: &p.handle.pool,
            retry: &p.retry,
            upstreams: &p.upstreams,
            response_timeout: p.config.response_timeout,
            idle_timeout: p.config.idle_timeout,
            sticky: p.config.sticky.as_deref(),
        }
    }

    pub(crate) fn endpoints(d: &'a DirectoryTarget, pool: &'a lb_core::Pool) -> Via<'a> {
        Via {
            pool,
            retry: &d.retry,
            upstreams: &d.upstreams,
            response_timeout: d.response_timeout,
            idle_timeout: d.idle_timeout,
            sticky: None,
        }
    }
}

/// Tries the candidates of `via` for one request (lb-core's [`Attempts`]); only the HTTP
/// rules are here: what may be sent again, and which answers are failures.
#[allow(clippy::manual_async_fn)] // not an `async fn`: see `handle_request`
pub(crate) fn forward<'a>(
    via: Via<'a>,
    ex: &'a mut Exchange<'a>,
    body: &'a mut ReqBody,
    key_hash: u64,
    client: &'a ConnInfo,
    out: &'a mut Handled,
) -> impl Future<Output = Result<Response<RespBody>, Reason>> + Send + 'a {
    async move {
        let pool = via.pool;
        let snap = pool.snapshot();
        // Sticky sessions: the backend the cookie names goes first when usable; the normal
        // preference order follows (without it) if connecting to it fails.
        let sticky = via.sticky.map(|name| {
            let named = ex.fields.view().cookie(name).and_then(cookie::parse_sticky);
            (name, named)
        });
        let input = PickInput {
            key_hash,
            random: hash::thread_random(),
        };
        let mut attempts =
            Attempts::new(pool, &snap, input, via.retry).sticky_first(sticky.and_then(|s| s.1));
        let mut lease = attempts.first().ok_or(Reason::NoHealthyBackend)?;
        let mut next_body = Some(take_body(body));
        loop {
            out.tries = attempts.tries();
            out.backend = Some(lease.addr());
            let mut b = next_body.take().unwrap_or_else(|| take_body(body));
            // Its bytes count as the bytes in of this attempt's backend (the stats page).
            b.count_to(lease.member().state());
            let head = ex.head();
            let tried = attempt(
                via.upstreams,
                lease.addr(),
                head,
                b,
                via.response_timeout,
                client,
            );
            let (verdict, reason) = match tried.await {
                Attempt::Done(resp) => {
                    let status = resp.status().as_u16();
                    lease.member().state().count_status(status);
                    if status >= 500 {
                        let failed = Verdict::Backend {
                            failure: Failure::Status(status),
                            replayable: ex.idempotent && ex.replayable,
                        };
                        if let Some(next) = attempts.report(&lease, failed) {
                            lease = next;
                            continue;
                        }
                    } else {
                        attempts.report(&lease, Verdict::Served);
                    }
                    return Ok(answer(resp, lease, sticky, via.idle_timeout, ex));
                }
                Attempt::NotSent(reason, unsent) => {
                    next_body = Some(unsent);
                    (backend_failed(Failure::Connect, true), reason)
                }
                Attempt::Failed(reason) => (
                    backend_failed(Failure::Reset, ex.idempotent && ex.replayable),
                    reason,
                ),
                Attempt::TimedOut => (
                    backend_failed(Failure::Timeout, false),
                    Reason::UpstreamTimeout,
                ),
                Attempt::ClientFault(reason) => (Verdict::Client, reason),
            };
            match attempts.report(&lease, verdict) {
                Some(next) => lease = next,
                None => return Err(reason),
            }
        }
    }
}

/// The backend's answer relayed to the client, with a sticky cookie naming the backend
/// that served when the client's cookie named another (or none).
fn answer(
    resp: Response<UpstreamBody>,
    lease: Lease,
    sticky: Option<(&str, Option<u64>)>,
    idle: Duration,
    ex: &mut Exchange<'_>,
) -> Response<RespBody> {
    let set_cookie = sticky.and_then(|(name, named)| {
        let id = lease.sticky_id();
        (named != Some(id))
            .then(|| cookie::set_sticky(name, id, ex.tls))
            .flatten()
    });
    let addr = lease.addr();
    let mut resp = relay(resp, idle, Some(lease), ex, addr);
    if let Some(v) = set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn backend_failed(failure: Failure, replayable: bool) -> Verdict {
    Verdict::Backend {
        failure,
        replayable,
    }
}
