//! A shard router: an HTTP service that owns a [`Pool`] with consistent hashing (a ring), sends each
//! `GET /key/<key>` to the shard the key hashes to, and changes its shards at run time.
//!
//! - `GET /key/<key>`: forwarded to the key's shard. If that shard does not answer, the
//!   router tries the next shard in the key's preference order (and says so in an
//!   `x-fallback` header); the failure is reported to the pool, so a shard that keeps
//!   failing is ejected and its keys go straight to their next choice.
//! - `POST /shards` with body `<id> <addr>`: adds a shard ([`Change::Add`]).
//! - `DELETE /shards/<id>`: removes one ([`Change::Remove`]).
//!
//! Placement follows each shard's *id* (`Backend::with_id`), not its address, so every
//! router instance agrees on every key, and a shard that moves to a new address keeps its
//! keys. On the ring, adding a shard moves only the keys it takes over and removing one
//! moves only its keys. (`StrategyKind::Maglev` spreads keys more evenly and picks in
//! O(1) without a search, but a change also moves a few percent of other keys: choose it
//! when balance matters more than the last bit of stability.)
//!
//! Run: `cargo run -p lb-examples --bin shard_router`. The `main` below starts three
//! shards and the router on loopback, then drives it as a client and prints what happens.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use lb_core::{Backend, Change, Outcome, Pool, PoolSettings, StrategyKind};
use lb_examples::demo::{self, named_backend, Error};
use tokio::net::TcpListener;

/// The router: a pool of shards, shared by every connection.
struct Router {
    pool: Arc<Pool>,
}

impl Router {
    /// Forwards a key to its shard, falling back in preference order. Returns the shard's
    /// answer and whether a fallback was needed.
    async fn get(&self, key: &str) -> Option<(String, bool)> {
        // One lock-free snapshot for the whole request; leases count it as active.
        let snap = self.pool.snapshot();
        let mut fallback = false;
        for lease in snap.select(key.as_bytes()) {
            match demo::http(lease.addr(), "GET", "shard", &format!("/key/{key}"), "").await {
                Ok((200, _, body)) => {
                    lease.report(Outcome::Success);
                    return Some((body, fallback));
                }
                _ => {
                    lease.report(Outcome::Failure);
                    fallback = true;
                }
            }
        }
        None
    }

    /// Adds a shard: a new snapshot is published; requests in flight keep the old one.
    fn add(&self, id: &str, addr: SocketAddr) -> Result<(), lb_core::PoolError> {
        self.pool.apply(Change::Add(Backend::new(addr).with_id(id)))
    }

    /// Removes a shard by id.
    fn remove(&self, id: &str) -> Result<(), String> {
        let snap = self.pool.snapshot();
        let member = snap.members().iter().find(|m| m.backend().id() == id);
        let addr = member.ok_or(format!("no shard {id}"))?.backend().addr();
        self.pool
            .apply(Change::Remove(addr))
            .map_err(|e| e.to_string())
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> (StatusCode, bool, String) {
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let body = match req.into_body().collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(e) => return (StatusCode::BAD_REQUEST, false, e.to_string()),
        };
        match (method.as_str(), path.split_once('/').map(|(_, p)| p)) {
            ("GET", Some(p)) if p.starts_with("key/") => match self.get(&p[4..]).await {
                Some((answer, fallback)) => (StatusCode::OK, fallback, answer),
                None => (StatusCode::BAD_GATEWAY, false, "no shard answered".into()),
            },
            ("POST", Some("shards")) => {
                let parsed = body
                    .split_once(' ')
                    .and_then(|(id, a)| Some((id, a.trim().parse().ok()?)));
                match parsed.map(|(id, addr)| self.add(id, addr)) {
                    Some(Ok(())) => (StatusCode::OK, false, "added".into()),
                    Some(Err(e)) => (StatusCode::CONFLICT, false, e.to_string()),
                    None => (
                        StatusCode::BAD_REQUEST,
                        false,
                        "expected `<id> <addr>`".into(),
                    ),
                }
            }
            ("DELETE", Some(p)) if p.starts_with("shards/") => match self.remove(&p[7..]) {
                Ok(()) => (StatusCode::OK, false, "removed".into()),
                Err(e) => (StatusCode::NOT_FOUND, false, e),
            },
            _ => (StatusCode::NOT_FOUND, false, "unknown endpoint".into()),
        }
    }
}

