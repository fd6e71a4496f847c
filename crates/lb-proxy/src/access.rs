//! The access-log line of one request: what is known when the request arrives
//! ([`Pending`]), completed with the outcome ([`Pending::finish`]) and carried by the
//! response body ([`Record`]), which writes the line when it is dropped: when the body
//! has been sent, or the exchange failed. `bytes_out` counts the response body bytes
//! handed to the client connection.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Body;
use hyper::header;
use hyper::http::request::Parts;
use lb_core::metrics::Reason;
use lb_core::server::AccessLog;
use std::time::Instant;

use crate::fields::{RawHead, View};
use crate::state::PoolTarget;

/// What the line needs from the request, copied when it arrives (only with a log on).
pub struct Pending {
    log: AccessLog,
    start: Instant,
    client: SocketAddr,
    method: hyper::Method,
    host: String,
    path: String,
    bytes_in: u64,
    request_id: String,
    user_agent: String,
}

fn text(v: Option<&[u8]>) -> String {
    v.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

impl Pending {
    /// Copies the request's fields for the line. `bytes_in`: the request body's length as
    /// framed (its `Content-Length`, or what the body announces), 0 without a body.
    pub fn capture<B: Body>(
        log: &AccessLog,
        start: Instant,
        client: SocketAddr,
        parts: &Parts,
        raw: Option<&RawHead>,
        body: Option<&B>,
    ) -> Pending {
        let view = match raw {
            Some(r) => View::Raw(r),
            None => View::Map(&parts.headers),
        };
        let host = match raw {
            Some(r) => Some(r.host()),
            None => view
                .get(header::HOST.as_str())
                .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes())),
        };
        let length = view
            .get(header::CONTENT_LENGTH.as_str())
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
        let bytes_in = length
            .or_else(|| body.and_then(|b| b.size_hint().exact()))
            .unwrap_or(0);
        Pending {
            log: log.clone(),
            start,
            client,
            method: parts.method.clone(),
            host: text(host),
            path: parts.uri.path().to_owned(),
            bytes_in,
            request_id: text(view.get("x-request-id")),
            user_agent: text(view.get(header::USER_AGENT.as_str())),
        }
    }

    /// The record of the finished exchange, for the response body to carry.
    /// `request_id`: the id sent upstream when the client sent none (made by the proxy).
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        self,
        status: u16,
        pool: Option<&Arc<PoolTarget>>,
        backend: Option<SocketAddr>,
        tries: u32,
        error: Option<Reason>,
        request_id: Option<&[u8]>,
    ) -> Box<Record> {
        let mut p = self;
        if p.request_id.is_empty() {
            p.request_id = text(request_id);
        }
        Box::new(Record {
            req: p,
            status,
            pool: pool.cloned(),
            backend,
            tries,
            error,
            bytes_out: 0,
        })
    }
}

/// A finished exchange whose line is written when the response body is dropped.
pub struct Record {
    req: Pending,
    status: u16,
    pool: Option<Arc<PoolTarget>>,
    backend: Option<SocketAddr>,
    tries: u32,
    error: Option<Reason>,
    /// Response body bytes handed to the client connection so far.
    pub bytes_out: u64,
}

impl Drop for Record {
    fn drop(&mut self) {
        let r = &self.req;
        let mut l = r.log.line();
        l.addr("client", Some(r.client))
            .str("method", r.method.as_str())
            .str("host", &r.host)
            .str("path", &r.path)
            .num("status", u64::from(self.status))
            .num("bytes_in", r.bytes_in)
            .num("bytes_out", self.bytes_out)
            .num("duration_ms", r.start.elapsed().as_millis() as u64)
            .str(
                "pool",
                self.pool.as_ref().map_or("", |p| p.handle.pool.name()),
            )
            .addr("backend", self.backend)
            .num("tries", u64::from(self.tries))
            .str("error", self.error.map_or("", Reason::as_str))
            .str("request_id", &r.request_id)
            .str("user_agent", &r.user_agent);
        r.log.send(l);
    }
}
