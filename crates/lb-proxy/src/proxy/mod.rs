//! One request through the proxy: route → key → pick → forward, with retries.
//!
//! The retry rules (docs/config.md, `retries` and `retry_on`): a connect failure moves any request to the next candidate;
//! a reset or EOF before any response byte (and 502/503 when listed in `retry_on`) is
//! retried only for idempotent methods whose body is empty or was small enough (≤ 64 KiB)
//! to keep for replay. Retries follow the strategy's preference order and stay within the
//! pool's retry budget. Once response bytes have gone to the client, a failure truncates
//! the response; it is never completed with made-up bytes.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, Uri, Version};
use lb_core::hash;
use lb_core::metrics::Reason;
use lb_core::name::normalize_name;
use lb_core::resolve::Routing;

use lb_core::config::UpstreamProtocol;
use lb_core::name::IpText;

pub(crate) mod attempt;
pub(crate) mod conn;
pub(crate) mod forwarding;

use crate::access;
use crate::proxy::attempt::{forward, Exchange, Handled, Via};
use crate::proxy::conn::ConnInfo;
use crate::proxy::forwarding::{believed, prepare_headers, real_client};
use crate::request::body::{InBody, Meter, ReqBody};
use crate::request::fields::{Fields, Forwarded, RawHead, View};
use crate::request::headers::{check_framing, request_id_text, shared_value};
use crate::request::key;
use crate::response::{local_error, RespBody};
use crate::state::{DirectoryTarget, PoolTarget, Route, Runtime, Target};
use crate::tunnel::ClientUpgrade;

/// Bodies up to this size are kept so idempotent requests can be replayed on retry.
pub(crate) const REPLAY_LIMIT: u64 = 64 * 1024;

/// The future of one request, boxed (see [`handle`]).
pub(crate) type Handling = Pin<Box<dyn Future<Output = Response<RespBody>> + Send>>;

/// Handles one request end to end, writing one access-log line. The body is `None` when
/// the request has none (as the HTTP/1 engine parses them). `raw`: the fields kept
/// as bytes ([`fields`](crate::request::fields)); the request's header map is then empty.
///
/// The future is boxed: a connection (hyper's slot for the service's future, or
/// the HTTP/1 engine's loop) would otherwise keep room for the exchange's state
/// (3.9 KB) for as long as it lives. Allocated per request instead, it is freed when the
/// response is out, so an idle connection holds none of it. It is made in its box
/// (`boxed_in_place!`), not moved there.
pub(crate) fn handle(
    rt: Arc<Runtime>,
    conn: ConnInfo,
    req: Request<Option<InBody>>,
    raw: Option<RawHead>,
) -> Handling {
    let (parts, body) = req.into_parts();
    boxed_in_place!(handle_request(rt, conn, parts, body, raw)) as Handling
}

/// `Pin<Box<_>>` of the value of `$make`, a call of a function that is not inlined
/// (`#[inline(never)]`), made in its allocation rather than moved there.
///
/// `Box::pin(f)` builds `f` on the stack and copies all of it into the box: for a
/// future, its full size (3.9 KB for a request's handling, though a new future holds
/// only its arguments), a `memcpy` per request. Here the box is allocated first and the
/// call's value written into it, which the compiler has the call return straight into
/// the allocation. A macro, not a function: the call must be written where the box is;
/// passed in a closure to a function marked `#[inline(always)]`, it was moved again
/// (callgrind: 334 more `memcpy` instructions per GET).
macro_rules! boxed_in_place {
    ($make:expr) => {
        Box::into_pin(Box::write(Box::new_uninit(), $make))
    };
}
pub(crate) use boxed_in_place;

