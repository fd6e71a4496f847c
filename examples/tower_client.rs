//! A hyper client behind lb-core's tower layer: the layer picks a backend from a pool per
//! request (by a key taken from the request), the inner service sends the request to the
//! backend it is handed, and the call's outcome reaches passive health when it ends.
//!
//! Run: `cargo run -p lb-examples --bin tower_client`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lb_core::tower::{Layer, PoolLayer, Routed, Service};
use lb_core::{Backend, Pool, PoolSettings, StrategyKind};
use lb_examples::demo::{self, named_backend, Error};

/// A request to send: which user it is for (the key) and the path.
struct Get {
    user: String,
    path: String,
}

/// The inner service: one HTTP request to the backend the layer chose.
#[derive(Clone)]
struct Client;

impl Service<Routed<Get>> for Client {
    type Response = String;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<String, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Routed<Get>) -> Self::Future {
        let addr = req.backend.addr();
        let path = req.request.path;
        Box::pin(async move {
            let (status, _, body) = demo::http(addr, "GET", "api", &path, "").await?;
            if status >= 500 {
                return Err(format!("status {status}").into());
            }
            Ok(body)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut backends = Vec::new();
    let mut servers = Vec::new();
    for name in ["api-1", "api-2", "api-3"] {
        let (addr, server) = named_backend(name).await?;
        backends.push(Backend::new(addr).with_id(name));
        servers.push(server);
    }
    let pool = Arc::new(Pool::new(
        "api",
        PoolSettings::with_strategy(StrategyKind::Rendezvous),
        backends,
    )?);
    let mut svc = PoolLayer::new(pool.clone(), |req: &Get| req.user.as_bytes()).layer(Client);

    for user in ["alice", "bob", "carol", "alice"] {
        let req = Get {
            user: user.to_owned(),
            path: format!("/profile/{user}"),
        };
        let body = svc.call(req).await?;
        println!("{user} {body}");
    }
    let snap = pool.snapshot();
    let requests: u64 = snap.members().iter().map(|m| m.state().requests()).sum();
    println!("requests={requests} active={}", pool.active());
    Ok(())
}