/// Serves the router's HTTP API on `listener`.
async fn serve(listener: TcpListener, router: Arc<Router>) {
    while let Ok((stream, _)) = listener.accept().await {
        let router = router.clone();
        let svc = hyper::service::service_fn(move |req| {
            let router = router.clone();
            async move {
                let (status, fallback, body) = router.handle(req).await;
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                *resp.status_mut() = status;
                if fallback {
                    resp.headers_mut()
                        .insert("x-fallback", "1".parse().expect("valid"));
                }
                Ok::<_, Infallible>(resp)
            }
        });
        let io = hyper_util::rt::TokioIo::new(stream);
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, svc));
    }
}

const KEYS: usize = 200;

/// Routes every key through the router: key → shard id.
async fn routes(router: SocketAddr) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for i in 0..KEYS {
        let key = format!("user:{i}");
        let (status, _, body) =
            demo::http(router, "GET", "router", &format!("/key/{key}"), "").await?;
        if status != 200 {
            return Err(format!("{key}: status {status}: {body}").into());
        }
        let shard = body.split(' ').next().unwrap_or_default().to_owned();
        out.insert(key, shard);
    }
    Ok(out)
}

fn moved<'a>(
    before: &'a BTreeMap<String, String>,
    after: &'a BTreeMap<String, String>,
) -> Vec<&'a str> {
    before
        .iter()
        .filter(|(k, s)| after.get(*k) != Some(*s))
        .map(|(k, _)| k.as_str())
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut shards = BTreeMap::new();
    for id in ["shard-a", "shard-b", "shard-c", "shard-d"] {
        shards.insert(id, named_backend(id).await?);
    }
    let first: Vec<Backend> = ["shard-a", "shard-b", "shard-c"]
        .iter()
        .map(|id| Backend::new(shards[id].0).with_id(*id))
        .collect();
    let pool = Pool::new(
        "shards",
        PoolSettings::with_strategy(StrategyKind::Consistent),
        first,
    )?;
    let router = Arc::new(Router {
        pool: Arc::new(pool),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let at = listener.local_addr()?;
    tokio::spawn(serve(listener, router.clone()));

    let before = routes(at).await?;
    for (key, shard) in before.iter().take(5) {
        println!("route {key} {shard}");
    }

    let body = format!("shard-d {}", shards["shard-d"].0);
    let (status, _, _) = demo::http(at, "POST", "router", "/shards", &body).await?;
    let added = routes(at).await?;
    let m = moved(&before, &added);
    let all_to_new = m.iter().all(|k| added[*k] == "shard-d");
    println!(
        "add shard-d status={status} moved={}/{KEYS} all_to_new={all_to_new}",
        m.len()
    );

    let (status, _, _) = demo::http(at, "DELETE", "router", "/shards/shard-b", "").await?;
    let removed = routes(at).await?;
    let m = moved(&added, &removed);
    let only_removed = m.iter().all(|k| added[*k] == "shard-b");
    println!(
        "remove shard-b status={status} moved={}/{KEYS} only_from_removed={only_removed}",
        m.len()
    );

    // shard-a goes down without being removed: its keys fall back to their next choice.
    if let Some((_, server)) = shards.remove("shard-a") {
        server.abort();
        let _ = server.await; // the listener is closed once the task is gone
    }
    println!("down shard-a");
    let key = removed
        .iter()
        .find(|(_, s)| *s == "shard-a")
        .map(|(k, _)| k.clone())
        .ok_or("no key on shard-a")?;
    let (status, fallback, body) =
        demo::http(at, "GET", "router", &format!("/key/{key}"), "").await?;
    let shard = body.split(' ').next().unwrap_or_default();
    println!("route {key} {shard} status={status} fallback={fallback}");
    let ids: Vec<String> = router
        .pool
        .snapshot()
        .members()
        .iter()
        .map(|m| m.backend().id().to_owned())
        .collect();
    println!("members {}", ids.join(","));
    Ok(())
}