// Written as a function returning an `async move` block, here and on the rest of the
// request's path, rather than as an `async fn`: an `async fn` moves each argument into a
// local of its body and its future keeps room for both, so every level of the nested
// futures (each copied into its parent when called) would carry its arguments twice.
#[allow(clippy::manual_async_fn)] // an `async fn` keeps its arguments twice (see above)
#[inline(never)] // made in its box (see `boxed_in_place`)
fn handle_request(
    rt: Arc<Runtime>,
    conn: ConnInfo,
    mut parts: Parts,
    body: Option<InBody>,
    raw: Option<RawHead>,
) -> impl Future<Output = Response<RespBody>> + Send {
    async move {
        let start = Instant::now();
        // What the access log needs from the request, copied only when it is on.
        let logged = rt
            .access
            .as_ref()
            .map(|log| access::Pending::capture(log, start, conn.client, &parts, raw.as_ref()));
        let mut out = Handled {
            pool: None,
            backend: None,
            tries: 0,
            error: None,
            request_id: None,
            forwarded_id: None,
            bytes_in: crate::request::body::BytesIn::Known(0),
        };
        let http1_body = body.is_some() && parts.version <= hyper::Version::HTTP_11;
        // The request's parts stay here, borrowed by the levels below.
        let resp = match proxy(&rt, &conn, &mut parts, body, raw.as_ref(), &mut out).await {
            Ok(r) => r,
            Err(reason) => {
                out.error = Some(reason);
                rt.errors.inc(reason);
                let mut resp = local_error(reason);
                // A client's mistake in an HTTP/1 request with a body ends its connection
                // (as nginx closes after a 400 or 413).
                if http1_body && matches!(reason, Reason::BadRequest | Reason::BodyTooLarge) {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            }
        };
        if let Some(pool) = &out.pool {
            pool.handle.pool.stats().duration.observe(start.elapsed());
        }
        let Some(pending) = logged else {
            return resp;
        };
        // The line is written when the response body is dropped: sent, or failed.
        let mut resp = resp;
        let record = pending.finish(
            resp.status().as_u16(),
            out.pool.as_ref().map(|p| &p.running),
            out.backend,
            out.tries,
            out.error,
            match (&out.request_id, &out.forwarded_id) {
                (Some(id), _) => Some(&id[..]),
                (None, Some(v)) => Some(v.as_bytes()),
                (None, None) => None,
            },
            out.bytes_in,
        );
        resp.body_mut().log_at_end(record);
        resp
    }
}

/// The size of a request head as sent, less optional whitespace: request line, and
/// `name: value` plus CRLF per field.
fn head_size(parts: &Parts) -> u64 {
    let line = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len())
        + " HTTP/1.1\r\n ".len();
    let fields: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    (line + fields + 2) as u64
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[allow(clippy::too_many_lines)] // the retry loop reads top to bottom: pick, connect, send, classify
#[allow(clippy::manual_async_fn)] // not an `async fn`: see `handle_request`
fn proxy<'a>(
    rt: &'a Runtime,
    conn: &'a ConnInfo,
    parts: &'a mut Parts,
    body: Option<InBody>,
    raw: Option<&'a RawHead>,
    out: &'a mut Handled,
) -> impl Future<Output = Result<Response<RespBody>, Reason>> + Send + 'a {
    async move {
        if parts.version == hyper::Version::HTTP_2
            && conn.max_header > 0
            && head_size(parts) > conn.max_header
        {
            return Err(Reason::HeaderTooLarge);
        }
        // What hyper parsed gets the codec's framing rules (`front` parsed with it).
        if raw.is_none() {
            check_framing(parts).map_err(|e| e.reason())?;
        }
        // Fields kept as bytes are read where they lie. In the general path the Host value is
        // shared, not copied (a reference count); without a usable Host header the absolute
        // URI's authority is used and later sent as Host.
        let host_of_map = match raw {
            Some(_) => None,
            None => Some(map_host(parts)?),
        };
        let raw_host = match (&host_of_map, raw) {
            (Some((v, _)), _) => v.to_str().ok(),
            (None, r) => r.and_then(|r| std::str::from_utf8(r.host()).ok()),
        }
        .ok_or(Reason::BadRequest)?;
        let host = normalize_name(raw_host).map_err(|_| Reason::BadRequest)?;
        // Request smuggling never gets here: `conn` answers `Content-Length` together with
        // `Transfer-Encoding` with 400 on the head's bytes, and hyper rejects conflicting
        // lengths and unknown transfer codings (tests/client_limits.rs, tests/statuses.rs).
        let route = rt
            .route(&host, parts.uri.path())
            .ok_or(Reason::UnknownHost)?;
        // A directory route asks its directory first: the answer is endpoints, or a pool.
        let resolved = match &route.target {
            Target::Pool(p) => Resolved::Pool(p),
            Target::Directory(d) => resolve(rt, d, &host).await?,
        };
        let h2 = match resolved {
            Resolved::Pool(p) if p.upstreams.protocol() == UpstreamProtocol::H2 => {
                Some(p.upstreams.tls())
            }
            _ => None,
        };
        // Fields kept as bytes go upstream as bytes, unless the route edits them or the pool
        // speaks HTTP/2: then they become the header map of the general path.
        let raw = match raw {
            Some(r)
                if h2.is_some()
                    || !route.set_headers.is_empty()
                    || !route.remove_headers.is_empty() =>
            {
                parts.headers = r.to_map().ok_or(Reason::BadRequest)?;
                None
            }
            r => r,
        };
        let view = match raw {
            Some(r) => View::Raw(r),
            None => View::Map(&parts.headers),
        };
        if let Some(limit) = &route.rate_limit {
            let client = || real_client(conn, view).unwrap_or(conn.client.ip());
            if let Err(retry_after) = limit.admit(&parts.uri, view, &host, client) {
                out.error = Some(Reason::RateLimited);
                rt.errors.inc(Reason::RateLimited);
                let mut r = local_error(Reason::RateLimited);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return Ok(r);
            }
        }
        // The body's exact size is its `Content-Length` (the codec's, or hyper's for HTTP/2).
        let content_length = body.as_ref().and_then(|b| b.size_hint().exact());
        if conn.max_body > 0 && content_length.is_some_and(|l| l > conn.max_body) {
            return Err(Reason::BodyTooLarge);
        }
        let idempotent = is_idempotent(&parts.method);
        // Keep small bodies of idempotent requests for replay; stream everything else.
        let mut body = match body {
            Some(body) if !body.is_end_stream() => {
                read_body(body, idempotent, content_length, conn.max_body).await?
            }
            _ => ReqBody::Empty,
        };
        if rt.access.is_some() {
            out.bytes_in = body.count_for_log();
        }
        let mut replayable = !matches!(body, ReqBody::Stream { .. });
        let peer = IpText::new(conn.client.ip());
        let real = real_client(conn, view);
        let client_ip = real.map(IpText::new);
        let ip = client_ip.as_ref().unwrap_or(&peer);
        let key: &[u8] = match &resolved {
            Resolved::Pool(p) => {
                key::extract(p.key(), &parts.uri, view, &host).unwrap_or(ip.as_bytes())
            }
            // A directory's endpoints are picked by client IP, in both binaries.
            Resolved::Endpoints(..) => ip.as_bytes(),
        };
        // The pool's strategy decides the key hash (`consistent-nginx` hashes as nginx).
        let key_hash = match &route.target {
            Target::Pool(p) => p.handle.pool.settings().strategy.hash_key(key),
            Target::Directory(_) => hash::hash_key(key),
        };
        // x-forwarded-host shares the client's Host value when normalising changed nothing.
        let same_host = matches!(&host, Cow::Borrowed(h) if h.len() == raw_host.len());
        let (fields, upgrade, authority) = match (raw, &host_of_map) {
            (Some(r), _) => {
                let forwarded = Forwarded {
                    append: believed(conn),
                    ip: peer,
                    tls: conn.tls,
                    host: if same_host {
                        None
                    } else {
                        shared_value(&[host.as_bytes()])
                    },
                    request_id: (!r.has_request_id()).then(request_id_text),
                };
                out.request_id = forwarded.request_id;
                (Fields::Raw(r, forwarded), None, None)
            }
            (None, host_of_map) => {
                // A map made from kept bytes has its Host field.
                let (host_value, host_from_uri) = match host_of_map {
                    Some((v, from_uri)) => (v.clone(), *from_uri),
                    None => map_host(parts)?,
                };
                let forwarded_host = if same_host {
                    Some(host_value.clone())
                } else {
                    shared_value(&[host.as_bytes()])
                };
                let host_header = host_from_uri.then_some(host_value.clone());
                let upgrading = prepare_headers(
                    parts,
                    route,
                    conn,
                    &peer,
                    host_header,
                    forwarded_host,
                    h2.is_some(),
                );
                if rt.access.is_some() {
                    // The id as it goes upstream: the client's, or the one just made.
                    out.forwarded_id = parts.headers.get("x-request-id").cloned();
                }
                let upgrade = if upgrading {
                    // Never resent once it left: the backend may already have switched protocols.
                    replayable = false;
                    Some(ClientUpgrade {
                        idle: conn.idle,
                        stats: rt.tunnels.clone(),
                    })
                } else {
                    None
                };
                // HTTP/2 carries the authority as a pseudo-header: the request's host.
                let authority = h2.is_some().then_some(host_value);
                (
                    Fields::Map(std::mem::take(&mut parts.headers)),
                    upgrade,
                    authority,
                )
            }
        };
        let mut uri = upstream_uri(&parts.uri, route)?;
        let mut version = Version::HTTP_11;
        if let (Some(tls), Some(authority)) = (h2, &authority) {
            // HTTP/2 carries the scheme and authority as pseudo-headers: the URI is absolute.
            uri = absolute_uri(uri, tls, authority)?;
            version = Version::HTTP_2;
        }
        let mut ctx = Exchange {
            method: &parts.method,
            uri: &uri,
            version,
            fields,
            idempotent,
            replayable,
            tls: conn.tls,
            upgrade,
            length: content_length,
        };
        let via = match &resolved {
            Resolved::Pool(p) => {
                out.pool = Some(Arc::clone(p));
                Via::pool(p)
            }
            Resolved::Endpoints(d, pool) => Via::endpoints(d, pool),
        };
        forward(via, &mut ctx, &mut body, key_hash, conn, out).await
    }
}

