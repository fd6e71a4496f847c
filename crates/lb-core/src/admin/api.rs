//! Request handling of the admin API.

// Handlers return a ready response as their error: clearer than a second error type.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use super::json::{self, AddBackend, PatchBackend};
use super::{AdminState, AdminView};
use crate::backend::check_weight;
use crate::discovery::WriteError;
use crate::metrics;
use crate::pool::Change;
use crate::{Backend, PoolError};

const MAX_BODY: usize = 64 * 1024;
const PAGE: &str = include_str!("page.html");

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Resp {
    match serde_json::to_vec(v) {
        Ok(b) => reply(status, "application/json", b),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, &serde_json::json!({ "error": msg }))
}

fn authorized(view: &AdminView, req: &Request<Incoming>) -> bool {
    let Some(token) = &view.token else {
        return true;
    };
    let Some(h) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = h.strip_prefix("Bearer ") else {
        return false;
    };
    // Constant-time comparison: the token is a secret.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Answers one admin request.
pub async fn handle(state: &AdminState, req: Request<Incoming>) -> Resp {
    let view = state.view();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if method == Method::GET && path == "/" {
        return reply(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    }
    if method == Method::GET && path == "/healthz" {
        return reply(StatusCode::OK, "text/plain", "ok");
    }
    if !authorized(&view, &req) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return r;
    }
    if method == Method::GET && path == "/metrics" {
        return reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            render_metrics(state, &view),
        );
    }
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["api", "v1", "pools"]) => {
            let pools: Vec<_> = view
                .pools
                .iter()
                .map(|(n, h)| json::pool_json(n, h))
                .collect();
            json(StatusCode::OK, &serde_json::json!({ "pools": pools }))
        }
        (Method::GET, ["api", "v1", "pools", pool]) => match view.pools.get(*pool) {
            Some(h) => json(StatusCode::OK, &json::pool_json(pool, h)),
            None => error(StatusCode::NOT_FOUND, &format!("no pool named {pool:?}")),
        },
        (Method::GET, ["api", "v1", "stats"]) => json(StatusCode::OK, &state.stats()),
        (Method::GET, ["api", "v1", "route"]) => route(&view, req.uri().query().unwrap_or("")),
        (Method::POST, ["api", "v1", "pools", pool, "backends"]) => {
            let pool = pool.to_string();
            add_backend(&view, &pool, req).await
        }
        (m, ["api", "v1", "pools", pool, "backends", addr])
            if m == Method::PATCH || m == Method::DELETE =>
        {
            let (pool, addr) = (pool.to_string(), addr.to_string());
            change_backend(&view, &pool, &addr, req).await
        }
        (Method::POST, ["api", "v1", "pools", pool, "backends", addr, "drain"]) => {
            let Some(h) = view.pools.get(*pool) else {
                return error(StatusCode::NOT_FOUND, &format!("no pool named {pool:?}"));
            };
            let addr = match parse_addr(addr) {
                Ok(a) => a,
                Err(r) => return r,
            };
            let change = Change::Update {
                addr,
                weight: None,
                draining: Some(true),
            };
            match h.source.write(&h.pool, change).await {
                Ok(()) => json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({ "draining": addr.to_string() }),
                ),
                Err(e) => write_error(e),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no admin endpoint {method} {path}"),
        ),
    }
}

fn parse_addr(raw: &str) -> Result<SocketAddr, Resp> {
    let decoded = json::percent_decode(raw).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("bad percent-encoding in {raw:?}"),
        )
    })?;
    decoded.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("{decoded:?} is not an address: expected ip:port or [ipv6]:port"),
        )
    })
}

fn write_error(e: WriteError) -> Resp {
    let status = match &e {
        WriteError::Pool(PoolError::Duplicate(_)) | WriteError::Pool(PoolError::DuplicateId(_)) => {
            StatusCode::CONFLICT
        }
        WriteError::Pool(PoolError::UnknownBackend(_)) => StatusCode::NOT_FOUND,
        WriteError::Pool(PoolError::BadWeight(_)) => StatusCode::BAD_REQUEST,
        WriteError::Conflict(_) => StatusCode::CONFLICT,
        WriteError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        WriteError::Unsupported(_) => StatusCode::BAD_REQUEST,
    };
    error(status, &e.to_string())
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Resp> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("reading body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("bad JSON body: {e}")))
}

async fn add_backend(view: &AdminView, pool: &str, req: Request<Incoming>) -> Resp {
    let Some(h) = view.pools.get(pool) else {
        return error(StatusCode::NOT_FOUND, &format!("no pool named {pool:?}"));
    };
    let body: AddBackend = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let addr: SocketAddr = match body.addr.parse() {
        Ok(a) => a,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "addr {:?} is not an address: expected ip:port or [ipv6]:port",
                    body.addr
                ),
            )
        }
    };
    let mut b = match Backend::new(addr).with_weight(body.weight) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Some(id) = body.id {
        if id.is_empty() {
            return error(StatusCode::BAD_REQUEST, "id must not be empty");
        }
        b = b.with_id(id);
    }
    b = b.with_backup(body.backup);
    match h.source.write(&h.pool, Change::Add(b)).await {
        Ok(()) => json(StatusCode::CREATED, &json::pool_json(pool, h)),
        Err(e) => write_error(e),
    }
}

