//! The access-log line of one request: what is known when the request arrives
//! ([`Pending`]), completed with the outcome ([`Pending::finish`]) and carried by the
//! response body ([`Record`]), which writes the line when it is dropped: when the body
//! has been sent, or the exchange failed. `bytes_out` counts the response body bytes
//! handed to the client connection, `bytes_in` the request body bytes handed to the
//! backend's (heads are counted by neither).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header;
use hyper::http::request::Parts;
use lb_core::metrics::Reason;
use lb_core::server::AccessLog;
use lb_core::server::RunningPool;
use std::time::Instant;

use crate::request::body::BytesIn;
use crate::request::fields::{RawHead, View};

/// What the line needs from the request, copied when it arrives (only with a log on).
pub(crate) struct Pending {
    log: AccessLog,
    start: Instant,
    client: SocketAddr,
    method: hyper::Method,
    // Host, path, user agent and request id in one buffer (one allocation, room left for
    // the id the proxy makes), split at `ends`.
    texts: String,
    ends: [usize; 3],
}

/// Length of the ids the proxy makes (the room kept for one).
const MADE_ID: usize = 32;

/// Appends `v` as text (invalid UTF-8 replaced; valid, the common case, copied as is).
fn push_text(out: &mut String, v: &[u8]) {
    match std::str::from_utf8(v) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(v)),
    }
}

impl Pending {
    /// Copies the request's fields for the line.
    pub(crate) fn capture(
        log: &AccessLog,
        start: Instant,
        client: SocketAddr,
        parts: &Parts,
        raw: Option<&RawHead>,
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
        let (path, agent) = (parts.uri.path(), view.get(header::USER_AGENT.as_str()));
        let id = view.get("x-request-id").unwrap_or_default();
        let bytes = |v: Option<&[u8]>| v.map_or(0, <[u8]>::len);
        let mut texts =
            String::with_capacity(bytes(host) + path.len() + bytes(agent) + id.len().max(MADE_ID));
        push_text(&mut texts, host.unwrap_or_default());
        let host_end = texts.len();
        texts.push_str(path);
        let path_end = texts.len();
        push_text(&mut texts, agent.unwrap_or_default());
        let agent_end = texts.len();
        push_text(&mut texts, id);
        Pending {
            log: log.clone(),
            start,
            client,
            method: parts.method.clone(),
            texts,
            ends: [host_end, path_end, agent_end],
        }
    }

    fn host(&self) -> &str {
        &self.texts[..self.ends[0]]
    }

    fn path(&self) -> &str {
        &self.texts[self.ends[0]..self.ends[1]]
    }

    fn user_agent(&self) -> &str {
        &self.texts[self.ends[1]..self.ends[2]]
    }

    fn request_id(&self) -> &str {
        &self.texts[self.ends[2]..]
    }

    /// The record of the finished exchange, for the response body to carry.
    /// `request_id`: the id sent upstream (the client's, or one made by the proxy), when
    /// the request got that far; else the client's is logged.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        self,
        status: u16,
        pool: Option<&Arc<RunningPool>>,
        backend: Option<SocketAddr>,
        tries: u32,
        error: Option<Reason>,
        request_id: Option<&[u8]>,
        bytes_in: BytesIn,
    ) -> Box<Record> {
        let mut p = self;
        if let Some(id) = request_id.filter(|id| *id != p.request_id().as_bytes()) {
            p.texts.truncate(p.ends[2]);
            push_text(&mut p.texts, id);
        }
        Box::new(Record {
            req: p,
            bytes_in,
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
pub(crate) struct Record {
    req: Pending,
    status: u16,
    pool: Option<Arc<RunningPool>>,
    backend: Option<SocketAddr>,
    tries: u32,
    error: Option<Reason>,
    /// Request body bytes handed to the backend's connection (see [`BytesIn`]).
    bytes_in: BytesIn,
    /// Response body bytes handed to the client connection so far.
    pub bytes_out: u64,
}

impl Drop for Record {
    fn drop(&mut self) {
        let r = &self.req;
        let mut l = r.log.line();
        l.addr("client", Some(r.client))
            .str("method", r.method.as_str())
            .str("host", r.host())
            .str("path", r.path())
            .num("status", u64::from(self.status))
            .num("bytes_in", self.bytes_in.get())
            .num("bytes_out", self.bytes_out)
            .num("duration_ms", r.start.elapsed().as_millis() as u64)
            .str(
                "pool",
                self.pool.as_ref().map_or("", |p| p.handle.pool.name()),
            )
            .addr("backend", self.backend)
            .num("tries", u64::from(self.tries))
            .str("error", self.error.map_or("", Reason::as_str))
            .str("request_id", r.request_id())
            .str("user_agent", r.user_agent());
        r.log.send(l);
    }
}