/// Where a request goes once its route is known: a pool (the route's, or the one a
/// directory named), or the endpoints a directory answered, as their pool.
enum Resolved<'a> {
    Pool(&'a Arc<PoolTarget>),
    Endpoints(&'a DirectoryTarget, Arc<lb_core::Pool>),
}

/// Asks a route's directory about `host`. A pool name the config does not have is a bad
/// answer (`502 directory-unavailable`), logged by lb-core's cache when it arrives.
async fn resolve<'a>(
    rt: &'a Runtime,
    d: &'a DirectoryTarget,
    host: &str,
) -> Result<Resolved<'a>, Reason> {
    match d.cache.route(host, |p| rt.pools.get(p)).await {
        Ok(Routing::Pool(p)) => Ok(Resolved::Pool(p)),
        Ok(Routing::Endpoints(pool)) => Ok(Resolved::Endpoints(d, pool)),
        Err(e) => Err(e.reason()),
    }
}

/// The Host value of a request in the general path, and whether it came from the URI's
/// authority (no usable Host field), to be sent as Host.
fn map_host(parts: &Parts) -> Result<(HeaderValue, bool), Reason> {
    match parts.headers.get(header::HOST) {
        Some(v) if v.to_str().is_ok() => Ok((v.clone(), false)),
        _ => match parts.uri.authority() {
            Some(a) => Ok((
                HeaderValue::from_str(a.as_str()).map_err(|_| Reason::BadRequest)?,
                true,
            )),
            None => Err(Reason::BadRequest),
        },
    }
}

