//! Examples of embedding lb-core in another service. Each is a binary run by
//! `tests/examples.rs`, which asserts its output:
//!
//! - `embed`: a pool with consistent hashing, picked from.
//! - `shard_router`: an HTTP service routing keys to shards (Maglev), adding and removing
//!   shards at run time, falling back in preference order when a shard is down.
//! - `custom_resolver`: your own directory as a `Resolver`, behind `Cached`.
//! - `custom_health_check`: a Redis `PING` probe with rise/fall, against real redis-servers.
//! - `custom_discovery`: your own service registry feeding a pool.
//! - `embedded_proxy`: lb-proxy built from code, routing by a custom resolver.
//! - `tower_client`: a hyper client behind lb-core's tower layer.
//!
//! [`demo`] holds the scaffolding the examples share and that is not about lb-core: a
//! named HTTP backend and a one-request HTTP client.

pub mod demo {
    //! Demo scaffolding: named backends and a small HTTP client, on loopback.

    use std::convert::Infallible;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, Response};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    /// Any error of the demo plumbing.
    pub type Error = Box<dyn std::error::Error + Send + Sync>;

    /// An HTTP/1.1 backend on `127.0.0.1:0` answering every request with
    /// `"<name> <path>"`. Aborting the handle closes the listener (new connections are
    /// refused: the backend is down).
    pub async fn named_backend(name: &str) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let name: std::sync::Arc<str> = name.into();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let name = name.clone();
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = format!("{name} {}", req.uri().path());
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, svc));
            }
        });
        Ok((addr, task))
    }

    /// One HTTP/1.1 request on a fresh connection: `(status, x-fallback header, body)`.
    pub async fn http(
        addr: SocketAddr,
        method: &str,
        host: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, bool, String), Error> {
        let stream = TcpStream::connect(addr).await?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .body(Full::new(Bytes::from(body.to_owned())))?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        let fallback = resp.headers().contains_key("x-fallback");
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((
            status,
            fallback,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }
}
