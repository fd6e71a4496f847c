//! The forwarding headers of a request on the header-map path
//! (`X-Forwarded-For`/`-Proto`/`-Host`, `X-Request-Id`), the client behind trusted
//! proxies, and the route's edits. A request whose fields stay in its head's bytes gets
//! the same forwarding fields from [`fields`](crate::request::fields), written after its
//! lines.

use std::net::IpAddr;

use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::Version;
use lb_core::config::any_contains;
use lb_core::name::IpText;

use crate::proxy::conn::ConnInfo;
use crate::request::fields::View;
use crate::request::headers::{
    as_text, forwarded_for, request_id, shared_value, strip_keeping_upgrade, X_FORWARDED_FOR,
    X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};
use crate::state::Route;

/// Whether the client's `X-Forwarded-For` chain is appended to: always without
/// `trusted_proxies` (docs/config.md, `[[listener]]`); with them, only from a peer inside them (from any other peer
/// a chain is a spoofing attempt, and only the peer is sent).
pub(crate) fn believed(conn: &ConnInfo) -> bool {
    match &conn.trusted {
        Some(t) => any_contains(t, conn.client.ip()),
        None => true,
    }
}

/// The client behind trusted proxies: when the peer is inside the listener's
/// `trusted_proxies`, the rightmost `X-Forwarded-For` address that is not itself trusted
/// (the leftmost one if all are); `None` means the peer itself. An unparsable entry stops
/// the walk at the last good address. No allocation.
pub(crate) fn real_client(conn: &ConnInfo, fields: View<'_>) -> Option<IpAddr> {
    let trusted = conn.trusted.as_deref()?;
    if !any_contains(trusted, conn.client.ip()) {
        return None;
    }
    let mut client = None;
    for value in fields.values(X_FORWARDED_FOR.as_str()).rev() {
        let Some(text) = as_text(value) else {
            return client;
        };
        for part in text.rsplit(',') {
            let Ok(ip) = part.trim().parse::<IpAddr>() else {
                return client;
            };
            client = Some(ip);
            if !any_contains(trusted, ip) {
                return client;
            }
        }
    }
    client
}

/// Sets the forwarding headers (`host_header`: a Host to send when the client gave the
/// authority only in the URI; `forwarded_host`: the normalised host) and the route's edits.
/// `h2_upstream`: the request goes to an HTTP/2 backend, where `te: trailers` is
/// end-to-end in effect (gRPC requires it), so exactly that value is kept, and where an
/// HTTP/1.1 upgrade cannot be carried (its `Upgrade` is dropped like any hop-by-hop field).
/// Returns true when the request asks an HTTP/1.1 upgrade, whose `Upgrade` and
/// `Connection: upgrade` are then kept (see [`tunnel`](crate::tunnel)).
pub(crate) fn prepare_headers(
    parts: &mut Parts,
    route: &Route,
    conn: &ConnInfo,
    ip: &IpText,
    host_header: Option<HeaderValue>,
    forwarded_host: Option<HeaderValue>,
    h2_upstream: bool,
) -> bool {
    let h = &mut parts.headers;
    // Room for the four forwarding headers at once, instead of regrowing per insert.
    h.reserve(4);
    let te = h2_upstream
        .then(|| h.get(header::TE))
        .flatten()
        .filter(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"))
        .cloned();
    let upgrading = strip_keeping_upgrade(h, parts.version == Version::HTTP_11 && !h2_upstream);
    if let Some(te) = te {
        h.insert(header::TE, te);
    }
    let prev = h.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes);
    if let Some(v) = shared_value(&forwarded_for(prev, believed(conn), ip.as_bytes())) {
        h.insert(X_FORWARDED_FOR, v);
    }
    h.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if let Some(v) = forwarded_host {
        h.insert(X_FORWARDED_HOST, v);
    }
    if let header::Entry::Vacant(e) = h.entry(X_REQUEST_ID) {
        e.insert(request_id());
    }
    match host_header {
        Some(v) => {
            h.insert(header::HOST, v);
        }
        None => {
            // Several Host fields: only the first (the one routed on) goes upstream.
            let mut all = h.get_all(header::HOST).iter();
            if let (Some(first), Some(_)) = (all.next(), all.next()) {
                let first = first.clone();
                h.insert(header::HOST, first);
            }
        }
    }
    for n in &route.remove_headers {
        h.remove(n);
    }
    for (n, v) in &route.set_headers {
        h.insert(n.clone(), v.clone());
    }
    upgrading
}