/// The request body as it goes upstream: small bodies of idempotent requests are kept
/// for replay, everything else streams.
async fn read_body(
    body: InBody,
    idempotent: bool,
    content_length: Option<u64>,
    max_body: u64,
) -> Result<ReqBody, Reason> {
    // A body that came whole with its head is sent with the upstream head, in one write.
    let body = match body {
        InBody::Whole(data) => return Ok(data.map_or(ReqBody::Empty, ReqBody::full)),
        b => b,
    };
    if idempotent && content_length.is_some_and(|l| l <= REPLAY_LIMIT) {
        let data = http_body_util::Limited::new(body, REPLAY_LIMIT as usize)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<crate::error::BodyError>() {
                Some(b) => crate::upstream::body_fault(b),
                None => Reason::BadRequest,
            })?
            .to_bytes();
        return Ok(ReqBody::full(data));
    }
    Ok(ReqBody::Stream {
        inner: body,
        seen: 0,
        limit: max_body,
        meter: Meter::default(),
    })
}

/// The origin-form URI sent upstream: the client's path and query (shared, not copied),
/// or a new one when the route strips its prefix.
fn upstream_uri(uri: &Uri, route: &Route) -> Result<Uri, Reason> {
    let pq = match uri.path_and_query() {
        Some(pq) => pq,
        None => return Ok(Uri::from_static("/")),
    };
    let prefix = match (&route.path_prefix, route.strip_prefix) {
        (Some(prefix), true) => prefix,
        _ => return Ok(Uri::from(pq.clone())),
    };
    let rest = crate::state::under_prefix(prefix, pq.as_str()).unwrap_or(pq.as_str());
    let stripped = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    stripped.parse().map_err(|_| Reason::BadRequest)
}

/// `uri` (origin-form) made absolute for an HTTP/2 backend: `http` or `https` (`tls`) and
/// the request's host as authority. Allocates; only h2 pools use it.
fn absolute_uri(uri: Uri, tls: bool, host: &HeaderValue) -> Result<Uri, Reason> {
    let authority =
        hyper::http::uri::Authority::try_from(host.as_bytes()).map_err(|_| Reason::BadRequest)?;
    let mut parts = uri.into_parts();
    parts.scheme = Some(if tls {
        hyper::http::uri::Scheme::HTTPS
    } else {
        hyper::http::uri::Scheme::HTTP
    });
    parts.authority = Some(authority);
    Uri::from_parts(parts).map_err(|_| Reason::BadRequest)
}

#[cfg(test)]
mod size {
    use super::*;

    /// The per-request future is boxed once per request (see [`handle`]): its size is
    /// what every request allocates. A change that grows it much should be deliberate.
    #[tokio::test]
    async fn request_future_size() {
        let rt = Arc::new(Runtime::for_tests());
        let conn = ConnInfo::for_tests(
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
        );
        let (parts, body) = Request::new(None::<InBody>).into_parts();
        let fut = handle_request(rt, conn, parts, body, None);
        let size = std::mem::size_of_val(&fut);
        eprintln!("request future: {size} bytes");
        // 3,336 bytes before lb-core's Attempts and directory pools, 3,424 after (rustc 1.95).
        assert!(size <= 4096, "the request future grew to {size} bytes");
    }
}