async fn change_backend(view: &AdminView, pool: &str, raw: &str, req: Request<Incoming>) -> Resp {
    let Some(h) = view.pools.get(pool) else {
        return error(StatusCode::NOT_FOUND, &format!("no pool named {pool:?}"));
    };
    let addr = match parse_addr(raw) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if req.method() == Method::DELETE {
        return match h.source.write(&h.pool, Change::Remove(addr)).await {
            Ok(()) => reply(StatusCode::NO_CONTENT, "application/json", Bytes::new()),
            Err(e) => write_error(e),
        };
    }
    let body: PatchBackend = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let draining = match body.state.as_deref() {
        None => None,
        Some("up") => Some(false),
        Some("draining") => Some(true),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("state {other:?} is not settable: expected \"up\" or \"draining\""),
            )
        }
    };
    if let Some(w) = body.weight {
        if let Err(e) = check_weight(w) {
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
    }
    if body.weight.is_none() && draining.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "nothing to change: give \"weight\" and/or \"state\"",
        );
    }
    let change = Change::Update {
        addr,
        weight: body.weight,
        draining,
    };
    match h.source.write(&h.pool, change).await {
        Ok(()) => json(StatusCode::OK, &json::pool_json(pool, h)),
        Err(e) => write_error(e),
    }
}

fn route(view: &AdminView, query: &str) -> Resp {
    let mut pool = None;
    let mut key = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "pool" => pool = json::percent_decode(v),
            "key" => key = json::percent_decode(v),
            _ => {}
        }
    }
    let (Some(pool), Some(key)) = (pool, key) else {
        return error(StatusCode::BAD_REQUEST, "expected ?pool=NAME&key=KEY");
    };
    let Some(h) = view.pools.get(&pool) else {
        return error(StatusCode::NOT_FOUND, &format!("no pool named {pool:?}"));
    };
    let snap = h.pool.snapshot();
    match snap.preferred(key.as_bytes()) {
        Some(m) => json(
            StatusCode::OK,
            &serde_json::json!({ "backend": m.backend().addr().to_string() }),
        ),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no usable backend in the pool",
        ),
    }
}

#[allow(clippy::too_many_lines)] // one block per metric family, in the order /metrics prints them
fn render_metrics(state: &AdminState, view: &AdminView) -> String {
    let mut out = String::with_capacity(4096);
    metrics::header(
        &mut out,
        "lb_requests_total",
        "counter",
        "Responses relayed, by pool, backend and status class.",
    );
    for (name, h) in &view.pools {
        for m in h.pool.snapshot().members() {
            let addr = m.backend().addr().to_string();
            for (i, c) in m.state().class_counts().iter().enumerate() {
                let class = format!("{}xx", i + 1);
                metrics::sample(
                    &mut out,
                    "lb_requests_total",
                    &[("pool", name), ("backend", &addr), ("class", &class)],
                    *c as f64,
                );
            }
        }
    }
    metrics::header(
        &mut out,
        "lb_backend_up",
        "gauge",
        "1 when the backend takes traffic.",
    );
    for (name, h) in &view.pools {
        let now = crate::clock::now_nanos();
        for m in h.pool.snapshot().members() {
            let up = m.status(now) == crate::BackendStatus::Up;
            metrics::sample(
                &mut out,
                "lb_backend_up",
                &[("pool", name), ("backend", &m.backend().addr().to_string())],
                f64::from(u8::from(up)),
            );
        }
    }
    metrics::header(
        &mut out,
        "lb_backend_active",
        "gauge",
        "Requests or connections in flight per backend.",
    );
    for (name, h) in &view.pools {
        for m in h.pool.snapshot().members() {
            metrics::sample(
                &mut out,
                "lb_backend_active",
                &[("pool", name), ("backend", &m.backend().addr().to_string())],
                m.state().active() as f64,
            );
        }
    }
    metrics::header(
        &mut out,
        "lb_request_duration_seconds",
        "histogram",
        "Time to the response head, by pool.",
    );
    for (name, h) in &view.pools {
        h.pool
            .stats()
            .duration
            .render(&mut out, "lb_request_duration_seconds", &[("pool", name)]);
    }
    metrics::header(
        &mut out,
        "lb_retries_total",
        "counter",
        "Retries on another backend, by pool.",
    );
    for (name, h) in &view.pools {
        metrics::sample(
            &mut out,
            "lb_retries_total",
            &[("pool", name)],
            h.pool.stats().retries.load(Ordering::Relaxed) as f64,
        );
    }
    for (name, stats) in &view.directory_retries {
        if view.pools.contains_key(name) {
            continue; // a pool of the same name is shown; never two samples of one series
        }
        metrics::sample(
            &mut out,
            "lb_retries_total",
            &[("pool", name)],
            stats.retries.load(Ordering::Relaxed) as f64,
        );
    }
    metrics::header(
        &mut out,
        "lb_worker_threads",
        "gauge",
        "Worker threads serving connections (`threads`; 0 = one per core).",
    );
    let workers = crate::rt::worker_threads() as f64;
    metrics::sample(&mut out, "lb_worker_threads", &[], workers);
    if let Some(extra) = state.extra() {
        extra.render(&mut out);
    }
    out
}
